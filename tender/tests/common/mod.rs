//! Shared by the integration tests: builds the release tender and the guests once per
//! test binary, runs guests, and gates tests on host capabilities.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The repository root.
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tender/ has a parent")
}

fn cargo(args: &[&str]) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(args)
        .current_dir(repo_root())
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo {args:?}: {e}"));
    assert!(status.success(), "cargo {args:?} failed: {status}");
}

/// The release-built tender (built by this call if needed, as the README does).
pub fn tender() -> &'static Path {
    static TENDER: OnceLock<PathBuf> = OnceLock::new();
    TENDER.get_or_init(|| {
        let target = repo_root().join("target");
        cargo(&["build", "--release", "--quiet", "--package", "tender", "--target-dir", target.to_str().unwrap()]);
        target.join("release/tender")
    })
}

/// `target/guests/NAME.spt`, after building all guests once (`cargo xtask guests`).
pub fn guest(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| cargo(&["xtask", "guests"]));
    let path = repo_root().join("target/guests").join(format!("{name}.spt"));
    assert!(path.is_file(), "{} was not built by `cargo xtask guests`", path.display());
    path
}

/// A finished run: exit code or signal, and the output.
#[derive(Debug)]
pub struct Run {
    pub output: Output,
}

impl Run {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
    /// Exit status as a shell reports it: code, or 128 + signal.
    pub fn status(&self) -> i32 {
        use std::os::unix::process::ExitStatusExt;
        let s = self.output.status;
        s.code().unwrap_or_else(|| 128 + s.signal().expect("neither code nor signal"))
    }
    /// Asserts status and that stdout contains every needle, printing everything if not.
    #[track_caller]
    pub fn expect(&self, status: i32, needles: &[&str]) -> &Self {
        let out = self.stdout();
        let ok = self.status() == status && needles.iter().all(|n| out.contains(n));
        assert!(
            ok,
            "expected status {status} and {needles:?} in stdout\n--- status {}\n--- stdout\n{out}\n--- stderr\n{}",
            self.status(),
            self.stderr()
        );
        self
    }
    /// Asserts a tender error: status 1, and stderr names `needle`.
    #[track_caller]
    pub fn expect_error(&self, needle: &str) -> &Self {
        let err = self.stderr();
        assert!(
            self.status() == 1 && err.contains(needle),
            "expected status 1 and {needle:?} in stderr\n--- status {}\n--- stdout\n{}\n--- stderr\n{err}",
            self.status(),
            self.stdout()
        );
        self
    }
}

/// Runs the release tender with `args`, stdin closed.
pub fn run_tender<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Run {
    let output = Command::new(tender()).args(args).stdin(std::process::Stdio::null()).output().expect("tender runs");
    Run { output }
}

/// Whether we run under CI (capabilities are then required, not optional).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Gate for tests that need a capability. Locally a missing one skips, loudly; in CI
/// it fails the test.
#[track_caller]
pub fn require(capability: &str, present: bool) -> bool {
    if present {
        return true;
    }
    if in_ci() {
        panic!("CI=true but {capability} is missing: this test must run in CI (.ci/run sets it up)");
    }
    eprintln!("\n!!! SKIPPED: {capability} is missing on this machine; CI requires it !!!\n");
    false
}

/// Root (for taps and network namespaces).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Whether `program` is on PATH.
pub fn have(program: &str) -> bool {
    Command::new("sh").args(["-c", &format!("command -v {program}")]).output().is_ok_and(|o| o.status.success())
}

/// A scratch directory unique to this test, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("tender-test-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
    /// A file of `len` bytes filled with `fill`.
    pub fn file(&self, name: &str, len: usize, fill: u8) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, vec![fill; len]).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
