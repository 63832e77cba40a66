//! End to end under podman 4.3 (netavark networking, conmon), as a user runs it:
//! `podman --runtime /path/to/tender-oci run …` with a FROM-scratch image of our guests
//! built by `podman build`. Every case ends by checking that nothing of the container is
//! left (process, conmon, state, cgroup, mount, network namespace, tap). Podman is
//! isolated in namespaces and directories of its own (see `common/podman.rs`). Needs
//! root and podman; under CI=true a missing one fails the tests.

mod common;

use std::path::PathBuf;

use common::podman::{self, Podman, IMAGE, RUNTIME_NAME};
use common::text;

/// A `--cidfile` path unique to a case, removed on drop.
struct Cid(PathBuf);

impl Cid {
    fn new(p: &Podman, case: &str) -> Self {
        let path = p.dir.join(format!("{case}.cid"));
        let _ = std::fs::remove_file(&path);
        Cid(path)
    }
    fn arg(&self) -> String {
        format!("--cidfile={}", self.0.display())
    }
    fn id(&self) -> String {
        std::fs::read_to_string(&self.0).unwrap_or_default().trim().to_owned()
    }
}

impl Drop for Cid {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Removes the container if the test fails before it does.
struct Container<'a>(&'a Podman, String);

impl Drop for Container<'_> {
    fn drop(&mut self) {
        let _ = self.0.podman(&["rm", "-f", "-t", "0", &self.1]);
    }
}

/// A long-running guest on podman's default network (netavark's bridge): net.spt takes
/// the container's interface and answers ARP and ping at its address for 600 s, or until
/// stopped.
const IDLE: &[&str] = &[IMAGE, "/net.spt", "{tender:ipv4.addr}", "1", "600"];
/// The same without a network: an unconnected tap, a fixed address.
const IDLE_NO_NET: &[&str] = &["--network", "none", IMAGE, "/net.spt", "10.0.0.2", "1", "600"];

#[test]
fn run_rm_passes_output_and_exit_status_through() {
    let Some(p) = podman::get() else { return };
    let cid = Cid::new(p, "hello");
    let out = p.podman(&["run", "--rm", &cid.arg(), IMAGE, "/hello.spt", "a", "b"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("Hello, args: a b") && stdout.contains("SUCCESS"), "{stdout}");
    p.assert_clean(&cid.id());

    let cid = Cid::new(p, "exit7");
    let out = p.podman(&["run", "--rm", &cid.arg(), IMAGE, "/exit_code.spt", "7"]);
    assert_eq!(out.status.code(), Some(7), "{}\n{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("solo5_exit(7)"), "{}", text(&out.stdout));
    p.assert_clean(&cid.id());

    // Registered by name in containers.conf ([engine.runtimes] tender = [PATH]); the
    // image's CMD is /hello.spt.
    let cid = Cid::new(p, "by-name");
    let out = p.bare().args(["--runtime", RUNTIME_NAME, "run", "--rm", &cid.arg(), IMAGE]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}\n{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("Hello, world"), "{}\n{}", text(&out.stdout), text(&out.stderr));
    p.assert_clean(&cid.id());
}

#[test]
fn detached_logs_stop_and_rm_force() {
    let Some(p) = podman::get() else { return };
    let name = format!("tender-stop-{}", std::process::id());
    let _guard = Container(p, name.clone());
    let mut run = vec!["run", "-d", "--name", &name];
    run.extend(IDLE);
    let id = p.ok(&run).trim().to_owned();
    let log = p.wait_log(&name, "answering");
    let ip = p.ok(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", &name]).trim().to_owned();
    assert!(log.contains(&format!("answering ARP and ICMP echo for {ip} ")), "{ip}: {log}");
    assert_eq!(p.ok(&["inspect", "-f", "{{.State.Running}}", &name]).trim(), "true");
    p.ok(&["stop", "-t", "10", &name]);
    // 143 = SIGTERM reached the tender (137 would mean podman had to SIGKILL it).
    assert_eq!(p.ok(&["inspect", "-f", "{{.State.ExitCode}}", &name]).trim(), "143");
    assert!(p.ok(&["logs", &name]).contains("answering"));
    p.ok(&["rm", &name]);
    p.assert_clean(&id);

    let name = format!("tender-rmf-{}", std::process::id());
    let _guard2 = Container(p, name.clone());
    let mut run = vec!["run", "-d", "--name", &name];
    run.extend(IDLE_NO_NET);
    let id = p.ok(&run).trim().to_owned();
    assert!(p.wait_log(&name, "answering").contains("answering ARP and ICMP echo for 10.0.0.2"));
    p.ok(&["rm", "-f", &name]);
    assert!(!p.podman(&["inspect", &name]).status.success(), "container still exists");
    p.assert_clean(&id);
}

#[test]
fn published_port_reaches_the_guest_through_netavark() {
    let Some(p) = podman::get() else { return };
    let name = format!("tender-port-{}", std::process::id());
    let _guard = Container(p, name.clone());
    // The default network: netavark makes the namespace and hands it to the runtime by
    // path; the guest takes the interface and answers at the container's address.
    let id = p.ok(&["run", "-d", "--name", &name, "-p", "18090:8080", IMAGE, "/http.spt", "8080"]).trim().to_owned();
    let log = p.wait_log(&name, "listening");
    assert!(log.contains("listening on"), "{log}");
    let ip = p.ok(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", &name]).trim().to_owned();
    assert!(!ip.is_empty(), "no container address");
    for url in ["http://127.0.0.1:18090/".to_owned(), format!("http://{ip}:8080/")] {
        let out = p.in_netns("curl").args(["-sS", "-i", "--max-time", "20", &url]).output().unwrap();
        let body = text(&out.stdout);
        assert!(
            body.starts_with("HTTP/1.1 200"),
            "GET {url} failed:\n{body}\n{}\n{}",
            text(&out.stderr),
            p.ok(&["logs", &name])
        );
    }
    let netns = p.netns_of(&name);
    p.ok(&["rm", "-f", &name]);
    p.assert_clean(&id);
    p.assert_netns_gone(&netns);
}

#[test]
fn twenty_containers_come_and_go_leaving_nothing() {
    let Some(p) = podman::get() else { return };
    let names: Vec<String> = (0..20).map(|i| format!("tender-many-{}-{i}", std::process::id())).collect();
    let _guards: Vec<Container<'_>> = names.iter().map(|n| Container(p, n.clone())).collect();
    let mut ids = Vec::new();
    for name in &names {
        let mut run = vec!["run", "-d", "--name", name.as_str()];
        run.extend(IDLE);
        ids.push(p.ok(&run).trim().to_owned());
    }
    for name in &names {
        assert!(p.wait_log(name, "answering").contains("answering"), "{name}: {}", p.ok(&["logs", name]));
        assert_eq!(p.ok(&["inspect", "-f", "{{.State.Running}}", name]).trim(), "true", "{name}");
    }
    let netns: Vec<String> = names.iter().map(|n| p.netns_of(n)).collect();
    // Each guest answers at its own address on the bridge (and, having sent its one
    // echo reply, ends: podman then cleans up after a stopped container).
    for name in names.iter().step_by(5) {
        let ip = p.ok(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", name]).trim().to_owned();
        let ping = p.in_netns("ping").args(["-c", "1", "-W", "5", &ip]).output().unwrap();
        assert!(ping.status.success(), "ping {name} at {ip}: {}", text(&ping.stdout));
    }
    let mut rm = vec!["rm", "-f", "-t", "0"];
    rm.extend(names.iter().map(String::as_str));
    p.ok(&rm);
    for id in &ids {
        p.assert_clean(id);
    }
    for key in &netns {
        p.assert_netns_gone(key);
    }
}
