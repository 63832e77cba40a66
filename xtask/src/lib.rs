//! Project tasks, as a library so that the tender's integration tests can build
//! the test guests the same way `cargo xtask guests` does.
//!
//! The guests live in `guests/`, a cargo workspace of their own with its own
//! target rustflags and linker script (see `guests/README.md`). Building them
//! from inside another cargo process needs care (`docs/guest-build.md`
//! item 9): the nested cargo must start in `guests/` so that it reads
//! `guests/.cargo/config.toml`, must not inherit the outer cargo's
//! `CARGO_*`/`RUST*` variables (an inherited `CARGO_ENCODED_RUSTFLAGS=""`
//! silently overrides the guest config), and must use its own target directory
//! (sharing the outer one deadlocks on cargo's lock).
//!
//! ```no_run
//! let root = xtask::repo_root();
//! let guests = xtask::build_guests(&root, xtask::Profile::Dev).unwrap();
//! // guests[i] == root/target/guests/NAME.spt
//! ```

pub mod boot_order;

use std::ffi::OsStr;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicU64, Ordering};

/// The guests are static executables for the host triple (docs/guest-build.md).
pub const GUEST_TARGET: &str = "x86_64-unknown-linux-gnu";
/// The packages whose binaries are guests: the conformance guests, and the
/// networked apps (kv, http) with the hypercall benchmark guest.
const GUEST_PACKAGE_BINS: [&str; 2] = ["guests/conformance/src/bin", "guests/apps/src/bin"];

/// The Solo5 target a guest is built for: its file extension in
/// `target/guests`, the cargo feature that selects it, and its build settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The seccomp backend (solo5-rt's default): `NAME.spt`.
    Spt,
    /// The KVM backend: `NAME.hvt`, built without SSE (docs/guest-build.md item 6:
    /// this machine's KVM dies on x87/SSE instructions) into a target dir of
    /// its own.
    Hvt,
}

impl Target {
    /// Both, in build order.
    pub const ALL: [Target; 2] = [Target::Spt, Target::Hvt];

    /// The file extension, which is also Solo5's name for the target.
    pub fn ext(self) -> &'static str {
        match self {
            Target::Spt => "spt",
            Target::Hvt => "hvt",
        }
    }

    /// `conformance/spt` or `conformance/hvt`: picks the solo5-rt platform
    /// (feature unification carries it to every guest package) and the
    /// one-target guests (`required-features` in conformance/Cargo.toml).
    fn feature(self) -> &'static str {
        match self {
            Target::Spt => "conformance/spt",
            Target::Hvt => "conformance/hvt",
        }
    }

    /// Extra `cargo --config` settings. cargo appends `--config` arrays to the
    /// config file's rustflags, so the guest link settings stay.
    fn config(self) -> Option<&'static str> {
        match self {
            Target::Spt => None,
            Target::Hvt => Some(r#"target.x86_64-unknown-linux-gnu.rustflags=["-C","target-feature=-sse,-sse2"]"#),
        }
    }
}

/// Which cargo profile to build the guests with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// `dev` (opt-level 1, fat LTO, debug info; see guests/Cargo.toml).
    Dev,
    /// `release`.
    Release,
}

/// What went wrong while building the guests.
#[derive(Debug)]
pub enum BuildError {
    /// The guest sources could not be listed.
    ListGuests { dir: PathBuf, source: io::Error },
    /// `cargo` could not be started.
    Spawn { source: io::Error },
    /// The nested `cargo build` failed (its own output says why).
    Cargo { status: ExitStatus },
    /// cargo succeeded but a guest binary is not where it should be.
    MissingBinary { path: PathBuf },
    /// A built guest could not be copied to `target/guests`.
    Copy { from: PathBuf, to: PathBuf, source: io::Error },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::ListGuests { dir, .. } => write!(f, "cannot list the guests in {}", dir.display()),
            BuildError::Spawn { .. } => write!(f, "cannot run cargo to build the guests"),
            BuildError::Cargo { status } => write!(f, "building the guests failed: cargo {status}"),
            BuildError::MissingBinary { path } => write!(f, "guest binary {} missing after the build", path.display()),
            BuildError::Copy { from, to, .. } => write!(f, "cannot copy {} to {}", from.display(), to.display()),
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BuildError::ListGuests { source, .. } | BuildError::Spawn { source } | BuildError::Copy { source, .. } => {
                Some(source)
            }
            BuildError::Cargo { .. } | BuildError::MissingBinary { .. } => None,
        }
    }
}

/// The repository root: the parent of this crate's directory, fixed when xtask
/// is compiled (so it is right for the tender's tests too).
pub fn repo_root() -> PathBuf {
    let xtask_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    xtask_dir.parent().expect("xtask lives in a subdirectory of the repository").to_path_buf()
}

/// Where the guests' cargo puts its build output (never the host's target dir).
pub fn guest_build_dir(repo_root: &Path) -> PathBuf {
    repo_root.join("target").join("guests-build")
}

/// The build directory of `target`'s guests: [`guest_build_dir`] for spt,
/// `target/guests-build-hvt` for hvt (other rustflags: a shared directory
/// would rebuild everything at every switch).
pub fn guest_build_dir_for(repo_root: &Path, target: Target) -> PathBuf {
    match target {
        Target::Spt => guest_build_dir(repo_root),
        Target::Hvt => repo_root.join("target").join("guests-build-hvt"),
    }
}

/// Where the finished guests go: `target/guests/NAME.spt`.
pub fn guest_out_dir(repo_root: &Path) -> PathBuf {
    repo_root.join("target").join("guests")
}

/// The path of guest `name` after [`build_guests`].
pub fn guest_path(repo_root: &Path, name: &str) -> PathBuf {
    guest_path_for(repo_root, name, Target::Spt)
}

/// The path of guest `name` built for `target`: `target/guests/NAME.spt` or `NAME.hvt`.
pub fn guest_path_for(repo_root: &Path, name: &str, target: Target) -> PathBuf {
    guest_out_dir(repo_root).join(format!("{name}.{}", target.ext()))
}

/// The guest names: one per `guests/{conformance,apps}/src/bin/NAME.rs`, sorted.
pub fn guest_names(repo_root: &Path) -> Result<Vec<String>, BuildError> {
    let mut names = Vec::new();
    for bins in GUEST_PACKAGE_BINS {
        let dir = repo_root.join(bins);
        let list_err = |source| BuildError::ListGuests { dir: dir.clone(), source };
        for entry in fs::read_dir(&dir).map_err(list_err)? {
            let path = entry.map_err(list_err)?.path();
            if path.extension() == Some(OsStr::new("rs")) {
                if let Some(stem) = path.file_stem().and_then(OsStr::to_str) {
                    names.push(stem.to_owned());
                }
            }
        }
    }
    names.sort();
    Ok(names)
}

/// A `cargo` command for the guests workspace: run from `guests/`, with the
/// outer cargo's build environment removed (uhyve's `sanitize()`, plus the
/// variables docs/guest-build.md item 9 names).
pub fn guests_cargo(repo_root: &Path) -> Command {
    // `cargo` from PATH: with rustup that is the proxy, which then honours
    // guests/rust-toolchain.toml (RUSTUP_TOOLCHAIN is removed below).
    let mut cmd = Command::new("cargo");
    cmd.current_dir(repo_root.join("guests"));
    for (key, _) in std::env::vars_os() {
        if let Some(key) = key.to_str() {
            if leaks_into_nested_cargo(key) {
                cmd.env_remove(key);
            }
        }
    }
    cmd
}

/// True for the variables an outer cargo (or rustup) sets for its children
/// that would change the nested guest build: `CARGO_ENCODED_RUSTFLAGS`,
/// `RUSTFLAGS`, `CARGO_BUILD_*`, `CARGO_TARGET_DIR`, `RUSTC*`, `CARGO_PKG_*`,
/// `CARGO_MANIFEST_*`, `RUSTUP_TOOLCHAIN`, `LD_LIBRARY_PATH`, …. Kept: where
/// cargo and rustup live and user settings that do not change the build
/// (network, terminal, `RUSTUP_HOME`, `RUSTUP_AUTO_INSTALL`).
fn leaks_into_nested_cargo(key: &str) -> bool {
    const KEEP: [&str; 5] = ["CARGO_HOME", "CARGO_NET_", "CARGO_HTTP_", "CARGO_TERM_", "RUSTUP_"];
    if key == "LD_LIBRARY_PATH" || key == "RUSTUP_TOOLCHAIN" {
        return true;
    }
    let cargo_or_rust = key.starts_with("CARGO") || key.starts_with("__CARGO") || key.starts_with("RUST");
    cargo_or_rust && !KEEP.iter().any(|k| key.starts_with(k))
}

/// Builds every guest with `profile` for both targets and copies each to
/// `target/guests/NAME.spt` and `NAME.hvt` (whatever the profile: the last
/// build wins; one-target guests get one file). Returns those paths, sorted.
///
/// Safe to call from several test processes or threads at once: cargo's own
/// lock serialises the builds, and each copy lands by an atomic rename.
pub fn build_guests(repo_root: &Path, profile: Profile) -> Result<Vec<PathBuf>, BuildError> {
    let names = guest_names(repo_root)?;
    let mut paths = Vec::new();
    let mut built_names = Vec::new();
    for target in Target::ALL {
        for (name, from) in build_target(repo_root, profile, target)? {
            let to = guest_path_for(repo_root, &name, target);
            copy_atomically(&from, &to).map_err(|source| BuildError::Copy { from, to: to.clone(), source })?;
            paths.push(to);
            built_names.push(name);
        }
    }
    // Every guest source must have become a guest for at least one target
    // (a missing [[bin]] entry, or required-features no build enables).
    if let Some(missing) = names.iter().find(|n| !built_names.contains(n)) {
        return Err(BuildError::MissingBinary { path: guest_path(repo_root, missing) });
    }
    paths.sort();
    Ok(paths)
}

/// `cargo clippy` over the guests workspace as built for `target` (its
/// features, flags and target dir), warnings denied, lockfile checked.
pub fn clippy_guests_cmd(repo_root: &Path, target: Target) -> Command {
    let mut cmd = guests_cargo(repo_root);
    cmd.args(["clippy", "--locked", "--workspace", "--all-targets", "--target", GUEST_TARGET])
        .args(["--features", target.feature()])
        .arg("--target-dir")
        .arg(guest_build_dir_for(repo_root, target));
    if let Some(config) = target.config() {
        cmd.args(["--config", config]);
    }
    cmd.args(["--", "-D", "warnings"]);
    cmd
}

/// Runs the guests' cargo for `target` and returns each guest binary it built
/// (name, path), as cargo's JSON messages list them.
fn build_target(repo_root: &Path, profile: Profile, target: Target) -> Result<Vec<(String, PathBuf)>, BuildError> {
    let build_dir = guest_build_dir_for(repo_root, target);
    let mut cmd = guests_cargo(repo_root);
    cmd.args(["build", "--workspace", "--bins", "--target", GUEST_TARGET])
        .args(["--features", target.feature()])
        .args(["--message-format", "json-render-diagnostics"])
        .arg("--target-dir")
        .arg(&build_dir);
    if let Some(config) = target.config() {
        cmd.args(["--config", config]);
    }
    if profile == Profile::Release {
        cmd.arg("--release");
    }
    // JSON on stdout for us; cargo's progress and rendered errors stay on stderr.
    cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::inherit());
    let output = cmd.output().map_err(|source| BuildError::Spawn { source })?;
    if !output.status.success() {
        return Err(BuildError::Cargo { status: output.status });
    }
    let out_dir = guest_out_dir(repo_root);
    fs::create_dir_all(&out_dir).map_err(|source| BuildError::Copy {
        from: build_dir.clone(),
        to: out_dir.clone(),
        source,
    })?;
    let mut built = Vec::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        if message["reason"] != "compiler-artifact" {
            continue;
        }
        let (Some(exe), Some(name)) = (message["executable"].as_str(), message["target"]["name"].as_str()) else {
            continue;
        };
        let exe = PathBuf::from(exe);
        if !exe.is_file() {
            return Err(BuildError::MissingBinary { path: exe });
        }
        built.push((name.to_owned(), exe));
    }
    Ok(built)
}

/// Copies to a unique temporary name next to `to`, then renames: a concurrent
/// reader (a test running the guest) never sees a half-written file.
fn copy_atomically(from: &Path, to: &Path) -> io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut tmp = to.as_os_str().to_owned();
    tmp.push(format!(".tmp.{}.{n}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    fs::copy(from, &tmp)?;
    fs::rename(&tmp, to).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outer_build_environment_is_removed() {
        for key in [
            "CARGO_ENCODED_RUSTFLAGS",
            "RUSTFLAGS",
            "CARGO_BUILD_RUSTFLAGS",
            "CARGO_TARGET_DIR",
            "CARGO_BUILD_TARGET",
            "CARGO_MANIFEST_DIR",
            "CARGO_PKG_NAME",
            "CARGO",
            "RUSTC",
            "RUSTC_WRAPPER",
            "RUSTDOCFLAGS",
            "RUSTUP_TOOLCHAIN",
            "__CARGO_FIX_PLZ",
            "LD_LIBRARY_PATH",
        ] {
            assert!(leaks_into_nested_cargo(key), "{key} must be removed");
        }
        for key in ["CARGO_HOME", "RUSTUP_HOME", "RUSTUP_AUTO_INSTALL", "CARGO_NET_OFFLINE", "PATH", "HOME"] {
            assert!(!leaks_into_nested_cargo(key), "{key} must be kept");
        }
    }

    #[test]
    fn guests_are_listed_from_the_sources() {
        let names = guest_names(&repo_root()).unwrap();
        assert!(names.iter().any(|n| n == "hello"), "{names:?}");
        assert!(names.windows(2).all(|w| w[0] < w[1]));
    }
}
