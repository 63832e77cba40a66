//! Kubernetes' view: this test plays kubelet against a private containerd 1.6's CRI socket
//! (see `common/containerd.rs`), with pods on runtime handler `tender`: the pod sandbox
//! (pause) goes to runc through tender-oci's delegation, every other container is a
//! unikernel. Each case ends by checking that nothing of its pods is left (processes,
//! network namespaces, interfaces, mounts, cgroups, state of tender-oci and of the
//! delegated runc). The cases run one at a time (the leftover checks are global).
//! Needs root, containerd, runc, the CNI plugins; under CI=true a missing one fails.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::containerd::{self, Containerd, GATEWAY, HANDLER, IMAGE, K8S_NS};
use common::cri_client::{call, Cri};
use common::text;
use k8s_cri::v1 as cri;

/// The cases share the daemon and check for leftovers globally: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// How long a container may take to reach a state.
const WAIT: Duration = Duration::from_secs(120);

impl Cri {
    /// A pod (`RunPodSandbox` on handler `tender`), removed on drop.
    fn pod(&self, name: &str, host_port: Option<i32>) -> Pod<'_> {
        self.pod_with(name, host_port, HashMap::new())
    }

    /// [`Cri::pod`] with pod annotations.
    fn pod_with(&self, name: &str, host_port: Option<i32>, annotations: HashMap<String, String>) -> Pod<'_> {
        let uid = format!("{name}-{}", std::process::id());
        let log_dir = self.d.dir.join("pods").join(&uid);
        std::fs::create_dir_all(&log_dir).unwrap();
        let cgroup_parent = format!("/{}/pod-{uid}", containerd::CGROUP_PARENT);
        let config = cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: name.to_owned(),
                uid: uid.clone(),
                namespace: "default".to_owned(),
                attempt: 0,
            }),
            hostname: name.to_owned(),
            annotations,
            log_directory: log_dir.display().to_string(),
            port_mappings: host_port
                .map(|hp| {
                    vec![cri::PortMapping {
                        protocol: cri::Protocol::Tcp as i32,
                        container_port: 8080,
                        host_port: hp,
                        host_ip: String::new(),
                    }]
                })
                .unwrap_or_default(),
            linux: Some(cri::LinuxPodSandboxConfig {
                cgroup_parent: cgroup_parent.clone(),
                security_context: Some(cri::LinuxSandboxSecurityContext {
                    namespace_options: Some(namespaces()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let req = cri::RunPodSandboxRequest { config: Some(config.clone()), runtime_handler: HANDLER.to_owned() };
        let id = call!(self, run_pod_sandbox, req)
            .unwrap_or_else(|e| panic!("RunPodSandbox {name}: {e}\n{}", self.d.log_tail(60)))
            .pod_sandbox_id;
        let netns = self.d.pod_netns(K8S_NS, &id);
        assert!(netns.is_some(), "pod {name}: no network namespace path in its sandbox's config.json");
        Pod { cri: self, id, config, log_dir, cgroup_parent, netns, containers: Vec::new() }
    }
}

/// kubelet's namespaces for a pod without `shareProcessNamespace` or host namespaces:
/// the pod's network and IPC, a pid namespace per container. (The CRI default, zero, is
/// the pod's pid namespace, which a unikernel container cannot join.)
fn namespaces() -> cri::NamespaceOption {
    cri::NamespaceOption {
        network: cri::NamespaceMode::Pod as i32,
        pid: cri::NamespaceMode::Container as i32,
        ipc: cri::NamespaceMode::Pod as i32,
        ..Default::default()
    }
}

/// A pod sandbox and what it held; stopped and removed on drop.
struct Pod<'a> {
    cri: &'a Cri,
    id: String,
    config: cri::PodSandboxConfig,
    log_dir: PathBuf,
    cgroup_parent: String,
    /// The pod's network namespace (CRI's, a file under /run/netns).
    netns: Option<PathBuf>,
    /// Every container id created in it.
    containers: Vec<String>,
}

impl Pod<'_> {
    /// The pod's IP (CNI's).
    fn ip(&self) -> String {
        let req = cri::PodSandboxStatusRequest { pod_sandbox_id: self.id.clone(), verbose: false };
        let status = call!(self.cri, pod_sandbox_status, req).expect("PodSandboxStatus").status.unwrap();
        let ip = status.network.map(|n| n.ip).unwrap_or_default();
        assert!(!ip.is_empty(), "pod {} has no IP", self.id);
        ip
    }

    /// `CreateContainer` + `StartContainer` of `args` (process.args: the guest and its
    /// arguments), attempt `attempt`, with an optional memory limit. Returns the id.
    fn run(&mut self, name: &str, attempt: u32, args: &[&str], memory: Option<i64>) -> String {
        self.run_with(name, attempt, args, memory, |_| {})
    }

    /// [`Pod::run`], with `edit` changing the container's config first.
    fn run_with(
        &mut self,
        name: &str,
        attempt: u32,
        args: &[&str],
        memory: Option<i64>,
        edit: impl FnOnce(&mut cri::ContainerConfig),
    ) -> String {
        let mut config = cri::ContainerConfig {
            metadata: Some(cri::ContainerMetadata { name: name.to_owned(), attempt }),
            image: Some(cri::ImageSpec { image: IMAGE.to_owned(), ..Default::default() }),
            command: args.iter().map(|s| s.to_string()).collect(),
            log_path: format!("{name}_{attempt}.log"),
            linux: Some(cri::LinuxContainerConfig {
                resources: memory
                    .map(|m| cri::LinuxContainerResources { memory_limit_in_bytes: m, ..Default::default() }),
                security_context: Some(cri::LinuxContainerSecurityContext {
                    namespace_options: Some(namespaces()),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        };
        edit(&mut config);
        let req = cri::CreateContainerRequest {
            pod_sandbox_id: self.id.clone(),
            config: Some(config),
            sandbox_config: Some(self.config.clone()),
        };
        let id = call!(self.cri, create_container, req)
            .unwrap_or_else(|e| panic!("CreateContainer {name} {args:?}: {e}\n{}", self.cri.d.log_tail(60)))
            .container_id;
        self.containers.push(id.clone());
        call!(self.cri, start_container, cri::StartContainerRequest { container_id: id.clone() })
            .unwrap_or_else(|e| panic!("StartContainer {name} {args:?}: {e}\n{}", self.cri.d.log_tail(60)));
        id
    }

    fn status(&self, id: &str) -> cri::ContainerStatus {
        let req = cri::ContainerStatusRequest { container_id: id.to_owned(), verbose: false };
        call!(self.cri, container_status, req).expect("ContainerStatus").status.unwrap()
    }

    /// Waits until container `id` has exited; returns its status.
    fn wait_exited(&self, id: &str) -> cri::ContainerStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            let s = self.status(id);
            if s.state == cri::ContainerState::ContainerExited as i32 {
                return s;
            }
            assert!(Instant::now() < deadline, "container {id} still {:?} after {WAIT:?}:\n{}", s, self.log_of(&s));
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the container's log holds `needle` (or the container exited); returns the log.
    fn wait_log(&self, id: &str, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let s = self.status(id);
            let log = self.log_of(&s);
            if log.contains(needle)
                || s.state == cri::ContainerState::ContainerExited as i32
                || Instant::now() > deadline
            {
                return log;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log_of(&self, s: &cri::ContainerStatus) -> String {
        std::fs::read_to_string(&s.log_path).unwrap_or_default()
    }

    fn stop_container(&self, id: &str, timeout: i64) {
        call!(self.cri, stop_container, cri::StopContainerRequest { container_id: id.to_owned(), timeout })
            .unwrap_or_else(|e| panic!("StopContainer {id}: {e}"));
    }

    fn remove_container(&self, id: &str) {
        call!(self.cri, remove_container, cri::RemoveContainerRequest { container_id: id.to_owned() })
            .unwrap_or_else(|e| panic!("RemoveContainer {id}: {e}"));
    }

    /// StopPodSandbox + RemovePodSandbox, then (as kubelet) the pod's cgroup parent.
    /// Returns every id the pod held.
    fn remove(mut self) -> Vec<String> {
        let ids = self.teardown().expect("StopPodSandbox/RemovePodSandbox");
        std::mem::forget(self);
        ids
    }

    fn teardown(&mut self) -> Result<Vec<String>, tonic::Status> {
        call!(self.cri, stop_pod_sandbox, cri::StopPodSandboxRequest { pod_sandbox_id: self.id.clone() })?;
        call!(self.cri, remove_pod_sandbox, cri::RemovePodSandboxRequest { pod_sandbox_id: self.id.clone() })?;
        remove_cgroup_parent(&self.cgroup_parent);
        let _ = std::fs::remove_dir_all(&self.log_dir);
        if let Some(netns) = self.netns.take() {
            // Not while unwinding: a second panic would abort the test binary.
            assert!(!netns.exists() || std::thread::panicking(), "pod network namespace left: {}", netns.display());
        }
        let mut ids = std::mem::take(&mut self.containers);
        ids.push(self.id.clone());
        Ok(ids)
    }
}

impl Drop for Pod<'_> {
    fn drop(&mut self) {
        let _ = self.teardown();
    }
}

/// Removes a pod's cgroup parent in every hierarchy (kubelet's job; runc and tender-oci
/// remove only the container's own cgroup).
fn remove_cgroup_parent(parent: &str) {
    let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") else { return };
    let mut dirs: Vec<PathBuf> = entries.flatten().map(|e| e.path().join(parent.trim_start_matches('/'))).collect();
    dirs.push(PathBuf::from("/sys/fs/cgroup").join(parent.trim_start_matches('/')));
    for dir in dirs {
        let _ = std::fs::remove_dir(&dir);
        if let Some(up) = dir.parent() {
            let _ = std::fs::remove_dir(up); // tender-cri-test, if empty
        }
    }
}

fn lock() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The CRI log lines (`<time> <stream> <P|F> <text>`) of a log file, as (stream, text).
fn cri_log_lines(log: &str) -> Vec<(String, String)> {
    log.lines()
        .map(|l| {
            let mut parts = l.splitn(4, ' ');
            let (time, stream, tag, rest) = (parts.next(), parts.next(), parts.next(), parts.next());
            let time = time.unwrap_or_default();
            assert!(time.ends_with('Z') && time.contains('T'), "not a CRI log line (time): {l:?}");
            let stream = stream.unwrap_or_default();
            assert!(stream == "stdout" || stream == "stderr", "not a CRI log line (stream): {l:?}");
            assert!(matches!(tag, Some("F") | Some("P")), "not a CRI log line (tag): {l:?}");
            (stream.to_owned(), rest.unwrap_or_default().to_owned())
        })
        .collect()
}

#[test]
fn hello_in_a_pod_completes_and_logs_in_cri_format() {
    let Some(d) = containerd::get() else { return };
    let _serial = lock();
    let cri = Cri::new(d);
    let mut pod = cri.pod("hello", Some(18080));
    let id = pod.run("hello", 0, &["/hello.spt", "a", "b"], None);
    let s = pod.wait_exited(&id);
    let log = pod.log_of(&s);
    assert_eq!((s.exit_code, s.reason.as_str()), (0, "Completed"), "{s:?}\n{log}");
    let lines = cri_log_lines(&log);
    assert!(lines.iter().any(|(stream, t)| stream == "stdout" && t == "Hello, args: a b"), "{log}");
    assert!(lines.iter().any(|(_, t)| t == "SUCCESS"), "{log}");
    // The sandbox is runc's (delegated). (The container's own state went with its exit:
    // CRI deletes a task when it exits.)
    assert!(d.delegated_root(K8S_NS).join(&pod.id).is_dir(), "pause not under the delegated runc root");
    pod.remove_container(&id);
    let ids = pod.remove();
    d.assert_clean(K8S_NS, &ids);
}

#[test]
fn exit_codes_and_reasons_pass_through() {
    let Some(d) = containerd::get() else { return };
    let _serial = lock();
    let cri = Cri::new(d);
    let mut pod = cri.pod("exits", None);
    for (name, args, code, needle) in [
        ("seven", &["/exit_code.spt", "7"][..], 7, "solo5_exit(7)"),
        ("abort", &["/abort.spt"][..], 255, "solo5_abort() called"),
        // A guest fault on spt: SIGSEGV, 128 + 11.
        ("fault", &["/null_deref.spt"][..], 139, "about to write"),
    ] {
        let id = pod.run(name, 0, args, None);
        let s = pod.wait_exited(&id);
        let log = pod.log_of(&s);
        assert_eq!((s.exit_code, s.reason.as_str()), (code, "Error"), "{name}: {s:?}\n{log}");
        assert!(log.contains(needle), "{name}: {log}");
        pod.remove_container(&id);
    }
    let ids = pod.remove();
    d.assert_clean(K8S_NS, &ids);
}

#[test]
fn memory_limit_becomes_guest_memory() {
    let Some(d) = containerd::get() else { return };
    let _serial = lock();
    let cri = Cri::new(d);
    let mut pod = cri.pod("memory", None);
    // spin runs until stopped: its state is there to read meanwhile.
    let id = pod.run("spin", 0, &["/spin.spt"], Some(64 << 20));
    let log = pod.wait_log(&id, "spinning forever");
    assert!(log.contains("spinning forever"), "{log}");
    // The tender runs in a child of tender-oci's init (forked, so it shows create's
    // command line): its guest memory is one mapping from low guest-physical memory up to
    // the memory size, identity-mapped: the 64 MiB limit makes it end at 0x04000000.
    let procs = common::processes_of(common::tender_oci(), &id);
    let ends: Vec<(i32, u64)> = procs
        .iter()
        .flat_map(|(pid, _)| {
            let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
            maps.lines()
                .filter(|l| l.split_whitespace().nth(1) == Some("rw-p") && l.split_whitespace().nth(5).is_none())
                .filter_map(|l| {
                    let (start, end) = l.split_whitespace().next()?.split_once('-')?;
                    let (start, end) = (u64::from_str_radix(start, 16).ok()?, u64::from_str_radix(end, 16).ok()?);
                    (start < 1 << 21 && end - start >= 1 << 24).then_some((*pid, end))
                })
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(ends.iter().any(|&(_, end)| end == 64 << 20), "no 64 MiB guest memory mapping in {procs:?}: {ends:x?}");
    pod.stop_container(&id, 30);
    pod.remove_container(&id);
    let ids = pod.remove();
    d.assert_clean(K8S_NS, &ids);
}

#[test]
fn exec_is_refused_and_stop_with_timeout_then_restart() {
    let Some(d) = containerd::get() else { return };
    let _serial = lock();
    let cri = Cri::new(d);
    let mut pod = cri.pod("stop", None);
    for attempt in 0..2 {
        // spin runs until a signal ends it.
        let id = pod.run("spin", attempt, &["/spin.spt"], None);
        let log = pod.wait_log(&id, "spinning forever");
        assert!(log.contains("spinning forever"), "{log}");
        assert_eq!(pod.status(&id).state, cri::ContainerState::ContainerRunning as i32);
        // A unikernel under tender-oci, not delegated.
        assert!(d.tender_root(K8S_NS).join(&id).is_dir(), "container not under tender-oci's root");
        assert!(!d.delegated_root(K8S_NS).join(&id).exists(), "container delegated to runc");
        if attempt == 0 {
            let req = cri::ExecSyncRequest { container_id: id.clone(), cmd: vec!["/bin/sh".into()], timeout: 10 };
            let err = call!(cri, exec_sync, req).expect_err("ExecSync into a unikernel must fail");
            assert!(err.message().contains("no programs to exec"), "{err:?}");
        }
        pod.stop_container(&id, 30);
        let s = pod.status(&id);
        assert_eq!(s.state, cri::ContainerState::ContainerExited as i32, "{s:?}");
        // SIGTERM reached the tender (143); had it been ignored, the timeout's SIGKILL: 137.
        assert_eq!(s.exit_code, 143, "{s:?}");
        pod.remove_container(&id);
    }
    let ids = pod.remove();
    d.assert_clean(K8S_NS, &ids);
}

/// `GET /` from the daemon's network namespace; the response.
fn http_get(d: &Containerd, url: &str) -> String {
    let out = d.curl(url);
    text(&out.stdout) + &text(&out.stderr)
}

#[test]
fn http_and_kv_answer_at_the_pod_ip_and_after_a_restart() {
    let Some(d) = containerd::get() else { return };
    let _serial = lock();
    let cri = Cri::new(d);
    let mut pod = cri.pod("net", Some(18081));
    let ip = pod.ip();
    // Attempt 0 is stopped (SIGTERM), attempt 1 killed abruptly (SIGKILL to its
    // processes, as the OOM killer would), attempt 2 serves once more: each time kubelet
    // re-creates the container in the same pod, which must take the pod's interface again.
    for attempt in 0..3 {
        let id = pod.run("http", attempt, &["/http.spt", "8080"], None);
        let log = pod.wait_log(&id, "listening");
        assert!(log.contains("listening"), "http attempt {attempt} did not listen:\n{log}");
        let body = http_get(d, &format!("http://{ip}:8080/"));
        assert!(body.contains("Hello from a unikernel"), "attempt {attempt}: GET pod IP {ip}:8080: {body}\n{log}");
        let body = http_get(d, &format!("http://{GATEWAY}:18081/"));
        assert!(
            body.contains("Hello from a unikernel"),
            "attempt {attempt}: GET hostPort {GATEWAY}:18081: {body}\n{log}"
        );
        match attempt {
            0 => pod.stop_container(&id, 10),
            1 => {
                for (pid, _) in common::processes_of(common::tender_oci(), &id) {
                    // SAFETY: kill(2) on a pid of this container just read from /proc.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
                let s = pod.wait_exited(&id);
                assert_eq!(s.exit_code, 137, "{s:?}");
            }
            _ => pod.stop_container(&id, 10),
        }
        assert_eq!(pod.status(&id).state, cri::ContainerState::ContainerExited as i32);
        pod.remove_container(&id);
        assert_eq!(pod.ip(), ip);
    }
    let id = pod.run("kv", 0, &["/kv.spt"], None);
    let log = pod.wait_log(&id, "listening");
    assert!(log.contains("listening"), "kv did not listen:\n{log}");
    let redis = |args: &[&str]| {
        let out = d.in_netns("redis-cli").args(["-h", &ip, "-p", "6379"]).args(args).output().expect("redis-cli runs");
        text(&out.stdout).trim().to_owned() + &text(&out.stderr)
    };
    assert_eq!(redis(&["SET", "pod", "tender"]), "OK");
    assert_eq!(redis(&["GET", "pod"]), "tender");
    pod.stop_container(&id, 10);
    pod.remove_container(&id);
    let ids = pod.remove();
    d.assert_clean(K8S_NS, &ids);
}

#[test]
fn fifty_pod_cycles_then_ten_pods_at_once_leave_nothing() {
    let Some(d) = containerd::get() else { return };
    let _serial = lock();
    let cri = Cri::new(d);
    let mut all = Vec::new();
    for i in 0..50 {
        let mut pod = cri.pod(&format!("cycle{i}"), None);
        let id = pod.run("hello", 0, &["/hello.spt", &i.to_string()], None);
        let s = pod.wait_exited(&id);
        assert_eq!(s.exit_code, 0, "cycle {i}: {s:?}\n{}", pod.log_of(&s));
        all.extend(pod.remove());
    }
    d.assert_clean(K8S_NS, &all);

    let mut pods: Vec<Pod> = (0..10).map(|i| cri.pod(&format!("many{i}"), None)).collect();
    let ids: Vec<String> = pods.iter_mut().map(|p| p.run("hello", 0, &["/hello.spt", "many"], None)).collect();
    let ips: HashMap<String, String> = pods.iter().map(|p| (p.ip(), p.id.clone())).collect();
    assert_eq!(ips.len(), 10, "pods share IPs: {ips:?}");
    for (pod, id) in pods.iter().zip(&ids) {
        let s = pod.wait_exited(id);
        assert_eq!(s.exit_code, 0, "{s:?}\n{}", pod.log_of(&s));
    }
    let mut all = Vec::new();
    for pod in pods {
        all.extend(pod.remove());
    }
    d.assert_clean(K8S_NS, &all);
}

#[test]
fn block_device_annotations_reach_tender_oci_from_pod_and_container() {
    let Some(d) = containerd::get() else { return };
    let _serial = lock();
    let cri = Cri::new(d);
    let key = "org.tender.block.storage".to_owned();
    let mut all = Vec::new();
    // The runtime handler passes org.tender.* annotations of the pod and of the container.
    for from_pod in [true, false] {
        let disk = d.dir.join(format!("disk-{from_pod}.img"));
        std::fs::write(&disk, vec![0u8; 1 << 20]).unwrap();
        let pod_annotations =
            if from_pod { HashMap::from([(key.clone(), "/data/disk.img".to_owned())]) } else { HashMap::new() };
        let mut pod = cri.pod_with(&format!("blk-{from_pod}"), None, pod_annotations);
        let id = pod.run_with("blk", 0, &["/blk.spt"], None, |c| {
            c.mounts.push(cri::Mount {
                container_path: "/data/disk.img".into(),
                host_path: disk.display().to_string(),
                ..Default::default()
            });
            if !from_pod {
                c.annotations.insert(key.clone(), "/data/disk.img".into());
            }
        });
        let s = pod.wait_exited(&id);
        let log = pod.log_of(&s);
        assert_eq!(s.exit_code, 0, "{s:?}\n{log}");
        assert!(log.contains("capacity 1048576 bytes") && log.contains("SUCCESS"), "{log}");
        // The guest wrote the host file: block n starts with n.
        let bytes = std::fs::read(&disk).unwrap();
        assert_eq!(u64::from_le_bytes(bytes[512 * 5..512 * 5 + 8].try_into().unwrap()), 5);
        std::fs::remove_file(&disk).unwrap();
        pod.remove_container(&id);
        all.extend(pod.remove());
    }
    d.assert_clean(K8S_NS, &all);
}
