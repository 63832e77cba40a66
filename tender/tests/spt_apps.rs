//! The networked guests (`kv`, `http`) on the spt backend, over a real tap in a
//! private network namespace: smoltcp in the guest, the kernel's TCP on the
//! other side. Driven by clients no one here wrote (`redis-cli`,
//! `redis-benchmark`, `wrk`, `curl`) and by small Rust clients (pipelining,
//! 10,000 connections at once, 100,000 connections one request each, slow
//! clients, memory exhaustion). Needs root, `ip`, redis-tools, wrk and curl.
//! One test runs the same guests' hvt builds (needs /dev/kvm). Every load is
//! bounded in count and time and stays inside the test's own namespace.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{have, is_root, require, tender, Backend};

/// A network namespace with one tap (host side addressed), removed on drop.
struct Netns {
    name: String,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip runs");
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl Netns {
    fn with_tap(tag: &str, tap: &str, host_addr: &str) -> Self {
        let name = format!("tender-apps-{}-{tag}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        ip(&["netns", "add", &name]);
        let ns = Netns { name };
        for args in [
            vec!["link", "set", "lo", "up"],
            vec!["tuntap", "add", tap, "mode", "tap"],
            vec!["addr", "add", host_addr, "dev", tap],
            vec!["link", "set", tap, "up"],
        ] {
            let mut full = vec!["-n", ns.name.as_str()];
            full.extend(args);
            ip(&full);
        }
        ns
    }

    /// A counter of `tap` in this namespace (`/sys/class/net/TAP/statistics/WHAT`).
    fn tap_stat(&self, tap: &str, what: &str) -> u64 {
        let out = self.command("cat").arg(format!("/sys/class/net/{tap}/statistics/{what}")).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().parse().expect("tap statistic")
    }

    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// Runs `f` on a thread that has joined this namespace (a thread's sockets
    /// belong to its network namespace, so the test's clients can reach the guest).
    fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        self.spawn(f).join().expect("client thread")
    }

    /// As [`Netns::run`], without waiting for the thread.
    fn spawn<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> std::thread::JoinHandle<T> {
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::spawn(move || {
            use std::os::fd::AsRawFd;
            let ns = std::fs::File::open(&path).expect("netns file");
            // SAFETY: setns on a namespace fd we hold open; it changes only this
            // thread's network namespace, which is what we want.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

/// A running guest; killed on drop. Output past the ready line arrives on `lines`.
struct Guest {
    child: Child,
    first_line: String,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Guest {
    /// Starts `tender --net:service0=TAP NAME.spt ARGS` in `ns` and waits for
    /// its "listening on" line.
    fn start(ns: &Netns, tap: &str, name: &str, args: &[&str]) -> Self {
        Self::start_on(Backend::Spt, ns, tap, name, args)
    }

    /// As [`Guest::start`], with the guest built for `backend`.
    fn start_on(backend: Backend, ns: &Netns, tap: &str, name: &str, args: &[&str]) -> Self {
        Self::start_with(backend, 64, ns, tap, name, args)
    }

    /// As [`Guest::start_on`], with `mem_mib` MiB of guest memory.
    fn start_with(backend: Backend, mem_mib: u32, ns: &Netns, tap: &str, name: &str, args: &[&str]) -> Self {
        Self::start_full(backend, mem_mib, &[], ns, tap, name, args)
    }

    /// As [`Guest::start_with`], with more tender options (e.g. a block device).
    fn start_full(
        backend: Backend,
        mem_mib: u32,
        tender_args: &[&str],
        ns: &Netns,
        tap: &str,
        name: &str,
        args: &[&str],
    ) -> Self {
        let mut child = ns
            .command(tender())
            .args([&format!("--mem={mem_mib}"), &format!("--net:service0={tap}")])
            .args(tender_args)
            .arg(backend.guest(name))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("tender starts");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut seen = String::new();
        let mut line = String::new();
        while out.read_line(&mut line).unwrap_or(0) > 0 {
            seen.push_str(&line);
            if line.contains("listening on") {
                // Keep draining in the background so the guest never blocks on stdout.
                let (tx, lines) = std::sync::mpsc::channel();
                std::thread::spawn(move || {
                    for line in out.lines().map_while(Result::ok) {
                        let _ = tx.send(line);
                    }
                });
                return Guest { child, first_line: seen, lines };
            }
            line.clear();
        }
        let status = child.wait().unwrap();
        panic!("{name} exited ({status}) before listening:\n{seen}");
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Guest {
    /// Still running (did not die under the load)?
    fn assert_alive(&mut self) {
        assert!(self.child.try_wait().unwrap().is_none(), "the guest exited: {:?}", self.child.try_wait());
    }
}

fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(10)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

fn resp(args: &[&str]) -> Vec<u8> {
    let mut v = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        v.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    v
}

/// Reads exactly `expect.len()` bytes and compares.
fn expect_bytes(s: &mut TcpStream, expect: &[u8]) {
    let mut got = vec![0u8; expect.len()];
    s.read_exact(&mut got).unwrap_or_else(|e| panic!("reading {:?}: {e}", String::from_utf8_lossy(expect)));
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(expect));
}

fn can_run() -> bool {
    require("root", is_root()) && require("ip (iproute2)", have("ip"))
}

#[test]
fn kv_answers_redis_cli() {
    if !can_run() || !require("redis-cli (redis-tools)", have("redis-cli")) {
        return;
    }
    let ns = Netns::with_tap("kvcli", "tapkv0", "10.14.0.1/24");
    let g = Guest::start(&ns, "tapkv0", "kv", &["--ipv4=10.14.0.2/24", "--ipv4-gateway=10.14.0.1"]);
    assert!(g.first_line.contains("10.14.0.2:6379"), "{}", g.first_line);
    let cli = |args: &[&str]| -> String {
        let out = ns.command("redis-cli").args(["-h", "10.14.0.2"]).args(args).output().expect("redis-cli");
        assert!(out.status.success(), "redis-cli {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim_end().to_owned()
    };
    assert_eq!(cli(&["PING"]), "PONG");
    assert_eq!(cli(&["SET", "greeting", "hello world"]), "OK");
    assert_eq!(cli(&["GET", "greeting"]), "hello world");
    assert_eq!(cli(&["INCR", "counter"]), "1");
    assert_eq!(cli(&["INCR", "counter"]), "2");
    assert_eq!(cli(&["EXISTS", "greeting", "counter", "nothing"]), "2");
    assert_eq!(cli(&["DBSIZE"]), "2");
    assert_eq!(cli(&["DEL", "greeting"]), "1");
    assert_eq!(cli(&["GET", "greeting"]), "");
    assert_eq!(cli(&["DBSIZE"]), "1");
    assert!(cli(&["INCR"]).contains("wrong number of arguments"));
}

/// A tap's largest MTU (65535 with the Ethernet header; `ip` refuses more):
/// the guest takes it, a 1 MB value goes in and comes back intact, and the
/// guest's frames are that large (the tap's average received frame).
#[test]
fn kv_on_a_tap_of_the_largest_mtu() {
    if !can_run() {
        return;
    }
    let ns = Netns::with_tap("kvmtu", "tapkvmtu", "10.14.9.1/24");
    ip(&["-n", &ns.name, "link", "set", "tapkvmtu", "mtu", "65521"]);
    let _g = Guest::start(&ns, "tapkvmtu", "kv", &["--ipv4=10.14.9.2/24"]);
    let stat = |what: &str| ns.tap_stat("tapkvmtu", what);
    let before = (stat("rx_bytes"), stat("rx_packets"));
    let value: String = (b'a'..=b'z').cycle().take(1 << 20).map(char::from).collect();
    ns.run(move || {
        let mut s = connect("10.14.9.2:6379");
        s.write_all(&resp(&["SET", "big", &value])).unwrap();
        expect_bytes(&mut s, b"+OK\r\n");
        s.write_all(&resp(&["GET", "big"])).unwrap();
        expect_bytes(&mut s, format!("${}\r\n{value}\r\n", value.len()).as_bytes());
    });
    let (bytes, frames) = (stat("rx_bytes") - before.0, stat("rx_packets") - before.1);
    assert!(bytes > 1 << 20, "the guest sent {bytes} bytes");
    // 1 MiB in frames of up to 65535 bytes: ~17 of them plus ACKs; at MTU 1500 it would be ~720.
    assert!(bytes / frames > 9000, "{frames} frames for {bytes} bytes: the guest did not use the MTU");
}

/// TCP segmentation offload of the tap (`ETHTOOL_GTSO`): 1 if on. Runs in the
/// calling thread's network namespace.
fn tap_tso(tap: &str) -> u32 {
    use std::os::fd::AsRawFd;
    const SIOCETHTOOL: libc::c_ulong = 0x8946;
    const ETHTOOL_GTSO: u32 = 0x1e;
    #[repr(C)]
    struct EthtoolValue {
        cmd: u32,
        data: u32,
    }
    let mut value = EthtoolValue { cmd: ETHTOOL_GTSO, data: u32::MAX };
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("a socket for the ioctl");
    // SAFETY: an all-zero ifreq is valid; the name is copied into its 16 bytes below.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(tap.bytes().take(15)) {
        *dst = src as libc::c_char;
    }
    req.ifr_ifru.ifru_data = (&raw mut value).cast();
    // SAFETY: SIOCETHTOOL reads the ifreq and, through ifru_data, writes one
    // `struct ethtool_value` (cmd, data: two u32), which `value` is and outlives the call.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCETHTOOL, &mut req) };
    assert_eq!(rc, 0, "ETHTOOL_GTSO on {tap}: {}", std::io::Error::last_os_error());
    value.data
}

/// A guest that declares `net service0 with vnet_hdr` (kv) gets the tap with
/// virtio-net headers and TCP segmentation offload at the default MTU of 1500: a
/// 1 MB value moves both ways in 64 KiB segments, not 1500-byte frames, and comes
/// back intact. A guest that does not ask (`net`, Solo5's plain frames) gets the
/// same tap with the offload switched off again, and answers pings of the MTU.
#[test]
fn tcp_offload_only_for_guests_that_ask() {
    if !can_run() {
        return;
    }
    let ns = Netns::with_tap("tso", "taptso", "10.14.10.1/24");
    let g = Guest::start(&ns, "taptso", "kv", &["--ipv4=10.14.10.2/24"]);
    assert!(g.first_line.contains("MTU 1500, TCP offload (vnet_hdr)"), "{}", g.first_line);
    assert_eq!(ns.run(|| tap_tso("taptso")), 1, "the tap offloads segmentation while kv runs");
    let stat = |what: &str| ns.tap_stat("taptso", what);
    let before = ["rx_bytes", "rx_packets", "tx_bytes", "tx_packets"].map(stat);
    // Not periodic: a segment put in the wrong place would not compare equal.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let value: String = (0..1 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'!' + (x % 90) as u8)
        })
        .collect();
    ns.run(move || {
        let mut s = connect("10.14.10.2:6379");
        s.write_all(&resp(&["SET", "big", &value])).unwrap();
        expect_bytes(&mut s, b"+OK\r\n");
        s.write_all(&resp(&["GET", "big"])).unwrap();
        expect_bytes(&mut s, format!("${}\r\n{value}\r\n", value.len()).as_bytes());
    });
    let after = ["rx_bytes", "rx_packets", "tx_bytes", "tx_packets"].map(stat);
    let (sent, sent_frames) = (after[0] - before[0], after[1] - before[1]);
    let (got, got_frames) = (after[2] - before[2], after[3] - before[3]);
    assert!(sent > 1 << 20 && got > 1 << 20, "guest sent {sent} and received {got} bytes");
    // 1 MiB in 1500-byte frames would be ~720 frames (1,450 bytes each) per direction.
    assert!(sent / sent_frames > 9000, "the guest sent {sent} bytes in {sent_frames} frames: no segmentation offload");
    assert!(got / got_frames > 9000, "the guest received {got} bytes in {got_frames} frames: no offload");
    drop(g);

    let plain = ns
        .command(tender())
        .args(["--mem=8", "--net:service0=taptso"])
        .arg(Backend::Spt.guest("net"))
        .args(["10.14.10.2", "3", "30"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("tender starts");
    let mut tso = u32::MAX;
    for _ in 0..50 {
        // The plain guest has attached once the tap is running with a reader again.
        std::thread::sleep(Duration::from_millis(100));
        tso = ns.run(|| tap_tso("taptso"));
        if tso == 0 {
            break;
        }
    }
    let ping =
        ns.command("ping").args(["-c", "3", "-W", "5", "-s", "1472", "-M", "do", "10.14.10.2"]).output().unwrap();
    let out = plain.wait_with_output().unwrap();
    assert_eq!(tso, 0, "the tap still offloads segmentation for a guest that did not ask");
    assert!(ping.status.success(), "ping of the MTU: {}", String::from_utf8_lossy(&ping.stdout));
    assert!(out.status.success(), "net guest: {}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn kv_pipelining_and_fifty_clients() {
    if !can_run() {
        return;
    }
    let ns = Netns::with_tap("kvpipe", "tapkv1", "10.14.1.1/24");
    let _g = Guest::start(&ns, "tapkv1", "kv", &["--ipv4=10.14.1.2/24"]);
    ns.run(|| {
        // 200 pipelined commands in one write; replies in order.
        let mut s = connect("10.14.1.2:6379");
        let (mut req, mut want) = (Vec::new(), Vec::new());
        for i in 0..100 {
            let (k, v) = (format!("key:{i}"), format!("value-{i}-{}", "x".repeat(i)));
            req.extend(resp(&["SET", &k, &v]));
            req.extend(resp(&["GET", &k]));
            want.extend_from_slice(b"+OK\r\n");
            want.extend_from_slice(format!("${}\r\n{v}\r\n", v.len()).as_bytes());
        }
        req.extend_from_slice(b"PING\r\n"); // inline, as redis-benchmark's PING_INLINE
        want.extend_from_slice(b"+PONG\r\n");
        s.write_all(&req).unwrap();
        expect_bytes(&mut s, &want);

        // 50 connections at once, all open together, incrementing one counter.
        let mut clients: Vec<TcpStream> = (0..50).map(|_| connect("10.14.1.2:6379")).collect();
        for round in 0..4 {
            for c in &mut clients {
                c.write_all(&resp(&["INCR", "shared"])).unwrap();
            }
            for c in &mut clients {
                let mut line = [0u8; 1];
                let mut got = Vec::new();
                while got.last() != Some(&b'\n') {
                    c.read_exact(&mut line).unwrap();
                    got.push(line[0]);
                }
                assert!(got.starts_with(b":"), "round {round}: {:?}", String::from_utf8_lossy(&got));
            }
        }
        let mut s = connect("10.14.1.2:6379");
        s.write_all(&resp(&["GET", "shared"])).unwrap();
        expect_bytes(&mut s, b"$3\r\n200\r\n");
        s.write_all(&resp(&["DEL", "shared", "key:0", "missing"])).unwrap();
        expect_bytes(&mut s, b":2\r\n");

        // A protocol error is answered, then the server closes the connection.
        s.write_all(b"*1\r\n+PING\r\n").unwrap();
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).unwrap();
        assert!(rest.starts_with(b"-ERR Protocol error"), "{:?}", String::from_utf8_lossy(&rest));
    });
}

/// CPU time (user + system) a process has used, in clock ticks (`/proc/PID/stat`).
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc/PID/stat");
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat[stat.rfind(')').expect("comm") + 2..].split(' ').collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// The server loop keeps polling for a moment after frames came in (busy
/// poll), then waits: after a burst of requests, two quiet seconds cost the
/// guest (almost) no CPU time. A poll that never ends would cost it a CPU.
#[test]
fn an_idle_guest_waits_after_a_burst() {
    if !can_run() {
        return;
    }
    let ns = Netns::with_tap("kvidle", "tapkvidle", "10.14.21.1/24");
    let g = Guest::start(&ns, "tapkvidle", "kv", &["--ipv4=10.14.21.2/24"]);
    // The connection stays open, idle, as a pooled client's would.
    let _idle_connection = ns.run(|| {
        let mut s = connect("10.14.21.2:6379");
        for i in 0..500 {
            s.write_all(&resp(&["SET", "k", &i.to_string()])).unwrap();
            expect_bytes(&mut s, b"+OK\r\n");
        }
        s
    });
    let pid = g.child.id();
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_ticks(pid) - before;
    // SAFETY: sysconf has no preconditions.
    let hz = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).expect("clock ticks per second");
    // A guest that never stopped polling would use most of 2 s of CPU even
    // on a busy host; a waiting one wakes once a second and for TCP timers.
    assert!(used * 10 <= hz * 2, "the idle guest used {used} ticks ({hz}/s) of CPU in 2 s: it does not wait");
}

#[test]
fn http_keep_alive_and_pipelining() {
    if !can_run() {
        return;
    }
    let ns = Netns::with_tap("http", "taphttp0", "10.14.2.1/24");
    let _g = Guest::start(&ns, "taphttp0", "http", &["--ipv4=10.14.2.2/24", "8080"]);
    ns.run(|| http_session("10.14.2.2:8080"));
}

/// The same guests built for hvt: the network stack without SSE, in a VM.
#[test]
fn kv_and_http_on_hvt() {
    if !can_run() || !Backend::Hvt.available() {
        return;
    }
    let ns = Netns::with_tap("hvt", "taphvt0", "10.14.3.1/24");
    let _kv = Guest::start_on(Backend::Hvt, &ns, "taphvt0", "kv", &["--ipv4=10.14.3.2/24"]);
    ns.run(|| {
        let mut s = connect("10.14.3.2:6379");
        let mut req = resp(&["SET", "k", "on hvt"]);
        req.extend(resp(&["GET", "k"]));
        req.extend(resp(&["INCR", "n"]));
        s.write_all(&req).unwrap();
        expect_bytes(&mut s, b"+OK\r\n$6\r\non hvt\r\n:1\r\n");
    });
    drop(_kv);
    let _http = Guest::start_on(Backend::Hvt, &ns, "taphvt0", "http", &["--ipv4=10.14.3.3/24"]);
    ns.run(|| http_session("10.14.3.3:80"));
}

/// Keep-alive GETs (one by one, then pipelined), a 404, then `Connection: close`.
fn http_session(addr: &'static str) {
    let page = protocols::http::PAGE;
    let mut s = connect(addr);
    let get = b"GET / HTTP/1.1\r\nHost: guest\r\n\r\n";
    // Three requests one after another on one connection, then three pipelined.
    for _ in 0..3 {
        s.write_all(get).unwrap();
        read_response(&mut s, page);
    }
    s.write_all(&get.repeat(3)).unwrap();
    for _ in 0..3 {
        read_response(&mut s, page);
    }
    s.write_all(b"GET /nope HTTP/1.1\r\n\r\n").unwrap();
    let head = read_head(&mut s);
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    let mut body = vec![0u8; content_length(&head)];
    s.read_exact(&mut body).unwrap();
    // Connection: close ends it after the response.
    s.write_all(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    let text = String::from_utf8_lossy(&rest);
    assert!(text.starts_with("HTTP/1.1 200 OK") && text.contains("Connection: close"), "{text}");
    assert!(rest.ends_with(page));
}

fn read_head(s: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).expect("response head");
        head.push(b[0]);
    }
    String::from_utf8(head).unwrap()
}

fn content_length(head: &str) -> usize {
    let line = head.lines().find(|l| l.to_ascii_lowercase().starts_with("content-length:")).expect("Content-Length");
    line.split(':').nth(1).unwrap().trim().parse().unwrap()
}

fn read_response(s: &mut TcpStream, page: &[u8]) {
    let head = read_head(s);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(!head.contains("Connection: close"), "{head}");
    assert_eq!(content_length(&head), page.len());
    let mut body = vec![0u8; page.len()];
    s.read_exact(&mut body).unwrap();
    assert_eq!(body, page);
}

/// The address comes from the command line (the OCI runtime's form); without a
/// usable one the guest says what it wants and exits 2 before serving.
#[test]
fn bad_network_command_lines_are_refused() {
    if !can_run() {
        return;
    }
    let ns = Netns::with_tap("args", "tapargs0", "10.14.4.1/24");
    for (args, needle) in [
        (&[][..], "missing --ipv4=ADDR/PREFIX"),
        (&["6379"][..], "missing --ipv4=ADDR/PREFIX"),
        (&["--ipv4=10.14.4.2"][..], "--ipv4=10.14.4.2: expected --ipv4=A.B.C.D/PREFIX"),
        (&["--ipv4=10.14.4.2/33"][..], "expected --ipv4=A.B.C.D/PREFIX"),
        (&["--ipv4=10.14.4.2/24", "--ipv4-gateway=10.99.0.1"][..], "inside the --ipv4 subnet"),
        (&["--ipv4=10.14.4.2/24", "--ipv4=10.14.4.3/24"][..], "given twice"),
        (&["--ipv4=10.14.4.2/24", "http"][..], "bad port \"http\""),
    ] {
        let out = ns
            .command(tender())
            .args(["--mem=16", "--net:service0=tapargs0"])
            .arg(Backend::Spt.guest("kv"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("tender runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(2), "{args:?}:\n{stdout}");
        assert!(stdout.contains(needle) && stdout.contains("usage: kv --ipv4="), "{args:?}:\n{stdout}");
    }
}

/// Runs `sh -c SCRIPT` in `ns` (for `ulimit` and `timeout`); returns stdout + stderr
/// and whether it succeeded.
fn sh(ns: &Netns, script: &str) -> (bool, String) {
    let out = ns.command("sh").args(["-c", script]).stdin(Stdio::null()).output().expect("sh runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// A `wrk` run's request count; panics on any socket error or non-2xx answer.
fn wrk_without_errors(ns: &Netns, args: &str) -> u64 {
    // wrk needs a descriptor per connection; `timeout` bounds the run if the guest hangs.
    let (ok, text) = sh(ns, &format!("ulimit -n $(ulimit -Hn) && exec timeout 120 wrk {args}"));
    assert!(ok, "wrk {args}:\n{text}");
    assert!(!text.contains("Socket errors") && !text.contains("Non-2xx"), "wrk {args} saw errors:\n{text}");
    let requests = text
        .lines()
        .find_map(|l| l.trim().strip_suffix(" read").and_then(|l| l.split_whitespace().next()?.parse().ok()))
        .unwrap_or_else(|| panic!("no request count in wrk's output:\n{text}"));
    eprintln!(
        "wrk {args}: {requests} requests, {}",
        text.lines().find(|l| l.starts_with("Requests/sec")).unwrap_or("")
    );
    requests
}

/// One request on a fresh connection that the server closes (`Connection: close`).
fn one_shot(addr: &str) -> Result<(), String> {
    let mut s =
        TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(10)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: guest\r\nConnection: close\r\n\r\n").map_err(|e| e.to_string())?;
    let mut all = Vec::new();
    s.read_to_end(&mut all).map_err(|e| e.to_string())?;
    if all.starts_with(b"HTTP/1.1 200 OK\r\n") && all.ends_with(protocols::http::PAGE) {
        Ok(())
    } else {
        Err(format!("bad answer: {:?}", String::from_utf8_lossy(&all)))
    }
}

/// 100,000 requests of one connection each (the server closes every one first,
/// so each leaves a TIME-WAIT behind in the guest), then the same with `wrk`.
#[test]
fn http_hundred_thousand_connections_one_request_each() {
    if !can_run() || !require("wrk", have("wrk")) {
        return;
    }
    let ns = Netns::with_tap("http1shot", "taph1shot", "10.14.10.1/24");
    let mut g = Guest::start(&ns, "taph1shot", "http", &["--ipv4=10.14.10.2/24"]);
    const TOTAL: usize = 100_000;
    const THREADS: usize = 8;
    let (done, failures, elapsed) = ns.run(|| {
        let start = std::time::Instant::now();
        let deadline = start + Duration::from_secs(300);
        let workers: Vec<_> = (0..THREADS)
            .map(|_| {
                std::thread::spawn(move || {
                    let (mut done, mut failures) = (0, Vec::new());
                    while done < TOTAL / THREADS && std::time::Instant::now() < deadline {
                        if let Err(e) = one_shot("10.14.10.2:80") {
                            failures.push(e);
                        }
                        done += 1;
                    }
                    (done, failures)
                })
            })
            .collect();
        let (mut done, mut failures) = (0, Vec::new());
        for w in workers {
            // The namespace is inherited: threads spawned here start in it.
            let (d, f) = w.join().unwrap();
            done += d;
            failures.extend(f);
        }
        (done, failures, start.elapsed())
    });
    eprintln!("{done} connection-per-request requests in {elapsed:.1?}, {} failed", failures.len());
    assert!(failures.is_empty(), "{} of {done} failed, e.g. {:?}", failures.len(), &failures[..failures.len().min(5)]);
    assert_eq!(done, TOTAL, "only {done} requests within the time bound ({elapsed:?})");
    wrk_without_errors(&ns, "-t 2 -c 50 -d 5s -H 'Connection: close' http://10.14.10.2/");
    g.assert_alive();
}

/// `wrk -c 1000` with keep-alive; then 10,000 connections open at once in a
/// 256 MiB guest, each answered.
#[test]
fn http_thousands_of_concurrent_connections() {
    if !can_run() || !require("wrk", have("wrk")) {
        return;
    }
    let ns = Netns::with_tap("httpmany", "taphmany", "10.14.11.1/24");
    let mut g = Guest::start_with(Backend::Spt, 256, &ns, "taphmany", "http", &["--ipv4=10.14.11.2/24"]);
    assert!(wrk_without_errors(&ns, "-t 2 -c 1000 -d 5s http://10.14.11.2/") > 1000);
    const CONNS: usize = 10_000;
    ns.run(|| {
        // The soft descriptor limit up to the hard one (which a sandbox may cap).
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit fills the struct we pass.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) }, 0);
        assert!(limit.rlim_max >= CONNS as u64 + 1000, "hard RLIMIT_NOFILE {} < {CONNS} connections", limit.rlim_max);
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: setrlimit with a valid struct; raises this process's soft limit.
        let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
        assert_eq!(rc, 0, "setrlimit: {}", std::io::Error::last_os_error());
        let mut conns = Vec::with_capacity(CONNS);
        for i in 0..CONNS {
            match TcpStream::connect_timeout(&"10.14.11.2:80".parse().unwrap(), Duration::from_secs(30)) {
                Ok(s) => conns.push(s),
                Err(e) => panic!("connection {i} of {CONNS}: {e}"),
            }
        }
        for s in &mut conns {
            s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
            s.write_all(b"GET / HTTP/1.1\r\nHost: guest\r\n\r\n").unwrap();
        }
        for (i, s) in conns.iter_mut().enumerate() {
            let head = read_head(s);
            assert!(head.starts_with("HTTP/1.1 200 OK"), "connection {i}: {head}");
            let mut body = vec![0u8; content_length(&head)];
            s.read_exact(&mut body).unwrap();
        }
        // All still open: one more request on the first and the last.
        for i in [0, CONNS - 1] {
            conns[i].write_all(b"GET / HTTP/1.1\r\nHost: guest\r\n\r\n").unwrap();
            read_response(&mut conns[i], protocols::http::PAGE);
        }
    });
    g.assert_alive();
}

/// HTTP/1.0 keep-alive (curl), size limits (431, 413), and a slow client timed
/// out with 408 while others are served.
#[test]
fn http_keep_alive_limits_and_slow_clients() {
    if !can_run() || !require("curl", have("curl")) {
        return;
    }
    let ns = Netns::with_tap("httplim", "taphlim", "10.14.12.1/24");
    let _g = Guest::start(&ns, "taphlim", "http", &["--ipv4=10.14.12.2/24", "--request-timeout=2"]);
    // curl -0: HTTP/1.0; asking for keep-alive, it must get it and reuse the connection.
    let (ok, text) = sh(
        &ns,
        "timeout 60 curl -sS -v -0 -H 'Connection: keep-alive' http://10.14.12.2/ http://10.14.12.2/index.html 2>&1",
    );
    assert!(ok, "{text}");
    assert_eq!(text.matches("< Connection: keep-alive").count(), 2, "{text}");
    assert!(text.contains("Re-using existing connection"), "{text}");
    // Plain HTTP/1.0: answered, then closed by the server.
    let (ok, text) = sh(&ns, "timeout 60 curl -sS -v -0 http://10.14.12.2/ 2>&1");
    assert!(ok && text.contains("< Connection: close"), "{text}");
    ns.run(|| {
        // Too large a head: 431; too large a body: 413; both close.
        let mut s = connect("10.14.12.2:80");
        let mut req = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
        req.extend(std::iter::repeat_n(b'a', 9000));
        req.extend_from_slice(b"\r\n\r\n");
        s.write_all(&req).unwrap();
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).unwrap();
        assert!(rest.starts_with(b"HTTP/1.1 431 "), "{:?}", String::from_utf8_lossy(&rest));
        let mut s = connect("10.14.12.2:80");
        s.write_all(b"POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n").unwrap();
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).unwrap();
        assert!(rest.starts_with(b"HTTP/1.1 413 "), "{:?}", String::from_utf8_lossy(&rest));

        // Slowloris: 20 clients send half a head and stop; others are served at once,
        // and the slow ones get 408 after the request timeout (2 s).
        let start = std::time::Instant::now();
        let mut slow: Vec<TcpStream> = (0..20).map(|_| connect("10.14.12.2:80")).collect();
        for s in &mut slow {
            s.write_all(b"GET / HTTP/1.1\r\nHost: gu").unwrap();
        }
        http_session("10.14.12.2:80");
        for s in &mut slow {
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            let mut rest = Vec::new();
            s.read_to_end(&mut rest).unwrap();
            assert!(rest.starts_with(b"HTTP/1.1 408 Request Timeout\r\n"), "{:?}", String::from_utf8_lossy(&rest));
        }
        assert!(start.elapsed() >= Duration::from_secs(2), "408 before the timeout: {:?}", start.elapsed());
    });
}

/// `redis-benchmark -c 500` over set, get, incr and mset, every request answered;
/// the INCR count checked; then 100 KB values.
#[test]
fn kv_redis_benchmark_five_hundred_clients() {
    if !can_run() || !require("redis-benchmark (redis-tools)", have("redis-benchmark")) {
        return;
    }
    let ns = Netns::with_tap("kvbench", "tapkvb", "10.14.13.1/24");
    let mut g = Guest::start_with(Backend::Spt, 128, &ns, "tapkvb", "kv", &["--ipv4=10.14.13.2/24"]);
    let (ok, text) = sh(
        &ns,
        "ulimit -n $(ulimit -Hn) && timeout 300 redis-benchmark -h 10.14.13.2 -c 500 -n 20000 -t set,get,incr,mset --csv",
    );
    assert!(ok, "redis-benchmark failed:\n{text}");
    for test in ["\"SET\"", "\"GET\"", "\"INCR\"", "\"MSET (10 keys)\""] {
        assert!(text.lines().any(|l| l.starts_with(test)), "no {test} row:\n{text}");
    }
    assert!(!text.to_lowercase().contains("error"), "{text}");
    eprintln!("{text}");
    let cli = |args: &[&str]| -> String {
        let out = ns.command("redis-cli").args(["-h", "10.14.13.2"]).args(args).output().expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).trim_end().to_owned()
    };
    // redis-benchmark's INCR test increments one key (no -r): every INCR counted once.
    assert_eq!(cli(&["GET", "counter:__rand_int__"]), "20000");
    assert_eq!(cli(&["STRLEN", "key:__rand_int__"]), "3"); // -d 3, random bytes
    let (ok, text) = sh(&ns, "timeout 300 redis-benchmark -h 10.14.13.2 -c 10 -n 1000 -d 100000 -t set,get --csv");
    assert!(ok && text.lines().filter(|l| l.starts_with("\"SET\"") || l.starts_with("\"GET\"")).count() == 2, "{text}");
    eprintln!("100 KB values:\n{text}");
    assert_eq!(cli(&["STRLEN", "key:__rand_int__"]), "100000");
    g.assert_alive();
}

/// What redis-cli users do: transactions, counters, expiry, handshakes, INFO.
#[test]
fn kv_transactions_expiry_and_client_handshakes() {
    if !can_run() || !require("redis-cli (redis-tools)", have("redis-cli")) {
        return;
    }
    let ns = Netns::with_tap("kvtx", "tapkvtx", "10.14.14.1/24");
    let _g = Guest::start(&ns, "tapkvtx", "kv", &["--ipv4=10.14.14.2/24"]);
    // Several commands on one connection: redis-cli reading them from stdin.
    let session = |script: &str| -> String {
        let mut child = ns
            .command("redis-cli")
            .args(["-h", "10.14.14.2"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("redis-cli");
        child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let out = session("SET n 10\nMULTI\nINCR n\nINCRBY n 5\nDECRBY n 2\nGET n\nEXEC\nGET n\n");
    assert_eq!(out, "OK\nOK\nQUEUED\nQUEUED\nQUEUED\nQUEUED\n11\n16\n14\n14\n14\n", "{out}");
    let out = session("MULTI\nSET a 1\nNOSUCH\nEXEC\nEXISTS a\nDISCARD\n");
    assert!(out.contains("EXECABORT Transaction discarded because of previous errors."), "{out}");
    assert!(out.contains("ERR unknown command 'NOSUCH'") && out.contains("ERR DISCARD without MULTI"), "{out}");
    let out = session("CLIENT SETNAME app-1\nCLIENT GETNAME\nSELECT 0\nSELECT 3\nECHO hi\nPING\n");
    // redis-cli prints an empty line after an error when its output is not a terminal.
    assert_eq!(out, "OK\napp-1\nOK\nERR DB index is out of range\n\nhi\nPONG\n", "{out}");
    let out = session("SET t v PX 400\nPTTL t\nSET u v EX 100\nTTL u\nPERSIST u\nTTL u\nAPPEND u w\nSTRLEN u\nMSET x 1 y 2\nMGET x y z\nDEL x y z\n");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "OK");
    let pttl: i64 = lines[1].parse().unwrap();
    assert!((1..=400).contains(&pttl), "{out}");
    assert_eq!(&lines[2..], ["OK", "100", "1", "-1", "2", "2", "OK", "1", "2", "", "2"], "{out}");
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(session("GET t\nEXISTS t\nTTL t\nKEYS *\nDBSIZE\n"), "\n0\n-2\nn\nu\n2\n");
    let info = session("INFO\n");
    for needle in ["redis_version:", "used_memory:", "maxmemory:", "db0:keys=2,expires=0"] {
        assert!(info.contains(needle), "{needle}:\n{info}");
    }
    let out = session("HELLO 3\nHELLO 2\nCONFIG GET maxmemory-policy\nFLUSHALL\nDBSIZE\n");
    assert!(out.starts_with("NOPROTO") && out.contains("proto\n2\n") && out.contains("noeviction\nOK\n0\n"), "{out}");
}

/// A write past maxmemory is `-OOM …`; the server goes on and keeps every key.
#[test]
fn kv_out_of_memory_is_an_answer() {
    if !can_run() {
        return;
    }
    let ns = Netns::with_tap("kvoom", "tapkvoom", "10.14.15.1/24");
    let mut g = Guest::start_with(Backend::Spt, 32, &ns, "tapkvoom", "kv", &["--ipv4=10.14.15.2/24"]);
    assert!(g.first_line.contains("maxmemory"), "{}", g.first_line);
    ns.run(|| {
        let mut s = connect("10.14.15.2:6379");
        let value = "v".repeat(256 * 1024);
        let reply_line = |s: &mut TcpStream| {
            let mut got = Vec::new();
            let mut b = [0u8; 1];
            while !got.ends_with(b"\r\n") {
                s.read_exact(&mut b).unwrap();
                got.push(b[0]);
            }
            String::from_utf8(got).unwrap()
        };
        let mut stored = 0;
        let oom = loop {
            assert!(stored < 1000, "no -OOM after {stored} values of 256 KiB in a 32 MiB guest");
            s.write_all(&resp(&["SET", &format!("big{stored}"), &value])).unwrap();
            let line = reply_line(&mut s);
            if line != "+OK\r\n" {
                break line;
            }
            stored += 1;
        };
        assert_eq!(oom, "-OOM command not allowed when used memory > 'maxmemory'.\r\n");
        assert!(stored > 10, "only {stored} values fit");
        // Every stored value is intact, on this and on a new connection.
        let mut t = connect("10.14.15.2:6379");
        for i in [0, stored / 2, stored - 1] {
            t.write_all(&resp(&["GET", &format!("big{i}")])).unwrap();
            expect_bytes(&mut t, format!("${}\r\n{value}\r\n", value.len()).as_bytes());
        }
        s.write_all(&resp(&["DBSIZE"])).unwrap();
        expect_bytes(&mut s, format!(":{stored}\r\n").as_bytes());
        // Deleting makes room again.
        s.write_all(&resp(&["DEL", "big0", "big1", "big2", "big3"])).unwrap();
        expect_bytes(&mut s, b":4\r\n");
        s.write_all(&resp(&["SET", "small", "fits"])).unwrap();
        expect_bytes(&mut s, b"+OK\r\n");
    });
    g.assert_alive();
}

/// A file removed on drop.
struct TempFile(std::path::PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// kvd: acknowledged writes survive a restart (replayed from the block
/// device); a torn last record is dropped with a message, and the log goes on.
#[test]
fn kvd_writes_survive_restarts_and_a_torn_record_is_dropped() {
    if !can_run() || !require("redis-cli (redis-tools)", have("redis-cli")) {
        return;
    }
    let disk = TempFile(std::env::temp_dir().join(format!("tender-kvd-{}.img", std::process::id())));
    std::fs::write(&disk.0, vec![0u8; 4 << 20]).unwrap();
    let storage = format!("--block:storage={}", disk.0.display());
    let ns = Netns::with_tap("kvd", "tapkvd", "10.14.16.1/24");
    let start = || Guest::start_full(Backend::Spt, 64, &[&storage], &ns, "tapkvd", "kvd", &["--ipv4=10.14.16.2/24"]);
    let session = |script: &str| -> String {
        let mut child = ns
            .command("redis-cli")
            .args(["-h", "10.14.16.2"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("redis-cli");
        child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
        String::from_utf8_lossy(&child.wait_with_output().unwrap().stdout).into_owned()
    };
    let g = start();
    assert!(g.first_line.contains("replayed 0 records (0 bytes "), "{}", g.first_line);
    let out = session("SET a 1\nINCRBY n 5\nSET e x EX 100\nMULTI\nINCR n\nAPPEND a 23\nEXEC\nGET a\n");
    assert_eq!(out, "OK\n5\nOK\nOK\nQUEUED\nQUEUED\n6\n3\n123\n", "{out}");
    drop(g); // SIGKILL: nothing is flushed at exit, every reply was already durable

    let g = start();
    assert!(g.first_line.contains("replayed 4 records ("), "{}", g.first_line);
    let out = session("GET a\nGET n\nTTL e\n");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(&lines[..2], ["123", "6"], "{out}");
    assert!((1..=100).contains(&lines[2].parse::<i64>().unwrap()), "{out}");
    let log = LogState::of(&g.first_line);
    assert_eq!((log.records, log.generation), (4, 1), "{}", g.first_line);
    drop(g);

    // Tear the last record (the transaction): two bytes of its payload change.
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(&disk.0).unwrap();
        f.write_all_at(b"##", log.start + log.bytes - 6).unwrap();
    }
    let g = start();
    assert!(g.first_line.contains("dropped a torn last record (#3)"), "{}", g.first_line);
    assert!(g.first_line.contains("replayed 3 records"), "{}", g.first_line);
    assert_eq!(session("GET a\nGET n\nSET z 9\n"), "1\n5\nOK\n");
    drop(g);

    let g = start();
    assert!(g.first_line.contains("replayed 4 records") && !g.first_line.contains("torn"), "{}", g.first_line);
    assert_eq!(session("GET z\nGET a\n"), "9\n1\n");
    drop(g);

    // A file that is neither zeroed nor a kvd log is refused, not overwritten.
    let junk = b"not a kvd log, keep me!!".repeat(128); // 3072 bytes: whole blocks
    std::fs::write(&disk.0, [&junk[..], &vec![0u8; 1 << 20]].concat()).unwrap();
    let out = ns
        .command(tender())
        .args(["--mem=64", "--net:service0=tapkvd", &storage])
        .arg(Backend::Spt.guest("kvd"))
        .arg("--ipv4=10.14.16.2/24")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("neither zeroed nor a kvd log: refusing to overwrite it"), "{text}");
    assert_eq!(&std::fs::read(&disk.0).unwrap()[..junk.len()], &junk[..]);
}

/// What kvd's start-up line says about its log: `replayed R records (B bytes
/// at byte S, generation G)`.
#[derive(Debug, Clone, Copy)]
struct LogState {
    records: u64,
    bytes: u64,
    start: u64,
    generation: u64,
}

impl LogState {
    fn of(output: &str) -> Self {
        let field = |after: &str, end: char| -> u64 {
            let rest = output.split(after).nth(1).unwrap_or_else(|| panic!("no {after:?} in {output}"));
            rest.split(end).next().unwrap().trim().parse().unwrap_or_else(|_| panic!("{after:?} in {output}"))
        };
        LogState {
            records: field("replayed ", ' '),
            bytes: field("records (", ' '),
            start: field("bytes at byte ", ','),
            generation: field("generation ", ')'),
        }
    }
}

/// The superblock kvd last wrote to `disk`: (generation of the log, highest
/// generation handed out). They differ while a compaction is uncommitted.
fn superblock(disk: &std::path::Path) -> (u64, u64) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(disk).unwrap();
    let mut best = (0, 0, 0);
    for slot in 0..2u64 {
        let mut b = [0u8; 48];
        f.read_exact_at(&mut b, slot * 32 * 1024).unwrap();
        let u = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
        if &b[..4] == b"KVS1" && u(4) >= best.0 {
            best = (u(4), u(12), u(36));
        }
    }
    (best.1, best.2)
}

/// A zeroed (sparse) disk file of `bytes`, removed on drop.
fn kvd_disk(tag: &str, bytes: u64) -> TempFile {
    let disk = TempFile(std::env::temp_dir().join(format!("tender-kvd-{tag}-{}.img", std::process::id())));
    let f = std::fs::File::create(&disk.0).unwrap();
    f.set_len(bytes).unwrap();
    disk
}

/// Reads one RESP reply line (`+OK`, `-ERR …`, `:1`, `$5`).
fn reply_line(r: &mut impl BufRead) -> std::io::Result<String> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    Ok(line)
}

/// A child process killed (SIGKILL, by its pid) and reaped on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The value client `t` writes under key number `i` of round `round`.
fn acked_value(round: usize, t: usize, i: u64) -> String {
    format!("{round}:{t}:{i}:{}", "v".repeat(200))
}

/// Four clients, each writing `r{round}w{t}:{i}` for i = 0, 1, … one at a
/// time until `stop` or an error; `acked[t]` counts the writes answered `+OK`.
fn acked_writers(
    ns: &Netns,
    addr: &'static str,
    round: usize,
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> (std::sync::Arc<[std::sync::atomic::AtomicU64; 4]>, Vec<std::thread::JoinHandle<()>>) {
    use std::sync::atomic::Ordering::SeqCst;
    let acked = std::sync::Arc::new(std::array::from_fn(|_| std::sync::atomic::AtomicU64::new(0)));
    let handles = (0..4)
        .map(|t| {
            let (acked, stop) = (acked.clone(), stop.clone());
            ns.spawn(move || {
                let Ok(s) = TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(10)) else { return };
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut w = s;
                let mut i = 0;
                while !stop.load(SeqCst) && i < 1_000_000 {
                    let cmd = resp(&["SET", &format!("r{round}w{t}:{i}"), &acked_value(round, t, i)]);
                    if w.write_all(&cmd).is_err() {
                        return;
                    }
                    match reply_line(&mut r) {
                        Ok(line) if line == "+OK\r\n" => {
                            i += 1;
                            acked[t].store(i, SeqCst);
                        }
                        _ => return, // the guest was killed (or refused): nothing more is acknowledged
                    }
                }
            })
        })
        .collect();
    (acked, handles)
}

/// Every write acknowledged so far (`rounds[r][t]` writes of client t in round r)
/// and every preloaded key read back with its value, pipelined.
fn check_acknowledged(ns: &Netns, addr: &'static str, preload: u64, rounds: &[[u64; 4]]) {
    let rounds = rounds.to_vec();
    ns.run(move || {
        let s = connect(addr);
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut w = s;
        let mut keys: Vec<(String, String)> =
            (0..preload).map(|i| (format!("pre:{i}"), format!("{i}:{}", "p".repeat(8000)))).collect();
        for (round, acked) in rounds.iter().enumerate() {
            for (t, &n) in acked.iter().enumerate() {
                keys.extend((0..n).map(|i| (format!("r{round}w{t}:{i}"), acked_value(round, t, i))));
            }
        }
        for batch in keys.chunks(500) {
            let mut out = Vec::new();
            for (k, _) in batch {
                out.extend_from_slice(&resp(&["GET", k]));
            }
            w.write_all(&out).unwrap();
            for (k, v) in batch {
                let head = reply_line(&mut r).unwrap();
                assert_eq!(head, format!("${}\r\n", v.len()), "acknowledged key {k} lost or changed");
                let mut got = vec![0u8; v.len() + 2];
                r.read_exact(&mut got).unwrap();
                assert_eq!(&got[..v.len()], v.as_bytes(), "acknowledged key {k} has another value");
            }
        }
        eprintln!("kvd: all {} acknowledged keys present", keys.len());
    });
}

/// kvd under a write load (four clients whose acknowledged writes are counted,
/// plus `redis-benchmark` overwriting 200 keys of 8 KB, which makes the log
/// outgrow the live data), `kill -9`ed at a random moment and then the moment
/// a compaction starts, and restarted each time: every acknowledged key is
/// there, with its value.
#[test]
fn kvd_kill_during_writes_and_compaction_loses_no_acknowledged_write() {
    use std::sync::atomic::Ordering::SeqCst;
    if !can_run() || !require("redis-benchmark (redis-tools)", have("redis-benchmark")) {
        return;
    }
    let disk = kvd_disk("kill", 64 << 20);
    let storage = format!("--block:storage={}", disk.0.display());
    let ns = Netns::with_tap("kvdkill", "tapkvdk", "10.14.19.1/24");
    const ADDR: &str = "10.14.19.2:6379";
    let start = || Guest::start_full(Backend::Spt, 256, &[&storage], &ns, "tapkvdk", "kvd", &["--ipv4=10.14.19.2/24"]);
    let mut g = start();
    // 8 MB of live data that every compaction rewrites.
    let preload = 1000;
    ns.run(move || {
        let s = connect(ADDR);
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut w = s;
        for batch in (0..preload).collect::<Vec<u64>>().chunks(100) {
            let mut out = Vec::new();
            for i in batch {
                out.extend_from_slice(&resp(&["SET", &format!("pre:{i}"), &format!("{i}:{}", "p".repeat(8000))]));
            }
            w.write_all(&out).unwrap();
            for _ in batch {
                assert_eq!(reply_line(&mut r).unwrap(), "+OK\r\n");
            }
        }
    });
    let benchmark = || {
        Killed(
            ns.command("redis-benchmark")
                .args(["-h", "10.14.19.2", "-t", "set", "-r", "200", "-d", "8000", "-n", "1000000", "-c", "8", "-q"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-benchmark starts"),
        )
    };
    let mut rounds: Vec<[u64; 4]> = Vec::new();
    let mut mid_compaction = 0;
    let mut compactions_seen = 0;
    for round in 0..6 {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (acked, writers) = acked_writers(&ns, ADDR, round, &stop);
        let load = benchmark();
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        let mut seen = String::new();
        if round == 0 {
            // A random moment of the write load: once the clients have some answers.
            while acked.iter().map(|a| a.load(SeqCst)).sum::<u64>() < 400 {
                assert!(std::time::Instant::now() < deadline, "no 400 acknowledged writes in 120 s");
                std::thread::sleep(Duration::from_millis(20));
            }
        } else {
            // The moment a compaction starts.
            loop {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                match g.lines.recv_timeout(left) {
                    Ok(line) if line.contains("compacting:") => break,
                    Ok(line) => seen.push_str(&(line + "\n")),
                    Err(e) => panic!("no compaction within 120 s ({e}); output:\n{seen}"),
                }
            }
        }
        g.child.kill().unwrap(); // SIGKILL: the guest gets no chance to flush anything
        g.child.wait().unwrap();
        stop.store(true, SeqCst);
        drop(load);
        for w in writers {
            w.join().unwrap();
        }
        rounds.push(std::array::from_fn(|t| acked[t].load(SeqCst)));
        let (generation, max_gen) = superblock(&disk.0);
        let after: Vec<String> = g.lines.try_iter().collect();
        compactions_seen += seen.matches("compacted:").count();
        if round > 0 && max_gen > generation {
            mid_compaction += 1;
        }
        eprintln!(
            "round {round}: killed with {:?} acknowledged; superblock: generation {generation}, highest handed out \
             {max_gen}{}; output after the kill: {after:?}",
            rounds[round],
            if max_gen > generation { " (killed mid-compaction)" } else { "" },
        );
        g = start();
        let state = LogState::of(&g.first_line);
        assert_eq!(state.generation, generation, "{}", g.first_line);
        check_acknowledged(&ns, ADDR, preload, &rounds);
        if round >= 2 && mid_compaction > 0 {
            break;
        }
    }
    assert!(
        mid_compaction > 0,
        "no kill landed during a compaction (each came after its switch); the test cannot show that case"
    );
    // Last: a compaction completes under the load, more writes follow, kill -9.
    let before = LogState::of(&g.first_line);
    let round = rounds.len();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (acked, writers) = acked_writers(&ns, ADDR, round, &stop);
    let load = benchmark();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let mut seen = String::new();
    while !seen.contains("compacted:") {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line =
            g.lines.recv_timeout(left).unwrap_or_else(|e| panic!("no completed compaction in 120 s ({e}):\n{seen}"));
        seen.push_str(&(line + "\n"));
    }
    let after_compaction = acked.iter().map(|a| a.load(SeqCst)).sum::<u64>();
    while acked.iter().map(|a| a.load(SeqCst)).sum::<u64>() < after_compaction + 100 {
        assert!(std::time::Instant::now() < deadline, "no 100 acknowledged writes after the compaction");
        std::thread::sleep(Duration::from_millis(10));
    }
    g.child.kill().unwrap();
    g.child.wait().unwrap();
    stop.store(true, SeqCst);
    drop(load);
    for w in writers {
        w.join().unwrap();
    }
    rounds.push(std::array::from_fn(|t| acked[t].load(SeqCst)));
    eprintln!("round {round}: killed after a compaction ({seen:?}) with {:?} acknowledged", rounds[round]);
    let g = start();
    check_acknowledged(&ns, ADDR, preload, &rounds);
    // The log was compacted: it holds about the live data, not everything written.
    let state = LogState::of(&g.first_line);
    assert!(state.generation > before.generation && state.bytes < before.bytes, "{before:?} → {state:?}");
    eprintln!(
        "kvd: log before the last round {before:?}, after it {state:?} ({compactions_seen} compactions seen earlier)"
    );
}

/// kvd's log outgrows the live data (`redis-benchmark` overwriting ten keys) and
/// is compacted: a restart replays a small log. A device too small for the live
/// data refuses the write that does not fit with `-MISCONF …`, keeps
/// everything acknowledged, and takes writes again once keys are deleted.
#[test]
fn kvd_log_is_compacted_and_a_full_device_refuses_writes() {
    if !can_run()
        || !require("redis-cli (redis-tools)", have("redis-cli"))
        || !require("redis-benchmark (redis-tools)", have("redis-benchmark"))
    {
        return;
    }
    let disk = kvd_disk("full", 4 << 20);
    let storage = format!("--block:storage={}", disk.0.display());
    let ns = Netns::with_tap("kvdfull", "tapkvdf", "10.14.20.1/24");
    let start = || Guest::start_full(Backend::Spt, 64, &[&storage], &ns, "tapkvdf", "kvd", &["--ipv4=10.14.20.2/24"]);
    let cli = |args: &[&str]| -> String {
        let out = ns.command("redis-cli").args(["-h", "10.14.20.2"]).args(args).output().expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).trim_end().to_owned()
    };
    let g = start();
    // Keys that expire: compaction and replay keep the absolute deadline.
    assert_eq!(cli(&["SET", "long-lived", "x", "EX", "1000"]), "OK");
    assert_eq!(cli(&["SET", "short-lived", "x", "PX", "1500"]), "OK");
    let short_lived_gone = std::time::Instant::now() + Duration::from_millis(2000);
    // 20 MB of writes to ten keys through a 4 MiB device.
    let (ok, text) = sh(&ns, "timeout 300 redis-benchmark -h 10.14.20.2 -t set -r 10 -d 1000 -n 20000 -c 4 --csv");
    assert!(ok && text.contains("\"SET\"") && !text.to_lowercase().contains("error"), "{text}");
    let compacted: Vec<String> = g.lines.try_iter().filter(|l| l.contains("compacted:")).collect();
    assert!(compacted.len() >= 5, "{compacted:?}");
    std::thread::sleep(short_lived_gone.saturating_duration_since(std::time::Instant::now()));
    assert_eq!(cli(&["DBSIZE"]), "11");
    drop(g);
    let g = start();
    let state = LogState::of(&g.first_line);
    eprintln!("after 20 MB of overwrites: {state:?}, {} compactions", compacted.len());
    assert!(state.generation > 5 && state.bytes < 1 << 20, "{}", g.first_line);
    assert_eq!(cli(&["EXISTS", "short-lived"]), "0");
    let ttl: u64 = cli(&["TTL", "long-lived"]).parse().unwrap();
    assert!((600..=1000).contains(&ttl), "TTL {ttl}");
    assert_eq!(cli(&["DEL", "long-lived"]), "1");
    assert_eq!(cli(&["DBSIZE"]), "10");
    assert_eq!(cli(&["STRLEN", "key:000000000003"]), "1000");

    // 300 KB values until the log's half of the device (≈ 2 MiB) is full.
    let stored = ns.run(|| {
        let s = connect("10.14.20.2:6379");
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut w = s;
        let value = "f".repeat(300_000);
        for i in 0..20 {
            w.write_all(&resp(&["SET", &format!("f{i}"), &value])).unwrap();
            let line = reply_line(&mut r).unwrap();
            if line != "+OK\r\n" {
                assert!(
                    line.starts_with("-MISCONF Errors writing to the durable log: no space left on the block device"),
                    "{line}"
                );
                return i;
            }
        }
        panic!("20 values of 300 KB fit in a 4 MiB device");
    });
    assert!(stored >= 4, "only {stored} values fit");
    assert_eq!(cli(&["EXISTS", &format!("f{stored}")]), "0");
    drop(g); // SIGKILL
    let g = start();
    for i in 0..stored {
        assert_eq!(cli(&["STRLEN", &format!("f{i}")]), "300000", "f{i} after the restart: {}", g.first_line);
    }
    assert_eq!(cli(&["EXISTS", &format!("f{stored}")]), "0");
    // Deleting frees room (through a compaction) and writes work again.
    assert_eq!(cli(&["DEL", "f0", "f1"]), "2");
    assert_eq!(cli(&["SET", "after", "delete"]), "OK");
    drop(g);
    let _g = start();
    assert_eq!(cli(&["EXISTS", "f0", "f1", "after"]), "1");
    assert_eq!(cli(&["STRLEN", "f2"]), "300000");
}

/// redis-server 7 in the test's namespace (on its loopback), stopped on drop.
struct RedisServer(Child);

impl RedisServer {
    fn start(ns: &Netns) -> Self {
        let child = ns
            .command("redis-server")
            .args(["--port", "6379", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--databases", "1", "--daemonize", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        let server = RedisServer(child);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let out = ns.command("redis-cli").args(["-h", "127.0.0.1", "PING"]).output().expect("redis-cli");
            if String::from_utf8_lossy(&out.stdout).trim() == "PONG" {
                return server;
            }
            assert!(std::time::Instant::now() < deadline, "redis-server did not answer PING within 60 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Command sessions whose replies must be exactly redis-server 7.0's (each
/// one connection of `redis-cli --no-raw`, which prints the reply types:
/// `(integer)`, `(nil)`, `(error)`, quoted bulk strings, arrays).
const LIKE_REDIS: &[&str] = &[
    "FLUSHALL\n\
     PING\n\
     PING hello\n\
     PING a b\n\
     ECHO hi\n\
     ECHO\n\
     SELECT 0\n\
     SELECT 1\n\
     SELECT x\n\
     CLIENT SETNAME app-1\n\
     CLIENT GETNAME\n\
     CLIENT SETNAME \"a b\"\n\
     CLIENT NOSUCH\n\
     CONFIG GET maxmemory-policy\n\
     CONFIG GET appendonly\n\
     CONFIG GET save\n\
     CONFIG GET databases\n\
     CONFIG GET timeout\n\
     CONFIG GET nosuchparam\n\
     CONFIG\n\
     DBSIZE\n\
     NOSUCH a b\n",
    "FLUSHALL\n\
     GET k\n\
     SET k v\n\
     GET k\n\
     SET k w NX\n\
     SET k w XX\n\
     SET nk w XX\n\
     SET k x GET\n\
     SET nk2 x GET\n\
     SET k v EX 100\n\
     TTL k\n\
     SET k v KEEPTTL\n\
     TTL k\n\
     SET k v PX 100000 NX\n\
     SET k v EX 0\n\
     SET k v EX -5\n\
     SET k v EX x\n\
     SET k v EX\n\
     SET k v NX XX\n\
     SET k v EX 10 PX 100\n\
     SET k v KEEPTTL EX 10\n\
     SET k v BADOPT\n\
     SET k\n\
     GET\n\
     GET a b\n\
     SET k v EXAT 1\n\
     GET k\n\
     SET k v PXAT 99999999999999\n\
     EXISTS k\n\
     SET k v EX 9223372036854775807\n\
     SET k v PX 9223372036854775807\n\
     SETNX k v\n\
     SETNX k2 v\n\
     SETEX k3 100 v\n\
     SETEX k3 0 v\n\
     SETEX k3 x v\n\
     PSETEX k4 100000 v\n\
     PSETEX k4 -1 v\n\
     GETSET k2 new\n\
     GETSET nokey new\n\
     GETDEL k2\n\
     GETDEL k2\n\
     TYPE nokey\n\
     TYPE k\n\
     DBSIZE\n",
    "FLUSHALL\n\
     MSET a 1 b 2 c 3\n\
     MSET a 1 b\n\
     MGET a b nokey c\n\
     MGET\n\
     MSETNX a 1 d 4\n\
     MSETNX d 4 e 5\n\
     MSETNX d\n\
     DEL a b nokey\n\
     DEL\n\
     UNLINK c d\n\
     EXISTS e e nokey\n\
     EXISTS\n\
     APPEND s ab\n\
     APPEND s cd\n\
     APPEND s\n\
     STRLEN s\n\
     STRLEN nokey\n\
     STRLEN\n\
     KEYS s\n\
     KEYS nomatch*\n\
     KEYS\n\
     SCAN 0 MATCH s* COUNT 100\n\
     SCAN x\n\
     SCAN 0 COUNT 0\n\
     SCAN 0 COUNT x\n\
     SCAN 0 MATCH\n\
     SCAN 0 MATCH s TYPE string\n\
     SCAN 0 TYPE hash\n\
     DBSIZE\n\
     FLUSHDB\n\
     FLUSHDB ASYNC\n\
     FLUSHDB SYNC\n\
     FLUSHDB BAD\n\
     FLUSHALL BAD\n\
     DBSIZE\n",
    "FLUSHALL\n\
     INCR n\n\
     INCR n\n\
     INCRBY n 10\n\
     INCRBY n x\n\
     INCRBY n 1.5\n\
     DECR n\n\
     DECRBY n 5\n\
     DECRBY n -9223372036854775808\n\
     INCRBY n 9223372036854775807\n\
     SET n 9223372036854775807\n\
     INCR n\n\
     SET n -9223372036854775808\n\
     DECR n\n\
     SET n abc\n\
     INCR n\n\
     SET n \" 1\"\n\
     INCR n\n\
     SET n 01\n\
     INCR n\n\
     INCR\n\
     INCRBY n\n\
     SET big 99999999999999999999\n\
     INCR big\n\
     GET n\n",
    "FLUSHALL\n\
     SET k v\n\
     EXPIRE k 100\n\
     TTL k\n\
     PEXPIRE k 200000\n\
     TTL k\n\
     EXPIRE k 50 NX\n\
     EXPIRE k 50 XX\n\
     EXPIRE k 500 GT\n\
     TTL k\n\
     EXPIRE k 10 LT\n\
     TTL k\n\
     EXPIRE k 10 NX XX\n\
     EXPIRE k 10 GT LT\n\
     EXPIRE k 10 BAD\n\
     EXPIRE k x\n\
     EXPIRE nokey 10\n\
     EXPIRE k\n\
     PERSIST k\n\
     PERSIST k\n\
     PERSIST nokey\n\
     TTL k\n\
     TTL nokey\n\
     PTTL nokey\n\
     PTTL k\n\
     EXPIREAT k 1\n\
     EXISTS k\n\
     SET k v\n\
     PEXPIREAT k 99999999999999\n\
     EXISTS k\n\
     EXPIRE k 9223372036854775807\n\
     PEXPIRE k 9223372036854775807\n\
     EXPIRE k -1\n\
     EXISTS k\n\
     SET p v\n\
     PERSIST p\n\
     EXPIRE p 100 GT\n\
     EXPIRE p 100 LT\n\
     TTL p\n",
    "FLUSHALL\n\
     MULTI\n\
     SET a 1\n\
     INCR a\n\
     GET a\n\
     EXEC\n\
     EXEC\n\
     DISCARD\n\
     MULTI\n\
     MULTI\n\
     SET a 2\n\
     DISCARD\n\
     GET a\n\
     MULTI\n\
     SET a\n\
     GET a\n\
     EXEC\n\
     MULTI\n\
     NOSUCH\n\
     EXEC\n\
     MULTI\n\
     SET s text\n\
     INCR s\n\
     INCR a\n\
     EXEC\n\
     MULTI\n\
     EXEC\n\
     MULTI\n\
     WATCH a\n\
     PING\n\
     EXEC\n",
    "FLUSHALL\n\
     SET a 1\n\
     WATCH a\n\
     GET a\n\
     MULTI\n\
     INCR a\n\
     EXEC\n\
     WATCH a\n\
     SET a 5\n\
     MULTI\n\
     INCR a\n\
     EXEC\n\
     GET a\n\
     WATCH nokey\n\
     MULTI\n\
     SET nokey 1\n\
     EXEC\n\
     WATCH\n\
     UNWATCH\n\
     UNWATCH x\n\
     WATCH a b\n\
     UNWATCH\n\
     SET a 7\n\
     MULTI\n\
     GET a\n\
     EXEC\n\
     QUIT\n\
     PING\n",
    "FLUSHALL\n\
     SET a 1\n\
     COMMAND COUNT x\n\
     CLIENT GETNAME\n\
     CLIENT SETNAME\n\
     CLIENT SETNAME x y\n\
     CLIENT NO-EVICT on\n\
     CLIENT REPLY ON\n\
     HELLO x\n\
     HELLO 2 BAD\n\
     CONFIG SET x\n\
     CONFIG GET\n\
     CONFIG GET appendonly\n\
     TIME x\n\
     INFO keyspace\n\
     DBSIZE x\n\
     KEYS a b\n\
     TYPE\n\
     TTL\n\
     PING\n",
    "FLUSHALL\n\
     MULTI\n\
     PING\n\
     MSET a 1 b\n\
     SET k v PX 0\n\
     EXEC\n\
     SETEX k 9223372036854775807 v\n\
     PSETEX k 9223372036854775807 v\n\
     INCRBY n \" 5\"\n\
     GETDEL\n\
     GETSET k\n\
     SETNX k\n\
     APPEND k v w\n\
     INCR a b\n\
     DECRBY n\n\
     TTL a b\n\
     PERSIST\n\
     EXPIREAT k\n\
     TYPE a b\n\
     ECHO a b\n\
     SELECT 0 1\n\
     MULTI\n\
     EXEC x\n\
     DISCARD x\n\
     MULTI x\n\
     DISCARD\n\
     EXEC\n\
     MULTI\n\
     DISCARD x\n\
     SET a 1\n\
     EXEC\n\
     MULTI\n\
     MULTI x\n\
     QUIT x\n\
     EXEC\n\
     UNLINK\n\
     FLUSHALL ASYNC x\n\
     DBSIZE\n\
     PING\n",
];

/// The kv guest and a real redis-server answer the same sessions the same way
/// (reply types and error texts), as `redis-cli` shows them.
#[test]
fn kv_answers_like_redis_server() {
    if !can_run()
        || !require("redis-cli (redis-tools)", have("redis-cli"))
        || !require("redis-server", have("redis-server"))
    {
        return;
    }
    let ns = Netns::with_tap("kvlike", "tapkvlike", "10.14.18.1/24");
    let _redis = RedisServer::start(&ns);
    let _g = Guest::start(&ns, "tapkvlike", "kv", &["--ipv4=10.14.18.2/24"]);
    let session = |host: &str, script: &str| -> String {
        let mut child = ns
            .command("redis-cli")
            .args(["--no-raw", "-h", host])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("redis-cli");
        child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    };
    let mut differences = Vec::new();
    for script in LIKE_REDIS {
        let (redis, kv) = (session("127.0.0.1", script), session("10.14.18.2", script));
        let commands: Vec<&str> = script.lines().collect();
        if redis != kv {
            // Show where the outputs part (redis-cli prints a reply per line or more).
            let (r, k): (Vec<&str>, Vec<&str>) = (redis.lines().collect(), kv.lines().collect());
            let at = r.iter().zip(&k).position(|(a, b)| a != b).unwrap_or(r.len().min(k.len()));
            let around = |v: &[&str]| v[at.saturating_sub(3)..(at + 3).min(v.len())].join("\n");
            differences.push(format!(
                "session {commands:?}, output line {at}:\n--- redis-server\n{}\n--- kv\n{}",
                around(&r),
                around(&k)
            ));
        }
    }
    assert!(differences.is_empty(), "{} sessions differ:\n{}", differences.len(), differences.join("\n"));
}

/// More connections than a small guest's memory holds: the surplus is refused
/// with RST (not left hanging), the open ones are still served, and once they
/// close the listener takes new connections again.
#[test]
fn http_connections_beyond_memory_are_refused_cleanly() {
    if !can_run() {
        return;
    }
    let ns = Netns::with_tap("httpfull", "taphfull", "10.14.17.1/24");
    let mut g = Guest::start_with(Backend::Spt, 8, &ns, "taphfull", "http", &["--ipv4=10.14.17.2/24"]);
    ns.run(|| {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit fills the struct we pass.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) }, 0);
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: setrlimit with a valid struct; raises this process's soft limit.
        assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
        let max = usize::try_from(limit.rlim_max).unwrap_or(usize::MAX).saturating_sub(500).min(8000);
        let mut open = Vec::new();
        let refused = loop {
            assert!(open.len() < max, "{} connections accepted by an 8 MiB guest, none refused", open.len());
            match TcpStream::connect_timeout(&"10.14.17.2:80".parse().unwrap(), Duration::from_secs(10)) {
                Ok(s) => open.push(s),
                Err(e) => break e,
            }
        };
        assert_eq!(
            refused.kind(),
            std::io::ErrorKind::ConnectionRefused,
            "after {} connections: {refused}",
            open.len()
        );
        assert!(open.len() > 50, "only {} connections fit", open.len());
        // Those accepted are served.
        for i in [0, open.len() / 2, open.len() - 1] {
            open[i].set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            open[i].write_all(b"GET / HTTP/1.1\r\nHost: guest\r\n\r\n").unwrap();
            read_response(&mut open[i], protocols::http::PAGE);
        }
        let accepted = open.len();
        drop(open);
        // Memory comes back as the connections close: new ones are accepted again.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            match one_shot("10.14.17.2:80") {
                Ok(()) => break,
                Err(e) => assert!(std::time::Instant::now() < deadline, "no connection after closing {accepted}: {e}"),
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        eprintln!("8 MiB guest: {accepted} connections accepted, then RST");
    });
    g.assert_alive();
}
