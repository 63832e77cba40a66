//! Every conformance guest through the release-built tender, on both backends:
//! one table of cases (the functions below, each taking the backend), run
//! twice by the `spt` and `hvt` test modules at the end. Output and exit status
//! are as solo5-spt / solo5-hvt v0.12.1 give them (docs/solo5-abi.md §7, §10); the
//! expectations differ only where the spec says the backends differ:
//!
//! | case | spt | hvt |
//! |---|---|---|
//! | guest fault (null pointer, TLS before a base is set) | SIGSEGV, 139 | `Solo5: trap: type=#PF …`, abort 255 |
//! | write to its own text (Solo5's `xnow`) | SIGSEGV, 139 | status 1, `host/guest translation fault` |
//! | forbidden syscall | SIGSYS, 159 | (spt only: an hvt guest has no syscalls) |
//! | `inspect` | target 2 (solo5-spt), text `r-x` | target 1 (solo5-hvt), text `--x` |
//!
//! Guest code is emulated on this machine's KVM (≈ 0.6 µs per instruction,
//! docs/solo5-abi.md §11), so the hvt runs get smaller workloads through guest
//! arguments and a smaller disk; the assertions are the same.

mod common;

use common::{run_tender, Backend, Run, Scratch};

/// A guest fault: the process dies by SIGSEGV on spt; on hvt the guest's trap
/// handler reports it and aborts (status 255).
#[track_caller]
fn expect_fault(run: &Run, backend: Backend, needles: &[&str]) {
    match backend {
        Backend::Spt => {
            run.expect(128 + libc::SIGSEGV, needles);
        }
        Backend::Hvt => {
            let mut all = needles.to_vec();
            all.extend(["Solo5: trap: type=#PF", "Solo5: ABORT: "]);
            run.expect(255, &all);
        }
    }
}

fn hello_prints_its_arguments_and_exits_0(b: Backend) {
    run_tender(&[b.guest("hello").to_str().unwrap(), "a", "b"]).expect(0, &["Hello, args: a b\n", "SUCCESS"]);
}

fn solo5_quiet_hides_every_solo5_line(b: Backend) {
    let run = run_tender(&[b.guest("hello").to_str().unwrap(), "--solo5:quiet", "x"]);
    run.expect(0, &["Hello, args: x\n", "SUCCESS"]);
    assert!(!run.stdout().contains("Solo5:"), "quiet output has Solo5 lines:\n{}", run.stdout());
}

fn solo5_runner_form_with_double_dash(b: Backend) {
    run_tender(&["--mem=2", "--", b.guest("hello").to_str().unwrap(), "Hello_Solo5"]).expect(0, &["Hello_Solo5"]);
}

fn exit_status_passes_through(b: Backend) {
    for code in ["0", "1", "7", "254"] {
        run_tender(&[b.guest("exit_code").to_str().unwrap(), code]).expect(code.parse().unwrap(), &[]);
    }
    // The low 8 bits, as the host keeps them.
    run_tender(&[b.guest("exit_code").to_str().unwrap(), "300"]).expect(44, &["Solo5: solo5_exit(300) called"]);
}

fn abort_exits_255(b: Backend) {
    run_tender(&[b.guest("abort").to_str().unwrap()]).expect(255, &["Solo5: solo5_abort() called"]);
}

fn panic_prints_location_and_aborts(b: Backend) {
    run_tender(&[b.guest("panic").to_str().unwrap()]).expect(255, &["Solo5: ABORT: ", "panic.rs:"]);
}

fn write_to_own_text_faults(b: Backend) {
    let run = run_tender(&[b.guest("write_text").to_str().unwrap()]);
    match b {
        Backend::Spt => {
            run.expect(128 + libc::SIGSEGV, &["about to write"]);
        }
        // Solo5's xnow: the tender maps text read-only, KVM refuses the write.
        Backend::Hvt => {
            run.expect(1, &["about to write"]).expect_error("host/guest translation fault");
            assert!(!run.stdout().contains("FAIL"), "{}", run.stdout());
        }
    }
}

fn null_dereference_faults(b: Backend) {
    let run = run_tender(&[b.guest("null_deref").to_str().unwrap()]);
    expect_fault(&run, b, &["about to write"]);
    if b == Backend::Hvt {
        run.expect(255, &["Solo5: trap: cr2=0x8"]);
    }
}

fn tls_base_can_be_set(b: Backend) {
    run_tender(&["--mem=2", b.guest("tls").to_str().unwrap()]).expect(0, &["SUCCESS"]);
}

fn tls_access_before_setting_a_base_faults(b: Backend) {
    // Solo5's `notls`: the guest starts with FS = 0, so %fs:0 is a null dereference.
    let run = run_tender(&["--mem=2", b.guest("tls").to_str().unwrap(), "notls"]);
    expect_fault(&run, b, &["about to read %fs:0"]);
}

fn clocks_are_monotonic_and_wall_clock_is_host_time(b: Backend) {
    let now = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i128;
    // 100 000 monotonic reads on spt; each read is emulated guest code on hvt.
    let reads = match b {
        Backend::Spt => "100000",
        Backend::Hvt => "2000",
    };
    let before = now();
    let run = run_tender(&[b.guest("clocks").to_str().unwrap(), reads]);
    let after = now();
    run.expect(0, &["SUCCESS", &format!("over {reads} reads")]);
    let wall: i128 = run
        .stdout()
        .lines()
        .find_map(|l| l.strip_prefix("WALLCLOCK "))
        .expect("guest prints WALLCLOCK")
        .trim()
        .parse()
        .unwrap();
    assert!(before <= wall && wall <= after, "guest wall clock {wall} outside host interval [{before}, {after}]");
}

fn yield_meets_its_deadlines(b: Backend) {
    run_tender(&[b.guest("yield").to_str().unwrap()]).expect(0, &["SUCCESS"]);
}

/// The pattern the blk guest writes into block `n` (see guests/conformance/src/bin/blk.rs).
fn blk_pattern(block: u64, bs: usize) -> Vec<u8> {
    let mut buf = vec![0u8; bs];
    buf[..8].copy_from_slice(&block.to_le_bytes());
    for (i, b) in buf.iter_mut().enumerate().skip(8) {
        *b = (i as u64).wrapping_mul(31).wrapping_add(block.wrapping_mul(7)).to_le_bytes()[0] ^ 0xA5;
    }
    buf
}

fn blk_round_trip(b: Backend, block_size: usize) {
    // The guest writes, reads back and compares every block: 4 MiB on spt,
    // 32 KiB where that is emulated guest code (hvt).
    let disk_size = match b {
        Backend::Spt => 4 << 20,
        Backend::Hvt => 32 << 10,
    };
    let scratch = Scratch::new(&format!("blk{block_size}-{}", b.name()));
    let disk = scratch.file("disk.img", disk_size, 0);
    let mut args = vec![format!("--block:storage={}", disk.display())];
    if block_size != 512 {
        args.push(format!("--block-sector-size:storage={block_size}"));
    }
    args.push(b.guest("blk").to_str().unwrap().to_owned());
    run_tender(&args).expect(
        0,
        &["SUCCESS", &format!("capacity {disk_size} bytes, block size {block_size}"), "PASS: offset u64::MAX"],
    );
    // The writes really reached the file, every block with its own pattern.
    let data = std::fs::read(&disk).unwrap();
    assert_eq!(data.len(), disk_size);
    for (n, chunk) in data.chunks(block_size).enumerate() {
        assert!(chunk == blk_pattern(n as u64, block_size), "block {n} of the backing file is wrong");
    }
}

fn block_round_trip_across_the_device_512(b: Backend) {
    blk_round_trip(b, 512);
}

fn block_round_trip_across_the_device_4096(b: Backend) {
    blk_round_trip(b, 4096);
}

fn block_backing_must_be_block_aligned(b: Backend) {
    let scratch = Scratch::new(&format!("blkmisaligned-{}", b.name()));
    let disk = scratch.file("disk.img", 6144, 0);
    run_tender(&[
        &format!("--block:storage={}", disk.display()),
        "--block-sector-size:storage=4096",
        b.guest("blk").to_str().unwrap(),
    ])
    .expect_error("Backing storage size must be block aligned");
    let small = scratch.file("small.img", 256, 0);
    run_tender(&[&format!("--block:storage={}", small.display()), b.guest("blk").to_str().unwrap()])
        .expect_error("Backing storage size must be block aligned");
    let empty = scratch.file("empty.img", 0, 0);
    run_tender(&[&format!("--block:storage={}", empty.display()), b.guest("blk").to_str().unwrap()])
        .expect_error("Backing storage must be at least 1 block");
}

fn block_size_must_be_a_power_of_two_of_at_least_512(b: Backend) {
    let scratch = Scratch::new(&format!("blkodd-{}", b.name()));
    let disk = scratch.file("disk.img", 1563, 0);
    for size in ["521", "256"] {
        run_tender(&[
            &format!("--block:storage={}", disk.display()),
            &format!("--block-sector-size:storage={size}"),
            b.guest("blk").to_str().unwrap(),
        ])
        .expect_error("Block size must be a multiple of 2 greater than or equal 512");
    }
}

fn block_backing_errors_name_the_path(b: Backend) {
    let scratch = Scratch::new(&format!("blkpath-{}", b.name()));
    let missing = scratch.0.join("missing.img");
    run_tender(&[&format!("--block:storage={}", missing.display()), b.guest("blk").to_str().unwrap()])
        .expect_error(&format!("could not open block device 'storage': {}", missing.display()));
    run_tender(&[&format!("--block:storage={}", scratch.0.display()), b.guest("blk").to_str().unwrap()])
        .expect_error(&scratch.0.display().to_string());
}

fn command_line_of_8191_characters_passes_8192_is_refused(b: Backend) {
    let tail = "0123456789";
    let ok = format!("{}{tail}", "x".repeat(8191 - tail.len()));
    run_tender(&[b.guest("cmdline").to_str().unwrap(), &ok])
        .expect(0, &["CMDLINE_LEN 8191", "CMDLINE_TAIL 0123456789"]);
    let too_long = format!("y{ok}");
    run_tender(&[b.guest("cmdline").to_str().unwrap(), &too_long])
        .expect_error("Guest command line too long (max=8191");
}

fn maximum_device_count_63(b: Backend) {
    let scratch = Scratch::new(&format!("maxdev-{}", b.name()));
    let mut args: Vec<String> = (0..63u8)
        .map(|i| format!("--block:storage{i}={}", scratch.file(&format!("d{i}"), 4096, i).display()))
        .collect();
    args.push(b.guest("maxdevices").to_str().unwrap().to_owned());
    run_tender(&args).expect(0, &["SUCCESS"]);
    // One device short: the tender refuses before the guest starts.
    args.remove(62);
    run_tender(&args).expect_error("Device 'storage62' of type BLOCK_BASIC declared but not attached");
}

fn undeclared_and_unattached_devices_are_refused(b: Backend) {
    let scratch = Scratch::new(&format!("undeclared-{}", b.name()));
    let disk = scratch.file("disk.img", 4096, 0);
    run_tender(&[&format!("--block:nosuch={}", disk.display()), b.guest("hello").to_str().unwrap()])
        .expect_error("Resource not declared in manifest: 'nosuch'");
    run_tender(&["--net:storage=tap0", b.guest("blk").to_str().unwrap()])
        .expect_error("Resource not declared in manifest: 'storage'");
    run_tender(&[b.guest("blk").to_str().unwrap()])
        .expect_error("Device 'storage' of type BLOCK_BASIC declared but not attached");
}

fn inspect_describes_every_guest(b: Backend) {
    let (target, text) = match b {
        // spt: text, notes and rodata share one R+X segment.
        Backend::Spt => ("target:      2 (solo5-spt)", "r-x 0x00100000"),
        // hvt: text is execute-only, rodata a segment of its own.
        Backend::Hvt => ("target:      1 (solo5-hvt)", "--x 0x00100000"),
    };
    let mut names =
        vec!["hello", "clocks", "yield", "exit_code", "abort", "panic", "write_text", "null_deref", "tls", "cmdline"];
    if b == Backend::Spt {
        names.push("forbidden");
    }
    for name in names {
        let run = run_tender(&["inspect", b.guest(name).to_str().unwrap()]);
        run.expect(0, &[target, "abi version: 2", "entry:       0x", text, "devices:     none"]);
    }
    run_tender(&["inspect", b.guest("blk").to_str().unwrap()])
        .expect(0, &["storage", "BLOCK_BASIC", "--block:storage="]);
    run_tender(&["inspect", b.guest("net").to_str().unwrap()]).expect(0, &["service0", "NET_BASIC", "--net:service0="]);
    let max = run_tender(&["inspect", b.guest("maxdevices").to_str().unwrap()]);
    max.expect(0, &["storage0 ", "storage62 "]);
    assert_eq!(max.stdout().matches("BLOCK_BASIC").count(), 63);
}

fn guests_cannot_be_executed_directly(b: Backend) {
    use std::os::unix::fs::PermissionsExt;
    let scratch = Scratch::new(&format!("noexec-{}", b.name()));
    let copy = scratch.0.join(format!("hello.{}", b.name()));
    std::fs::copy(b.guest("hello"), &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    let err =
        std::process::Command::new(&copy).output().expect_err("the kernel must refuse PT_INTERP /nonexistent/solo5/");
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
}

/// spt only: an hvt guest makes no host syscalls at all (its `syscall`
/// instruction would be a trap inside the VM).
#[test]
fn forbidden_syscalls_and_forged_arguments_die_by_sigsys() {
    // A syscall outside the table, then allowed syscalls with arguments the filter pins:
    // another fd for the console, another clock, ARCH_GET_FS, the timerfd handed to
    // epoll_pwait and vice versa, an x32 syscall number.
    for variant in
        ["dup", "getpid", "write-stderr", "clock-cputime", "arch-get-fs", "epoll-timerfd", "timerfd-epollfd", "x32"]
    {
        let run = run_tender(&[Backend::Spt.guest("forbidden").to_str().unwrap(), variant]);
        run.expect(128 + libc::SIGSYS, &[&format!("about to make a forbidden syscall: {variant}")]);
    }
}

/// The `#[test]`s: every case above, once per backend. The hvt ones need
/// /dev/kvm (CI has it; locally its absence skips them, loudly).
macro_rules! on_both_backends {
    ($($case:ident),* $(,)?) => {
        mod spt {
            $(#[test] fn $case() { super::$case(super::Backend::Spt) })*
        }
        mod hvt {
            $(#[test] fn $case() { if super::Backend::Hvt.available() { super::$case(super::Backend::Hvt) } })*
        }
    };
}

on_both_backends! {
    hello_prints_its_arguments_and_exits_0,
    solo5_quiet_hides_every_solo5_line,
    solo5_runner_form_with_double_dash,
    exit_status_passes_through,
    abort_exits_255,
    panic_prints_location_and_aborts,
    write_to_own_text_faults,
    null_dereference_faults,
    tls_base_can_be_set,
    tls_access_before_setting_a_base_faults,
    clocks_are_monotonic_and_wall_clock_is_host_time,
    yield_meets_its_deadlines,
    block_round_trip_across_the_device_512,
    block_round_trip_across_the_device_4096,
    block_backing_must_be_block_aligned,
    block_size_must_be_a_power_of_two_of_at_least_512,
    block_backing_errors_name_the_path,
    command_line_of_8191_characters_passes_8192_is_refused,
    maximum_device_count_63,
    undeclared_and_unattached_devices_are_refused,
    inspect_describes_every_guest,
    guests_cannot_be_executed_directly,
}
