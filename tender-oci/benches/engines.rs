//! Engines: what a container engine's user waits for, tender-oci against runc.
//!
//! * Pod start: `RunPodSandbox` to the first `HTTP 200` at the pod IP, on a private
//!   containerd's CRI (`tests/common/containerd.rs`): a pod on runtime handler `tender`
//!   running `/http.spt 8080` against a pod on handler `runc` running `native-http`
//!   (the same HTTP code on the kernel's TCP stack, static) on the same port. Timed:
//!   RunPodSandbox, PodSandboxStatus (the IP), CreateContainer, StartContainer, then a
//!   raw TCP connect + `GET /` every millisecond from the daemon's network namespace
//!   until a `200` (bounded to 30 s). StopPodSandbox/RemovePodSandbox follow, untimed.
//! * `docker run --rm` (private dockerd, `tests/common/dockerd.rs`) of the `hello`
//!   guest (`--runtime=tender`) against a static C hello (`benches/native/hello.c`,
//!   `gcc -static`) under runc: the docker client's wall time.
//!
//! Cases interleaved round by round (their order alternating), one untimed warm-up
//! round first; best and median round per case, and tender/runc ratios of both.
//! Printed, never asserted (a busy host only adds time). Needs root, containerd, runc,
//! the CNI plugins and docker.io (the tests' harness, reused: it skips loudly without
//! them, and fails under CI=true).
//!
//! `cargo bench -p tender-oci --bench engines` (as root; a few minutes on 2 cores).

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::containerd::{self, Containerd, K8S_NS};
use common::cri_client::{call, Cri};
use common::dockerd::Dockerd;
use common::{images, repo_root, text};
use k8s_cri::v1 as cri;

/// Timed rounds per case (after one warm-up round).
const POD_ROUNDS: usize = 30;
const DOCKER_ROUNDS: usize = 30;
/// How long a pod may take to answer HTTP.
const HTTP_LIMIT: Duration = Duration::from_secs(30);
/// Pause between two probes that found no server.
const POLL: Duration = Duration::from_millis(1);
/// One connect attempt: a SYN the guest's stack never saw (sent while it was still
/// taking the interface) would otherwise wait a second for TCP's retransmission; a
/// fresh attempt resends it at once.
const CONNECT: Duration = Duration::from_millis(10);
/// The HTTP server's port, in both pods.
const PORT: u16 = 8080;

/// The unikernel image: release guests `/http.spt` and `/hello.spt`.
const GUEST_IMAGE: &str = "docker.io/library/tender-bench-guests:release";
/// runc's image: static `/native-http` and `/hello` (C).
const NATIVE_IMAGE: &str = "docker.io/library/tender-bench-native:latest";
/// The same two, built by the private dockerd.
const DOCKER_GUEST_IMAGE: &str = "tender-bench-guests:release";
const DOCKER_NATIVE_IMAGE: &str = "tender-bench-native:latest";

/// One case of the pod bench: a runtime handler and its HTTP server.
struct PodCase {
    handler: &'static str,
    image: &'static str,
    command: [&'static str; 2],
}

impl Cri {
    /// One pod of `case`: from RunPodSandbox to the first `200` at its IP; then stops
    /// and removes it. Returns the time, the connect attempts that timed out, and the
    /// ids it held.
    fn pod_start(&self, case: &PodCase, round: usize) -> (Duration, u32, Vec<String>) {
        let name = format!("bench-{}-{round}", case.handler);
        let uid = format!("{name}-{}", std::process::id());
        let log_dir = self.d.dir.join("pods").join(&uid);
        std::fs::create_dir_all(&log_dir).unwrap();
        let cgroup_parent = format!("/{}/pod-{uid}", containerd::CGROUP_PARENT);
        let namespaces = cri::NamespaceOption {
            network: cri::NamespaceMode::Pod as i32,
            pid: cri::NamespaceMode::Container as i32,
            ipc: cri::NamespaceMode::Pod as i32,
            ..Default::default()
        };
        let config = cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: name.clone(),
                uid,
                namespace: "default".to_owned(),
                attempt: 0,
            }),
            hostname: name.clone(),
            log_directory: log_dir.display().to_string(),
            linux: Some(cri::LinuxPodSandboxConfig {
                cgroup_parent: cgroup_parent.clone(),
                security_context: Some(cri::LinuxSandboxSecurityContext {
                    namespace_options: Some(namespaces.clone()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let container = cri::ContainerConfig {
            metadata: Some(cri::ContainerMetadata { name: "http".to_owned(), attempt: 0 }),
            image: Some(cri::ImageSpec { image: case.image.to_owned(), ..Default::default() }),
            command: case.command.iter().map(|s| s.to_string()).collect(),
            log_path: "http_0.log".to_owned(),
            linux: Some(cri::LinuxContainerConfig {
                resources: None,
                security_context: Some(cri::LinuxContainerSecurityContext {
                    namespace_options: Some(namespaces),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        };

        let start = Instant::now();
        let req = cri::RunPodSandboxRequest { config: Some(config.clone()), runtime_handler: case.handler.to_owned() };
        let pod = call!(self, run_pod_sandbox, req)
            .unwrap_or_else(|e| panic!("RunPodSandbox {name}: {e}\n{}", self.d.log_tail(60)))
            .pod_sandbox_id;
        let req = cri::PodSandboxStatusRequest { pod_sandbox_id: pod.clone(), verbose: false };
        let status = call!(self, pod_sandbox_status, req).expect("PodSandboxStatus").status.unwrap();
        let ip = status.network.map(|n| n.ip).unwrap_or_default();
        let req = cri::CreateContainerRequest {
            pod_sandbox_id: pod.clone(),
            config: Some(container),
            sandbox_config: Some(config),
        };
        let id = call!(self, create_container, req)
            .unwrap_or_else(|e| panic!("CreateContainer in {name}: {e}\n{}", self.d.log_tail(60)))
            .container_id;
        call!(self, start_container, cri::StartContainerRequest { container_id: id.clone() })
            .unwrap_or_else(|e| panic!("StartContainer in {name}: {e}\n{}", self.d.log_tail(60)));
        let addr: SocketAddr = format!("{ip}:{PORT}").parse().unwrap_or_else(|e| panic!("pod {name} IP {ip:?}: {e}"));
        let answered = wait_http(addr, start + HTTP_LIMIT);
        let elapsed = start.elapsed();

        let Some(timeouts) = answered else {
            let log = std::fs::read_to_string(log_dir.join("http_0.log")).unwrap_or_default();
            panic!("pod {name}: no HTTP 200 at {addr} within {HTTP_LIMIT:?}; container log:\n{log}");
        };
        call!(self, stop_pod_sandbox, cri::StopPodSandboxRequest { pod_sandbox_id: pod.clone() })
            .unwrap_or_else(|e| panic!("StopPodSandbox {name}: {e}"));
        call!(self, remove_pod_sandbox, cri::RemovePodSandboxRequest { pod_sandbox_id: pod.clone() })
            .unwrap_or_else(|e| panic!("RemovePodSandbox {name}: {e}"));
        remove_cgroup_parent(&cgroup_parent);
        let _ = std::fs::remove_dir_all(&log_dir);
        (elapsed, timeouts, vec![id, pod])
    }
}

/// What one probe found.
#[derive(Debug, PartialEq, Eq)]
enum Probe {
    /// `200`.
    Ok,
    /// Refused, reset, or another answer.
    NotYet,
    /// No answer to the SYN within [`CONNECT`].
    ConnectTimedOut,
}

/// Probes `addr` every [`POLL`] until a `GET /` gets `200` (then returns how many
/// connect attempts timed out) or `deadline` passes (`None`).
fn wait_http(addr: SocketAddr, deadline: Instant) -> Option<u32> {
    let mut timeouts = 0;
    loop {
        match probe(addr) {
            Probe::Ok => return Some(timeouts),
            Probe::ConnectTimedOut => timeouts += 1,
            Probe::NotYet => {}
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

/// One raw TCP connect + `GET /`: whether the status line says 200.
fn probe(addr: SocketAddr) -> Probe {
    let mut s = match TcpStream::connect_timeout(&addr, CONNECT) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return Probe::ConnectTimedOut,
        Err(_) => return Probe::NotYet,
    };
    let _ = s.set_nodelay(true);
    if s.set_read_timeout(Some(Duration::from_secs(1))).is_err()
        || s.write_all(b"GET / HTTP/1.1\r\nHost: pod\r\nConnection: close\r\n\r\n").is_err()
    {
        return Probe::NotYet;
    }
    let want = b"HTTP/1.1 200";
    let mut buf = [0u8; 12];
    let mut n = 0;
    while n < want.len() {
        match s.read(&mut buf[n..]) {
            Ok(0) | Err(_) => return Probe::NotYet,
            Ok(k) => n += k,
        }
    }
    if &buf == want {
        Probe::Ok
    } else {
        Probe::NotYet
    }
}

/// Removes a pod's cgroup parent in every hierarchy (kubelet's job), as `tests/cri.rs`.
fn remove_cgroup_parent(parent: &str) {
    let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") else { return };
    let mut dirs: Vec<PathBuf> = entries.flatten().map(|e| e.path().join(parent.trim_start_matches('/'))).collect();
    dirs.push(PathBuf::from("/sys/fs/cgroup").join(parent.trim_start_matches('/')));
    for dir in dirs {
        let _ = std::fs::remove_dir(&dir);
        if let Some(up) = dir.parent() {
            let _ = std::fs::remove_dir(up);
        }
    }
}

/// Runs `f` on a thread in the network namespace of process `pid` (the daemon's: the
/// pods' IPs are reachable there only). setns(CLONE_NEWNET) moves the calling thread only.
fn in_netns_of<T: Send>(pid: i32, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            let ns = std::fs::File::open(format!("/proc/{pid}/ns/net"))
                .unwrap_or_else(|e| panic!("open /proc/{pid}/ns/net: {e}"));
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                .unwrap_or_else(|e| panic!("setns into the network namespace of {pid}: {e}"));
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}

/// `gcc -static -O2 benches/native/hello.c` into `dir/hello` (as benches/build.rs).
fn c_hello(dir: &Path) -> PathBuf {
    let src = repo_root().join("benches/native/hello.c");
    let bin = dir.join("hello");
    let out = Command::new("gcc").args(["-static", "-O2", "-o"]).arg(&bin).arg(&src).output().expect("gcc runs");
    assert!(out.status.success(), "gcc -static {}: {}", src.display(), text(&out.stderr));
    bin
}

/// Builds the release guests (`cargo xtask guests --release`): the tests' harness builds
/// debug ones, the benches measure what ships.
fn release_guests() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["xtask", "guests", "--release"])
        .current_dir(repo_root())
        .status()
        .expect("cargo runs");
    assert!(status.success(), "cargo xtask guests --release: {status}");
    repo_root().join("target/guests")
}

/// Writes the two images as OCI layouts and imports them into the CRI's namespace.
fn import_images(d: &Containerd, guests: &Path, native: &[(String, Vec<u8>)]) {
    let dir = d.dir.join("images");
    let guest_files: Vec<(String, Vec<u8>)> = ["http", "hello"]
        .iter()
        .map(|g| (format!("{g}.spt"), std::fs::read(guests.join(format!("{g}.spt"))).unwrap()))
        .collect();
    for (name, reference, files, config) in [
        ("bench-guests.tar", GUEST_IMAGE, &guest_files[..], serde_json::json!({"Cmd": ["/hello.spt"]})),
        ("bench-native.tar", NATIVE_IMAGE, native, serde_json::json!({"Cmd": ["/hello"]})),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, images::archive(reference, files, config)).unwrap();
        d.ctr_ok(K8S_NS, &["images", "import", "--all-platforms", path.to_str().unwrap()]);
    }
}

/// Builds the two docker images (FROM scratch, as README's recipe).
fn build_docker_images(docker: &Dockerd, guests: &Path, c_hello: &Path) {
    for (tag, src, file) in [
        (DOCKER_GUEST_IMAGE, guests.join("hello.spt"), "hello.spt"),
        (DOCKER_NATIVE_IMAGE, c_hello.to_owned(), "hello"),
    ] {
        let ctx = docker.dir.join(format!("bench-{file}"));
        std::fs::create_dir_all(&ctx).unwrap();
        std::fs::copy(&src, ctx.join(file)).unwrap();
        std::fs::write(ctx.join("Dockerfile"), format!("FROM scratch\nCOPY {file} /{file}\nCMD [\"/{file}\"]\n"))
            .unwrap();
        docker.ok(&["build", "-q", "-t", tag, ctx.to_str().unwrap()]);
    }
}

/// `docker run --rm ARGS`, timed; checks it printed `needle` and succeeded.
fn docker_run(docker: &Dockerd, args: &[&str], needle: &str) -> Duration {
    let start = Instant::now();
    let out = docker.cmd().args(["run", "--rm"]).args(args).output().expect("docker runs");
    let elapsed = start.elapsed();
    let stdout = text(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(needle),
        "docker run --rm {args:?}: {}\n{stdout}\n{}",
        out.status,
        text(&out.stderr)
    );
    elapsed
}

/// Best and median of `times`, in ms.
fn best_median(times: &[Duration]) -> (f64, f64) {
    let mut ms: Vec<f64> = times.iter().map(|t| t.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    let mid = ms.len() / 2;
    let median = if ms.len() % 2 == 1 { ms[mid] } else { (ms[mid - 1] + ms[mid]) / 2.0 };
    (ms[0], median)
}

/// One table: the tender row, then runc's, each with best and median and the ratio to runc.
fn table(title: &str, rows: [(&str, &[Duration]); 2]) {
    let (runc_best, runc_median) = best_median(rows[1].1);
    println!("\n{title}");
    println!("| case | best ms | median ms | × runc (best) | × runc (median) |");
    println!("|---|---|---|---|---|");
    for (what, times) in rows {
        let (best, median) = best_median(times);
        println!("| {what} | {best:.1} | {median:.1} | {:.2}× | {:.2}× |", best / runc_best, median / runc_median);
    }
}

fn main() {
    let Some(d) = containerd::get() else { return };
    let Some(docker) = common::dockerd::get() else { return };
    let began = Instant::now();
    let guests = release_guests();
    let scratch = d.dir.join("bench");
    std::fs::create_dir_all(&scratch).unwrap();
    let hello = c_hello(&scratch);
    // Built by the harness's `cargo build --release` (the whole workspace), static.
    let native_http = repo_root().join("target/x86_64-unknown-linux-gnu/release/native-http");
    let native = vec![
        ("native-http".to_owned(), std::fs::read(&native_http).unwrap()),
        ("hello".to_owned(), std::fs::read(&hello).unwrap()),
    ];
    import_images(d, &guests, &native);
    build_docker_images(docker, &guests, &hello);

    let cases = [
        PodCase { handler: containerd::HANDLER, image: GUEST_IMAGE, command: ["/http.spt", "8080"] },
        PodCase { handler: "runc", image: NATIVE_IMAGE, command: ["/native-http", "0.0.0.0:8080"] },
    ];
    let (pod_times, timeouts, ids) = in_netns_of(d.pid, || {
        let cri = Cri::new(d);
        let mut times: Vec<Vec<Duration>> = vec![Vec::new(); cases.len()];
        let mut timeouts = vec![0u32; cases.len()];
        let mut ids = Vec::new();
        for round in 0..=POD_ROUNDS {
            for k in 0..cases.len() {
                // Alternating order: neither case always follows the other's teardown.
                let i = if round % 2 == 0 { k } else { cases.len() - 1 - k };
                let (t, timed_out, held) = cri.pod_start(&cases[i], round);
                ids.extend(held);
                if round > 0 {
                    times[i].push(t);
                    timeouts[i] += timed_out;
                }
            }
        }
        (times, timeouts, ids)
    });
    d.assert_clean(K8S_NS, &ids);

    let runs: [(&[&str], &str); 2] =
        [(&["--runtime=tender", DOCKER_GUEST_IMAGE], "Hello, world"), (&[DOCKER_NATIVE_IMAGE], "Hello, world")];
    let mut docker_times: Vec<Vec<Duration>> = vec![Vec::new(); runs.len()];
    for round in 0..=DOCKER_ROUNDS {
        for k in 0..runs.len() {
            let i = if round % 2 == 0 { k } else { runs.len() - 1 - k };
            let t = docker_run(docker, runs[i].0, runs[i].1);
            if round > 0 {
                docker_times[i].push(t);
            }
        }
    }
    let left = docker.ok(&["ps", "-aq"]);
    assert!(left.trim().is_empty(), "containers left in the private dockerd: {left}");
    let _ = std::fs::remove_dir_all(&scratch);

    println!(
        "\nengines: {POD_ROUNDS} pod rounds and {DOCKER_ROUNDS} docker rounds, interleaved (order alternating), \
         after one warm-up round; {:.0} s",
        began.elapsed().as_secs_f64()
    );
    table(
        "Pod start: RunPodSandbox → first HTTP 200 at the pod IP (private containerd 1.6 CRI)",
        [
            ("tender: handler `tender`, `/http.spt 8080`", &pod_times[0]),
            ("runc: handler `runc`, static `native-http 0.0.0.0:8080`", &pod_times[1]),
        ],
    );
    println!(
        "(probes whose connect got no answer within {CONNECT:?}, then retried: tender {}, runc {}, over {POD_ROUNDS} pods each)",
        timeouts[0], timeouts[1]
    );
    table(
        "docker run --rm (private dockerd, client wall time)",
        [
            ("tender: `--runtime=tender`, hello.spt", &docker_times[0]),
            ("runc: static C hello (`gcc -static`)", &docker_times[1]),
        ],
    );
}
