//! The networked guests (`kv`, `http`) on the spt backend, over a real tap in a
//! private network namespace: smoltcp in the guest, the kernel's TCP on the
//! other side. Driven by `redis-cli` and by small Rust clients (pipelining, 50
//! connections at once, keep-alive). Needs root, `ip`, and `redis-cli` (redis-tools).
//! One test runs the same guests' hvt builds (needs /dev/kvm).

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

    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// Runs `f` on a thread that has joined this namespace (a thread's sockets
    /// belong to its network namespace, so the test's clients can reach the guest).
    fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
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
        .join()
        .expect("client thread")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

/// A running guest; killed on drop. Output past the ready line is kept.
struct Guest {
    child: Child,
    first_line: String,
}

impl Guest {
    /// Starts `tender --net:service0=TAP NAME.spt ARGS` in `ns` and waits for
    /// its "listening on" line.
    fn start(ns: &Netns, tap: &str, name: &str, args: &[&str]) -> Self {
        Self::start_on(Backend::Spt, ns, tap, name, args)
    }

    /// As [`Guest::start`], with the guest built for `backend`.
    fn start_on(backend: Backend, ns: &Netns, tap: &str, name: &str, args: &[&str]) -> Self {
        let mut child = ns
            .command(tender())
            .args(["--mem=64", &format!("--net:service0={tap}")])
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
                std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
                return Guest { child, first_line: line };
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
