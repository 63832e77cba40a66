//! The runtime driven directly, as containerd's shim drives it: runc's verbs, exit
//! statuses, JSON error lines in `--log`, and a bundle of our own through the lifecycle
//! (create → created → start → stopped → delete), leaving nothing behind.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{cgroup_dirs_named, guest, is_root, processes_of, require, run_oci, tender_oci, text, Scratch};

/// `--root` and `--log` under a scratch dir.
struct Runtime {
    scratch: Scratch,
}

impl Runtime {
    fn new(test: &str) -> Self {
        Runtime { scratch: Scratch::new(&format!("oci-{test}")) }
    }
    fn root(&self) -> PathBuf {
        self.scratch.0.join("state")
    }
    fn log(&self) -> PathBuf {
        self.scratch.0.join("log.json")
    }
    fn run(&self, args: &[&str]) -> std::process::Output {
        let root = self.root();
        let log = self.log();
        let mut all = vec!["--root", root.to_str().unwrap(), "--log", log.to_str().unwrap(), "--log-format", "json"];
        all.extend_from_slice(args);
        run_oci(&all)
    }
    /// `create`, with the container's stdio (which the init inherits) in files, so that
    /// nothing waits on a pipe the waiting init holds open. Returns create's success.
    fn create(&self, bundle: &Path, id: &str, pid_file: Option<&Path>) -> bool {
        let (root, log) = (self.root(), self.log());
        let mut cmd = std::process::Command::new(tender_oci());
        cmd.args(["--root", root.to_str().unwrap(), "--log", log.to_str().unwrap(), "--log-format", "json"]);
        cmd.args(["create", "--bundle", bundle.to_str().unwrap()]);
        if let Some(p) = pid_file {
            cmd.args(["--pid-file", p.to_str().unwrap()]);
        }
        cmd.arg(id);
        let file =
            |name: &str| std::fs::OpenOptions::new().create(true).append(true).open(self.scratch.0.join(name)).unwrap();
        cmd.stdin(std::process::Stdio::null()).stdout(file("stdout")).stderr(file("stderr"));
        cmd.status().unwrap().success()
    }

    /// The `msg` of the last JSON line in the log.
    fn last_error(&self) -> String {
        let log = std::fs::read_to_string(self.log()).unwrap_or_default();
        let line = log.lines().last().unwrap_or_else(|| panic!("empty log"));
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(v["level"], "error", "{line}");
        assert!(v["time"].is_string(), "{line}");
        v["msg"].as_str().unwrap().to_owned()
    }
    /// A bundle: rootfs with `guest` at /NAME.spt, config.json with `args` and namespaces.
    fn bundle(&self, name: &str, guest_path: &Path, args: &[&str], extra: serde_json::Value) -> PathBuf {
        let bundle = self.scratch.0.join(format!("bundle-{name}"));
        std::fs::create_dir_all(bundle.join("rootfs")).unwrap();
        std::fs::copy(guest_path, bundle.join("rootfs").join(format!("{name}.spt"))).unwrap();
        let mut argv = vec![format!("/{name}.spt")];
        argv.extend(args.iter().map(|s| s.to_string()));
        let mut config = serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "process": {"user": {"uid": 0, "gid": 0}, "cwd": "/", "args": argv, "terminal": false},
            "linux": {"namespaces": [{"type": "mount"}, {"type": "pid"}, {"type": "ipc"}, {"type": "uts"}]}
        });
        if let (Some(c), Some(e)) = (config.as_object_mut(), extra.as_object()) {
            c.extend(e.clone());
        }
        std::fs::write(bundle.join("config.json"), config.to_string()).unwrap();
        bundle
    }
}

#[test]
fn unknown_containers_behave_like_runc() {
    let rt = Runtime::new("unknown");
    let out = rt.run(&["delete", "--force", "nosuch"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    for verb in [&["delete", "nosuch"][..], &["state", "nosuch"], &["start", "nosuch"], &["kill", "nosuch", "KILL"]] {
        let out = rt.run(verb);
        assert_eq!(out.status.code(), Some(1), "{verb:?}");
        assert!(rt.last_error().contains("container `nosuch` does not exist"), "{verb:?}: {}", rt.last_error());
    }
    let out = rt.run(&["state", "../escape"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(rt.last_error().contains("invalid container id `../escape`"), "{}", rt.last_error());
    let out = rt.run(&["exec", "x", "/bin/sh"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(rt.last_error().contains("exec is not supported"), "{}", rt.last_error());
}

#[test]
fn errors_reach_stderr_too_and_help_names_no_other_runtime() {
    // containerd's shim reports `update` and `delete` failures with the runtime's output
    // only (not the --log file): the reason must be on stderr, as runc writes it.
    let rt = Runtime::new("stderr");
    let out = rt.run(&["update", "--resources", "-", "x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(rt.last_error().contains("update is not supported"), "{}", rt.last_error());
    assert!(text(&out.stderr).contains("update is not supported"), "{}", text(&out.stderr));

    let out = run_oci(&["--help"]);
    let help = text(&out.stdout).to_lowercase();
    assert!(out.status.success() && help.contains("solo5"), "{help}");
    for other in ["docker", "containerd", "runc", "youki"] {
        assert!(!help.contains(other), "--help mentions {other}:\n{help}");
    }
}

#[test]
fn features_and_list_print_json() {
    let rt = Runtime::new("features");
    let out = rt.run(&["features"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ociVersionMax"], "1.0.2");
    assert!(v["hooks"].as_array().unwrap().iter().any(|h| h == "prestart"));
    let out = rt.run(&["list", "--format", "json"]);
    assert!(out.status.success());
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap(), serde_json::json!([]));
}

#[test]
fn bad_bundles_fail_before_anything_is_made() {
    let rt = Runtime::new("badbundle");
    let not_elf = rt.scratch.file("not-elf", 100, b'x');
    let bundle = rt.bundle("sh", &not_elf, &[], serde_json::json!({}));
    let out = rt.run(&["create", "--bundle", bundle.to_str().unwrap(), "bad1"]);
    assert_eq!(out.status.code(), Some(1));
    let msg = rt.last_error();
    assert!(msg.contains("process.args[0] /sh.spt is not a Solo5 unikernel"), "{msg}");
    assert!(!rt.root().join("bad1").exists(), "state left behind");

    let out = rt.run(&["create", "--bundle", rt.scratch.0.to_str().unwrap(), "bad2"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(rt.last_error().contains("config.json"), "{}", rt.last_error());

    let hello = guest("hello");
    let bundle = rt.bundle(
        "hello",
        &hello,
        &[],
        serde_json::json!({"process": {"user": {"uid": 0, "gid": 0}, "cwd": "/", "args": [], "terminal": true}}),
    );
    let out = rt.run(&["create", "--bundle", bundle.to_str().unwrap(), "bad3"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(rt.last_error().contains("process.args is empty"), "{}", rt.last_error());

    // A FIFO at process.args[0] would block `create` forever; it is refused unread.
    let bundle = rt.bundle("fifo", &not_elf, &[], serde_json::json!({}));
    let fifo = bundle.join("rootfs/fifo.spt");
    std::fs::remove_file(&fifo).unwrap();
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let out = rt.run(&["create", "--bundle", bundle.to_str().unwrap(), "bad4"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(rt.last_error().contains("/fifo.spt: is a FIFO (named pipe), not a regular file"), "{}", rt.last_error());
    assert!(!rt.root().join("bad4").exists(), "state left behind");
}

#[test]
fn an_urunc_hypervisor_must_match_the_guest() {
    let rt = Runtime::new("urunc-mismatch");
    let urunc = |hv: &str| {
        serde_json::json!({"annotations": {
            "com.urunc.unikernel.unikernelType": "solo5",
            "com.urunc.unikernel.hypervisor": hv,
            "com.urunc.unikernel.binary": "/hello.spt"}})
    };
    let bundle = rt.bundle("hello", &guest("hello"), &[], urunc("hvt"));
    let out = rt.run(&["create", "--bundle", bundle.to_str().unwrap(), "mismatch"]);
    assert_eq!(out.status.code(), Some(1));
    let msg = rt.last_error();
    assert!(msg.contains("hypervisor is `hvt`, but /hello.spt is built for solo5-spt"), "{msg}");
    assert!(!rt.root().join("mismatch").exists(), "state left behind");
    // A /urunc.json that is not JSON is refused by name, before anything is made.
    let bundle = rt.bundle("hello2", &guest("hello"), &[], serde_json::json!({}));
    std::fs::write(bundle.join("rootfs/urunc.json"), "not json").unwrap();
    let out = rt.run(&["create", "--bundle", bundle.to_str().unwrap(), "badjson"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(rt.last_error().contains("/urunc.json in the image is not a JSON object"), "{}", rt.last_error());
    assert!(!rt.root().join("badjson").exists(), "state left behind");
}

fn status(rt: &Runtime, id: &str) -> (String, i64) {
    let out = rt.run(&["state", id]);
    assert!(out.status.success(), "state: {}", rt.last_error());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["id"], id);
    assert_eq!(v["ociVersion"], "1.0.2");
    (v["status"].as_str().unwrap().to_owned(), v["pid"].as_i64().unwrap())
}

#[test]
fn lifecycle_create_start_delete() {
    if !require("root (namespaces, cgroups)", is_root()) {
        return;
    }
    let rt = Runtime::new("lifecycle");
    let bundle = rt.bundle(
        "hello",
        &guest("hello"),
        &["from", "oci"],
        serde_json::json!({"hooks": {"poststop": [{"path": "/bin/sh", "args": ["sh", "-c", "cat > \"$OUT\""],
            "env": [format!("OUT={}", rt.scratch.0.join("poststop.json").display())]}]}}),
    );
    let id = format!("tender-oci-test-{}", std::process::id());
    let pid_file = rt.scratch.0.join("init.pid");
    assert!(rt.create(&bundle, &id, Some(&pid_file)), "create: {}", rt.last_error());
    let (st, pid) = status(&rt, &id);
    assert_eq!(st, "created");
    assert_eq!(std::fs::read_to_string(&pid_file).unwrap(), pid.to_string());
    assert!(!cgroup_dirs_named(&id).is_empty(), "no cgroup made");
    // Created means the guest has not run.
    assert!(!std::fs::read_to_string(rt.scratch.0.join("stdout")).unwrap().contains("Hello"));
    assert_eq!(rt.run(&["start", &id]).status.code(), Some(0), "start: {}", rt.last_error());
    assert_eq!(rt.run(&["start", &id]).status.code(), Some(1), "second start succeeded");

    let deadline = Instant::now() + Duration::from_secs(30);
    while status(&rt, &id).0 != "stopped" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(status(&rt, &id), ("stopped".to_owned(), 0));
    let stdout = std::fs::read_to_string(rt.scratch.0.join("stdout")).unwrap();
    assert!(stdout.contains("Hello, args: from oci") && stdout.contains("SUCCESS"), "{stdout}");
    assert_eq!(rt.run(&["kill", &id, "TERM"]).status.code(), Some(1), "kill of a stopped container");

    assert_eq!(rt.run(&["delete", &id]).status.code(), Some(0), "delete: {}", rt.last_error());
    assert!(!rt.root().join(&id).exists(), "state left behind");
    assert!(cgroup_dirs_named(&id).is_empty(), "cgroups left behind: {:?}", cgroup_dirs_named(&id));
    assert!(processes_of(tender_oci(), &id).is_empty());
    let poststop: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(rt.scratch.0.join("poststop.json")).unwrap()).unwrap();
    assert_eq!(poststop["id"], id.as_str());
    assert_eq!(poststop["status"], "stopped");
}

#[test]
fn run_exits_with_the_guest_status_and_delete_force_kills() {
    if !require("root (namespaces, cgroups)", is_root()) {
        return;
    }
    let rt = Runtime::new("run");
    let bundle = rt.bundle("exit_code", &guest("exit_code"), &["42"], serde_json::json!({}));
    let id = format!("tender-oci-run-{}", std::process::id());
    let out = rt.run(&["run", "--bundle", bundle.to_str().unwrap(), &id]);
    assert_eq!(out.status.code(), Some(42), "{}\n{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("solo5_exit(42)"));
    assert!(!rt.root().join(&id).exists());
    assert!(cgroup_dirs_named(&id).is_empty());

    // A created container that never starts: delete kills its waiting init.
    let id2 = format!("{id}-2");
    assert!(rt.create(&bundle, &id2, None), "create: {}", rt.last_error());
    let (_, pid) = status(&rt, &id2);
    assert_eq!(rt.run(&["delete", "--force", &id2]).status.code(), Some(0), "{}", rt.last_error());
    assert!(!Path::new(&format!("/proc/{pid}")).exists() || processes_of(tender_oci(), &id2).is_empty());
    assert!(cgroup_dirs_named(&id2).is_empty());
    assert!(!rt.root().join(&id2).exists());
}

/// A network namespace made for a test, as CNI makes a pod's: `NAME-pod` holds `eth0`
/// (10.77.N.2/24, default route via .1), whose veth peer sits in `NAME-host` with the
/// gateway address. Both are deleted on drop.
struct PodNetns {
    pod: String,
    host: String,
}

impl PodNetns {
    fn new(name: &str, subnet: u8) -> Self {
        let ns = PodNetns { pod: format!("{name}-pod"), host: format!("{name}-host") };
        let (pod, host) = (ns.pod.as_str(), ns.host.as_str());
        let gw = format!("10.77.{subnet}.1/24");
        let addr = format!("10.77.{subnet}.2/24");
        let via = format!("10.77.{subnet}.1");
        for args in [
            vec!["netns", "add", pod],
            vec!["netns", "add", host],
            vec!["-n", host, "link", "add", "veth0", "type", "veth", "peer", "name", "eth0", "netns", pod],
            vec!["-n", host, "addr", "add", &gw, "dev", "veth0"],
            vec!["-n", host, "link", "set", "veth0", "up"],
            vec!["-n", pod, "addr", "add", &addr, "dev", "eth0"],
            vec!["-n", pod, "link", "set", "eth0", "up"],
            vec!["-n", pod, "link", "set", "lo", "up"],
            vec!["-n", pod, "route", "add", "default", "via", &via],
        ] {
            let out = std::process::Command::new("ip").args(&args).output().unwrap();
            assert!(out.status.success(), "ip {args:?}: {}", text(&out.stderr));
        }
        ns
    }
    fn path(&self) -> String {
        format!("/run/netns/{}", self.pod)
    }
    /// `ip -n POD ARGS` output.
    fn ip(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("ip").args(["-n", &self.pod]).args(args).output().unwrap();
        text(&out.stdout)
    }
    /// What the guest may not change: IPv4 addresses, interfaces (name, MAC, MTU), routes.
    /// (Link state and IPv6 link-local addresses settle on their own after the veth
    /// comes up.)
    fn snapshot(&self) -> (String, Vec<String>, String) {
        let links = self
            .ip(&["-o", "link"])
            .lines()
            .map(|l| {
                let words: Vec<&str> = l.split_whitespace().collect();
                let at = |key: &str| words.iter().position(|w| *w == key).and_then(|i| words.get(i + 1)).copied();
                format!("{} mtu {:?} {:?}", words[1], at("mtu"), at("link/ether"))
            })
            .collect();
        (self.ip(&["-4", "-o", "addr"]), links, self.ip(&["route"]))
    }
    /// `tc qdisc show dev eth0 ingress` in the pod namespace.
    fn ingress(&self) -> String {
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &self.pod, "tc", "qdisc", "show", "dev", "eth0", "ingress"])
            .output()
            .unwrap();
        text(&out.stdout)
    }
    /// An HTTP GET of the guest from the host side (bounded: 10 s).
    fn get(&self, ip: &str) -> String {
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &self.host, "curl", "-s", "-m", "10", &format!("http://{ip}:8080/")])
            .output()
            .unwrap();
        text(&out.stdout)
    }
}

impl Drop for PodNetns {
    fn drop(&mut self) {
        for ns in [&self.pod, &self.host] {
            let _ = std::process::Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// Waits until the container's guest answers HTTP at `ip`.
fn wait_http(ns: &PodNetns, ip: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let body = ns.get(ip);
        if body.contains("Hello from a unikernel") || Instant::now() > deadline {
            return body;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// CNI, podman and CRI hand the container a network namespace by path, which belongs to
/// the pod: the guest takes eth0's address and MAC there, a second guest is refused
/// naming the holder, a guest killed with SIGKILL is replaced in the same namespace (as
/// Kubernetes restarts a container inside its pod) and answers at the same IP, and when
/// the guests are gone the namespace is as it was.
#[test]
fn a_network_namespace_given_by_path_is_taken_and_left_as_found() {
    if !require("root (namespaces, cgroups)", is_root())
        || !require("ip (iproute2)", common::have("ip"))
        || !require("curl", common::have("curl"))
        || !require("tc (iproute2)", common::have("tc"))
    {
        return;
    }
    let rt = Runtime::new("netns-path");
    let ns = PodNetns::new(&format!("toci{}", std::process::id()), 1);
    let before = ns.snapshot();
    let mac = ns
        .ip(&["-o", "link", "show", "eth0"])
        .split("link/ether ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    let namespaces = serde_json::json!({"linux": {"namespaces": [
        {"type": "mount"}, {"type": "pid"}, {"type": "network", "path": ns.path()}]}});
    let bundle = rt.bundle("http", &guest("http"), &["8080"], namespaces);
    let id = format!("tender-oci-netns-{}", std::process::id());

    assert!(rt.create(&bundle, &id, None), "create: {}", rt.last_error());
    assert_eq!(rt.run(&["start", &id]).status.code(), Some(0), "start: {}", rt.last_error());
    let body = wait_http(&ns, "10.77.1.2");
    let stdout = std::fs::read_to_string(rt.scratch.0.join("stdout")).unwrap();
    assert!(body.contains("Hello from a unikernel"), "no answer at the pod IP: {body:?}\n{stdout}");
    assert!(stdout.contains(&format!("MAC {mac}")), "the guest should have eth0's MAC {mac}:\n{stdout}");
    assert!(stdout.contains("10.77.1.2/24 via 10.77.1.1"), "{stdout}");

    // One networked guest per namespace: the second says who holds it, and leaves nothing.
    let id2 = format!("{id}-2");
    assert!(!rt.create(&bundle, &id2, None), "a second guest took the same namespace");
    let e = rt.last_error();
    assert!(e.contains(&format!("taken by container `{id}`")), "{e}");
    assert!(!rt.root().join(&id2).exists() && cgroup_dirs_named(&id2).is_empty());

    // SIGKILL: the init has no chance to clean up; a new container takes over.
    assert_eq!(rt.run(&["kill", &id, "KILL"]).status.code(), Some(0), "{}", rt.last_error());
    let deadline = Instant::now() + Duration::from_secs(30);
    while status(&rt, &id).0 != "stopped" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(rt.create(&bundle, &id2, None), "restart in the same namespace: {}", rt.last_error());
    assert_eq!(rt.run(&["start", &id2]).status.code(), Some(0), "start: {}", rt.last_error());
    assert!(wait_http(&ns, "10.77.1.2").contains("Hello from a unikernel"), "the restarted guest does not answer");
    // Deleting the old container must not undo the new one's network.
    assert_eq!(rt.run(&["delete", &id]).status.code(), Some(0), "delete: {}", rt.last_error());
    assert!(
        wait_http(&ns, "10.77.1.2").contains("Hello from a unikernel"),
        "delete of the old one cut the new one off"
    );

    // A guest that ends normally (SIGTERM → the init) removes its redirect itself.
    assert_eq!(rt.run(&["kill", &id2, "TERM"]).status.code(), Some(0), "{}", rt.last_error());
    let deadline = Instant::now() + Duration::from_secs(30);
    while status(&rt, &id2).0 != "stopped" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(ns.ingress(), "", "the redirect outlived the guest");
    assert_eq!(rt.run(&["delete", &id2]).status.code(), Some(0), "delete: {}", rt.last_error());
    assert_eq!(ns.snapshot(), before, "the guest left the namespace changed");
    for id in [&id, &id2] {
        assert!(processes_of(tender_oci(), id).is_empty());
        assert!(cgroup_dirs_named(id).is_empty());
        assert!(!rt.root().join(id).exists());
    }
}
