//! The command line against the real binary: help, version, and bad input of every
//! kind gives a clear message on stderr and exit status 1, never a panic.

mod common;

use common::{guest, run_tender, Scratch};

#[test]
fn help_and_version() {
    let help = run_tender(&["--help"]);
    help.expect(0, &["usage: tender [OPTIONS] [--] GUEST", "--block:NAME=PATH", "--net-mac:NAME="]);
    run_tender(&["--version"]).expect(0, &["tender 0.1.0", "ABI version 2", "targets: spt, hvt"]);
}

#[test]
fn bad_options_print_the_culprit_and_usage() {
    let run = run_tender(&["--frobnicate", "x.spt"]);
    run.expect_error("invalid option: `--frobnicate'");
    assert!(run.stderr().contains("usage: tender"), "{}", run.stderr());
    run_tender::<&str>(&[]).expect_error("missing GUEST operand");
    run_tender(&["--mem=0", "x.spt"]).expect_error("malformed argument to --mem: `0'");
    run_tender(&["--mem=99999999999999999999", "x.spt"]).expect_error("malformed argument to --mem");
    run_tender(&["--block:bad-name=/dev/null", "x.spt"]).expect_error("invalid device name `bad-name'");
    run_tender(&["--net-mac:a=01:02:03:04:05:06", "--net:a=tap0", "x.spt"]).expect_error("malformed MAC address");
}

#[test]
fn unreadable_or_invalid_guests_are_named() {
    let scratch = Scratch::new("badguest");
    let missing = scratch.0.join("nope.spt");
    run_tender(&[missing.to_str().unwrap()]).expect_error(&format!("{}: No such file or directory", missing.display()));
    let text = scratch.file("text.spt", 100, b'x');
    run_tender(&[text.to_str().unwrap()]).expect_error(&format!("{}: invalid executable", text.display()));
    let empty = scratch.file("empty.spt", 0, 0);
    run_tender(&[empty.to_str().unwrap()]).expect_error(&format!("{}: invalid executable", empty.display()));
    // A truncated real guest: the loader names the file and what is missing.
    let whole = std::fs::read(guest("hello")).unwrap();
    let cut = scratch.0.join("cut.spt");
    std::fs::write(&cut, &whole[..200]).unwrap();
    let run = run_tender(&[cut.to_str().unwrap()]);
    assert_eq!(run.status(), 1, "{}", run.stderr());
    assert!(run.stderr().starts_with(&format!("tender: {}: ", cut.display())), "{}", run.stderr());
    run_tender(&["inspect", cut.to_str().unwrap()]).expect_error(&cut.display().to_string());
}

#[test]
fn too_little_memory_for_the_image_is_refused() {
    // hello's entry is above 1 MiB: --mem=1 cannot hold it.
    run_tender(&["--mem=1", guest("hello").to_str().unwrap()]).expect_error("--mem");
}

#[test]
fn guests_for_other_solo5_targets_are_refused() {
    let scratch = Scratch::new("virtio");
    let mut bytes = std::fs::read(guest("hello")).unwrap();
    // Flip the ABI note's target from spt (2) to virtio (3): find the note by its name+type.
    let pattern = [b"Solo5\0\0\0".as_slice(), &2u32.to_le_bytes()].concat();
    let at = bytes.windows(pattern.len()).position(|w| w == pattern.as_slice()).expect("ABI note payload");
    bytes[at + 8] = 3;
    let virtio = scratch.0.join("hello.virtio");
    std::fs::write(&virtio, bytes).unwrap();
    run_tender(&[virtio.to_str().unwrap()]).expect_error("solo5-virtio target");
}

#[test]
fn audit_prints_the_exact_filter_without_running_the_guest() {
    let scratch = Scratch::new("audit");
    let disk = scratch.file("disk.img", 1 << 20, 0);
    let run = run_tender(&["--audit", &format!("--block:storage={}", disk.display()), guest("blk").to_str().unwrap()]);
    run.expect(0, &["BPF instructions", "kills the process", "exit_group       any arguments"]);
    let out = run.stdout();
    // The blk guest never ran: it would have printed its banner and rewritten the disk.
    assert!(!out.contains("Solo5:"), "{out}");
    assert!(std::fs::read(&disk).unwrap().iter().all(|&b| b == 0));
    // Pinned to this device: count == block size, offset <= capacity - block size.
    let pread = out.lines().find(|l| l.starts_with("pread64")).expect("pread64 rule");
    assert!(pread.contains("arg2 == 0x200") && pread.contains(&format!("arg3 <= {:#x}", (1 << 20) - 512)), "{pread}");
    // No net device: no read rule, one write rule (the console).
    assert!(!out.lines().any(|l| l.starts_with("read ")), "{out}");
    assert_eq!(out.lines().filter(|l| l.starts_with("write ")).count(), 1, "{out}");
    // Device errors are reported as for a run.
    run_tender(&["--audit", guest("blk").to_str().unwrap()]).expect_error("declared but not attached");
}

#[test]
fn only_a_regular_file_is_a_guest_and_nothing_is_read_from_anything_else() {
    // /dev/zero would feed the tender without end, a FIFO with no writer would block it
    // forever: both are refused at once, naming what the path is.
    let scratch = Scratch::new("notregular");
    let fifo = scratch.0.join("guest.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    for (path, what) in [
        ("/dev/zero", "is a character device, not a regular file"),
        (fifo.to_str().unwrap(), "is a FIFO (named pipe), not a regular file"),
        ("/", "is a directory, not a regular file"),
    ] {
        run_tender(&[path]).expect_error(&format!("{path}: {what}"));
        run_tender(&["inspect", path]).expect_error(what);
    }
}

#[test]
fn options_given_twice_and_stray_arguments_are_refused() {
    run_tender(&["--mem=2", "--mem=4", "x.spt"]).expect_error("`--mem=4' is given more than once");
    run_tender(&["--help", "x.spt"]).expect_error("`--help' takes no other arguments");
    run_tender(&["--version", "--mem=2"]).expect_error("`--version' takes no other arguments");
}

/// The guest file changing while the tender loads it ends in an error or a normal run,
/// never a signal: the tender validates a private copy of the headers, reads the
/// segments with `pread` (a file it had mapped raised SIGBUS when truncated under it:
/// 109 of 1,500 runs) and refuses a file whose size or change time moved meanwhile (a
/// read racing the truncation returned zeros, which as code died by SIGSEGV: 1 run in
/// ~300). Bounded: 300 runs, or 60 s once 20 have run (a busy host gets fewer runs, not
/// a failure). Once nothing writes it, the same file runs.
#[test]
fn a_guest_file_truncated_while_loading_never_kills_the_tender() {
    use std::os::unix::process::ExitStatusExt;
    use std::sync::atomic::{AtomicBool, Ordering};
    let scratch = Scratch::new("truncate");
    let whole = std::fs::read(guest("hello")).unwrap();
    let path = scratch.0.join("moving.spt");
    std::fs::write(&path, &whole).unwrap();
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let flipper = {
        let (path, stop, whole, len) = (path.clone(), stop.clone(), whole.clone(), whole.len() as u64);
        std::thread::spawn(move || {
            let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            let mut cut = 4096;
            while !stop.load(Ordering::Relaxed) {
                // Shrink to somewhere inside the segments, then put the bytes back.
                let _ = file.set_len(cut % len);
                std::thread::yield_now();
                let _ = std::os::unix::fs::FileExt::write_all_at(&file, &whole, 0);
                cut += 4093;
            }
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let (mut runs, mut ran, mut refused) = (0, 0, 0);
    while runs < 300 && (runs < 20 || std::time::Instant::now() < deadline) {
        let out = std::process::Command::new(common::tender()).args(["--mem=2"]).arg(&path).output().unwrap();
        runs += 1;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.signal(), None, "run {runs} died by a signal ({:?}): {stderr}", out.status);
        match out.status.code() {
            Some(0) => ran += 1,
            Some(1) => {
                assert!(stderr.starts_with("tender: "), "run {runs}: {stderr}");
                refused += 1;
            }
            other => panic!("run {runs}: status {other:?}: {stderr}"),
        }
    }
    stop.store(true, Ordering::Relaxed);
    flipper.join().unwrap();
    eprintln!("{runs} runs: {ran} ran the guest, {refused} refused the changing file");
    std::fs::write(&path, &whole).unwrap();
    let out = std::process::Command::new(common::tender()).args(["--mem=2"]).arg(&path).output().unwrap();
    assert!(
        out.status.success(),
        "the file no longer changes: {:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
