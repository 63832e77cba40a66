//! containerd's own client: `ctr run --runc-binary tender-oci`, against the private
//! containerd of `common/containerd.rs` in a namespace of its own. Output and exit
//! status pass through; `--with-ns network:PATH` gives the guest a network namespace the
//! test made (a veth pair to the daemon's namespace, an address and a default route),
//! where the http guest answers. Every case checks that nothing is left. Needs root,
//! containerd (ctr), runc; under CI=true a missing one fails.

mod common;

use std::process::Output;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::containerd::{self, Containerd, IMAGE};
use common::{tender_oci, text};

/// containerd namespace of these tests.
const NS: &str = "tender-ctr";

static SERIAL: Mutex<()> = Mutex::new(());

fn lock() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The daemon, with the images imported into [`NS`] once.
fn daemon() -> Option<&'static Containerd> {
    let d = containerd::get()?;
    static IMPORTED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    IMPORTED.get_or_init(|| d.import_images_into(NS));
    Some(d)
}

/// `ctr run --rm --runc-binary TENDER_OCI [extra] IMAGE ID ARGS…` (tender-oci's root under
/// the daemon's dir), bounded in time.
fn ctr_run(d: &Containerd, id: &str, extra: &[&str], args: &[&str]) -> Output {
    let mut cmd = d.ctr(NS);
    cmd.args(["run", "--rm", "--runc-binary"]).arg(tender_oci()).arg("--runc-root").arg(d.tender_root(NS));
    cmd.args(extra).arg(IMAGE).arg(id).args(args);
    let run = common::run_bounded(cmd, common::RUN_LIMIT);
    run.output
}

/// Removes a container left by a failed case.
struct Cleanup<'a>(&'a Containerd, String);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = self.0.ctr(NS).args(["task", "kill", "-s", "KILL", &self.1]).output();
        std::thread::sleep(Duration::from_millis(200));
        let _ = self.0.ctr(NS).args(["task", "delete", "--force", &self.1]).output();
        let _ = self.0.ctr(NS).args(["containers", "delete", &self.1]).output();
        containerd::remove_empty_cgroups(NS);
    }
}

/// `ctr task ls`'s STATUS of task `id`, if it exists.
fn task_status(d: &Containerd, id: &str) -> Option<String> {
    let out = d.ctr(NS).args(["task", "ls"]).output().ok()?;
    text(&out.stdout).lines().find_map(|l| {
        let cols: Vec<&str> = l.split_whitespace().collect();
        (cols.first() == Some(&id)).then(|| cols.get(2).unwrap_or(&"").to_string())
    })
}

fn assert_clean(d: &Containerd, id: &str) {
    // ctr's default cgroup is /NS/ID; the namespace's parent stays (as with runc).
    containerd::remove_empty_cgroups(NS);
    d.assert_clean(NS, &[id.to_owned()]);
}

#[test]
fn ctr_run_passes_output_and_exit_status_through() {
    let Some(d) = daemon() else { return };
    let _serial = lock();
    let id = format!("ctr-hello-{}", std::process::id());
    let _cleanup = Cleanup(d, id.clone());
    let out = ctr_run(d, &id, &[], &["/hello.spt", "a", "b"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}\n{}", text(&out.stderr), d.log_tail(30));
    assert!(stdout.contains("Hello, args: a b") && stdout.contains("SUCCESS"), "{stdout}");
    assert_clean(d, &id);

    let id = format!("ctr-exit-{}", std::process::id());
    let _cleanup = Cleanup(d, id.clone());
    let out = ctr_run(d, &id, &[], &["/exit_code.spt", "7"]);
    assert_eq!(out.status.code(), Some(7), "{}\n{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("solo5_exit(7)"), "{}", text(&out.stdout));
    assert_clean(d, &id);
}

/// A network namespace made in the daemon's namespaces (`ip netns add`, so its path is
/// visible to containerd), joined to the daemon's by a veth pair: `10.89.0.2/24` inside,
/// default route via `10.89.0.1`. Deleted on drop.
struct Netns<'a> {
    d: &'a Containerd,
    name: String,
    host_if: String,
}

const NETNS_ADDR: &str = "10.89.0.2";
const NETNS_GW: &str = "10.89.0.1";

impl<'a> Netns<'a> {
    fn new(d: &'a Containerd) -> Self {
        let pid = std::process::id();
        let name = format!("tender-ctr-{pid}");
        let host_if = format!("vh{pid}");
        let ns = Netns { d, name: name.clone(), host_if: host_if.clone() };
        let peer = format!("vc{pid}");
        let script = format!(
            "set -e
ip netns add {name}
ip link add {host_if} type veth peer name {peer} netns {name}
ip addr add {NETNS_GW}/24 dev {host_if}
ip link set {host_if} up
ip -n {name} link set lo up
ip -n {name} addr add {NETNS_ADDR}/24 dev {peer}
ip -n {name} link set {peer} up
ip -n {name} route add default via {NETNS_GW}"
        );
        let out = d.in_daemon_ns("sh").args(["-c", &script]).output().unwrap();
        assert!(out.status.success(), "netns setup: {}", text(&out.stderr));
        ns
    }

    fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }
}

impl Drop for Netns<'_> {
    fn drop(&mut self) {
        let _ = self.d.in_daemon_ns("ip").args(["link", "del", &self.host_if]).output();
        let _ = self.d.in_daemon_ns("ip").args(["netns", "del", &self.name]).output();
    }
}

#[test]
fn ctr_with_ns_network_path_serves_http_at_that_address() {
    let Some(d) = daemon() else { return };
    let _serial = lock();
    let id = format!("ctr-http-{}", std::process::id());
    let netns = Netns::new(d);
    let cleanup = Cleanup(d, id.clone());
    let with_ns = format!("network:{}", netns.path());
    // Detached, so the test can talk to it; `ctr run --rm` cannot detach.
    let mut cmd = d.ctr(NS);
    cmd.args(["run", "-d", "--runc-binary"]).arg(tender_oci()).arg("--runc-root").arg(d.tender_root(NS));
    cmd.args(["--with-ns", &with_ns, IMAGE, &id, "/http.spt", "8080"]);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "ctr run -d: {}\n{}", text(&out.stderr), d.log_tail(30));

    // Bounded: 60 s of tries for the guest to come up.
    let url = format!("http://{NETNS_ADDR}:8080/");
    let deadline = Instant::now() + Duration::from_secs(60);
    let out = loop {
        let out = d.curl(&url);
        if out.status.success() || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let log = d.ctr(NS).args(["task", "ls"]).output().map(|o| text(&o.stdout)).unwrap_or_default();
    assert!(
        out.status.success() && !out.stdout.is_empty(),
        "GET {url} failed: {}{}
tasks:
{log}
{}",
        text(&out.stdout),
        text(&out.stderr),
        d.log_tail(30)
    );

    d.ctr_ok(NS, &["task", "kill", "-s", "TERM", &id]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while task_status(d, &id).is_some_and(|s| s != "STOPPED") {
        assert!(Instant::now() < deadline, "task {id} still {:?} 60 s after SIGTERM", task_status(d, &id));
        std::thread::sleep(Duration::from_millis(200));
    }
    d.ctr_ok(NS, &["task", "delete", &id]);
    d.ctr_ok(NS, &["containers", "delete", &id]);
    drop(cleanup);
    let (path, name) = (netns.path(), netns.name.clone());
    drop(netns);
    assert!(!std::path::Path::new(&path).exists(), "{path} left");
    assert!(!d.mountinfo().contains(&format!("/netns/{name}")), "netns {name} still mounted in the daemon's namespace");
    assert_clean(d, &id);
}
