//! Shared by tender-oci's integration tests: the tender's helpers (guests, capability
//! gates) plus the release `tender-oci`, a private dockerd, a private containerd (CRI, `ctr`)
//! and the images it imports (written here as OCI layouts).
#![allow(dead_code)] // each test binary uses a different subset

#[path = "../../../tender/tests/common/mod.rs"]
mod tender_common;

pub use tender_common::*;

pub mod containerd;
pub mod cri_client;
pub mod dockerd;
pub mod images;
pub mod podman;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The release-built `tender-oci` (built by this call if needed).
pub fn tender_oci() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let target = repo_root().join("target");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            // The whole workspace, as README's `cargo build --release`: the binary shipped
            // (a narrower selection hashes names differently, see tender/build.rs).
            .args(["build", "--release", "--quiet", "--target-dir"])
            .arg(&target)
            .current_dir(repo_root())
            .status()
            .expect("cargo runs");
        assert!(status.success(), "cargo build --release failed: {status}");
        // .cargo/config.toml builds for one explicit target (static host binaries).
        target.join("x86_64-unknown-linux-gnu/release/tender-oci")
    })
}

/// Starts `sh -c SCRIPT` under `unshare --net --mount --propagation private`: a daemon
/// (dockerd, containerd, podman's holder) in network and mount namespaces of its own,
/// which gets `deathsig` when this test process exits. Returns the `unshare` pid (which
/// becomes the daemon: the scripts `exec` it).
pub fn spawn_in_own_namespaces(script: &str, deathsig: libc::c_int) -> std::io::Result<u32> {
    use std::os::unix::process::CommandExt;
    let script = script.to_owned();
    let (tx, rx) = std::sync::mpsc::channel();
    // PR_SET_PDEATHSIG fires when the *thread* that forked exits: fork from a thread that
    // lives as long as the process.
    std::thread::spawn(move || {
        let mut cmd = Command::new("unshare");
        cmd.args(["--net", "--mount", "--propagation", "private", "--", "sh", "-c", &script]);
        cmd.stdin(std::process::Stdio::null());
        // SAFETY: the closure runs in the forked child before exec and only calls prctl,
        // which is async-signal-safe and touches no memory of ours.
        unsafe {
            cmd.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, deathsig) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let _ = tx.send(cmd.spawn().map(|c| c.id()));
        loop {
            std::thread::park();
        }
    });
    rx.recv().map_err(|_| std::io::Error::other("the spawning thread died"))?
}

/// Runs `tender-oci ARGS` with stdin closed.
pub fn run_oci<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    Command::new(tender_oci()).args(args).stdin(std::process::Stdio::null()).output().expect("tender-oci runs")
}

/// Text of an output stream.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Directories named `name` anywhere under /sys/fs/cgroup (cgroups left behind).
pub fn cgroup_dirs_named(name: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, name: &str, depth: usize, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if !ft.is_dir() || ft.is_symlink() {
                continue;
            }
            let path = e.path();
            if e.file_name() == name {
                out.push(path.clone());
            }
            if depth > 0 {
                walk(&path, name, depth - 1, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(Path::new("/sys/fs/cgroup"), name, 8, &mut out);
    out
}

/// Processes whose command line mentions `needle` and that run `exe` (as `/proc/PID/exe`).
pub fn processes_of(exe: &Path, needle: &str) -> Vec<(i32, String)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else { return out };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        let Ok(target) = std::fs::read_link(format!("/proc/{pid}/exe")) else { continue };
        if target != exe {
            continue;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = text(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) {
            out.push((pid, cmdline));
        }
    }
    out
}

/// Interfaces tender-oci makes (`ttapN`, `tbrN`) visible in the current namespace.
pub fn tender_links(netns_of: Option<i32>) -> Vec<String> {
    let mut cmd = match netns_of {
        Some(pid) => {
            let mut c = Command::new("nsenter");
            c.args(["-t", &pid.to_string(), "-n", "ip", "-o", "link"]);
            c
        }
        None => {
            let mut c = Command::new("ip");
            c.args(["-o", "link"]);
            c
        }
    };
    let out = cmd.output().expect("ip runs");
    text(&out.stdout)
        .lines()
        .filter_map(|l| l.split(':').nth(1).map(|n| n.trim().split('@').next().unwrap_or("").to_owned()))
        .filter(|n| n.starts_with("ttap") || n.starts_with("tbr"))
        .collect()
}

/// Asserts that no mount of container `id` is left in the mount namespace of `daemon_pid`
/// (the engine's) or the host's, and no tap or bridge of ours in either network namespace.
#[track_caller]
pub fn assert_no_mounts_or_links(id: &str, daemon_pid: i32) {
    let mounts = std::fs::read_to_string(format!("/proc/{daemon_pid}/mountinfo")).unwrap_or_default();
    let left: Vec<&str> = mounts.lines().filter(|l| l.contains(id)).collect();
    assert!(left.is_empty(), "mounts left in the engine's namespace:\n{}", left.join("\n"));
    let host_mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    assert!(!host_mounts.contains(id), "mounts of {id} in the host namespace");
    let links = tender_links(None);
    assert!(links.is_empty(), "taps/bridges left on the host: {links:?}");
    let links = tender_links(Some(daemon_pid));
    assert!(links.is_empty(), "taps/bridges left in the engine's namespace: {links:?}");
}

/// Polls `logs NAME` of a docker-compatible CLI (`engine` runs it with the arguments
/// given) until the log contains `needle` or the container no longer runs, for at most
/// 60 s. Returns the log.
pub fn wait_for_log(engine: impl Fn(&[&str]) -> Output, name: &str, needle: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let out = engine(&["logs", name]);
        let log = text(&out.stdout) + &text(&out.stderr);
        let running = engine(&["inspect", "-f", "{{.State.Running}}", name]);
        if log.contains(needle) || text(&running.stdout).trim() != "true" || std::time::Instant::now() > deadline {
            return log;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The harness directories `TMPDIR/PREFIX<test pid>` whose test process is gone and
/// whose daemon (pid in the directory's `pid_file`, if given) is gone too: each is
/// handed to `clean` (which ends what outlives the daemon), then removed.
pub fn sweep_dead_harness_dirs(prefix: &str, pid_file: Option<&str>, clean: impl Fn(&Path)) {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else { return };
    let alive = |pid: u32| Path::new(&format!("/proc/{pid}")).exists();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(prefix).and_then(|p| p.parse::<u32>().ok()) else { continue };
        let daemon_alive = pid_file
            .and_then(|f| std::fs::read_to_string(e.path().join(f)).ok())
            .and_then(|p| p.trim().parse::<u32>().ok())
            .is_some_and(alive);
        if !alive(pid) && !daemon_alive {
            clean(&e.path());
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// The path of `program` on PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    let out = Command::new("sh").args(["-c", &format!("command -v {program}")]).output().ok()?;
    let path = text(&out.stdout).trim().to_owned();
    (out.status.success() && path.starts_with('/')).then(|| PathBuf::from(path))
}
