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
                std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
                return Guest { child, first_line: seen };
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
    assert!(g.first_line.contains("replayed 0 records (0 bytes)"), "{}", g.first_line);
    let out = session("SET a 1\nINCRBY n 5\nSET e x EX 100\nMULTI\nINCR n\nAPPEND a 23\nEXEC\nGET a\n");
    assert_eq!(out, "OK\n5\nOK\nOK\nQUEUED\nQUEUED\n6\n3\n123\n", "{out}");
    drop(g); // SIGKILL: nothing is flushed at exit, every reply was already durable

    let g = start();
    assert!(g.first_line.contains("replayed 4 records ("), "{}", g.first_line);
    let out = session("GET a\nGET n\nTTL e\n");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(&lines[..2], ["123", "6"], "{out}");
    assert!((1..=100).contains(&lines[2].parse::<i64>().unwrap()), "{out}");
    let bytes: u64 = g.first_line.split("records (").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    drop(g);

    // Tear the last record (the transaction): two bytes of its payload change.
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(&disk.0).unwrap();
        f.write_all_at(b"##", bytes - 6).unwrap();
    }
    let g = start();
    assert!(g.first_line.contains("dropped a torn last record (#3)"), "{}", g.first_line);
    assert!(g.first_line.contains("replayed 3 records"), "{}", g.first_line);
    assert_eq!(session("GET a\nGET n\nSET z 9\n"), "1\n5\nOK\n");
    drop(g);

    let g = start();
    assert!(g.first_line.contains("replayed 4 records") && !g.first_line.contains("torn"), "{}", g.first_line);
    assert_eq!(session("GET z\nGET a\n"), "9\n1\n");
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
