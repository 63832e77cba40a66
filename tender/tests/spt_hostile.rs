//! Hostile spt guests: each tries one escape and must be contained — killed by SIGSYS
//! before the call runs, with the host unchanged (the block file keeps its bytes, no
//! process is left behind).

mod common;

use std::time::{Duration, Instant};

use common::{guest, run_tender, tender, Scratch};

const VARIANTS: &[&str] = &[
    "open",
    "execve",
    "socket",
    "mmap-exec",
    "mprotect-exec",
    "fork",
    "clone",
    "fork-bomb",
    "ptrace",
    "kill",
    "ioctl",
    "getrandom",
    "read-fd0",
    "write-fd0",
    "pread-other-fd",
    "pread-oversize",
    "pread-short",
    "pread-past-capacity",
    "pread-negative",
    "pwrite-oversize",
    "pwrite-past-capacity",
    "clock-boottime",
    "arch-set-gs",
];

#[test]
fn every_escape_attempt_dies_by_sigsys_and_leaves_the_disk_alone() {
    let scratch = Scratch::new("hostile");
    let disk = scratch.file("disk.img", 64 * 1024, 0x5a);
    for variant in VARIANTS {
        let run =
            run_tender(&[&format!("--block:storage={}", disk.display()), guest("hostile").to_str().unwrap(), variant]);
        run.expect(128 + libc::SIGSYS, &[&format!("about to try: {variant}")]);
        assert!(!run.stdout().contains("FAIL"), "{variant}: {}", run.stdout());
        assert!(std::fs::read(&disk).unwrap().iter().all(|&b| b == 0x5a), "{variant} changed the disk");
    }
}

#[test]
fn a_guest_that_never_exits_ends_promptly_on_sigterm() {
    let mut child = std::process::Command::new(tender())
        .arg(guest("spin"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("tender starts");
    // Wait until the guest runs (it prints once, then spins without syscalls).
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("spinning forever") {
        let mut line = String::new();
        assert!(std::io::BufRead::read_line(&mut stdout, &mut line).unwrap() > 0, "guest ended early: {seen}");
        seen.push_str(&line);
    }
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("SIGTERM did not end the spinning guest within 10 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
}
