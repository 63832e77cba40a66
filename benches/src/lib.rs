//! Shared by the benchmarks (`benches/*.rs`) and the native baselines (`src/bin/`):
//! where the tender and guests are, a private network namespace with taps,
//! the allow-all seccomp filter, and criterion's estimates for the ratio tables.
//!
//! Benchmarks need root (taps, namespaces); without it they print why and skip.

pub mod native;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The repository root.
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("benches/ has a parent")
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

/// Builds the release tender, the native baselines and the release guests
/// (what the README's benchmark command does), once per process.
pub fn build_all() {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    BUILT.get_or_init(|| {
        let target = repo_root().join("target");
        let target = target.to_str().expect("utf-8 path");
        // The whole workspace, as README's `cargo build --release`: the tender's mangled
        // names (which its boot-order list names, tender/build.rs) depend on what else
        // is built, so any narrower selection would bench a differently laid out binary.
        cargo(&["build", "--release", "--quiet", "--target-dir", target]);
        cargo(&["xtask", "guests", "--release"]);
    });
}

/// `target/x86_64-unknown-linux-gnu/release/NAME` (tender, native-kv, native-http,
/// native-hypercall): static executables for the one target `.cargo/config.toml` sets.
pub fn release_bin(name: &str) -> PathBuf {
    repo_root().join("target/x86_64-unknown-linux-gnu/release").join(name)
}

/// `target/guests/NAME.EXT` (ext `spt` or `hvt`).
pub fn guest(name: &str, ext: &str) -> PathBuf {
    repo_root().join("target/guests").join(format!("{name}.{ext}"))
}

/// Whether this tender can run guests of the `hvt` target: it must know the
/// target (`tender inspect`) and `/dev/kvm` must exist. `Err` says why not.
pub fn hvt_available(guest_name: &str) -> Result<PathBuf, String> {
    let path = guest(guest_name, "hvt");
    if !path.is_file() {
        return Err(format!("no {} (the guest build makes no hvt images yet)", path.display()));
    }
    if !Path::new("/dev/kvm").exists() {
        return Err("no /dev/kvm".into());
    }
    let out =
        Command::new(release_bin("tender")).arg("--version").output().map_err(|e| format!("tender --version: {e}"))?;
    let version = String::from_utf8_lossy(&out.stdout);
    if !version.contains("hvt") {
        return Err(format!("this tender runs no hvt guests ({})", version.trim()));
    }
    Ok(path)
}

/// Whether we are root (taps and namespaces need it).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A network namespace of our own with taps in it; removed on drop.
#[derive(Debug)]
pub struct Netns {
    /// Its name (`ip netns exec NAME …`).
    pub name: String,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

impl Netns {
    /// Creates namespace `tender-bench-PID-TAG` with `lo` up.
    pub fn new(tag: &str) -> Result<Self, String> {
        let name = format!("tender-bench-{}-{tag}", std::process::id());
        let _ = ip(&["netns", "del", &name]);
        ip(&["netns", "add", &name])?;
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// `ip -n NAME ARGS…`.
    pub fn ip(&self, args: &[&str]) -> Result<(), String> {
        let mut full = vec!["-n", &self.name];
        full.extend_from_slice(args);
        ip(&full)
    }

    /// Adds tap `tap` (up), with `host_addr` (CIDR) on it if given.
    pub fn add_tap(&self, tap: &str, host_addr: Option<&str>) -> Result<(), String> {
        self.ip(&["tuntap", "add", tap, "mode", "tap"])?;
        if let Some(addr) = host_addr {
            self.ip(&["addr", "add", addr, "dev", tap])?;
        }
        self.ip(&["link", "set", tap, "up"])
    }

    /// A command run inside the namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program).stdin(Stdio::null());
        cmd
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// A 60-byte Ethernet frame nobody on the host wants (to a locally administered
/// MAC that no interface has, EtherType 0x88b5 "local experimental"): the
/// kernel drops it after the tap's receive path. The `hcbench` guest sends the same.
pub const DROPPED_FRAME: [u8; 60] = {
    let mut f = [0u8; 60];
    let dst = [0x02, 0x00, 0x00, 0xbe, 0xac, 0x01];
    let mut i = 0;
    while i < 6 {
        f[i] = dst[i];
        i += 1;
    }
    f[12] = 0x88;
    f[13] = 0xb5;
    f
};

/// The smallest seccomp filter: one `SECCOMP_RET_ALLOW`. Installing it moves
/// every syscall onto the kernel's filtered entry path (and the action cache then
/// skips the BPF run): seccomp's fixed cost, the floor under spt hypercalls.
pub fn allow_all_filter() -> seccompiler::BpfProgram {
    const BPF_RET_K: u16 = 0x06; // BPF_RET | BPF_K
    vec![seccompiler::sock_filter { code: BPF_RET_K, jt: 0, jf: 0, k: libc::SECCOMP_RET_ALLOW }]
}

/// The smallest filter the kernel must actually run: load the low word of
/// argument 0, then `SECCOMP_RET_ALLOW`. The load keeps seccomp's action cache
/// from proving the result constant, so every syscall pays one BPF invocation
/// (filling `seccomp_data`, the call into the JIT image) but no filter logic:
/// the floor under any filter that checks arguments, as every spt rule must.
pub fn one_load_filter() -> seccompiler::BpfProgram {
    const BPF_LD_W_ABS: u16 = 0x20;
    const BPF_RET_K: u16 = 0x06;
    const ARG0_LO: u32 = 16; // offsetof(struct seccomp_data, args[0])
    vec![
        seccompiler::sock_filter { code: BPF_LD_W_ABS, jt: 0, jf: 0, k: ARG0_LO },
        seccompiler::sock_filter { code: BPF_RET_K, jt: 0, jf: 0, k: libc::SECCOMP_RET_ALLOW },
    ]
}

/// Writes `"{n}\n"` into `out` without allocating (`tag` is appended as a
/// second number so that a loop result stays observable); returns the length.
pub fn format_u64(out: &mut [u8; 48], n: u64, tag: u8) -> usize {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut v = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let len = digits.len() - i;
    out[..len].copy_from_slice(&digits[i..]);
    out[len] = b' ';
    out[len + 1] = b'0' + tag % 10;
    out[len + 2] = b'\n';
    len + 3
}

/// Criterion's point estimate (mean, ns) for `group/id`, from
/// `target/criterion/GROUP/ID/new/estimates.json`; `None` if absent.
pub fn criterion_mean_ns(group: &str, id: &str) -> Option<f64> {
    let path = repo_root().join("target/criterion").join(group).join(id).join("new/estimates.json");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    json["mean"]["point_estimate"].as_f64()
}

/// Opening a tap like the tender does (`/dev/net/tun`, `IFF_TAP | IFF_NO_PI`,
/// non-blocking), for the native rows.
pub mod tap {
    use std::fs::OpenOptions;
    use std::io;
    use std::os::fd::{AsRawFd, OwnedFd};
    use std::os::unix::fs::OpenOptionsExt;

    /// `struct ifreq`: name and a 24-byte union (flags in its first two bytes).
    #[repr(C)]
    struct IfReq {
        name: [u8; libc::IFNAMSIZ],
        data: [u8; 24],
    }

    /// Attaches to tap `name`.
    pub fn open(name: &str) -> io::Result<OwnedFd> {
        if name.is_empty() || name.len() >= libc::IFNAMSIZ {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "bad interface name"));
        }
        let tun = OpenOptions::new().read(true).write(true).custom_flags(libc::O_NONBLOCK).open("/dev/net/tun")?;
        let mut req = IfReq { name: [0; libc::IFNAMSIZ], data: [0; 24] };
        req.name[..name.len()].copy_from_slice(name.as_bytes());
        const _: () = assert!(libc::IFF_TAP | libc::IFF_NO_PI <= i16::MAX as libc::c_int);
        // cast: fits, asserted just above; `ifr_flags` is a short.
        #[allow(clippy::cast_possible_truncation)]
        let flags = (libc::IFF_TAP | libc::IFF_NO_PI) as i16;
        req.data[..2].copy_from_slice(&flags.to_ne_bytes());
        // SAFETY: `req` has the `struct ifreq` layout TUNSETIFF reads and writes,
        // and lives across the call.
        if unsafe { libc::ioctl(tun.as_raw_fd(), libc::TUNSETIFF, &mut req as *mut IfReq) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(OwnedFd::from(tun))
    }
}
