//! After the filter is installed only the guest runs, and it makes only the syscalls of
//! the README's table (checked under strace, as the "done" asks).

mod common;

use std::process::Command;

use common::{guest, have, require, tender, Scratch};

#[test]
fn readme_table_is_the_profile() {
    let mut table = common::readme_syscall_table("Allowed syscalls (spt)");
    table.sort();
    table.dedup();
    let run = seccomp_profiles::RunParams {
        epoll_fd: 3,
        timer_fd: 4,
        blocks: vec![seccomp_profiles::BlockParams { fd: 5, block_size: 512, capacity: 4096 }],
        nets: vec![6],
        dumpcore: None,
    };
    let filter = seccomp_profiles::Profile::spt().resolve(&run).unwrap();
    let mut allowed: Vec<String> = filter.syscalls().into_iter().map(str::to_owned).collect();
    allowed.sort();
    assert_eq!(table, allowed, "README's spt table and profiles/spt-x86_64.json disagree");
}

/// Syscall names strace logged after `seccomp(SECCOMP_SET_MODE_FILTER, ...)`.
fn syscalls_after_filter(args: &[String]) -> Vec<String> {
    let scratch = Scratch::new("strace");
    let log = scratch.0.join("trace");
    let out = Command::new("strace")
        .args(["-f", "-qq", "-o"])
        .arg(&log)
        .arg(tender())
        .args(args)
        .output()
        .expect("strace runs");
    assert!(out.status.success(), "guest under strace failed: {}", String::from_utf8_lossy(&out.stdout));
    let trace = std::fs::read_to_string(&log).unwrap();
    let after = trace.split_once("seccomp(SECCOMP_SET_MODE_FILTER").expect("the tender installs a filter").1;
    after
        .lines()
        .skip(1)
        .filter_map(|l| {
            // "PID name(args) = rv" or "PID +++ exited with 0 +++"
            let call = l.split_once(' ').map_or(l, |(_, rest)| rest).trim_start();
            let name = call.split('(').next()?;
            (!name.starts_with("+++") && !name.starts_with("---") && !name.is_empty()).then(|| name.to_owned())
        })
        .collect()
}

#[test]
fn after_the_filter_only_table_syscalls_are_made() {
    if !require("strace", have("strace")) {
        return;
    }
    let table = common::readme_syscall_table("Allowed syscalls (spt)");
    let scratch = Scratch::new("strace-blk");
    let disk = scratch.file("disk.img", 64 * 1024, 0);
    for args in [
        vec![guest("hello").display().to_string(), "a".into()],
        vec![guest("clocks").display().to_string()],
        vec![guest("yield").display().to_string()],
        vec![guest("tls").display().to_string()],
        vec![format!("--block:storage={}", disk.display()), guest("blk").display().to_string()],
    ] {
        let seen = syscalls_after_filter(&args);
        assert!(!seen.is_empty(), "{args:?}: nothing traced after the filter");
        for name in &seen {
            assert!(table.contains(name), "{args:?}: `{name}` after the filter is not in the README table {table:?}");
        }
        assert_eq!(seen.last().map(String::as_str), Some("exit_group"), "{args:?}: {seen:?}");
    }
}
