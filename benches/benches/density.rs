//! Density and start rate (issue 19): how many idle networked `http` guests one host
//! holds, how fast they start, and what each costs, against the same server as plain
//! Linux processes (`native-http`) and a few hvt guests.
//!
//! `cargo bench -p benches --bench density` (root). In a network namespace of its own
//! the bench makes a bridge per 1,000 taps (`br0` = `10.200.0.1/16`, `br1` = `10.201.0.1/16`,
//! …: a bridge takes at most 1,024 ports) and one tap per guest (one `ip -batch` for the
//! taps, one for attaching them: timed apart), joins the namespace (`setns`) and starts
//! `tender --mem=64 --net:service0=ttN http.spt --ipv4=10.20B.X.Y/16 8080` as fast
//! as it can spawn (std's posix_spawn: no `pre_exec` hook, which would force a fork of
//! the bench per guest), without waiting for any. One thread reads every guest's stdout
//! through an epoll set;
//! a guest's start latency is spawn → its `listening on` line. Then every started guest
//! must answer one `GET /` (3 s timeouts, one retry), and the bench reads PSS/RSS
//! (`/proc/PID/smaps_rollup`) and the `/proc/meminfo` deltas (`MemAvailable`,
//! `PageTables`) per guest. A run ends at the requested count, at the time bound, or at
//! the first limit (a spawn error, a guest that exits, a guest that does not answer, low
//! memory); the table names which.
//!
//! Knobs (environment): `DENSITY_N` (guests, default 2000), `DENSITY_NATIVE_N` (default:
//! the guests reached), `DENSITY_HVT_N` (default 5), `DENSITY_MEM` (MiB, default 64),
//! `DENSITY_RAISE_NEIGH=1` raises the neighbour table's size (`gc_thresh1/2/3`, by default
//! 128/512/1024) for the run: a host-wide change (the table and its limits are shared by
//! all network namespaces), restored at the end. Not criterion: nothing here repeats.
//! No timed asserts; everything started is killed and the namespace deleted on the way
//! out, on error and on SIGINT/SIGTERM too (guards; the signals set a flag the loops
//! check); a panic kills the servers from the panic hook. The children carry no
//! `PR_SET_PDEATHSIG`: only a SIGKILL of the bench leaves them behind.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use benches::Netns;

/// The whole bench (after the build) stays under this.
const TIME_BOUND: Duration = Duration::from_secs(540);
/// Stop spawning when the host has less than this available.
const MEM_FLOOR_KIB: u64 = 2 << 20;
/// Taps per bridge: a Linux bridge takes at most 1,024 ports (`BR_MAX_PORTS`; the
/// 1,025th `master` gets `Exchange full`), so the taps go to bridges `br0`, `br1`, …
/// of this many each, bridge `b` with `10.(200+b).0.1/16` and its guests in that /16.
const PER_BRIDGE: usize = 1000;
const PORT: u16 = 8080;

type Res<T> = Result<T, String>;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// `/proc/meminfo` fields, KiB.
#[derive(Clone, Copy, Debug, Default)]
struct MemInfo {
    available: u64,
    page_tables: u64,
    slab: u64,
}

fn meminfo() -> MemInfo {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mut m = MemInfo::default();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some(key), Some(v)) = (words.next(), words.next().and_then(|v| v.parse().ok())) else { continue };
        match key {
            "MemAvailable:" => m.available = v,
            "PageTables:" => m.page_tables = v,
            "Slab:" => m.slab = v,
            _ => {}
        }
    }
    m
}

/// Per-item deltas (KiB, may be negative when other processes freed memory meanwhile).
fn per_item(before: MemInfo, after: MemInfo, n: usize) -> (f64, f64, f64) {
    let n = n.max(1) as f64;
    let d = |a: u64, b: u64| (b as f64 - a as f64) / n;
    (d(after.available, before.available), d(before.page_tables, after.page_tables), d(before.slab, after.slab))
}

/// The neighbour (ARP) table's `table_fulls` (times it was full and could not make room),
/// summed over CPUs, from `/proc/1/net/stat/arp_cache`: the initial namespace's view
/// (the table is one for all namespaces, its statistics are shown only there).
fn arp_table_fulls() -> u64 {
    let text = std::fs::read_to_string("/proc/1/net/stat/arp_cache").unwrap_or_default();
    let mut lines = text.lines();
    let Some(col) = lines.next().and_then(|h| h.split_whitespace().position(|c| c == "table_fulls")) else { return 0 };
    lines.filter_map(|l| l.split_whitespace().nth(col).and_then(|v| u64::from_str_radix(v, 16).ok())).sum()
}

/// (Pss, Rss) of PID in KiB, from `smaps_rollup`.
fn pss_rss(pid: u32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    };
    Some((field("Pss:")?, field("Rss:")?))
}

fn read_trim(path: &str) -> String {
    std::fs::read_to_string(path).map(|s| s.trim().to_owned()).unwrap_or_else(|e| format!("? ({e})"))
}

/// Runs `ip -n NS -batch FILE` with `lines`; returns its wall time.
fn ip_batch(ns: &Netns, dir: &Path, name: &str, lines: &str) -> Res<Duration> {
    let path = dir.join(name);
    std::fs::write(&path, lines).map_err(|e| format!("{}: {e}", path.display()))?;
    let start = Instant::now();
    let out = Command::new("ip")
        .args(["-n", &ns.name, "-batch"])
        .arg(&path)
        .output()
        .map_err(|e| format!("ip -batch: {e}"))?;
    let took = start.elapsed();
    if !out.status.success() {
        return Err(format!("ip -n {} -batch {}: {}", ns.name, path.display(), String::from_utf8_lossy(&out.stderr)));
    }
    Ok(took)
}

/// Enters the namespace: this thread and the children it spawns live there from now on.
fn enter(ns: &Netns) -> Res<()> {
    let path = format!("/run/netns/{}", ns.name);
    let file = File::open(&path).map_err(|e| format!("{path}: {e}"))?;
    // SAFETY: setns takes a namespace fd we own (open for the call's duration) and a
    // namespace type; it changes only this thread's network namespace.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(format!("setns {path}: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Writes a sysctl of the current network namespace (`/proc/sys/net/…`).
fn sysctl(key: &str, value: &str) -> Res<()> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    std::fs::write(&path, value).map_err(|e| format!("{path}: {e}"))
}

/// Raises the soft fd limit to the hard one; returns (soft, hard) after.
fn raise_nofile() -> (u64, u64) {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one rlimit through a valid pointer.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    lim.rlim_cur = lim.rlim_max;
    // SAFETY: setrlimit reads one valid rlimit; raising soft to hard is always allowed.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    // SAFETY: as above.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    (lim.rlim_cur, lim.rlim_max)
}

/// What the stdout watcher thread reports.
enum Event {
    Ready(usize, Duration),
    Exited(usize, String),
}

/// A thread that waits on every registered stdout pipe with one epoll set: the time to
/// the first line containing `listening on`, and any pipe that closes (the process
/// ended). epoll, not poll: with thousands of pipes, poll(2) would hand the kernel the
/// whole array on every wake-up (and scan it after); epoll reports only the ready ones.
/// Pipes stay open (and drained) until it stops, so no server writes into a closed pipe.
struct Watcher {
    tx: Option<mpsc::Sender<(usize, OwnedFd, Instant)>>,
    events: mpsc::Receiver<Event>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Pipe {
    idx: usize,
    fd: OwnedFd,
    spawned: Instant,
    ready: bool,
    text: Vec<u8>,
}

/// An epoll instance, closed on drop.
struct Epoll(OwnedFd);

impl Epoll {
    fn new() -> Res<Self> {
        // SAFETY: epoll_create1 takes only flags; on success it returns a new fd we own.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(format!("epoll_create1: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: `fd` is a fresh descriptor owned by nobody else.
        Ok(Epoll(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Watches `fd` for input (level-triggered), tagged `key`.
    fn add(&self, fd: RawFd, key: u64) -> Res<()> {
        let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: key };
        // SAFETY: both fds are open; `ev` is a valid epoll_event for the call's duration.
        if unsafe { libc::epoll_ctl(self.0.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) } != 0 {
            return Err(format!("epoll_ctl ADD: {}", std::io::Error::last_os_error()));
        }
        Ok(())
    }

    /// Waits up to `ms` for events; returns how many of `out` were filled.
    fn wait(&self, out: &mut [libc::epoll_event], ms: i32) -> usize {
        let max = i32::try_from(out.len()).unwrap_or(i32::MAX);
        // SAFETY: `out` has room for `max` events and outlives the call.
        let n = unsafe { libc::epoll_wait(self.0.as_raw_fd(), out.as_mut_ptr(), max, ms) };
        usize::try_from(n).unwrap_or(0)
    }
}

impl Watcher {
    fn new() -> Res<Self> {
        let (tx, rx) = mpsc::channel::<(usize, OwnedFd, Instant)>();
        let (etx, events) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let ep = Epoll::new()?;
        let thread = std::thread::spawn(move || {
            // Slot `k` holds the pipe whose epoll key is `k`; a closed pipe's slot is
            // emptied (its fd closed, which also removes it from the epoll set).
            let mut pipes: Vec<Option<Pipe>> = Vec::new();
            let mut evs = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
            let mut buf = [0u8; 4096];
            while !stop2.load(Ordering::Relaxed) {
                while let Ok((idx, fd, spawned)) = rx.try_recv() {
                    let key = pipes.len() as u64;
                    if let Err(e) = ep.add(fd.as_raw_fd(), key) {
                        let _ = etx.send(Event::Exited(idx, format!("watcher: {e}")));
                        continue;
                    }
                    pipes.push(Some(Pipe { idx, fd, spawned, ready: false, text: Vec::new() }));
                }
                let n = ep.wait(&mut evs, 5);
                for ev in &evs[..n] {
                    let key = usize::try_from(ev.u64).unwrap_or(usize::MAX);
                    let Some(slot) = pipes.get_mut(key) else { continue };
                    let Some(p) = slot.as_mut() else { continue };
                    // SAFETY: reads at most `buf.len()` bytes into `buf` from an fd we own;
                    // epoll said it is readable (or hung up), so this does not block.
                    let got = unsafe { libc::read(p.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                    let got = usize::try_from(got).unwrap_or(0);
                    if got == 0 {
                        let _ = etx.send(Event::Exited(p.idx, String::from_utf8_lossy(&p.text).into_owned()));
                        *slot = None;
                        continue;
                    }
                    if p.text.len() < 4096 {
                        p.text.extend_from_slice(&buf[..got]);
                    }
                    if !p.ready && p.text.windows(12).any(|w| w == b"listening on") {
                        p.ready = true;
                        let _ = etx.send(Event::Ready(p.idx, p.spawned.elapsed()));
                    }
                }
            }
        });
        Ok(Watcher { tx: Some(tx), events, stop, thread: Some(thread) })
    }

    fn watch(&self, idx: usize, fd: OwnedFd, spawned: Instant) {
        if let Some(tx) = &self.tx {
            let _ = tx.send((idx, fd, spawned));
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Pids of the servers now running, for the panic hook (see [`install_cleanup`]).
static RUNNING: Mutex<Vec<i32>> = Mutex::new(Vec::new());
/// Set by SIGINT/SIGTERM: the bench stops at its next check and unwinds through its guards.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// The children carry no `PR_SET_PDEATHSIG` (it would need a `pre_exec` hook, which forces
/// std onto fork(); see [`command`]), so the bench ends them itself on every way out it
/// can see: the guards on a returned error; SIGINT/SIGTERM set a flag that the spawn and
/// wait loops check, returning an error through the same guards; a panic (the bench
/// profile aborts on panic, so no guard runs) kills the running servers from the panic
/// hook. Only SIGKILL of the bench itself leaves them (and the namespace) behind.
fn install_cleanup() {
    // SAFETY: `on_signal` only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if let Ok(pids) = RUNNING.try_lock() {
            for &pid in pids.iter() {
                // SAFETY: kill takes a pid and a signal; these pids are our unreaped children.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        previous(info);
    }));
}

fn interrupted() -> Res<()> {
    if INTERRUPTED.load(Ordering::Relaxed) {
        Err("interrupted (SIGINT/SIGTERM): everything started is being cleaned up".into())
    } else {
        Ok(())
    }
}

/// Every process started; all killed and reaped on drop.
#[derive(Default)]
struct Procs(Vec<Child>);

impl Procs {
    fn push(&mut self, child: Child) {
        if let Ok(mut pids) = RUNNING.lock() {
            pids.push(i32::try_from(child.id()).unwrap_or(0));
        }
        self.0.push(child);
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
        }
        for c in &mut self.0 {
            let _ = c.wait();
        }
        if let Ok(mut pids) = RUNNING.lock() {
            pids.clear();
        }
    }
}

/// A command with stdout piped and stderr to `err`. No `pre_exec` hook (such as
/// `PR_SET_PDEATHSIG`): with one, std must fork(), copying this process's page tables
/// per child, and that — not the tender — bounded the start rate; without, std uses
/// posix_spawn (a vfork-style clone). How the children are ended instead: [`install_cleanup`].
fn command(program: &Path, err: &Path) -> Res<Command> {
    let mut cmd = Command::new(program);
    let err = File::create(err).map_err(|e| format!("{}: {e}", err.display()))?;
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(err);
    Ok(cmd)
}

/// Tap `i`'s bridge.
fn bridge_of(i: usize) -> usize {
    i / PER_BRIDGE
}

/// Bridge `b`'s own address, `10.(200+b).0.1`.
fn bridge_addr(b: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 200 + u8::try_from(b).unwrap_or(55).min(55), 0, 1)
}

/// Guest `i`'s address: 10.(200+b).0.2 upwards on its bridge `b`.
fn guest_addr(i: usize) -> Ipv4Addr {
    let host = u32::try_from(i % PER_BRIDGE + 2).unwrap_or(0);
    Ipv4Addr::from(u32::from(bridge_addr(bridge_of(i))) - 1 + host)
}

/// One `GET /` (HTTP/1.0): whether a `200` came back.
fn http_get(addr: SocketAddr) -> Res<()> {
    let t = Duration::from_secs(3);
    let mut s = TcpStream::connect_timeout(&addr, t).map_err(|e| format!("connect {addr}: {e}"))?;
    s.set_read_timeout(Some(t)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(t)).map_err(|e| e.to_string())?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: density\r\n\r\n").map_err(|e| format!("send {addr}: {e}"))?;
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    if reply.starts_with(b"HTTP/1.") && reply.windows(5).take(16).any(|w| w == b" 200 ") {
        Ok(())
    } else {
        Err(format!("{addr} answered {:?}", String::from_utf8_lossy(&reply[..reply.len().min(60)])))
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let last = sorted.len() - 1;
    // cast: p in [0, 1], so the product is in [0, last] and non-negative.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let i = ((last as f64) * p).round() as usize;
    sorted[i.min(last)]
}

/// One kind's result.
#[derive(Default)]
struct Run {
    what: String,
    asked: usize,
    started: usize,
    answered: usize,
    /// Spawn of the first → ready of the min(1000, started)-th, and how many that is.
    first_k: Option<(usize, Duration)>,
    /// Spawn of the first → ready of the last, and how many were ready.
    all: Option<(usize, Duration)>,
    latencies: Vec<Duration>,
    pss_kib: f64,
    rss_kib: f64,
    avail_kib: f64,
    page_tables_kib: f64,
    slab_kib: f64,
    /// Whether enough were started for the meminfo deltas to mean something.
    meminfo_valid: bool,
    neigh_fulls: u64,
    limit: String,
}

impl Run {
    fn rate(&self) -> String {
        let per_s = |(k, d): (usize, Duration)| k as f64 / d.as_secs_f64();
        match (self.first_k, self.all) {
            (Some(f), Some(a)) if a.0 > f.0 => {
                format!("{:.0} /s (first {}); {:.0} /s (all {})", per_s(f), f.0, per_s(a), a.0)
            }
            (Some(f), _) => format!("{:.0} /s (first {})", per_s(f), f.0),
            _ => "–".into(),
        }
    }
}

struct Spec<'a> {
    what: String,
    n: usize,
    program: &'a Path,
    /// Arguments of item `i`.
    args: &'a dyn Fn(usize) -> Vec<String>,
    /// Where item `i` answers HTTP.
    addr: &'a dyn Fn(usize) -> SocketAddr,
    /// Wait for each to be ready before the next (hvt: a few, one by one).
    one_by_one: bool,
    deadline: Instant,
}

/// Starts `spec.n` servers as fast as possible, then checks and measures them; kills them all before returning.
fn run(spec: &Spec, logs: &Path) -> Res<Run> {
    let mut r = Run { what: spec.what.clone(), asked: spec.n, ..Run::default() };
    let mut procs = Procs::default();
    let watcher = Watcher::new()?;
    // Let the memory of what ran before (freed after RCU grace periods) come back first.
    std::thread::sleep(Duration::from_secs(3));
    let before = meminfo();
    let fulls_before = arp_table_fulls();
    let mut spawned_at = Vec::new();
    let mut ready: HashMap<usize, Duration> = HashMap::new();
    let mut exited: Option<(usize, String)> = None;
    let mut limit = None;
    let t0 = Instant::now();
    let collect = |ev: Event, ready: &mut HashMap<usize, Duration>, exited: &mut Option<(usize, String)>| match ev {
        Event::Ready(i, d) => {
            ready.insert(i, d);
        }
        Event::Exited(i, text) => {
            if exited.is_none() {
                *exited = Some((i, text));
            }
        }
    };
    for i in 0..spec.n {
        if Instant::now() > spec.deadline {
            limit = Some(format!("time bound ({} s) while spawning", TIME_BOUND.as_secs()));
            break;
        }
        if i % 50 == 0 && meminfo().available < MEM_FLOOR_KIB {
            limit = Some(format!("memory: MemAvailable under {} GiB", MEM_FLOOR_KIB >> 20));
            break;
        }
        while let Ok(ev) = watcher.events.try_recv() {
            collect(ev, &mut ready, &mut exited);
        }
        if exited.is_some() {
            break;
        }
        interrupted()?;
        let mut cmd = command(spec.program, &logs.join(format!("{i}.err")))?;
        cmd.args((spec.args)(i));
        let start = Instant::now();
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                limit = Some(format!("spawn #{i} failed: {e}"));
                break;
            }
        };
        let Some(out) = child.stdout.take() else { return Err("no stdout pipe".into()) };
        procs.push(child);
        spawned_at.push(start);
        watcher.watch(i, OwnedFd::from(out), start);
        if spec.one_by_one {
            let wait_until = Instant::now() + Duration::from_secs(60);
            while !ready.contains_key(&i) && exited.is_none() && Instant::now() < wait_until {
                interrupted()?;
                if let Ok(ev) = watcher.events.recv_timeout(Duration::from_millis(100)) {
                    collect(ev, &mut ready, &mut exited);
                }
            }
        }
    }
    let spawned = procs.0.len();
    // Wait for the rest: every spawned one ready, or one exited, or 60 s without progress.
    let mut last_progress = Instant::now();
    while ready.len() < spawned && exited.is_none() && last_progress.elapsed() < Duration::from_secs(60) {
        interrupted()?;
        if let Ok(ev) = watcher.events.recv_timeout(Duration::from_millis(100)) {
            collect(ev, &mut ready, &mut exited);
            last_progress = Instant::now();
        }
    }
    while let Ok(ev) = watcher.events.try_recv() {
        collect(ev, &mut ready, &mut exited);
    }
    if let Some((i, text)) = &exited {
        let err = std::fs::read_to_string(logs.join(format!("{i}.err"))).unwrap_or_default();
        let mut why = format!("#{i} exited: {} {}", text.trim(), err.trim());
        why.truncate(300);
        limit.get_or_insert(why);
    }
    if ready.len() < spawned && limit.is_none() {
        limit = Some(format!("{} of {spawned} not ready 60 s after the last start", spawned - ready.len()));
    }
    r.started = ready.len();
    let mut order: Vec<Instant> = ready.iter().map(|(i, d)| spawned_at[*i] + *d).collect();
    order.sort();
    let k = order.len().min(1000);
    if k > 0 {
        r.first_k = Some((k, order[k - 1] - t0));
        r.all = Some((order.len(), order[order.len() - 1] - t0));
    }
    r.latencies = ready.values().copied().collect();
    r.latencies.sort();

    // Every ready one answers one GET (one retry).
    let mut failures = Vec::new();
    let mut ids: Vec<usize> = ready.keys().copied().collect();
    ids.sort_unstable();
    for &i in &ids {
        interrupted()?;
        if Instant::now() > spec.deadline + Duration::from_secs(30) {
            failures.push("time bound during the HTTP check".to_owned());
            break;
        }
        let addr = (spec.addr)(i);
        match http_get(addr).or_else(|_| http_get(addr)) {
            Ok(()) => r.answered += 1,
            Err(e) => failures.push(e),
        }
    }
    r.neigh_fulls = arp_table_fulls().saturating_sub(fulls_before);
    if !failures.is_empty() {
        let first = failures.first().cloned().unwrap_or_default();
        let neigh = if r.neigh_fulls > 0 {
            format!("; the host's neighbour table was full {} times (gc_thresh3)", r.neigh_fulls)
        } else {
            String::new()
        };
        limit.get_or_insert(format!("{} did not answer GET (first: {first}){neigh}", failures.len()));
    }

    let after = meminfo();
    let (mut pss, mut rss, mut counted) = (0u64, 0u64, 0usize);
    for c in &procs.0 {
        if let Some((p, s)) = pss_rss(c.id()) {
            pss += p;
            rss += s;
            counted += 1;
        }
    }
    let n = counted.max(1) as f64;
    r.pss_kib = pss as f64 / n;
    r.rss_kib = rss as f64 / n;
    (r.avail_kib, r.page_tables_kib, r.slab_kib) = per_item(before, after, spawned);
    r.meminfo_valid = spawned >= 50;
    r.limit = limit.unwrap_or_else(|| format!("none: all {} asked for started and answered", spec.n));
    drop(watcher);
    drop(procs);
    Ok(r)
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e3)
}

fn main() {
    if !benches::is_root() {
        println!("density: SKIPPED: needs root (a network namespace, a bridge and taps)");
        return;
    }
    benches::build_all();
    install_cleanup();
    if let Err(e) = bench() {
        eprintln!("density: FAILED: {e}");
        std::process::exit(1);
    }
}

fn bench() -> Res<()> {
    let deadline = Instant::now() + TIME_BOUND;
    let n = env_usize("DENSITY_N", 2000).min(60_000);
    let hvt_n = env_usize("DENSITY_HVT_N", 5);
    let mem = env_usize("DENSITY_MEM", 64);
    let raise_neigh = std::env::var_os("DENSITY_RAISE_NEIGH").is_some_and(|v| v == "1");
    let tender = benches::release_bin("tender");
    let native = benches::release_bin("native-http");
    let http_spt = benches::guest("http", "spt");
    let hvt = benches::hvt_available("http");
    let hvt_n = if hvt.is_ok() { hvt_n } else { 0 };

    let (nofile, nofile_hard) = raise_nofile();
    let logs = std::env::temp_dir().join(format!("density-{}", std::process::id()));
    std::fs::create_dir_all(&logs).map_err(|e| format!("{}: {e}", logs.display()))?;
    let _logs_guard = RemoveDir(logs.clone());

    // The neighbour table is one for all namespaces: its size limits (`gc_thresh*`)
    // exist only in the initial namespace, so raising them is a host-wide change
    // (restored on the way out).
    let gc_path = |i: u32| format!("/proc/sys/net/ipv4/neigh/default/gc_thresh{i}");
    let gc_before: Vec<String> = (1..=3).map(|i| read_trim(&gc_path(i))).collect();
    // Opened here, in the initial namespace: writes through these fds still reach its
    // table after this thread has entered ours.
    let mut gc_files = Vec::new();
    for i in 1..=3 {
        let f = std::fs::OpenOptions::new().write(true).open(gc_path(i)).map_err(|e| format!("{}: {e}", gc_path(i)))?;
        gc_files.push(f);
    }
    let gc_guard = RestoreGc(gc_files, gc_before.clone());
    let neigh = if raise_neigh {
        let want = [n + 1024, 2 * n + 2048, 4 * n + 4096];
        for (f, v) in gc_guard.0.iter().zip(want) {
            f.write_at(v.to_string().as_bytes(), 0).map_err(|e| format!("gc_thresh: {e}"))?;
        }
        format!("raised host-wide from {} for the run", gc_before.join("/"))
    } else {
        "kernel default".to_owned()
    };
    let gc = (1..=3).map(|i| read_trim(&gc_path(i))).collect::<Vec<_>>();
    let ns = Netns::new("density")?;
    enter(&ns)?;
    // No IPv6 on the taps (no DAD, no router solicitations from 2,000 links).
    sysctl("net.ipv6.conf.all.disable_ipv6", "1")?;
    sysctl("net.ipv6.conf.default.disable_ipv6", "1")?;
    let taps = n + hvt_n;
    let bridges = taps.div_ceil(PER_BRIDGE).max(1);
    if bridges > 56 {
        return Err(format!("{taps} taps need {bridges} bridges: at most 56 (10.200-255.0.0/16); lower DENSITY_N"));
    }
    for b in 0..bridges {
        let name = format!("br{b}");
        ns.ip(&["link", "add", &name, "type", "bridge"])?;
        ns.ip(&["addr", "add", &format!("{}/16", bridge_addr(b)), "dev", &name])?;
        ns.ip(&["link", "set", &name, "up"])?;
    }

    // Taps: one batch creates them, one attaches them to their bridge and sets them up.
    let tap = |i: usize| if i < n { format!("tt{i}") } else { format!("hv{}", i - n) };
    let (mut create, mut attach) = (String::new(), String::new());
    for i in 0..taps {
        let _ = writeln!(create, "tuntap add {} mode tap", tap(i));
        let _ = writeln!(attach, "link set {} master br{} up", tap(i), bridge_of(i));
    }
    let m0 = meminfo();
    let t_create = ip_batch(&ns, &logs, "create.batch", &create)?;
    let t_attach = ip_batch(&ns, &logs, "attach.batch", &attach)?;
    let (tap_avail, tap_pt, tap_slab) = per_item(m0, meminfo(), taps);
    println!(
        "density: {taps} taps: create {:.0} ms, attach+up {:.0} ms ({:.2} + {:.2} ms per tap); {:.0} KiB MemAvailable per tap",
        t_create.as_secs_f64() * 1e3,
        t_attach.as_secs_f64() * 1e3,
        t_create.as_secs_f64() * 1e3 / taps.max(1) as f64,
        t_attach.as_secs_f64() * 1e3 / taps.max(1) as f64,
        tap_avail
    );

    let mut runs = Vec::new();
    let guest_args = |i: usize| {
        vec![
            format!("--mem={mem}"),
            format!("--net:service0=tt{i}"),
            http_spt.display().to_string(),
            format!("--ipv4={}/16", guest_addr(i)),
            PORT.to_string(),
        ]
    };
    let guest_sock = |i: usize| SocketAddr::from((guest_addr(i), PORT));
    println!("density: starting up to {n} spt http guests");
    let spt = run(
        &Spec {
            what: format!("tender spt, http.spt --mem={mem}"),
            n,
            program: &tender,
            args: &guest_args,
            addr: &guest_sock,
            one_by_one: false,
            deadline: deadline - Duration::from_secs(150),
        },
        &logs,
    )?;
    println!("density: spt: {} started, {} answered; {}", spt.started, spt.answered, spt.limit);
    let native_n = env_usize("DENSITY_NATIVE_N", spt.started.max(1)).min(20_000);
    runs.push(spt);

    let native_port = |i: usize| 10_000 + u16::try_from(i).unwrap_or(0);
    let native_args = |i: usize| vec![format!("{}:{}", bridge_addr(0), native_port(i))];
    let native_sock = |i: usize| SocketAddr::from((bridge_addr(0), native_port(i)));
    println!("density: starting up to {native_n} native-http processes");
    let nat = run(
        &Spec {
            what: "native-http process (one port each on 10.200.0.1)".into(),
            n: native_n,
            program: &native,
            args: &native_args,
            addr: &native_sock,
            one_by_one: false,
            deadline: deadline - Duration::from_secs(60),
        },
        &logs,
    )?;
    println!("density: native: {} started, {} answered; {}", nat.started, nat.answered, nat.limit);
    runs.push(nat);

    let docker_skip = "docker+runc: see `cargo bench -p tender-oci --bench density` (the private dockerd harness \
                       is tender-oci's test module, tender-oci/tests/common): docker+runc and docker+tender-oci \
                       containers and direct spt guests side by side, memory per server and the ratios";
    println!("density: {docker_skip}");

    match &hvt {
        Ok(hvt_path) => {
            let hvt_args = |i: usize| {
                let i = n + i;
                vec![
                    format!("--mem={mem}"),
                    format!("--net:service0=hv{}", i - n),
                    hvt_path.display().to_string(),
                    format!("--ipv4={}/16", guest_addr(i)),
                    PORT.to_string(),
                ]
            };
            let hvt_sock = |i: usize| SocketAddr::from((guest_addr(n + i), PORT));
            let h = run(
                &Spec {
                    what: format!("tender hvt, http.hvt --mem={mem} (one by one)"),
                    n: hvt_n,
                    program: &tender,
                    args: &hvt_args,
                    addr: &hvt_sock,
                    one_by_one: true,
                    deadline,
                },
                &logs,
            )?;
            println!("density: hvt: {} started, {} answered; {}", h.started, h.answered, h.limit);
            runs.push(h);
        }
        Err(why) => println!("density: hvt SKIPPED: {why}"),
    }

    let pid_max = read_trim("/proc/sys/kernel/pid_max");
    let threads_max = read_trim("/proc/sys/kernel/threads-max");
    println!(
        "\ndensity: idle http servers started as fast as spawn allows, one network namespace, {bridges} bridge(s) \
         of ≤ {PER_BRIDGE} taps (a bridge takes at most 1,024 ports)"
    );
    println!(
        "(start = spawn → `listening on`; rate = first-k ready over wall time from the first spawn; memory per \
         server: PSS/RSS from smaps_rollup, MemAvailable/PageTables/Slab deltas from /proc/meminfo over the run; \
         host shared with other work, so the meminfo deltas are approximate)"
    );
    println!(
        "(limits: RLIMIT_NOFILE {nofile}/{nofile_hard}, pid_max {pid_max}, threads-max {threads_max}, neighbour \
         gc_thresh1/2/3 {} ({neigh}), IPv6 off in the namespace)",
        gc.join("/")
    );
    println!(
        "(taps: {taps} created in {:.0} ms + attached/up in {:.0} ms = {:.2} ms per tap; {:.1} KiB MemAvailable, \
         {:.1} KiB Slab, {:.2} KiB PageTables per tap)",
        t_create.as_secs_f64() * 1e3,
        t_attach.as_secs_f64() * 1e3,
        (t_create + t_attach).as_secs_f64() * 1e3 / taps.max(1) as f64,
        tap_avail,
        tap_slab,
        tap_pt
    );
    println!("\n| server | asked | started | answered GET | starts/s | start p50 ms | start p99 ms | ended by |");
    println!("|---|---|---|---|---|---|---|---|");
    for r in &runs {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r.what,
            r.asked,
            r.started,
            r.answered,
            r.rate(),
            ms(percentile(&r.latencies, 0.5)),
            ms(percentile(&r.latencies, 0.99)),
            r.limit.replace('|', "/").replace('\n', " ")
        );
    }
    println!();
    for r in &runs {
        println!("({}: neighbour table full {} times during the run)", r.what, r.neigh_fulls);
    }
    let base = runs.get(1).map(|r| r.pss_kib.max(1.0));
    println!("\n| server (per server) | PSS KiB | RSS KiB | MemAvailable drop KiB | PageTables KiB | Slab KiB | PSS × native |");
    println!("|---|---|---|---|---|---|---|");
    for r in &runs {
        let ratio = base.map_or("–".into(), |b| format!("{:.2}×", r.pss_kib / b));
        let kernel = if r.meminfo_valid {
            format!("{:.0} | {:.1} | {:.1}", r.avail_kib, r.page_tables_kib, r.slab_kib)
        } else {
            "– (too few to see over the host's noise) | – | –".into()
        };
        println!("| {} | {:.0} | {:.0} | {kernel} | {ratio} |", r.what, r.pss_kib, r.rss_kib);
    }
    println!("\n{docker_skip}");
    drop(ns);
    Ok(())
}

/// Puts `gc_thresh1/2/3` (these files, opened in the initial namespace) back to these values on drop.
struct RestoreGc(Vec<File>, Vec<String>);

impl Drop for RestoreGc {
    fn drop(&mut self) {
        for (f, v) in self.0.iter().zip(&self.1) {
            let _ = f.write_at(v.as_bytes(), 0);
        }
    }
}

/// Removes the log directory on drop.
struct RemoveDir(PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
