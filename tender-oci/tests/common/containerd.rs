//! A private containerd 1.6 for the CRI and `ctr` tests, with the freshly built
//! `tender-oci` as the CRI runtime handler `tender` (and plain runc as the default).
//!
//! Private for the reasons `dockerd.rs` gives: its own root, state, gRPC socket and
//! config under a temp dir, in network and mount namespaces of its own (`unshare`), so
//! the CNI bridge, iptables rules (masquerade, port maps), pod network namespaces and
//! mounts stay there and vanish with it. The tests' "host" side (curl, redis-cli) runs in
//! that network namespace via `nsenter`. One daemon per test binary; it gets SIGTERM
//! (PR_SET_PDEATHSIG) when the test process exits, and a later run sweeps the dirs of
//! daemons whose test process is gone.
//!
//! The config ([`config_toml`]) is the one README's Kubernetes section shows, with paths
//! made private.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::{have, images, is_root, require, tender_oci, text};

/// The pod sandbox image (built from `tests/images/pause.c`).
pub const PAUSE_IMAGE: &str = "docker.io/library/tender-oci-pause:test";
/// The unikernel image: the guests at `/NAME.spt`, `CMD ["/hello.spt"]`.
pub const IMAGE: &str = "docker.io/library/tender-oci-guests:test";
/// Guests copied into [`IMAGE`].
pub const GUESTS: &[&str] = &["hello", "exit_code", "abort", "null_deref", "spin", "net", "http", "kv", "blk"];
/// The CRI runtime handler that runs tender-oci.
pub const HANDLER: &str = "tender";
/// containerd namespace of the CRI plugin.
pub const K8S_NS: &str = "k8s.io";
/// The pods' subnet (CNI bridge `cni0`, inside the daemon's network namespace only).
pub const SUBNET: &str = "10.88.0.0/16";
/// The bridge's (gateway's) address.
pub const GATEWAY: &str = "10.88.0.1";
/// The CNI bridge.
pub const BRIDGE: &str = "cni0";
const DIR_PREFIX: &str = "tender-oci-containerd-";
/// The cgroup parent of the test pods (kubelet's `/kubepods`).
pub const CGROUP_PARENT: &str = "tender-cri-test";

/// The running daemon.
#[derive(Debug)]
pub struct Containerd {
    /// Its directory (config, root, state, sockets, logs).
    pub dir: PathBuf,
    /// The gRPC socket (CRI and containerd's API).
    pub sock: PathBuf,
    /// containerd's pid (its namespaces are the tests' "host").
    pub pid: i32,
}

/// The daemon, started on first use; `None` when a capability is missing (skipped
/// locally, a failure under CI=true).
pub fn get() -> Option<&'static Containerd> {
    let ok = require("root", is_root())
        && require("containerd (apt-get install containerd)", have("containerd"))
        && require("ctr (apt-get install containerd)", have("ctr"))
        && require("containerd-shim-runc-v2 (apt-get install containerd)", have("containerd-shim-runc-v2"))
        && require("runc (apt-get install runc)", have("runc"))
        && require(
            "CNI plugins in /usr/lib/cni (apt-get install containernetworking-plugins)",
            ["bridge", "host-local", "portmap", "loopback"].iter().all(|p| Path::new("/usr/lib/cni").join(p).is_file()),
        )
        && require("iptables (apt-get install iptables)", have("iptables"))
        && require("unshare and nsenter (util-linux)", have("unshare") && have("nsenter"))
        && require("ip (iproute2)", have("ip"))
        && require("curl (apt-get install curl)", have("curl"))
        && require("gcc (for the pause image)", have("gcc"));
    if !ok {
        return None;
    }
    static D: OnceLock<Containerd> = OnceLock::new();
    Some(D.get_or_init(start))
}

/// containerd's config (version 2): private paths under `dir`, the CRI plugin with
/// `restrict_oom_score_adj` (lowering oom_score_adj may be denied), cgroupfs, runtime
/// handler `tender` = the runc shim calling `tender_oci`, which passes `org.tender.*`
/// annotations (block devices) through; plain runc as the default; CNI from `dir/cni`.
pub fn config_toml(dir: &Path, tender_oci: &Path) -> String {
    let d = dir.display();
    let t = tender_oci.display();
    format!(
        r#"version = 2
root = "{d}/root"
state = "{d}/state"

[grpc]
  address = "{d}/containerd.sock"

[ttrpc]
  address = "{d}/containerd.sock.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = "{d}/runc"
        SystemdCgroup = false

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{HANDLER}]
      runtime_type = "io.containerd.runc.v2"
      pod_annotations = ["org.tender.*"]
      container_annotations = ["org.tender.*"]
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{HANDLER}.options]
        BinaryName = "{t}"
        Root = "{d}/tender"
        SystemdCgroup = false

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{d}/cni/net.d"
"#
    )
}

/// The CNI network: a bridge with NAT and host-local addresses on [`SUBNET`], plus port
/// maps (hostPort), kept in `ipam_dir`.
pub fn cni_conflist(ipam_dir: &Path) -> String {
    serde_json::json!({
        "cniVersion": "0.4.0",
        "name": "tender-cri",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": true,
                "ipMasq": true,
                "hairpinMode": true,
                "ipam": {
                    "type": "host-local",
                    "dataDir": ipam_dir,
                    "ranges": [[{"subnet": SUBNET, "gateway": GATEWAY}]],
                    "routes": [{"dst": "0.0.0.0/0"}]
                }
            },
            {"type": "portmap", "capabilities": {"portMappings": true}}
        ]
    })
    .to_string()
}

/// Removes directories of daemons whose test process and daemon are gone, with what
/// outlives such a daemon.
fn sweep() {
    super::sweep_dead_harness_dirs(DIR_PREFIX, Some("containerd.pid"), |dir| {
        // Shims outlive their daemon by design (and keep the pause and guest running):
        // end those of this dead test daemon, found by its socket on their command line.
        let sock = dir.join("containerd.sock").display().to_string();
        for (shim, cmdline) in shims_of(&sock) {
            for pid in descendants(shim).into_iter().chain([shim]) {
                // SAFETY: kill(2) on a pid just read from /proc; a stale pid gets ESRCH.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            if let Some(socket) = shim_socket(&cmdline) {
                let _ = std::fs::remove_file(socket);
            }
        }
        // The pods' network namespace files (mounted only in the dead daemon's mount
        // namespace; on the host they are empty files).
        for netns in netns_paths(dir) {
            let _ = std::fs::remove_file(netns);
        }
        remove_empty_cgroups(CGROUP_PARENT);
    });
}

/// The network namespace paths under /run/netns (or /var/run/netns) that the bundles of
/// the daemon in `dir` joined.
fn netns_paths(dir: &Path) -> Vec<PathBuf> {
    let tasks = dir.join("state/io.containerd.runtime.v2.task");
    let bundles = std::fs::read_dir(&tasks)
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|ns| std::fs::read_dir(ns.path()).into_iter().flatten().flatten().map(|b| b.path()));
    bundles
        .filter_map(|b| {
            let config: serde_json::Value = serde_json::from_slice(&std::fs::read(b.join("config.json")).ok()?).ok()?;
            let path = config["linux"]["namespaces"]
                .as_array()?
                .iter()
                .find(|n| n["type"] == "network")
                .and_then(|n| n["path"].as_str())
                .map(str::to_owned)?;
            (path.starts_with("/run/netns/cni-") || path.starts_with("/var/run/netns/cni-"))
                .then(|| PathBuf::from(path))
        })
        .collect()
}

/// The socket a shim listens on, from its command line (`-namespace NS -id ID -address
/// ADDR`): containerd 1.6 puts it at /run/containerd/s/SHA256(ADDR/NS/ID). A killed
/// shim leaves it behind.
fn shim_socket(cmdline: &str) -> Option<PathBuf> {
    let words: Vec<&str> = cmdline.split_whitespace().collect();
    let arg = |flag: &str| words.iter().position(|w| *w == flag).and_then(|i| words.get(i + 1)).copied();
    let key = format!("{}/{}/{}", arg("-address")?, arg("-namespace")?, arg("-id")?);
    let hex = images::digest(key.as_bytes()).trim_start_matches("sha256:").to_owned();
    Some(Path::new("/run/containerd/s").join(hex))
}

/// Every process below `pid` (children first found, then theirs).
fn descendants(pid: i32) -> Vec<i32> {
    let parents: Vec<(i32, i32)> = std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()))
                .filter_map(|p| {
                    let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?;
                    // Field 4, after the parenthesised command (which may hold spaces).
                    let ppid = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()?;
                    Some((p, ppid))
                })
                .collect()
        })
        .unwrap_or_default();
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(parent) = todo.pop() {
        for &(p, pp) in &parents {
            if pp == parent && !out.contains(&p) {
                out.push(p);
                todo.push(p);
            }
        }
    }
    out
}

/// Removes the empty cgroups under `/sys/fs/cgroup/*/PARENT` (rmdir fails on a cgroup
/// that still holds processes, so live ones stay).
pub fn remove_empty_cgroups(parent: &str) {
    fn walk(dir: &Path) {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    walk(&e.path());
                }
            }
        }
        let _ = std::fs::remove_dir(dir);
    }
    let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") else { return };
    for e in entries.flatten() {
        walk(&e.path().join(parent));
    }
    walk(&Path::new("/sys/fs/cgroup").join(parent));
}

/// containerd shims (pid, command line) serving the daemon at `sock`.
fn shims_of(sock: &str) -> Vec<(i32, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()))
        .filter_map(|pid| {
            let cmdline = text(&std::fs::read(format!("/proc/{pid}/cmdline")).ok()?).replace('\0', " ");
            (cmdline.contains("containerd-shim") && cmdline.contains(&format!("-address {sock}")))
                .then_some((pid, cmdline))
        })
        .collect()
}

fn start() -> Containerd {
    let runtime = tender_oci();
    sweep();
    let dir = std::env::temp_dir().join(format!("{DIR_PREFIX}{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for sub in ["cg", "cni/net.d", "cni/ipam", "images"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    std::fs::write(dir.join("config.toml"), config_toml(&dir, runtime)).unwrap();
    std::fs::write(dir.join("cni/net.d/10-tender-cri.conflist"), cni_conflist(&dir.join("cni/ipam"))).unwrap();
    let d = dir.display();
    // Its own sysfs shows its own network devices; the cgroup mounts are carried over.
    let script = format!(
        "set -e
mount --rbind /sys/fs/cgroup {d}/cg
mount -t sysfs sysfs /sys
mount --move {d}/cg /sys/fs/cgroup
ip link set lo up
echo $$ >{d}/containerd.pid
exec containerd --config {d}/config.toml >{d}/containerd.log 2>&1"
    );
    let pid = super::spawn_in_own_namespaces(&script, libc::SIGTERM).expect("unshare … containerd starts");
    let sock = dir.join("containerd.sock");
    let daemon = Containerd { dir, sock, pid: pid as i32 };

    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if daemon.ctr(K8S_NS).arg("version").output().is_ok_and(|o| o.status.success()) {
            break;
        }
        assert!(
            Instant::now() < deadline && Path::new(&format!("/proc/{pid}")).exists(),
            "containerd did not come up; its log:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    daemon.import_images();
    daemon
}

impl Containerd {
    /// `ctr -a SOCK -n NS`.
    pub fn ctr(&self, ns: &str) -> Command {
        let mut c = Command::new("ctr");
        c.arg("-a").arg(&self.sock).args(["-n", ns]).stdin(Stdio::null());
        c
    }

    /// Runs `ctr -n NS ARGS` and asserts success; returns stdout.
    #[track_caller]
    pub fn ctr_ok(&self, ns: &str, args: &[&str]) -> String {
        let out = self.ctr(ns).args(args).output().expect("ctr runs");
        assert!(
            out.status.success(),
            "ctr -n {ns} {args:?} failed ({}):\n{}\n{}\n--- containerd log (tail)\n{}",
            out.status,
            text(&out.stdout),
            text(&out.stderr),
            self.log_tail(40)
        );
        text(&out.stdout)
    }

    /// The daemon's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default()
    }

    /// The last `n` lines of the daemon's log.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Imports the pause and unikernel images into namespace `ns` (the CRI's is
    /// [`K8S_NS`]) and checks they are there under their names.
    pub fn import_images_into(&self, ns: &str) {
        let images = self.dir.join("images");
        let pause = images.join("pause.tar");
        if !pause.exists() {
            std::fs::write(&pause, images::pause_archive(PAUSE_IMAGE, &images)).unwrap();
            std::fs::write(images.join("guests.tar"), images::unikernel_archive(IMAGE, GUESTS)).unwrap();
        }
        for tarball in ["pause.tar", "guests.tar"] {
            let path = images.join(tarball);
            self.ctr_ok(ns, &["images", "import", "--all-platforms", path.to_str().unwrap()]);
        }
        let list = self.ctr_ok(ns, &["images", "ls", "-q"]);
        for name in [PAUSE_IMAGE, IMAGE] {
            assert!(list.lines().any(|l| l == name), "ctr images import did not name {name}; images:\n{list}");
        }
    }

    fn import_images(&self) {
        self.import_images_into(K8S_NS);
    }

    /// `nsenter` into the daemon's network namespace (the tests' "host" side).
    pub fn in_netns(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.args(["-t", &self.pid.to_string(), "-n", "--", program]);
        c.stdin(Stdio::null());
        c
    }

    /// `nsenter` into the daemon's network and mount namespaces (where the pods'
    /// network namespaces are mounted).
    pub fn in_daemon_ns(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.args(["-t", &self.pid.to_string(), "-n", "-m", "--", program]);
        c.stdin(Stdio::null());
        c
    }

    /// `curl -sS -m 10 URL` from the daemon's network namespace.
    pub fn curl(&self, url: &str) -> Output {
        self.in_netns("curl").args(["-sS", "-m", "10", url]).output().expect("curl runs")
    }

    /// tender-oci's `--root` for namespace `ns` (the shim's `Root/NS`).
    pub fn tender_root(&self, ns: &str) -> PathBuf {
        self.dir.join("tender").join(ns)
    }

    /// runc's root for the pod sandboxes tender-oci delegates (see `src/delegate.rs`).
    pub fn delegated_root(&self, ns: &str) -> PathBuf {
        tender_oci::delegate::runc_root(&self.tender_root(ns))
    }

    /// The network namespace path of pod sandbox `pod` (from its bundle's config.json).
    pub fn pod_netns(&self, ns: &str, pod: &str) -> Option<PathBuf> {
        let config = self.dir.join("state/io.containerd.runtime.v2.task").join(ns).join(pod).join("config.json");
        let config: serde_json::Value = serde_json::from_slice(&std::fs::read(config).ok()?).ok()?;
        config["linux"]["namespaces"]
            .as_array()?
            .iter()
            .find(|n| n["type"] == "network")
            .and_then(|n| n["path"].as_str())
            .map(PathBuf::from)
    }

    /// The daemon's mount table.
    pub fn mountinfo(&self) -> String {
        std::fs::read_to_string(format!("/proc/{}/mountinfo", self.pid)).unwrap_or_default()
    }

    /// Interface names in the daemon's network namespace.
    pub fn links(&self) -> Vec<String> {
        let out = self.in_netns("ip").args(["-o", "link"]).output().expect("ip runs");
        text(&out.stdout)
            .lines()
            .filter_map(|l| l.split(':').nth(1).map(|n| n.trim().split('@').next().unwrap_or("").to_owned()))
            .collect()
    }

    /// Shims of this daemon still running.
    pub fn shims(&self) -> Vec<(i32, String)> {
        shims_of(&self.sock.display().to_string())
    }

    /// Asserts that nothing of containers/pods `ids` is left in namespace `ns`: no process
    /// (tender-oci, tender, runc, shim), no state directory of tender-oci nor of the
    /// delegated runc, no cgroup, mount, netns, tap, or bridge other than the CNI bridge.
    /// `ids` must be the last ones of the namespace: shims and pod netns are checked
    /// globally.
    #[track_caller]
    pub fn assert_clean(&self, ns: &str, ids: &[String]) {
        // Shims exit after the last delete; give them a moment on a busy host.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.shims().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let shims = self.shims();
        assert!(shims.is_empty(), "shims left: {shims:?}");
        for id in ids {
            assert!(!id.is_empty(), "empty id");
            let procs = super::processes_of(tender_oci(), id);
            assert!(procs.is_empty(), "processes of {id} left: {procs:?}");
            for root in [self.tender_root(ns), self.delegated_root(ns)] {
                let state = root.join(id);
                assert!(!state.exists(), "state directory left: {}", state.display());
            }
            let cgroups = super::cgroup_dirs_named(id);
            assert!(cgroups.is_empty(), "cgroups left: {cgroups:?}");
            let mounts = self.mountinfo();
            let left: Vec<&str> = mounts.lines().filter(|l| l.contains(id.as_str())).collect();
            assert!(left.is_empty(), "mounts of {id} left:\n{}", left.join("\n"));
            let host_mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
            assert!(!host_mounts.contains(id.as_str()), "mounts of {id} in the host namespace");
        }
        let mounts = self.mountinfo();
        // CRI names its pod namespaces cni-UUID (others', inherited at unshare, stay out).
        let netns: Vec<&str> = mounts.lines().filter(|l| l.contains("/netns/cni-")).collect();
        assert!(netns.is_empty(), "pod network namespaces left:\n{}", netns.join("\n"));
        let links = self.links();
        let extra: Vec<&String> = links.iter().filter(|l| *l != "lo" && *l != BRIDGE).collect();
        assert!(extra.is_empty(), "interfaces left in the daemon's namespace: {extra:?}");
        let host = super::tender_links(None);
        assert!(host.is_empty(), "taps/bridges left on the host: {host:?}");
        let runc_state: Vec<PathBuf> = std::fs::read_dir(self.delegated_root(ns))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(runc_state.is_empty(), "delegated runc state left: {runc_state:?}");
    }
}
