//! hvt only: guests that attack the KVM backend are contained. Each ends with
//! status 1 and a tender message on stderr that names what was wrong and the
//! guest's RIP; none panics the tender, none hangs (every run is bounded by the
//! harness), and a guest that never exits is ended by SIGTERM/SIGINT.
//! Also: hvt images contain no x87/SSE instruction (this machine's KVM cannot
//! run them, docs/solo5-abi.md §11), and `--mem` follows solo5-hvt's rules.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{run_tender, tender, Backend, Scratch};

const HVT: Backend = Backend::Hvt;

/// Runs `hostile_hvt VARIANT` and checks it ended with status 1, `message` (and
/// the guest's RIP) on stderr, and nothing served.
#[track_caller]
fn contained(variant: &str, message: &str) {
    let run = run_tender(&["--mem=4", HVT.guest("hostile_hvt").to_str().unwrap(), variant]);
    run.expect(1, &[&format!("about to attack the tender: {variant}")]).expect_error(message);
    assert!(!run.stdout().contains("FAIL"), "{variant}: the tender served it:\n{}", run.stdout());
    assert!(run.stderr().contains("(guest rip=0x"), "{variant}: no RIP in:\n{}", run.stderr());
    assert!(!run.stderr().contains("panicked"), "{variant}: the tender panicked:\n{}", run.stderr());
}

#[test]
fn pointers_past_the_end_of_memory_are_refused() {
    if !HVT.available() {
        return;
    }
    // --mem=4: guest memory is 0x400000 bytes.
    contained("struct-beyond-memory", "WALLTIME: argument struct: Invalid guest access: gpa=0xfffffff0, sz=8");
    contained("struct-straddles-end", "WALLTIME: argument struct: Invalid guest access: gpa=0x3ffffc, sz=8");
    // Ends exactly at the end: refused, as Solo5 does (strict <).
    contained("data-ends-at-end", "PUTS: data: Invalid guest access: gpa=0x3ffff0, sz=16: ends at or beyond");
    contained("data-straddles-end", "PUTS: data: Invalid guest access: gpa=0x3ffff8, sz=16: ends at or beyond");
    contained("halt-cookie-past-end", "HALT: cookie: Invalid guest access: gpa=0x3fff9c, sz=512");
}

#[test]
fn wrapping_lengths_are_refused() {
    if HVT.available() {
        contained("wrapping-length", "Invalid guest access: gpa=0x100000, sz=18446744073709551615: wraps");
    }
}

#[test]
fn outputs_into_read_only_guest_memory_are_refused() {
    if HVT.available() {
        contained("output-into-text", "WALLTIME: argument struct: Invalid guest access");
        contained("output-into-text", "guest text");
        contained("output-into-rodata", "guest read-only data");
    }
}

#[test]
fn unknown_ports_and_wrong_io_shapes_are_refused() {
    if !HVT.available() {
        return;
    }
    contained("unknown-port", "Invalid guest port access: port=0x509");
    contained("ring-kick-port", "Invalid guest port access: port=0x600");
    contained("port-in", "Invalid guest port access: port=0x501 (in,");
    contained("port-byte", "Invalid guest port access: port=0x501 (out, 1 x 1 bytes)");
    contained("rep-outsb", "Invalid guest port access: port=0x501");
    contained("hypercall-0", "Invalid guest hypercall: num=0");
    contained("block-without-device", "Invalid guest hypercall: num=5 (no block device is attached)");
}

#[test]
fn cpu_states_that_end_the_vm_are_named() {
    if !HVT.available() {
        return;
    }
    contained("triple-fault", "KVM: unhandled exit: exit_reason=0x8 (shutdown: the guest triple-faulted)");
    contained("hlt", "KVM: unhandled exit: exit_reason=0x5 (HLT");
    contained("mmio", "MMIO write of 8 bytes at gpa 0x100000000, outside guest memory");
}

/// An spt image relabelled as hvt runs its spt code in the VM: its first
/// `syscall` has no handler there and the CPU shuts down. Contained, named.
#[test]
fn an_spt_image_relabelled_as_hvt_is_contained() {
    if !HVT.available() {
        return;
    }
    let scratch = Scratch::new("relabelled");
    let mut bytes = std::fs::read(Backend::Spt.guest("hello")).unwrap();
    let pattern = [b"Solo5\0\0\0".as_slice(), &2u32.to_le_bytes()].concat();
    let at = bytes.windows(pattern.len()).position(|w| w == pattern.as_slice()).expect("ABI note payload");
    bytes[at + 8] = 1;
    let path = scratch.0.join("hello-as.hvt");
    std::fs::write(&path, bytes).unwrap();
    run_tender(&["inspect", path.to_str().unwrap()]).expect(0, &["target:      1 (solo5-hvt)"]);
    let run = run_tender(&[path.to_str().unwrap()]);
    run.expect_error("KVM: unhandled exit");
    assert!(run.stderr().contains("(guest rip=0x"), "{}", run.stderr());
}

/// Starts `spin.hvt` (prints one line, then loops forever without an exit),
/// waits for its line, sends `signal`, and returns the exit code (`None` if
/// it had not ended 10 s later: then it is killed) and stderr.
fn spin_then(signal: libc::c_int) -> (Option<i32>, String) {
    let mut child = Command::new(tender())
        .arg(HVT.guest("spin"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tender starts");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("spinning forever") {
        line.clear();
        if stdout.read_line(&mut line).unwrap() == 0 {
            break;
        }
    }
    assert!(line.contains("spinning forever"), "the guest did not start: {line:?}");
    // SAFETY: kill(2) on our own child's pid; no memory is involved.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, signal) }, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status.map(|s| s.code().unwrap_or(-1)), stderr)
}

#[test]
fn a_guest_that_never_exits_is_ended_by_sigterm_and_sigint() {
    if !HVT.available() {
        return;
    }
    for (signal, number) in [(libc::SIGTERM, "15"), (libc::SIGINT, "2")] {
        let (status, stderr) = spin_then(signal);
        assert_eq!(status, Some(1), "signal {number}: the tender did not exit 1 within 10 s: {stderr}");
        assert!(stderr.contains(&format!("Exiting on signal {number}")), "{stderr}");
    }
}

#[test]
fn memory_follows_solo5_hvt_rules() {
    if !HVT.available() {
        return;
    }
    let hello = HVT.guest("hello");
    let hello = hello.to_str().unwrap();
    // Rounded down to 2 MiB, with a warning.
    let run = run_tender(&["--mem=5", hello, "x"]);
    run.expect(0, &["Hello, args: x"]);
    assert!(run.stderr().contains("adjusting memory to 4194304 bytes"), "{}", run.stderr());
    // 1 MiB cannot even hold the image (loaded at 1 MiB); the loader says so first.
    run_tender(&["--mem=1", hello]).expect_error("try a larger --mem");
    run_tender(&["--mem=4098", hello]).expect_error("exceeds the max size 4294967296 bytes");
    // 4 GiB, lazily backed.
    run_tender(&["--mem=4096", hello, "big"]).expect(0, &["Hello, args: big"]);
    run_tender(&["--x-exec-heap", hello]).expect_error("--x-exec-heap is for spt guests only");
}

#[test]
fn hvt_images_have_no_x87_or_sse_instructions() {
    if !common::require("objdump (binutils)", common::have("objdump")) {
        return;
    }
    let dir = common::repo_root().join("target/guests");
    HVT.guest("hello"); // builds them all
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "hvt") {
            continue;
        }
        let out = Command::new("objdump").arg("-d").arg(&path).output().expect("objdump runs");
        assert!(out.status.success(), "objdump -d {}", path.display());
        let text = String::from_utf8_lossy(&out.stdout);
        let hits: Vec<&str> =
            text.lines().filter(|l| l.contains("xmm") || l.contains("ymm") || l.contains("%st")).take(5).collect();
        assert!(hits.is_empty(), "{} uses x87/SSE (KVM here dies on it):\n{}", path.display(), hits.join("\n"));
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} .hvt images in {}", dir.display());
}

/// A hostile hvt guest walks the page tables the tender gave it (mapping the low area
/// with tables of its own to read them) and reads everything the tender wrote below
/// 64 KiB: the tables map its own memory 1:1 and nothing else, the low area holds only
/// the ABI's GDT and tables, and a read of the first byte past memory is the guest's own
/// page fault (the tender maps nothing there).
#[test]
fn a_guest_walking_its_page_tables_finds_only_its_own_memory() {
    if !HVT.available() {
        return;
    }
    let run = run_tender(&["--mem=4", HVT.guest("scan").to_str().unwrap()]);
    run.expect(255, &["scan: done", "Solo5: trap: type=#PF", "cr2=0x400000"]);
    let stdout = run.stdout();
    assert!(!stdout.contains("FAIL"), "{stdout}");
    let mapped: Vec<&str> = stdout.lines().filter_map(|l| l.strip_prefix("mapped ")).collect();
    assert_eq!(
        mapped,
        ["0x10000-0x100000 r- -> 0x10000", "0x100000-0x400000 rw -> 0x100000"],
        "identity map of guest memory only:\n{stdout}"
    );
    let low: Vec<&str> =
        stdout.lines().filter_map(|l| l.strip_prefix("low page ")).map(|l| l.split(':').next().unwrap()).collect();
    // GDT (0x1000), PML4 (0x2000), PDPT (0x3000), the first PD (0x4000; the other three
    // PDs are empty at 4 MiB) and the first 2 MiB's page table (0x8000).
    assert_eq!(low, ["0x1000", "0x2000", "0x3000", "0x4000", "0x8000"], "{stdout}");
}
