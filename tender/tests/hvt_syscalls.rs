//! After the hvt backend installs its filter only the vCPU loop runs, and it
//! makes only the syscalls of the README's hvt table (checked under strace).

mod common;

use std::process::Command;

use common::{require, tender, Backend, Scratch};

#[test]
fn readme_table_is_the_profile() {
    let mut table = common::readme_syscall_table("Allowed syscalls (hvt)");
    table.sort();
    table.dedup();
    let run = seccomp_profiles::RunParams {
        epoll_fd: 3,
        timer_fd: 4,
        blocks: vec![seccomp_profiles::BlockParams { fd: 5, block_size: 512, capacity: 4096 }],
        nets: vec![6],
        // With --dumpcore, so that its rules are in the table too.
        dumpcore: Some(seccomp_profiles::DumpcoreParams {
            dir_fd: 8,
            core_fd: 9,
            link_from: 0x7000_0000,
            name: 0x7000_0010,
            last_page_offset: 1 << 21,
        }),
    };
    let filter = seccomp_profiles::Profile::hvt().resolve_hvt(&run, 7).unwrap();
    let mut allowed: Vec<String> = filter.syscalls().into_iter().map(str::to_owned).collect();
    allowed.sort();
    assert_eq!(table, allowed, "README's hvt table and profiles/hvt-x86_64.json disagree");
}

/// Syscall names strace logged after `seccomp(SECCOMP_SET_MODE_FILTER, ...)`,
/// and the exit status.
fn syscalls_after_filter(args: &[String]) -> (Vec<String>, i32) {
    let scratch = Scratch::new("strace-hvt");
    let log = scratch.0.join("trace");
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-qq", "-o"]).arg(&log).arg(tender()).args(args);
    let run = common::run_bounded(cmd, common::RUN_LIMIT);
    let trace = std::fs::read_to_string(&log).unwrap();
    let after = trace.split_once("seccomp(SECCOMP_SET_MODE_FILTER").expect("the tender installs a filter").1;
    let names = after
        .lines()
        .skip(1)
        .filter_map(|l| {
            // "PID name(args) = rv" or "PID +++ exited with 0 +++"
            let call = l.split_once(' ').map_or(l, |(_, rest)| rest).trim_start();
            let name = call.split('(').next()?;
            (!name.starts_with("+++") && !name.starts_with("---") && !name.is_empty()).then(|| name.to_owned())
        })
        .collect();
    (names, run.status())
}

#[test]
fn after_the_filter_only_table_syscalls_are_made() {
    if !Backend::Hvt.available() || !require("strace", common::have("strace")) {
        return;
    }
    let table = common::readme_syscall_table("Allowed syscalls (hvt)");
    let scratch = Scratch::new("strace-hvt-blk");
    let disk = scratch.file("disk.img", 16 * 1024, 0);
    let g = |name: &str| Backend::Hvt.guest(name).display().to_string();
    for (args, status) in [
        (vec![g("hello"), "a".into()], 0),
        (vec![g("clocks"), "100".into()], 0),
        (vec![g("yield")], 0),
        (vec![format!("--block:storage={}", disk.display()), g("blk")], 0),
        (vec![g("abort")], 255),
        // --dumpcore: KVM_GET_SREGS, linkat and pwrite64 on the core after the filter.
        (vec![format!("--dumpcore={}", scratch.0.display()), "--mem=4".into(), g("abort")], 255),
        // A fatal exit: KVM_GET_REGS for the RIP, the message on stderr.
        (vec!["--mem=4".into(), g("hostile_hvt"), "output-into-text".into()], 1),
    ] {
        let (seen, got) = syscalls_after_filter(&args);
        assert_eq!(got, status, "{args:?}");
        assert!(!seen.is_empty(), "{args:?}: nothing traced after the filter");
        for name in &seen {
            assert!(table.contains(name), "{args:?}: `{name}` after the filter is not in the README table {table:?}");
        }
        assert_eq!(seen.last().map(String::as_str), Some("exit_group"), "{args:?}: {seen:?}");
    }
}

#[test]
fn audit_prints_the_hvt_filter_without_running_the_guest() {
    if !Backend::Hvt.available() {
        return;
    }
    let scratch = Scratch::new("audit-hvt");
    let disk = scratch.file("disk.img", 64 * 1024, 0);
    let blk = Backend::Hvt.guest("blk");
    let run = common::run_tender(&["--audit", &format!("--block:storage={}", disk.display()), blk.to_str().unwrap()]);
    run.expect(0, &["solo5-hvt guest", "BPF instructions", "rt_sigreturn", "exit_group"]);
    let out = run.stdout();
    assert!(!out.contains("Solo5:"), "the guest ran:\n{out}");
    assert!(std::fs::read(&disk).unwrap().iter().all(|&b| b == 0), "the guest wrote the disk");
    let ioctls: Vec<&str> = out.lines().filter(|l| l.starts_with("ioctl")).collect();
    assert_eq!(ioctls.len(), 2, "{out}");
    assert!(ioctls.iter().any(|l| l.contains(&format!("arg1 == {:#x}", seccomp_profiles::KVM_RUN))), "{out}");
    let pread = out.lines().find(|l| l.starts_with("pread64")).expect("pread64 rule");
    assert!(pread.contains("arg2 <= 0x10000") && pread.contains("arg3 <= 0xffff"), "{pread}");
}
