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

/// Starts `cmd` (a tender running the `spin` guest) and returns once the guest runs:
/// it prints once, then spins without syscalls.
fn spawn_spinning(mut cmd: std::process::Command) -> std::process::Child {
    let mut child = cmd.stdout(std::process::Stdio::piped()).spawn().expect("tender starts");
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("spinning forever") {
        let mut line = String::new();
        assert!(std::io::BufRead::read_line(&mut stdout, &mut line).unwrap() > 0, "guest ended early: {seen}");
        seen.push_str(&line);
    }
    child
}

/// At entry the guest finds nothing of the tender in any register: general registers
/// zero but the ABI's, RFLAGS as at execve, and the x87/SSE/AVX/AVX-512 state initial
/// (the tender's argv and filter used to be readable in zmm16-31).
#[test]
fn the_guest_finds_no_tender_data_in_its_registers_at_entry() {
    let run = run_tender(&["--mem=8", guest("entry_state").to_str().unwrap(), "argv", "that", "must", "not", "leak"]);
    run.expect(0, &["entry state: clean"]);
}

/// A descriptor the caller leaks to the tender (here a pipe's write end, at fd 7 and not
/// close-on-exec) is closed before the guest runs: the reader gets EOF while the guest
/// still runs, and the guest's process holds nothing but stdio and its own descriptors.
#[test]
fn descriptors_leaked_by_the_caller_are_closed_before_the_guest_runs() {
    use std::os::fd::IntoRawFd;
    use std::os::unix::process::CommandExt;
    let (read_end, write_end) = nix::unistd::pipe().unwrap();
    let write_fd = write_end.into_raw_fd();
    let mut cmd = std::process::Command::new(common::tender());
    cmd.args(["--mem=8", guest("spin").to_str().unwrap()]);
    // SAFETY: runs in the forked child before exec; dup2 is async-signal-safe and only
    // makes fd 7 (without close-on-exec) a copy of the pipe's write end.
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(write_fd, 7) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = spawn_spinning(cmd);
    // SAFETY: `write_fd` is our own copy of the write end, owned by nothing else.
    unsafe { libc::close(write_fd) };
    let fd_dir = format!("/proc/{}/fd", child.id());
    let mut fds: Vec<(u32, String)> = std::fs::read_dir(&fd_dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let target = std::fs::read_link(e.path()).map(|t| t.display().to_string()).unwrap_or_default();
            (e.file_name().to_string_lossy().parse().unwrap(), target)
        })
        .collect();
    fds.sort();
    // stdio, then the epoll set and the timerfd: nothing of the caller's, and not the
    // guest file (read and closed before the jump).
    let above_stdio: Vec<&str> = fds.iter().filter(|(fd, _)| *fd > 2).map(|(_, t)| t.as_str()).collect();
    assert_eq!(fds.iter().filter(|(fd, _)| *fd <= 2).count(), 3, "stdio: {fds:?}");
    assert_eq!(above_stdio, ["anon_inode:[eventpoll]", "anon_inode:[timerfd]"], "the guest's descriptors: {fds:?}");
    let mut buf = [0u8; 1];
    let n = nix::unistd::read(&read_end, &mut buf).unwrap();
    assert_eq!(n, 0, "EOF while the guest runs: no copy of the write end is left");
    assert!(child.try_wait().unwrap().is_none(), "the guest should still run");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_guest_that_never_exits_ends_promptly_on_sigterm() {
    let mut cmd = std::process::Command::new(tender());
    cmd.arg(guest("spin"));
    let mut child = spawn_spinning(cmd);
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

/// Once the guest runs, nothing of the tender is left for it to read or reuse: the
/// process holds the guest region, the launch code's page (code only, no filter or command
/// line) and the kernel's fixed vsyscall page; no tender image, heap, stack, TLS or
/// vDSO. The page left holds code only (no arguments, messages or filter), and the
/// launch data in guest memory is wiped. `ps` still shows the tender's arguments (a
/// copy in guest memory); its environment is gone.
#[test]
fn the_tender_leaves_the_address_space_before_the_guest_runs() {
    let mem_mib = 8u64;
    let mut cmd = std::process::Command::new(tender());
    cmd.args([format!("--mem={mem_mib}"), guest("spin").to_str().unwrap().to_owned()]);
    cmd.env("TENDER_TEST_SECRET", "hunter2");
    let mut child = spawn_spinning(cmd);
    let pid = child.id();
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    // What the guest could read: the launch code's page, and the scratch area in its own
    // memory where the launch data (filter, ranges, XSAVE image, message) was.
    let read = |addr: u64, len: usize| {
        use std::os::unix::fs::FileExt;
        let mem = std::fs::File::open(format!("/proc/{pid}/mem")).unwrap();
        let mut buf = vec![0u8; len];
        mem.read_exact_at(&mut buf, addr).unwrap_or_else(|e| panic!("read {addr:#x}+{len}: {e}"));
        buf
    };
    // The guest's low area: boot info, manifest, command line, the launch data after it
    // (wiped) and the copy of the arguments for `ps`.
    let low = read(0x1_0000, 0x10_0000 - 0x1_0000);
    let outside_page = maps
        .lines()
        .filter(|l| l.contains(" r-xp ") && !l.contains("[vsyscall]"))
        .map(|l| u64::from_str_radix(l.split('-').next().unwrap(), 16).unwrap())
        .find(|&start| start >= mem_mib << 20);
    let code_page = outside_page.map(|start| read(start, 4096));
    let _ = child.kill();
    let _ = child.wait();

    // The filter's kill instruction (BPF_RET|BPF_K, SECCOMP_RET_KILL_PROCESS) and the launch
    // code's error message would be there had the launch data not been wiped.
    let kill_insn = [0x06, 0, 0, 0, 0, 0, 0, 0x80];
    assert!(!low.windows(8).any(|w| w == kill_insn), "the filter is left in guest memory");
    assert!(!low.windows(14).any(|w| w == b"entering the g"), "the launch message is left in guest memory");
    let code_page = code_page.unwrap_or_else(|| panic!("no launch code page in:\n{maps}"));
    for needle in [&b"spin.spt"[..], b"--mem", b"hunter2", b"tender", b"seccomp"] {
        assert!(
            !code_page.windows(needle.len()).any(|w| w == needle),
            "the launch code page holds {:?}",
            String::from_utf8_lossy(needle)
        );
    }

    let guest_end = mem_mib << 20;
    let mut outside = Vec::new();
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let range = fields.next().unwrap();
        let (start, end) = range.split_once('-').unwrap();
        let (start, end) = (u64::from_str_radix(start, 16).unwrap(), u64::from_str_radix(end, 16).unwrap());
        let (perms, _offset, _dev, inode) = (fields.next().unwrap(), fields.next(), fields.next(), fields.next());
        let name = fields.next().unwrap_or("");
        if name == "[vsyscall]" {
            continue;
        }
        assert_eq!((inode, name), (Some("0"), ""), "only anonymous memory is left: {line}\n{maps}");
        if start >= 0x1_0000 && end <= guest_end {
            continue;
        }
        outside.push((end - start, perms.to_owned()));
    }
    assert_eq!(outside.len(), 1, "one launch block outside the guest region:\n{maps}");
    let (len, perms) = &outside[0];
    assert!(*len <= 64 * 1024 && perms == "r-xp", "the launch block is small and read-only: {outside:?}\n{maps}");
    let cmdline = String::from_utf8_lossy(&cmdline);
    assert!(cmdline.ends_with("spin.spt\0") && cmdline.contains("--mem=8\0"), "ps shows the arguments: {cmdline:?}");
    assert!(!String::from_utf8_lossy(&environ).contains("hunter2"), "the environment is gone: {environ:?}");
}

/// A hostile guest probes, page by page, everything below its memory, the 4 GiB above
/// it, the top 4 GiB of the address space and the vsyscall page (`scan`, ASLR off so
/// the tender's mappings would be in that window) and dumps what it can read. It finds
/// its own memory and one read-only page: the launch code, byte for byte code from the
/// tender's binary followed by zeros, holding nothing of this run (no argument,
/// environment, filter or pointer).
#[test]
fn a_guest_scanning_its_address_space_finds_only_the_launch_code() {
    use std::os::unix::process::CommandExt;
    let mem_mib = 8u64;
    let mut cmd = std::process::Command::new(tender());
    cmd.args([format!("--mem={mem_mib}"), guest("scan").to_str().unwrap().to_owned(), "--secret-arg".to_owned()]);
    cmd.env("TENDER_TEST_SECRET", "hunter2");
    // SAFETY: runs in the forked child before exec; personality(2) only changes how the
    // kernel lays out the new image (no ASLR), which is the point.
    unsafe {
        cmd.pre_exec(|| {
            if libc::personality(libc::ADDR_NO_RANDOMIZE as libc::c_ulong) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let run = common::run_bounded(cmd, common::RUN_LIMIT);
    run.expect(0, &["scan: done"]);
    let stdout = run.stdout();
    let mapped: Vec<&str> = stdout.lines().filter_map(|l| l.strip_prefix("mapped ")).collect();
    let own = format!("0x10000-{:#x} r-", mem_mib << 20);
    assert_eq!(mapped.first(), Some(&own.as_str()), "its own memory first:\n{stdout}");
    assert_eq!(mapped.len(), 2, "one range besides its own memory:\n{stdout}");
    let (range, perms) = mapped[1].split_once(' ').unwrap();
    let (start, end) = range.split_once('-').unwrap();
    let parse = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap();
    let (start, end) = (parse(start), parse(end));
    assert_eq!((end - start, perms), (4096, "r-"), "one read-only page:\n{stdout}");

    let dump = stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("bytes {start:#x} ")))
        .unwrap_or_else(|| panic!("no dump of {start:#x}:\n{stdout}"));
    let page: Vec<u8> = (0..dump.len()).step_by(2).map(|i| u8::from_str_radix(&dump[i..i + 2], 16).unwrap()).collect();
    assert_eq!(page.len(), 4096);
    let code_len = page.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    let code = &page[..code_len];
    assert!((64..=1024).contains(&code_len), "{code_len} bytes of code");
    let binary = std::fs::read(tender()).unwrap();
    assert!(
        binary.windows(code.len()).any(|w| w == code),
        "the page holds something other than code from the tender's binary: {dump}"
    );
    for needle in [&b"--secret-arg"[..], b"scan.spt", b"--mem", b"hunter2", b"tender"] {
        assert!(!page.windows(needle.len()).any(|w| w == needle), "{:?} in the page", String::from_utf8_lossy(needle));
    }
}
