//! Podman (Debian's 4.3, netavark networking) driven as a user drives it, with the
//! freshly built `tender-oci` as its OCI runtime: `podman --runtime PATH …`, or by name
//! after registering it in containers.conf (`[engine.runtimes] tender = [PATH]`).
//!
//! Isolated like the private dockerd (`dockerd.rs`): its own `--root`, `--runroot`,
//! `--tmpdir`, network config dir, containers.conf, storage.conf and registries.conf
//! (no registry is needed: the image is built locally from a FROM-scratch Dockerfile),
//! `cgroupfs` cgroups and a `file` events log. Every podman command runs inside network
//! and mount namespaces the harness made (a holder process, `unshare --net --mount`,
//! that gets SIGKILL when the test process exits): netavark's bridge `podman0`, its
//! iptables rules, the containers' namespaces under /run/netns, overlay mounts and
//! conmon all stay there. One holder serves every test in the binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::{have, is_root, require, tender_oci, text};

/// The image the tests run (podman names a local image `localhost/NAME`).
pub const IMAGE: &str = "localhost/tender-oci-podman-test:latest";
/// Guests copied into the image (`/NAME.spt`).
pub const GUESTS: &[&str] = &["hello", "exit_code", "net", "blk", "http"];
/// The runtime's name in containers.conf.
pub const RUNTIME_NAME: &str = "tender";
const DIR_PREFIX: &str = "tender-oci-podman-";

/// The isolated podman.
#[derive(Debug)]
pub struct Podman {
    /// Its state directory.
    pub dir: PathBuf,
    /// The holder process: its network and mount namespaces are podman's "host".
    pub holder: i32,
    /// `podman` on PATH.
    pub bin: PathBuf,
}

/// The podman, set up on first use; `None` when a capability is missing (skipped
/// locally, a failure under CI=true).
pub fn get() -> Option<&'static Podman> {
    let ok = require("root", is_root())
        && require("podman (apt-get install podman)", have("podman"))
        && require("conmon (podman's dependency)", have("conmon") || Path::new("/usr/bin/conmon").exists())
        && require(
            "netavark (apt-get install netavark)",
            Path::new("/usr/lib/podman/netavark").exists() || have("netavark"),
        )
        && require("iptables (netavark's firewall driver)", have("iptables"))
        && require("unshare and nsenter (util-linux)", have("unshare") && have("nsenter"))
        && require("ip (iproute2)", have("ip"))
        && require("curl", have("curl"))
        && require("ping (iputils-ping)", have("ping"));
    if !ok {
        return None;
    }
    static P: OnceLock<Podman> = OnceLock::new();
    Some(P.get_or_init(start))
}

fn start() -> Podman {
    let runtime = tender_oci();
    super::sweep_dead_harness_dirs(DIR_PREFIX, None, |_| {});
    let dir = std::env::temp_dir().join(format!("{DIR_PREFIX}{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for sub in ["cg", "root", "runroot", "tmp", "networks", "image"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let d = dir.display();
    std::fs::write(
        dir.join("containers.conf"),
        format!(
            "[engine]
cgroup_manager = \"cgroupfs\"
events_logger = \"file\"
tmp_dir = \"{d}/tmp\"

[engine.runtimes]
{RUNTIME_NAME} = [\"{runtime}\"]

[network]
network_backend = \"netavark\"
network_config_dir = \"{d}/networks\"
",
            runtime = runtime.display()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("storage.conf"),
        format!("[storage]\ndriver = \"overlay\"\ngraphroot = \"{d}/root\"\nrunroot = \"{d}/runroot\"\n"),
    )
    .unwrap();
    // No registry: every image is local, short names are never looked up.
    std::fs::write(dir.join("registries.conf"), "unqualified-search-registries = []\n").unwrap();
    std::fs::write(dir.join("policy.json"), r#"{"default":[{"type":"insecureAcceptAnything"}]}"#).unwrap();

    // Its own sysfs shows its own network devices; the cgroup mounts are carried over.
    // Where podman and netavark write outside the directories we give them, a tmpfs of
    // the holder's own: /run/netns (the containers' network namespaces), /run/containers
    // (netavark's IP allocations), /var/lib/containers (podman's blob cache).
    let script = format!(
        "set -e
mount --rbind /sys/fs/cgroup {d}/cg
mount -t sysfs sysfs /sys
mount --move {d}/cg /sys/fs/cgroup
for dir in /run/netns /run/containers /var/lib/containers; do
  mkdir -p $dir
  mount -t tmpfs -o mode=0755 tmpfs $dir
done
ip link set lo up
echo ready > {d}/holder.ready
exec sleep infinity"
    );
    let holder = super::spawn_in_own_namespaces(&script, libc::SIGKILL).expect("unshare … sleep starts") as i32;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !dir.join("holder.ready").exists() {
        assert!(
            Instant::now() < deadline && Path::new(&format!("/proc/{holder}")).exists(),
            "the namespace holder did not come up"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let bin = super::which("podman").unwrap_or_else(|| PathBuf::from("podman"));
    let podman = Podman { dir, holder, bin };
    podman.build_image();
    podman
}

impl Podman {
    /// `podman` with the isolating global flags and environment, in the holder's
    /// namespaces; no `--runtime`.
    pub fn bare(&self) -> Command {
        let d = &self.dir;
        let mut c = Command::new("nsenter");
        c.args(["-t", &self.holder.to_string(), "-n", "-m", "--"]);
        c.arg(&self.bin);
        c.arg("--root").arg(d.join("root"));
        c.arg("--runroot").arg(d.join("runroot"));
        c.arg("--tmpdir").arg(d.join("tmp"));
        c.arg("--network-config-dir").arg(d.join("networks"));
        c.args(["--cgroup-manager", "cgroupfs", "--events-backend", "file", "--storage-driver", "overlay"]);
        c.env("CONTAINERS_CONF", d.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", d.join("storage.conf"))
            .env("CONTAINERS_REGISTRIES_CONF", d.join("registries.conf"))
            .env("TMPDIR", d.join("tmp"))
            .stdin(Stdio::null());
        c
    }

    /// `podman --runtime TENDER_OCI` (the runtime by path, as a user would give it).
    pub fn cmd(&self) -> Command {
        let mut c = self.bare();
        c.arg("--runtime").arg(tender_oci());
        c
    }

    /// Runs `podman --runtime TENDER_OCI ARGS`.
    pub fn podman(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("podman runs")
    }

    /// Runs `podman --runtime TENDER_OCI ARGS`, asserts success, returns stdout.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.podman(args);
        assert!(
            out.status.success(),
            "podman {args:?} failed ({}):\n{}\n{}",
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// Builds [`IMAGE`] from a FROM-scratch Dockerfile holding the guests.
    fn build_image(&self) {
        let ctx = self.dir.join("image");
        let mut dockerfile = String::from("FROM scratch\n");
        for name in GUESTS {
            std::fs::copy(super::guest(name), ctx.join(format!("{name}.spt"))).unwrap();
            dockerfile.push_str(&format!("COPY {name}.spt /{name}.spt\n"));
        }
        dockerfile.push_str("CMD [\"/hello.spt\"]\n");
        std::fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
        let policy = self.dir.join("policy.json");
        self.ok(&["build", "-q", "--signature-policy", policy.to_str().unwrap(), "-t", IMAGE, ctx.to_str().unwrap()]);
    }

    /// A program run in the holder's network (and mount) namespace: the tests' "host".
    pub fn in_netns(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.args(["-t", &self.holder.to_string(), "-n", "-m", "--", program]);
        c.stdin(Stdio::null());
        c
    }

    /// Waits until the container's log contains `needle` or it no longer runs. Returns
    /// the log.
    pub fn wait_log(&self, name: &str, needle: &str) -> String {
        super::wait_for_log(|args| self.podman(args), name, needle)
    }

    /// Asserts that nothing of container `id` is left: no tender-oci, tender or conmon
    /// process, no runtime state, cgroup, mount, network namespace file, or tap/bridge of
    /// ours in the holder's namespace or the host's.
    #[track_caller]
    pub fn assert_clean(&self, id: &str) {
        assert!(id.len() >= 12, "no container id: {id:?}");
        // conmon outlives `podman run --rm` and `podman rm` briefly: it runs podman's exit
        // command (`podman container cleanup`) after the container ended.
        let conmon = which_conmon();
        let procs = || [super::processes_of(tender_oci(), id), super::processes_of(&conmon, id)].concat();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !procs().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let left = procs();
        assert!(left.is_empty(), "processes of container {id} left after 60 s: {left:?}");
        // Podman gives the runtime no --root: its state is in tender-oci's default root.
        let runtime_state = Path::new(tender_oci::DEFAULT_ROOT).join(id);
        assert!(!runtime_state.exists(), "runtime state left: {}", runtime_state.display());
        let state = find_named(&self.dir, id, 6);
        assert!(state.is_empty(), "podman's state of {id} left: {state:?}");
        let cgroups = super::cgroup_dirs_named(&format!("libpod-{id}"));
        assert!(cgroups.is_empty(), "cgroups left: {cgroups:?}");
        super::assert_no_mounts_or_links(id, self.holder);
    }

    /// The container's network namespace file (podman's `SandboxKey`, under /run/netns in
    /// the holder's mounts); empty without a network.
    pub fn netns_of(&self, name: &str) -> String {
        self.ok(&["inspect", "-f", "{{.NetworkSettings.SandboxKey}}", name]).trim().to_owned()
    }

    /// Asserts that a network namespace file [`Self::netns_of`] named is gone.
    #[track_caller]
    pub fn assert_netns_gone(&self, key: &str) {
        assert!(key.starts_with("/run/netns/"), "not a namespace file: {key:?}");
        // The holder's view of its mounts, from outside.
        let path = PathBuf::from(format!("/proc/{}/root{key}", self.holder));
        assert!(!path.exists(), "network namespace left: {key}");
    }
}

/// conmon as podman finds it.
fn which_conmon() -> PathBuf {
    super::which("conmon")
        .and_then(|p| std::fs::canonicalize(p).ok())
        .unwrap_or_else(|| PathBuf::from("/usr/bin/conmon"))
}

/// Paths under `dir` (to `depth`) whose file name contains `needle`.
fn find_named(dir: &Path, needle: &str, depth: usize) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for e in entries.flatten() {
        let path = e.path();
        if e.file_name().to_string_lossy().contains(needle) {
            out.push(path.clone());
        }
        let is_dir = e.file_type().is_ok_and(|t| t.is_dir() && !t.is_symlink());
        if is_dir && depth > 0 {
            out.extend(find_named(&path, needle, depth - 1));
        }
    }
    out
}
