//! hvt `--dumpcore=DIR` (solo5-hvt-debug's option, Solo5's `dumpcore` test): a guest
//! that aborts or faults (HALT status 255) leaves `DIR/core.solo5-hvt.PID`, named on
//! stderr, and `gdb -batch -ex bt GUEST CORE` shows the guest's own frames. Nothing is
//! written without the option or for other statuses, the option is refused for spt
//! guests and for a DIR that is no directory, and the filter grows only with it.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{have, require, run_bounded, run_tender, tender, Backend, Run, Scratch, RUN_LIMIT};

const HVT: Backend = Backend::Hvt;

fn guest(name: &str) -> String {
    HVT.guest(name).to_str().unwrap().to_owned()
}

fn dumpcore(dir: &Path) -> String {
    format!("--dumpcore={}", dir.display())
}

/// The files in `dir`.
fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files
}

/// Checks the run aborted with 255, named its core on stderr as solo5-hvt-debug does,
/// and that this core (of `mem_mib` MiB of guest memory) is the one file in `dir`.
#[track_caller]
fn core_of(run: &Run, dir: &Path, mem_mib: u64) -> PathBuf {
    let err = run.stderr();
    assert_eq!(run.status(), 255, "--- stdout\n{}\n--- stderr\n{err}", run.stdout());
    let announced = err
        .lines()
        .find_map(|l| l.strip_prefix("tender: dumpcore: dumping guest core to: "))
        .unwrap_or_else(|| panic!("stderr names no core:\n{err}"));
    let core = PathBuf::from(announced);
    let name = core.file_name().unwrap().to_str().unwrap();
    let pid = name.strip_prefix("core.solo5-hvt.").unwrap_or_else(|| panic!("core named {name}"));
    assert!(pid.parse::<u32>().is_ok(), "core named {name}");
    assert_eq!(core.parent(), Some(dir), "{err}");
    assert_eq!(entries(dir), std::slice::from_ref(&core), "{err}");
    let pages = (mem_mib << 20) / 4096;
    assert!(err.contains(&format!(" pages of total {pages} pages")), "{err}");
    assert!(!err.contains("error(s) dumping core"), "{err}");
    // Headers page, then all guest memory (zero pages are holes, the size is whole).
    assert_eq!(std::fs::metadata(&core).unwrap().len(), 4096 + (mem_mib << 20));
    core
}

/// `gdb -batch -ex bt GUEST CORE`'s output (stdout and stderr).
fn gdb_backtrace(guest: &str, core: &Path) -> String {
    let mut cmd = Command::new("gdb");
    cmd.args(["-nx", "-batch", "-ex", "bt", guest]).arg(core);
    let run = run_bounded(cmd, RUN_LIMIT);
    format!("{}{}", run.stdout(), run.stderr())
}

fn gdb_available() -> bool {
    require("gdb (the gdb package)", have("gdb"))
}

#[test]
fn an_aborting_guest_leaves_a_core_whose_backtrace_gdb_shows() {
    if !HVT.available() || !gdb_available() {
        return;
    }
    let scratch = Scratch::new("dumpcore-abort");
    let run = run_tender(&[dumpcore(&scratch.0).as_str(), "--mem=4", &guest("abort")]);
    assert!(run.stdout().contains("Solo5: solo5_abort() called"), "{}", run.stdout());
    let core = core_of(&run, &scratch.0, 4);
    let bt = gdb_backtrace(&guest("abort"), &core);
    assert!(bt.contains("Program terminated with signal SIGABRT"), "{bt}");
    // The guest's own frames, innermost to outermost: the HALT hypercall, solo5_abort,
    // the guest's main, the runtime's entry point.
    for frame in
        ["#0 ", "solo5_rt::platform::hvt::halt_with", "solo5_rt::abort", "abort::main", "solo5_rt::start::_start"]
    {
        assert!(bt.contains(frame), "no `{frame}` in gdb's backtrace:\n{bt}");
    }
}

#[test]
fn a_faulting_guest_core_starts_at_the_faulting_instruction() {
    if !HVT.available() || !gdb_available() {
        return;
    }
    let scratch = Scratch::new("dumpcore-fault");
    let run = run_tender(&[dumpcore(&scratch.0).as_str(), "--mem=4", &guest("null_deref")]);
    assert!(run.stdout().contains("Solo5: trap: type=#PF"), "{}", run.stdout());
    let core = core_of(&run, &scratch.0, 4);
    let bt = gdb_backtrace(&guest("null_deref"), &core);
    // rip and rsp come from the trap registers the guest passed with HALT: the
    // backtrace is the faulting code's, not the trap handler's.
    assert!(bt.contains("null_deref::main"), "{bt}");
    assert!(bt.contains("null_deref.rs:18"), "not at the faulting write:\n{bt}");
    assert!(!bt.contains("trap_handler"), "{bt}");
}

#[test]
fn only_status_255_writes_a_core_and_only_with_the_option() {
    if !HVT.available() {
        return;
    }
    let scratch = Scratch::new("dumpcore-none");
    for (args, status) in [
        (vec![guest("hello")], 0),
        (vec![guest("exit_code"), "1".into()], 1),
        (vec![guest("exit_code"), "254".into()], 254),
    ] {
        let mut with = vec![dumpcore(&scratch.0), "--mem=4".into()];
        with.extend(args.iter().cloned());
        let run = run_tender(&with);
        assert_eq!(run.status(), status, "{with:?}\n{}", run.stderr());
        assert!(!run.stderr().contains("dumpcore"), "{with:?}\n{}", run.stderr());
        assert!(entries(&scratch.0).is_empty(), "{with:?} left {:?}", entries(&scratch.0));
    }
    // solo5_exit(255) is SOLO5_EXIT_ABORT to solo5-hvt-debug too.
    let run = run_tender(&[dumpcore(&scratch.0), "--mem=4".into(), guest("exit_code"), "255".into()]);
    let core = core_of(&run, &scratch.0, 4);
    std::fs::remove_file(core).unwrap();

    // Without the option an abort writes nothing, here or in the working directory.
    let mut cmd = Command::new(tender());
    cmd.args(["--mem=4", &guest("abort")]).current_dir(&scratch.0);
    let run = run_bounded(cmd, RUN_LIMIT);
    assert_eq!(run.status(), 255);
    assert!(!run.stderr().contains("dumpcore"), "{}", run.stderr());
    assert!(entries(&scratch.0).is_empty(), "{:?}", entries(&scratch.0));
}

#[test]
fn the_filter_grows_only_with_the_option() {
    if !HVT.available() {
        return;
    }
    let scratch = Scratch::new("dumpcore-audit");
    let without = run_tender(&["--audit", &guest("abort")]);
    without.expect(0, &["solo5-hvt guest"]);
    let with = run_tender(&["--audit", dumpcore(&scratch.0).as_str(), &guest("abort")]);
    with.expect(0, &["solo5-hvt guest"]);
    let (without, with) = (without.stdout(), with.stdout());
    let sregs = format!("arg1 == {:#x}", seccomp_profiles::KVM_GET_SREGS);
    assert!(!without.contains("linkat") && !without.contains(&sregs) && !without.contains("pwrite64"), "{without}");
    let added: Vec<&str> = with.lines().filter(|l| !without.lines().any(|w| w == *l) && !l.starts_with('#')).collect();
    assert_eq!(added.len(), 3, "{with}");
    assert!(added[0].starts_with("ioctl") && added[0].contains(&sregs), "{}", added[0]);
    assert!(added[1].starts_with("linkat") && added[1].contains("arg0 == 0xffffffffffffff9c"), "{}", added[1]);
    assert!(added[1].contains("arg4 == 0x400"), "{}", added[1]);
    assert!(added[2].starts_with("pwrite64") && added[2].contains("arg2 <= 0x1000"), "{}", added[2]);
    // 512 MiB by default: no write starts beyond the core's last page.
    assert!(added[2].contains("arg3 <= 0x20000000"), "{}", added[2]);
    assert!(entries(&scratch.0).is_empty(), "--audit left {:?}", entries(&scratch.0));
}

#[test]
fn bad_directories_and_spt_guests_are_refused_before_the_guest_runs() {
    let scratch = Scratch::new("dumpcore-refused");
    let file = scratch.file("plain", 0, 0);
    // spt first: it needs no KVM.
    let run = run_tender(&[dumpcore(&scratch.0).as_str(), Backend::Spt.guest("abort").to_str().unwrap()]);
    run.expect_error("--dumpcore is an hvt option (solo5-hvt-debug's)");
    assert!(run.stdout().is_empty(), "the guest ran:\n{}", run.stdout());
    run_tender(&["--dumpcore=/a", "--dumpcore=/b", "g.hvt"]).expect_error("`--dumpcore=/b' is given more than once");
    run_tender(&["--dumpcore=", "g.hvt"]).expect_error("expected --dumpcore=DIR");
    if !HVT.available() {
        return;
    }
    let missing = scratch.0.join("missing");
    for (dir, message) in [(&missing, "cannot open the directory: ENOENT"), (&file, "not a directory")] {
        let run = run_tender(&[dumpcore(dir), guest("abort")]);
        run.expect_error(&format!("--dumpcore={}: {message}", dir.display()));
        assert!(run.stdout().is_empty(), "the guest ran:\n{}", run.stdout());
    }
    assert_eq!(entries(&scratch.0), [file]);
}
