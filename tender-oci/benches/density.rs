//! Density against docker+runc (issue 19): what one idle HTTP server costs the host as a
//! docker+runc container and as a tender spt guest, measured side by side in one run.
//!
//! Three cases, each `DENSITY_DOCKER_N` servers (default 100) started one after another,
//! all left running while measured, then removed (the direct guests first, 10 s apart):
//! * **docker+runc**: `docker run -d` of a FROM-scratch image holding the static
//!   `native-http` (the same HTTP code as the guest, on the kernel's TCP stack),
//!   `/native-http 0.0.0.0:8080`, default bridge network (private dockerd,
//!   `tests/common/dockerd.rs`, as `tests/docker.rs`; images built locally, no registry).
//! * **docker+tender-oci**: the same with `--runtime=tender` and `/http.spt 8080` (release
//!   guest): the unikernel as a docker user would run it, shim included.
//! * **tender spt, direct**: `tender --mem=64 --net:service0=tapN http.spt --ipv4=… 8080`
//!   spawned by this bench in a network namespace of its own (a bridge, one tap per guest),
//!   as `benches/benches/density.rs` does: the guest without an engine around it.
//!
//! Each server must answer one `GET /` (from the daemon's network namespace for the
//! containers, from the bench's for the guests). Per server: PSS (`/proc/PID/smaps_rollup`)
//! summed over the container's whole process tree from its `containerd-shim` down (shim +
//! runtime leftovers + the server), or of the tender process; and the host's
//! `MemAvailable` drop over the case / N, which also counts what the daemons, the kernel's
//! cgroup, namespace, veth or tap objects keep per server (the direct case's taps,
//! bridge and namespace are made inside its measurement). The table prints both and
//! their ratios to docker+runc. Printed, never asserted. Everything started is removed on
//! the way out, on error and on SIGINT/SIGTERM too (guards; the signals set a flag the
//! loops check); the private dockerd gets SIGTERM when the bench exits (it then stops its
//! containers). Needs root and docker.io (the tests' harness: it skips loudly without).
//!
//! `cargo bench -p tender-oci --bench density` (as root; a few minutes on 2 cores).

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::dockerd::Dockerd;
use common::{repo_root, text};

/// Each case's starting stops at this bound (the count reached so far is measured).
const CASE_BOUND: Duration = Duration::from_secs(180);
/// Pause before each case's first `MemAvailable` reading: what the case before freed
/// (container teardown, RCU-deferred kernel objects) comes back meanwhile.
const SETTLE: Duration = Duration::from_secs(10);
/// The HTTP servers' port.
const PORT: u16 = 8080;
const NATIVE_IMAGE: &str = "tender-density-native:latest";
const GUEST_IMAGE: &str = "tender-density-guest:release";
/// Container names start with this (the guard removes by it too).
const NAME_PREFIX: &str = "tender-density-";

/// Set by SIGINT/SIGTERM: the bench stops at its next check and unwinds through its guards.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// `MemAvailable` of `/proc/meminfo`, KiB.
fn mem_available() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// PSS of PID in KiB, from `smaps_rollup`.
fn pss(pid: i32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    text.lines().find_map(|l| l.strip_prefix("Pss:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Every process's parent, from `/proc/PID/stat` (field 4, after the `(comm)`).
fn parents() -> HashMap<i32, i32> {
    let mut out = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else { return out };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else { continue };
        if let Some(ppid) = after.split_whitespace().nth(1).and_then(|p| p.parse().ok()) {
            out.insert(pid, ppid);
        }
    }
    out
}

/// `pid` and all its descendants.
fn tree(root: i32, parents: &HashMap<i32, i32>) -> Vec<i32> {
    let mut out = vec![root];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        out.extend(parents.iter().filter(|(_, &pp)| pp == p).map(|(&c, _)| c));
        i += 1;
    }
    out
}

fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).map(|s| s.trim().to_owned()).unwrap_or_default()
}

/// One `GET /` (HTTP/1.0): whether a `200` came back.
fn http_ok(addr: SocketAddr) -> bool {
    let t = Duration::from_secs(3);
    let Ok(mut s) = TcpStream::connect_timeout(&addr, t) else { return false };
    if s.set_read_timeout(Some(t)).is_err() || s.write_all(b"GET / HTTP/1.0\r\nHost: density\r\n\r\n").is_err() {
        return false;
    }
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    reply.starts_with(b"HTTP/1.") && reply.windows(5).take(16).any(|w| w == b" 200 ")
}

/// `GET /` until a `200` or 10 s pass.
fn answers(addr: SocketAddr) -> bool {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        if http_ok(addr) {
            return true;
        }
        if Instant::now() > until || interrupted() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Runs `f` on a thread in the network namespace at `ns_path`.
fn in_netns<T: Send>(ns_path: &str, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            let ns = File::open(ns_path).unwrap_or_else(|e| panic!("open {ns_path}: {e}"));
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                .unwrap_or_else(|e| panic!("setns {ns_path}: {e}"));
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}

/// One case's figures.
struct Case {
    what: String,
    asked: usize,
    started: usize,
    answered: usize,
    start_wall: Duration,
    /// Mean PSS per server (KiB) and what it was summed over.
    pss_kib: f64,
    pss_over: String,
    /// `MemAvailable` drop per server (KiB).
    avail_kib: f64,
    limit: String,
}

/// Containers of this bench; `docker rm -f` of every one on drop.
struct Containers<'a> {
    docker: &'a Dockerd,
    ids: Vec<String>,
}

impl Containers<'_> {
    fn remove_all(&mut self) {
        for chunk in self.ids.chunks(50) {
            let mut args = vec!["rm", "-f"];
            args.extend(chunk.iter().map(String::as_str));
            let _ = self.docker.docker(&args);
        }
        self.ids.clear();
    }
}

impl Drop for Containers<'_> {
    fn drop(&mut self) {
        self.remove_all();
    }
}

/// Starts `n` containers of `run_args` (then `--name NAME`), checks each answers at its
/// IP, measures, removes them.
fn docker_case(docker: &Dockerd, what: &str, tag: &str, n: usize, run_args: &[&str]) -> Case {
    let mut held = Containers { docker, ids: Vec::new() };
    std::thread::sleep(SETTLE);
    let before = mem_available();
    let t0 = Instant::now();
    let mut limit = None;
    for i in 0..n {
        if interrupted() {
            limit = Some("interrupted".to_owned());
            break;
        }
        if t0.elapsed() > CASE_BOUND {
            limit = Some(format!("time bound ({} s) while starting", CASE_BOUND.as_secs()));
            break;
        }
        let name = format!("{NAME_PREFIX}{tag}-{i}");
        let mut args = vec!["run", "-d", "--name", &name];
        args.extend_from_slice(run_args);
        let out = docker.docker(&args);
        if !out.status.success() {
            let _ = docker.docker(&["rm", "-f", &name]);
            limit = Some(format!("docker run #{i}: {}", text(&out.stderr).trim()));
            break;
        }
        held.ids.push(text(&out.stdout).trim().to_owned());
    }
    let start_wall = t0.elapsed();
    let started = held.ids.len();
    // IP and pid of each, one inspect for all.
    let mut targets = Vec::new();
    for chunk in held.ids.chunks(100) {
        let mut args = vec!["inspect", "-f", "{{.NetworkSettings.IPAddress}} {{.State.Pid}}"];
        args.extend(chunk.iter().map(String::as_str));
        for line in text(&docker.docker(&args).stdout).lines() {
            let mut w = line.split_whitespace();
            let ip = w.next().and_then(|s| s.parse::<Ipv4Addr>().ok());
            let pid = w.next().and_then(|s| s.parse::<i32>().ok());
            targets.push((ip, pid.unwrap_or(0)));
        }
    }
    let ns_path = format!("/proc/{}/ns/net", docker.pid);
    let answered = in_netns(&ns_path, || {
        targets.iter().filter(|(ip, _)| ip.is_some_and(|ip| answers(SocketAddr::from((ip, PORT))))).count()
    });
    if answered < started {
        limit.get_or_insert(format!("{} of {started} did not answer GET", started - answered));
    }
    let after = mem_available();
    // PSS over each container's tree, from its shim (the server's parent) down.
    let parents = parents();
    let (mut total, mut counted) = (0u64, 0usize);
    let mut shim_names = Vec::new();
    for &(_, pid) in &targets {
        let Some(&shim) = parents.get(&pid) else { continue };
        let name = comm(shim);
        if !name.starts_with("containerd-shim") {
            continue;
        }
        if shim_names.is_empty() {
            let tree = tree(shim, &parents);
            shim_names = tree.iter().map(|&p| comm(p)).collect();
        }
        total += tree(shim, &parents).into_iter().filter_map(pss).sum::<u64>();
        counted += 1;
    }
    held.remove_all();
    Case {
        what: what.to_owned(),
        asked: n,
        started,
        answered,
        start_wall,
        pss_kib: total as f64 / counted.max(1) as f64,
        pss_over: format!("{counted} trees: {}", shim_names.join(" + ")),
        avail_kib: (before as f64 - after as f64) / started.max(1) as f64,
        limit: limit.unwrap_or_else(|| format!("none: all {n} started and answered")),
    }
}

/// A network namespace (`ip netns`), deleted with its bridge and taps on drop.
struct Netns(String);

impl Netns {
    fn ip(&self, args: &[&str]) -> Result<(), String> {
        let out = Command::new("ip").args(["-n", &self.0]).args(args).output().map_err(|e| format!("ip: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("ip -n {} {args:?}: {}", self.0, text(&out.stderr)))
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// Tender processes; killed and reaped on drop.
struct Guests(Vec<Child>);

impl Drop for Guests {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
        }
        for c in &mut self.0 {
            let _ = c.wait();
        }
    }
}

/// Guest `i`'s address on the bench's bridge (10.210.0.1/16).
fn guest_ip(i: usize) -> Ipv4Addr {
    let host = u32::try_from(i + 2).unwrap_or(0);
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 210, 0, 0)) + host)
}

/// `n` spt http guests started directly with the tender, one tap each on one bridge.
fn direct_case(tender: &Path, http_spt: &Path, n: usize, logs: &Path) -> Result<Case, String> {
    let n = n.min(1000); // one bridge: at most 1,024 ports
                         // Before the namespace and taps: they count, as the containers' netns and veths do.
    std::thread::sleep(SETTLE);
    let before = mem_available();
    let ns = Netns(format!("tender-density-oci-{}", std::process::id()));
    let _ = Command::new("ip").args(["netns", "del", &ns.0]).output();
    let out = Command::new("ip").args(["netns", "add", &ns.0]).output().map_err(|e| format!("ip: {e}"))?;
    if !out.status.success() {
        return Err(format!("ip netns add: {}", text(&out.stderr)));
    }
    ns.ip(&["link", "set", "lo", "up"])?;
    ns.ip(&["link", "add", "br0", "type", "bridge"])?;
    ns.ip(&["addr", "add", "10.210.0.1/16", "dev", "br0"])?;
    ns.ip(&["link", "set", "br0", "up"])?;
    let mut batch = String::new();
    for i in 0..n {
        batch.push_str(&format!("tuntap add tap{i} mode tap\nlink set tap{i} master br0 up\n"));
    }
    let batch_path = logs.join("taps.batch");
    std::fs::write(&batch_path, batch).map_err(|e| format!("{}: {e}", batch_path.display()))?;
    ns.ip(&["-batch", batch_path.to_str().unwrap_or_default()])?;

    let ns_path = format!("/run/netns/{}", ns.0);
    in_netns(&ns_path, || {
        let mut guests = Guests(Vec::new());
        let t0 = Instant::now();
        let mut limit = None;
        for i in 0..n {
            if interrupted() {
                limit = Some("interrupted".to_owned());
                break;
            }
            let log = logs.join(format!("guest-{i}.log"));
            let out = File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
            let err = out.try_clone().map_err(|e| e.to_string())?;
            let spawned = Command::new(tender)
                .arg("--mem=64")
                .arg(format!("--net:service0=tap{i}"))
                .arg(http_spt)
                .arg(format!("--ipv4={}/16", guest_ip(i)))
                .arg(PORT.to_string())
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn();
            match spawned {
                Ok(c) => guests.0.push(c),
                Err(e) => {
                    limit = Some(format!("spawn #{i}: {e}"));
                    break;
                }
            }
        }
        let start_wall = t0.elapsed();
        let started = guests.0.len();
        let answered = (0..started).filter(|&i| answers(SocketAddr::from((guest_ip(i), PORT)))).count();
        if answered < started {
            let first_log = std::fs::read_to_string(logs.join("guest-0.log")).unwrap_or_default();
            limit.get_or_insert(format!(
                "{} of {started} did not answer GET ({})",
                started - answered,
                first_log.trim()
            ));
        }
        let after = mem_available();
        let pids: Vec<i32> = guests.0.iter().filter_map(|c| i32::try_from(c.id()).ok()).collect();
        let counted: Vec<u64> = pids.iter().filter_map(|&p| pss(p)).collect();
        drop(guests);
        Ok(Case {
            what: "tender spt, direct: `tender --mem=64 … http.spt`, own tap".to_owned(),
            asked: n,
            started,
            answered,
            start_wall,
            pss_kib: counted.iter().sum::<u64>() as f64 / counted.len().max(1) as f64,
            pss_over: format!("{} tender processes", counted.len()),
            avail_kib: (before as f64 - after as f64) / started.max(1) as f64,
            limit: limit.unwrap_or_else(|| format!("none: all {n} started and answered")),
        })
    })
}

/// Builds the release guests (`cargo xtask guests --release`), as the engines bench.
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

/// A FROM-scratch image of `file` (copied from `src`) with `cmd`.
fn build_image(docker: &Dockerd, tag: &str, src: &Path, file: &str, cmd: &[&str]) {
    let ctx = docker.dir.join(format!("density-{file}"));
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::copy(src, ctx.join(file)).unwrap();
    let cmd = serde_json::to_string(cmd).unwrap();
    std::fs::write(ctx.join("Dockerfile"), format!("FROM scratch\nCOPY {file} /{file}\nCMD {cmd}\n")).unwrap();
    docker.ok(&["build", "-q", "-t", tag, ctx.to_str().unwrap()]);
}

fn main() {
    let Some(docker) = common::dockerd::get() else { return };
    // SAFETY: `on_signal` only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    let n: usize = std::env::var("DENSITY_DOCKER_N").ok().and_then(|v| v.parse().ok()).unwrap_or(100).clamp(1, 1000);
    let began = Instant::now();
    let guests = release_guests();
    let release = repo_root().join("target/x86_64-unknown-linux-gnu/release");
    build_image(docker, NATIVE_IMAGE, &release.join("native-http"), "native-http", &["/native-http", "0.0.0.0:8080"]);
    build_image(docker, GUEST_IMAGE, &guests.join("http.spt"), "http.spt", &["/http.spt", "8080"]);
    let logs = docker.dir.join("density-logs");
    std::fs::create_dir_all(&logs).unwrap();

    println!("density (docker): {n} servers per case, started one after another, all running while measured");
    // The direct guests first: the cheapest case leaves the least to settle for the next.
    let mut cases = Vec::new();
    match direct_case(&release.join("tender"), &guests.join("http.spt"), n, &logs) {
        Ok(c) => cases.push(c),
        Err(e) => println!("density (docker): the direct tender case failed: {e}"),
    }
    cases.push(docker_case(
        docker,
        "docker+runc: `native-http 0.0.0.0:8080`, static, FROM scratch",
        "runc",
        n,
        &[NATIVE_IMAGE],
    ));
    cases.push(docker_case(
        docker,
        "docker+tender-oci (`--runtime=tender`): `/http.spt 8080`",
        "tender",
        n,
        &["--runtime=tender", GUEST_IMAGE],
    ));
    for c in &cases {
        println!("density (docker): {}: {}", c.what, c.limit);
    }
    let left = docker.ok(&["ps", "-aq"]);
    let _ = std::fs::remove_dir_all(&logs);
    assert!(left.trim().is_empty(), "containers left in the private dockerd: {left}");

    println!(
        "\ndensity (docker): idle HTTP servers, {n} per case, {:.0} s; PSS = smaps_rollup summed over the \
         container's process tree from its containerd-shim down (or the tender process); MemAvailable drop = \
         /proc/meminfo over the case / servers started (daemons and kernel objects included; approximate on a \
         shared host). Run of {}",
        began.elapsed().as_secs_f64(),
        text(&Command::new("date").args(["-u", "+%F %H:%M UTC"]).output().map(|o| o.stdout).unwrap_or_default()).trim()
    );
    let runc =
        cases.iter().find(|c| c.what.starts_with("docker+runc")).map(|c| (c.pss_kib.max(1.0), c.avail_kib.max(1.0)));
    println!(
        "\n| server | asked | started | answered GET | start wall s | PSS KiB / server | MemAvailable drop KiB / server | \
         PSS × docker+runc | MemAvailable × docker+runc | ended by |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for c in &cases {
        let (rp, ra) = runc.map_or(("–".into(), "–".into()), |(p, a)| {
            (format!("{:.3}×", c.pss_kib / p), format!("{:.3}×", c.avail_kib / a))
        });
        println!(
            "| {} | {} | {} | {} | {:.1} | {:.0} | {:.0} | {rp} | {ra} | {} |",
            c.what,
            c.asked,
            c.started,
            c.answered,
            c.start_wall.as_secs_f64(),
            c.pss_kib,
            c.avail_kib,
            c.limit.replace('|', "/").replace('\n', " ")
        );
    }
    println!();
    for c in &cases {
        println!("({}: PSS over {})", c.what, c.pss_over);
    }
    let _ = std::io::stdout().flush();
}
