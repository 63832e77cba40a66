//! Every conformance guest through the release-built tender: output and exit status
//! as solo5-spt v0.12.1 would give them (solo5-abi.md §7, §10).

mod common;

use common::{guest, run_tender, Scratch};

#[test]
fn hello_prints_its_arguments_and_exits_0() {
    run_tender(&[guest("hello").to_str().unwrap(), "a", "b"]).expect(0, &["Hello, args: a b\n", "SUCCESS"]);
}

#[test]
fn solo5_quiet_hides_every_solo5_line() {
    let run = run_tender(&[guest("hello").to_str().unwrap(), "--solo5:quiet", "x"]);
    run.expect(0, &["Hello, args: x\n", "SUCCESS"]);
    assert!(!run.stdout().contains("Solo5:"), "quiet output has Solo5 lines:\n{}", run.stdout());
}

#[test]
fn solo5_runner_form_with_double_dash() {
    run_tender(&["--mem=2", "--", guest("hello").to_str().unwrap(), "Hello_Solo5"]).expect(0, &["Hello_Solo5"]);
}

#[test]
fn exit_status_passes_through() {
    for code in ["0", "1", "7", "254"] {
        run_tender(&[guest("exit_code").to_str().unwrap(), code]).expect(code.parse().unwrap(), &[]);
    }
}

#[test]
fn abort_exits_255() {
    run_tender(&[guest("abort").to_str().unwrap()]).expect(255, &["Solo5: solo5_abort() called"]);
}

#[test]
fn panic_prints_location_and_aborts() {
    run_tender(&[guest("panic").to_str().unwrap()]).expect(255, &["Solo5: ABORT: ", "panic.rs:"]);
}

#[test]
fn forbidden_syscalls_and_forged_arguments_die_by_sigsys() {
    // A syscall outside the table, then allowed syscalls with arguments the filter pins:
    // another fd for the console, another clock, ARCH_GET_FS, the timerfd handed to
    // epoll_pwait and vice versa, an x32 syscall number.
    for variant in
        ["dup", "getpid", "write-stderr", "clock-cputime", "arch-get-fs", "epoll-timerfd", "timerfd-epollfd", "x32"]
    {
        let run = run_tender(&[guest("forbidden").to_str().unwrap(), variant]);
        run.expect(128 + libc::SIGSYS, &[&format!("about to make a forbidden syscall: {variant}")]);
    }
}

#[test]
fn write_to_own_text_faults() {
    run_tender(&[guest("write_text").to_str().unwrap()]).expect(128 + libc::SIGSEGV, &["about to write"]);
}

#[test]
fn null_dereference_faults() {
    run_tender(&[guest("null_deref").to_str().unwrap()]).expect(128 + libc::SIGSEGV, &["about to write"]);
}

#[test]
fn tls_base_can_be_set() {
    run_tender(&["--mem=2", guest("tls").to_str().unwrap()]).expect(0, &["SUCCESS"]);
}

#[test]
fn tls_access_before_setting_a_base_faults() {
    // Solo5's `notls`: the guest starts with FS = 0, so %fs:0x28 is a null dereference.
    run_tender(&["--mem=2", guest("tls").to_str().unwrap(), "notls"]).expect(128 + libc::SIGSEGV, &[]);
}

#[test]
fn clocks_are_monotonic_and_wall_clock_is_host_time() {
    let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i128;
    let run = run_tender(&[guest("clocks").to_str().unwrap()]);
    let after = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i128;
    run.expect(0, &["SUCCESS"]);
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

#[test]
fn yield_meets_its_deadlines() {
    run_tender(&[guest("yield").to_str().unwrap()]).expect(0, &["SUCCESS"]);
}

/// The pattern the blk guest writes into block `n` (see guests/conformance/src/bin/blk.rs).
fn blk_pattern(block: u64, bs: usize) -> Vec<u8> {
    let mut buf = vec![0u8; bs];
    buf[..8].copy_from_slice(&block.to_le_bytes());
    for (i, b) in buf.iter_mut().enumerate().skip(8) {
        *b = (i as u64).wrapping_mul(31).wrapping_add(block.wrapping_mul(7)) as u8 ^ 0xA5;
    }
    buf
}

fn blk_round_trip(block_size: usize) {
    let scratch = Scratch::new(&format!("blk{block_size}"));
    let disk = scratch.file("disk.img", 4 << 20, 0);
    let mut args = vec![format!("--block:storage={}", disk.display())];
    if block_size != 512 {
        args.push(format!("--block-sector-size:storage={block_size}"));
    }
    args.push(guest("blk").to_str().unwrap().to_owned());
    run_tender(&args).expect(0, &["SUCCESS", &format!("block size {block_size}")]);
    // The writes really reached the file, every block with its own pattern.
    let data = std::fs::read(&disk).unwrap();
    assert_eq!(data.len(), 4 << 20);
    for (n, chunk) in data.chunks(block_size).enumerate() {
        assert!(chunk == blk_pattern(n as u64, block_size), "block {n} of the backing file is wrong");
    }
}

#[test]
fn block_round_trip_across_the_device_512() {
    blk_round_trip(512);
}

#[test]
fn block_round_trip_across_the_device_4096() {
    blk_round_trip(4096);
}

#[test]
fn block_backing_must_be_block_aligned() {
    let scratch = Scratch::new("blkmisaligned");
    let disk = scratch.file("disk.img", 6144, 0);
    run_tender(&[
        &format!("--block:storage={}", disk.display()),
        "--block-sector-size:storage=4096",
        guest("blk").to_str().unwrap(),
    ])
    .expect_error("Backing storage size must be block aligned");
    let small = scratch.file("small.img", 256, 0);
    run_tender(&[&format!("--block:storage={}", small.display()), guest("blk").to_str().unwrap()])
        .expect_error("Backing storage size must be block aligned");
    let empty = scratch.file("empty.img", 0, 0);
    run_tender(&[&format!("--block:storage={}", empty.display()), guest("blk").to_str().unwrap()])
        .expect_error("Backing storage must be at least 1 block");
}

#[test]
fn block_size_must_be_a_power_of_two_of_at_least_512() {
    let scratch = Scratch::new("blkodd");
    let disk = scratch.file("disk.img", 1563, 0);
    for size in ["521", "256"] {
        run_tender(&[
            &format!("--block:storage={}", disk.display()),
            &format!("--block-sector-size:storage={size}"),
            guest("blk").to_str().unwrap(),
        ])
        .expect_error("Block size must be a multiple of 2 greater than or equal 512");
    }
}

#[test]
fn block_backing_errors_name_the_path() {
    let scratch = Scratch::new("blkpath");
    let missing = scratch.0.join("missing.img");
    run_tender(&[&format!("--block:storage={}", missing.display()), guest("blk").to_str().unwrap()])
        .expect_error(&format!("could not open block device 'storage': {}", missing.display()));
    run_tender(&[&format!("--block:storage={}", scratch.0.display()), guest("blk").to_str().unwrap()])
        .expect_error(&scratch.0.display().to_string());
}

#[test]
fn command_line_of_8191_characters_passes_8192_is_refused() {
    let tail = "0123456789";
    let ok = format!("{}{tail}", "x".repeat(8191 - tail.len()));
    run_tender(&[guest("cmdline").to_str().unwrap(), &ok]).expect(0, &["CMDLINE_LEN 8191", "CMDLINE_TAIL 0123456789"]);
    let too_long = format!("y{ok}");
    run_tender(&[guest("cmdline").to_str().unwrap(), &too_long]).expect_error("Guest command line too long (max=8191");
}

#[test]
fn maximum_device_count_63() {
    let scratch = Scratch::new("maxdev");
    let mut args: Vec<String> = (0..63)
        .map(|i| format!("--block:storage{i}={}", scratch.file(&format!("d{i}"), 4096, i as u8).display()))
        .collect();
    args.push(guest("maxdevices").to_str().unwrap().to_owned());
    run_tender(&args).expect(0, &["SUCCESS"]);
    // One device short: the tender refuses before the guest starts.
    args.remove(62);
    run_tender(&args).expect_error("Device 'storage62' of type BLOCK_BASIC declared but not attached");
}

#[test]
fn undeclared_and_unattached_devices_are_refused() {
    let scratch = Scratch::new("undeclared");
    let disk = scratch.file("disk.img", 4096, 0);
    run_tender(&[&format!("--block:nosuch={}", disk.display()), guest("hello").to_str().unwrap()])
        .expect_error("Resource not declared in manifest: 'nosuch'");
    run_tender(&["--net:storage=tap0", guest("blk").to_str().unwrap()])
        .expect_error("Resource not declared in manifest: 'storage'");
    run_tender(&[guest("blk").to_str().unwrap()])
        .expect_error("Device 'storage' of type BLOCK_BASIC declared but not attached");
}

#[test]
fn inspect_describes_every_guest() {
    for name in [
        "hello",
        "clocks",
        "yield",
        "exit_code",
        "abort",
        "panic",
        "forbidden",
        "write_text",
        "null_deref",
        "tls",
        "cmdline",
    ] {
        let run = run_tender(&["inspect", guest(name).to_str().unwrap()]);
        run.expect(
            0,
            &["target:      2 (solo5-spt)", "abi version: 2", "entry:       0x", "r-x 0x00100000", "devices:     none"],
        );
    }
    run_tender(&["inspect", guest("blk").to_str().unwrap()]).expect(0, &["storage", "BLOCK_BASIC", "--block:storage="]);
    run_tender(&["inspect", guest("net").to_str().unwrap()]).expect(0, &["service0", "NET_BASIC", "--net:service0="]);
    let max = run_tender(&["inspect", guest("maxdevices").to_str().unwrap()]);
    max.expect(0, &["storage0 ", "storage62 "]);
    assert_eq!(max.stdout().matches("BLOCK_BASIC").count(), 63);
}

#[test]
fn guests_cannot_be_executed_directly() {
    use std::os::unix::fs::PermissionsExt;
    let scratch = Scratch::new("noexec");
    let copy = scratch.0.join("hello.spt");
    std::fs::copy(guest("hello"), &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    let err =
        std::process::Command::new(&copy).output().expect_err("the kernel must refuse PT_INTERP /nonexistent/solo5/");
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
}
