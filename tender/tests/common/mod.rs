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
        // The whole workspace, exactly README's `cargo build --release`: a narrower
        // selection builds a tender with other mangled names, so its boot-order list
        // (tender/build.rs) would not apply, and it would not be the binary shipped.
        cargo(&["build", "--release", "--quiet", "--target-dir", target.to_str().unwrap()]);
        // .cargo/config.toml builds for one explicit target (static host binaries).
        target.join("x86_64-unknown-linux-gnu/release/tender")
    })
}

/// `target/guests/NAME.spt`, after building all guests once (`cargo xtask guests`).
pub fn guest(name: &str) -> PathBuf {
    Backend::Spt.guest(name)
}

/// The two backends; a guest is built for each (`NAME.spt`, `NAME.hvt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The seccomp backend: the guest runs in the tender's process.
    Spt,
    /// The KVM backend: the guest runs in a VM.
    Hvt,
}

impl Backend {
    /// `spt` or `hvt`: Solo5's target name and the guest's file extension.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Spt => "spt",
            Backend::Hvt => "hvt",
        }
    }

    /// `target/guests/NAME.<backend>`, after building all guests once.
    pub fn guest(self, name: &str) -> PathBuf {
        static BUILT: OnceLock<()> = OnceLock::new();
        BUILT.get_or_init(|| cargo(&["xtask", "guests"]));
        let path = repo_root().join("target/guests").join(format!("{name}.{}", self.name()));
        assert!(path.is_file(), "{} was not built by `cargo xtask guests`", path.display());
        path
    }

    /// Whether this backend can run here: spt always; hvt needs a usable
    /// /dev/kvm. Locally a missing one skips (loudly), under CI it fails.
    #[track_caller]
    pub fn available(self) -> bool {
        match self {
            Backend::Spt => true,
            Backend::Hvt => require("/dev/kvm (read-write)", kvm_usable()),
        }
    }
}

/// Whether /dev/kvm exists and this user may open it read-write.
pub fn kvm_usable() -> bool {
    std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm").is_ok()
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

/// How long any one tender run may take before the harness kills it and fails
/// the test (a hang is a failure, never a stuck test run). Generous: emulated
/// guest code is slow on software-nested KVM.
pub const RUN_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

/// Runs the release tender with `args`, stdin closed, within [`RUN_LIMIT`].
pub fn run_tender<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Run {
    let mut cmd = Command::new(tender());
    cmd.args(args);
    run_bounded(cmd, RUN_LIMIT)
}

/// Runs `cmd` (stdin closed, output captured); kills it and panics if it has
/// not exited after `limit`.
#[track_caller]
pub fn run_bounded(mut cmd: Command, limit: std::time::Duration) -> Run {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out.read_to_end(&mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err.read_to_end(&mut buf);
        buf
    });
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the tender") {
            break status;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stdout = String::from_utf8_lossy(&out_reader.join().unwrap_or_default()).into_owned();
            panic!("{cmd:?} did not exit within {limit:?}; killed it\n--- stdout\n{stdout}");
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    Run { output: Output { status, stdout, stderr } }
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

/// The syscall names in the first column of README.md's table under `### HEADING`.
pub fn readme_syscall_table(heading: &str) -> Vec<String> {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let section =
        readme.split(&format!("### {heading}\n")).nth(1).unwrap_or_else(|| panic!("README has no `### {heading}`"));
    section
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|row| row.split('|').nth(1).unwrap().trim().trim_matches('`').to_owned())
        .collect()
}
