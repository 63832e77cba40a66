//! The compiled filters, loaded for real in a forked child: allowed shapes pass,
//! forged arguments die by SIGSYS (seccompiler's own integration tests do the same).

use std::ffi::{c_long, CStr};

use seccomp_profiles::{BlockParams, DumpcoreParams, Profile, ResolvedFilter, RunParams};

/// Runs `probe` in a child with the spt filter for `run` loaded; returns the wait status.
fn in_filtered_child(run: &RunParams, probe: fn() -> i64) -> libc::c_int {
    in_child_under(&Profile::spt().resolve(run).unwrap(), probe)
}

/// Runs `probe` in a child with `filter` loaded; returns the wait status.
fn in_child_under(filter: &ResolvedFilter, probe: fn() -> i64) -> libc::c_int {
    let bpf = filter.compile().unwrap();
    // SAFETY: the test process may be multi-threaded; the child only calls
    // async-signal-safe raw syscalls (prctl/seccomp via seccompiler, then `probe`'s raw
    // syscall, then _exit) and never returns into the test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        if seccompiler::apply_filter(&bpf).is_err() {
            // SAFETY: _exit ends the child without running Rust or libc atexit code.
            unsafe { libc::_exit(100) };
        }
        let rc = probe();
        // SAFETY: as above; rc >= 0 means the syscall was allowed and succeeded.
        unsafe { libc::_exit(if rc >= 0 { 0 } else { 1 }) };
    }
    let mut status = 0;
    // SAFETY: `status` is a valid out pointer; `pid` is our child.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(waited, pid);
    status
}

fn killed_by_sigsys(status: libc::c_int) -> bool {
    libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGSYS
}

fn exited_ok(status: libc::c_int) -> bool {
    libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0
}

fn clock(id: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec the kernel writes into.
    unsafe { libc::syscall(libc::SYS_clock_gettime, id, &mut ts) }
}

fn params() -> RunParams {
    RunParams { epoll_fd: 900, timer_fd: 901, ..RunParams::default() }
}

#[test]
fn solo5_clocks_pass_other_clocks_die() {
    assert!(exited_ok(in_filtered_child(&params(), || clock(libc::CLOCK_MONOTONIC))));
    assert!(exited_ok(in_filtered_child(&params(), || clock(libc::CLOCK_REALTIME))));
    assert!(killed_by_sigsys(in_filtered_child(&params(), || clock(libc::CLOCK_BOOTTIME))));
}

#[test]
fn syscalls_outside_the_table_die() {
    // SAFETY: getpid has no arguments and no side effects.
    assert!(killed_by_sigsys(in_filtered_child(&params(), || unsafe { libc::syscall(libc::SYS_getpid) })));
    // SAFETY: dup(1) only creates a descriptor (Solo5's test_seccomp probe).
    assert!(killed_by_sigsys(in_filtered_child(&params(), || unsafe { libc::syscall(libc::SYS_dup, 1) })));
    // SAFETY: write to fd 2 of an empty buffer; the filter must refuse it (console is fd 1 only).
    assert!(killed_by_sigsys(in_filtered_child(&params(), || unsafe {
        libc::syscall(libc::SYS_write, 2, std::ptr::null::<u8>(), 0)
    })));
}

/// A block file at fd `BLOCK_FD` in the child (dup2'd before the filter goes on).
const BLOCK_FD: i32 = 910;

fn block_params() -> RunParams {
    RunParams { blocks: vec![BlockParams { fd: BLOCK_FD, block_size: 512, capacity: 4096 }], ..params() }
}

fn pread(fd: i32, len: usize, offset: i64) -> i64 {
    let mut buf = [0u8; 1024];
    // SAFETY: `buf` holds at least `len` (≤ 1024) bytes.
    unsafe { libc::syscall(libc::SYS_pread64, fd, buf.as_mut_ptr(), len, offset) }
}

#[test]
fn block_io_is_pinned_to_fd_size_and_capacity() {
    let file = tempfile_with(4096);
    use std::os::fd::AsRawFd;
    // SAFETY: dup2 onto an unused high fd number in this test process.
    assert_eq!(unsafe { libc::dup2(file.as_raw_fd(), BLOCK_FD) }, BLOCK_FD);
    let run = block_params();
    assert!(exited_ok(in_filtered_child(&run, || pread(BLOCK_FD, 512, 0))));
    assert!(exited_ok(in_filtered_child(&run, || pread(BLOCK_FD, 512, 4096 - 512))));
    assert!(killed_by_sigsys(in_filtered_child(&run, || pread(BLOCK_FD, 512, 4096))), "offset past capacity");
    assert!(killed_by_sigsys(in_filtered_child(&run, || pread(BLOCK_FD, 1024, 0))), "oversize");
    assert!(killed_by_sigsys(in_filtered_child(&run, || pread(BLOCK_FD, 511, 0))), "short");
    assert!(killed_by_sigsys(in_filtered_child(&run, || pread(BLOCK_FD, 512, -512))), "negative offset");
    assert!(killed_by_sigsys(in_filtered_child(&run, || pread(0, 512, 0))), "another fd");
}

fn tempfile_with(len: u64) -> std::fs::File {
    // Unique per call: tests run in parallel threads of one process.
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!("seccomp-profiles-enforce-{}-{n}", std::process::id()));
    let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
    file.set_len(len).unwrap();
    std::fs::remove_file(&path).unwrap();
    file
}

/// 63 disks (the manifest's maximum) and 8 taps: the first 1000 + i, the taps
/// 1100 + i, all dup2'd in the test process before the children fork.
const MANY_DISKS: i32 = 63;
const MANY_TAPS: i32 = 8;
const DISK0: i32 = 1000;
const TAP0: i32 = 1100;

fn many_params() -> RunParams {
    RunParams {
        blocks: (0..MANY_DISKS).map(|i| BlockParams { fd: DISK0 + i, block_size: 512, capacity: 4096 }).collect(),
        nets: (0..MANY_TAPS).map(|i| TAP0 + i).collect(),
        ..params()
    }
}

fn write4(fd: i32) -> i64 {
    let buf = [0u8; 4];
    // SAFETY: writes 4 bytes from a live stack buffer.
    unsafe { libc::syscall(libc::SYS_write, fd, buf.as_ptr(), 4) }
}

fn read4(fd: i32) -> i64 {
    let mut buf = [0u8; 4];
    // SAFETY: reads at most 4 bytes into a live stack buffer.
    unsafe { libc::syscall(libc::SYS_read, fd, buf.as_mut_ptr(), 4) }
}

/// The reshaped filter (one compare per syscall, then per-device checks) still
/// pins every device: each disk and tap works, a neighbour's fd or a wrong size dies.
#[test]
fn many_devices_are_each_pinned() {
    use std::os::fd::AsRawFd;
    let file = tempfile_with(4096);
    let devnull = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null").unwrap();
    for i in 0..MANY_DISKS {
        // SAFETY: dup2 onto fds this test reserves (1000..1063).
        assert_eq!(unsafe { libc::dup2(file.as_raw_fd(), DISK0 + i) }, DISK0 + i);
    }
    for i in 0..MANY_TAPS {
        // SAFETY: dup2 onto fds this test reserves (1100..1108).
        assert_eq!(unsafe { libc::dup2(devnull.as_raw_fd(), TAP0 + i) }, TAP0 + i);
    }
    let run = many_params();
    let every_device = || {
        for fd in DISK0..DISK0 + MANY_DISKS {
            if pread(fd, 512, 4096 - 512) != 512 || pread(fd, 512, 0) != 512 {
                return -1;
            }
        }
        for fd in TAP0..TAP0 + MANY_TAPS {
            if write4(fd) != 4 || read4(fd) != 0 {
                return -1;
            }
        }
        0
    };
    assert!(exited_ok(in_filtered_child(&run, every_device)));
    assert!(
        killed_by_sigsys(in_filtered_child(&run, || pread(DISK0 + MANY_DISKS - 1, 512, 4096))),
        "last disk, past end"
    );
    assert!(
        killed_by_sigsys(in_filtered_child(&run, || pread(DISK0 + MANY_DISKS - 1, 1024, 0))),
        "last disk, 2 blocks"
    );
    assert!(killed_by_sigsys(in_filtered_child(&run, || pread(DISK0 + MANY_DISKS, 512, 0))), "fd after the last disk");
    assert!(killed_by_sigsys(in_filtered_child(&run, || pread(DISK0 - 1, 512, 0))), "fd before the first disk");
    assert!(killed_by_sigsys(in_filtered_child(&run, || write4(TAP0 + MANY_TAPS))), "fd after the last tap");
    assert!(killed_by_sigsys(in_filtered_child(&run, || read4(1))), "read from the console fd");
    // A tap fd with a high word set in the fd argument is not the tap.
    assert!(killed_by_sigsys(in_filtered_child(&run, || {
        let buf = [0u8; 4];
        let fd = (1u64 << 32) | TAP0 as u64;
        // SAFETY: the kernel would see an invalid fd; the filter must kill first.
        unsafe { libc::syscall(libc::SYS_write, fd, buf.as_ptr(), 4) }
    })));
}

#[test]
fn x32_and_unlisted_numbers_die() {
    const X32: libc::c_long = 0x4000_0000;
    // SAFETY: getpid (x32 number) has no arguments; the filter must kill first.
    assert!(killed_by_sigsys(in_filtered_child(&params(), || unsafe { libc::syscall(X32 | libc::SYS_getpid) })));
    // SAFETY: exit_group under the x32 bit: would exit 0, must die instead.
    assert!(killed_by_sigsys(in_filtered_child(&params(), || unsafe { libc::syscall(X32 | libc::SYS_exit_group, 0) })));
    // SAFETY: an unassigned syscall number; the kernel would return ENOSYS.
    assert!(killed_by_sigsys(in_filtered_child(&params(), || unsafe { libc::syscall(1000) })));
}

/// The `--dumpcore` paths: in read-only data, like the tender's sealed page.
static CORE_LINK_FROM: &CStr = c"/nonexistent/tender-enforce/fd";
static CORE_NAME: &CStr = c"tender-enforce-core";
const DUMPCORE_DIR_FD: i32 = 950;
const CORE_FD: i32 = 951;
/// A core of 2 pages of guest memory: its last page starts at 8192.
const CORE_LAST_PAGE: i64 = 8192;

/// The hvt filter of a run with `--dumpcore` (vCPU fd 999).
fn hvt_dumpcore() -> ResolvedFilter {
    let dumpcore = DumpcoreParams {
        dir_fd: DUMPCORE_DIR_FD,
        core_fd: CORE_FD,
        link_from: CORE_LINK_FROM.as_ptr().addr() as u64,
        name: CORE_NAME.as_ptr().addr() as u64,
        last_page_offset: CORE_LAST_PAGE as u64,
    };
    Profile::hvt().resolve_hvt(&RunParams { dumpcore: Some(dumpcore), ..params() }, 999).unwrap()
}

fn linkat(from: &CStr, dir_fd: i32, name: &CStr, flags: i32) -> i64 {
    // SAFETY: both paths are NUL-terminated strings the kernel only reads; the
    // arguments are full-width longs, as the tender passes them.
    unsafe {
        libc::syscall(
            libc::SYS_linkat,
            c_long::from(libc::AT_FDCWD),
            from.as_ptr(),
            c_long::from(dir_fd),
            name.as_ptr(),
            c_long::from(flags),
        )
    }
}

/// The same text at another address (a stack copy: the child must not allocate).
fn stack_c_str(bytes: &[u8]) -> &CStr {
    CStr::from_bytes_with_nul(bytes).unwrap()
}

fn pwrite_core(len: usize, offset: i64) -> i64 {
    let page = [0u8; 4097];
    // SAFETY: writes at most 4097 bytes from a live stack buffer.
    unsafe { libc::syscall(libc::SYS_pwrite64, CORE_FD, page.as_ptr(), len, offset) }
}

/// The exact linkat passes the filter (and fails in the kernel: fd 950 is no
/// directory here); the same strings at other addresses, another directory fd or
/// other flags die. So does a core write that is too long or starts past the core.
#[test]
fn dumpcore_linkat_and_pwrite_are_pinned_to_the_sealed_strings_and_the_core() {
    let exited = |status| libc::WIFEXITED(status);
    let filter = hvt_dumpcore();
    assert!(exited(in_child_under(&filter, || linkat(CORE_LINK_FROM, DUMPCORE_DIR_FD, CORE_NAME, 0x400))));
    assert!(killed_by_sigsys(in_child_under(&filter, || {
        let forged = std::hint::black_box(*b"/nonexistent/tender-enforce/fd\0");
        linkat(stack_c_str(&forged), DUMPCORE_DIR_FD, CORE_NAME, 0x400)
    })));
    assert!(killed_by_sigsys(in_child_under(&filter, || {
        let forged = std::hint::black_box(*b"tender-enforce-core\0");
        linkat(CORE_LINK_FROM, DUMPCORE_DIR_FD, stack_c_str(&forged), 0x400)
    })));
    assert!(killed_by_sigsys(in_child_under(&filter, || linkat(CORE_LINK_FROM, 3, CORE_NAME, 0x400))));
    assert!(killed_by_sigsys(in_child_under(&filter, || linkat(CORE_LINK_FROM, DUMPCORE_DIR_FD, CORE_NAME, 0))));

    assert!(exited(in_child_under(&filter, || pwrite_core(4096, CORE_LAST_PAGE))));
    assert!(killed_by_sigsys(in_child_under(&filter, || pwrite_core(4097, 0))));
    assert!(killed_by_sigsys(in_child_under(&filter, || pwrite_core(4096, CORE_LAST_PAGE + 1))));
    // Without --dumpcore none of it is allowed.
    let plain = Profile::hvt().resolve_hvt(&params(), 999).unwrap();
    assert!(killed_by_sigsys(in_child_under(&plain, || linkat(CORE_LINK_FROM, DUMPCORE_DIR_FD, CORE_NAME, 0x400))));
    assert!(killed_by_sigsys(in_child_under(&plain, || pwrite_core(4096, 0))));
}
