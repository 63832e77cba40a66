//! A private dockerd for the end-to-end tests, with the freshly built `tender-oci`
//! registered as runtime `tender`.
//!
//! Why private, not the machine's dockerd: the test must exercise *this* build of the
//! runtime (a system daemon.json may name another clone's binary), and must not depend on
//! or disturb global state. So the daemon gets its own data root, exec root, socket and
//! pidfile under a temp dir, and runs in network and mount namespaces of its own
//! (`unshare`): its bridge, iptables rules, docker-proxy and containers' traffic stay
//! there, and its mounts vanish with it. The "host" side of the tests (ping, `-p`
//! connections) runs in that network namespace via `nsenter`. One daemon serves every
//! test in the binary; it gets SIGTERM (PR_SET_PDEATHSIG) when the test process exits.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::{have, is_root, require, tender_oci, text};

/// The image the tests run: FROM scratch, the guests at `/NAME.spt`.
pub const IMAGE: &str = "tender-oci-test:latest";
/// Guests copied into the image.
pub const GUESTS: &[&str] = &["hello", "exit_code", "net", "blk", "http", "kv"];
const DIR_PREFIX: &str = "tender-oci-dockerd-";

/// The running daemon.
#[derive(Debug)]
pub struct Dockerd {
    /// Its state directory.
    pub dir: PathBuf,
    /// `unix://…` address.
    pub host: String,
    /// dockerd's pid (its namespaces are the tests' "host").
    pub pid: i32,
    /// A docker client matching the daemon.
    pub client: PathBuf,
}

/// The daemon, started on first use; `None` when a capability is missing (skipped locally,
/// a failure under CI=true).
pub fn get() -> Option<&'static Dockerd> {
    let client = client();
    let ok = require("root", is_root())
        && require("dockerd (apt-get install docker.io; .ci/setup-docker.sh)", have("dockerd"))
        && require("a docker client (docker.io's /usr/bin/docker)", client.is_some())
        && require("containerd", have("containerd"))
        && require("unshare and nsenter (util-linux)", have("unshare") && have("nsenter"))
        && require("ip (iproute2)", have("ip"))
        && require("ping (iputils-ping)", have("ping"))
        && require("script (bsdutils)", have("script"));
    if !ok {
        return None;
    }
    static D: OnceLock<Dockerd> = OnceLock::new();
    Some(D.get_or_init(|| start(client.expect("checked"))))
}

/// Debian's docker.io client (v20.10, matching its dockerd); a newer client on PATH may
/// speak an API version the daemon does not.
fn client() -> Option<PathBuf> {
    [Path::new("/usr/bin/docker")]
        .into_iter()
        .find(|p| p.exists())
        .map(Path::to_owned)
        .or_else(|| have("docker").then(|| PathBuf::from("docker")))
}

fn start(client: PathBuf) -> Dockerd {
    let runtime = tender_oci();
    super::sweep_dead_harness_dirs(DIR_PREFIX, Some("dockerd.pid"), |_| {});
    let dir = std::env::temp_dir().join(format!("{DIR_PREFIX}{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("cg")).unwrap();
    let d = dir.display();
    // Its own sysfs shows its own network devices; the cgroup mounts are carried over.
    let script = format!(
        "set -e
mount --rbind /sys/fs/cgroup {d}/cg
mount -t sysfs sysfs /sys
mount --move {d}/cg /sys/fs/cgroup
ip link set lo up
exec dockerd --data-root {d}/data --exec-root {d}/exec --pidfile {d}/dockerd.pid -H unix://{d}/docker.sock \
  --add-runtime tender={runtime} --cgroup-parent tender-oci-test >{d}/dockerd.log 2>&1",
        runtime = runtime.display()
    );
    let pid = super::spawn_in_own_namespaces(&script, libc::SIGTERM).expect("unshare … dockerd starts");
    let host = format!("unix://{}", dir.join("docker.sock").display());
    let daemon = Dockerd { dir, host, pid: pid as i32, client };

    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if daemon.docker(&["info"]).status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline && Path::new(&format!("/proc/{pid}")).exists(),
            "dockerd did not come up; its log:\n{}",
            std::fs::read_to_string(daemon.dir.join("dockerd.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    daemon.build_image();
    daemon
}

impl Dockerd {
    /// `docker ARGS` against this daemon.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(&self.client);
        c.env("DOCKER_HOST", &self.host).stdin(Stdio::null());
        c
    }

    /// Runs `docker ARGS`.
    pub fn docker(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("docker client runs")
    }

    /// Runs `docker ARGS` and asserts success; returns stdout.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?} failed ({}):\n{}\n{}",
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// Builds [`IMAGE`] with the README's Dockerfile recipe.
    fn build_image(&self) {
        let ctx = self.dir.join("image");
        std::fs::create_dir_all(&ctx).unwrap();
        let mut dockerfile = String::from("FROM scratch\n");
        for name in GUESTS {
            std::fs::copy(super::guest(name), ctx.join(format!("{name}.spt"))).unwrap();
            dockerfile.push_str(&format!("COPY {name}.spt /{name}.spt\n"));
        }
        dockerfile.push_str("CMD [\"/hello.spt\"]\n");
        std::fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
        self.ok(&["build", "-q", "-t", IMAGE, ctx.to_str().unwrap()]);
    }

    /// Runs `nsenter` into the daemon's network namespace (the tests' "host" side).
    pub fn in_netns(&self, program: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.args(["-t", &self.pid_of_dockerd().to_string(), "-n", "--", program]);
        c
    }

    /// The dockerd process (the `unshare` we spawned execs `sh`, which execs dockerd).
    pub fn pid_of_dockerd(&self) -> i32 {
        self.pid
    }

    /// The container's id from a `--cidfile`.
    pub fn cid(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap_or_default().trim().to_owned()
    }

    /// Waits until the container's log contains `needle`, or it is no longer running.
    /// Returns the log.
    pub fn wait_log(&self, name: &str, needle: &str) -> String {
        super::wait_for_log(|args| self.docker(args), name, needle)
    }

    /// Asserts that nothing of container `id` is left: no tender-oci or tender process, no
    /// state directory, cgroup, mount, or tap/bridge in the host's or the daemon's namespace.
    #[track_caller]
    pub fn assert_clean(&self, id: &str) {
        assert!(!id.is_empty(), "no container id");
        let procs = super::processes_of(tender_oci(), id);
        assert!(procs.is_empty(), "processes of container {id} left: {procs:?}");
        let state = self.dir.join("exec/runtime-runc/moby").join(id);
        assert!(!state.exists(), "state directory left: {}", state.display());
        let cgroups = super::cgroup_dirs_named(id);
        assert!(cgroups.is_empty(), "cgroups left: {cgroups:?}");
        super::assert_no_mounts_or_links(id, self.pid);
    }
}
