//! End to end under a real dockerd (docker.io 20.10): `docker run --runtime=tender` with
//! a FROM-scratch image of our guests. Every case ends by checking that nothing of the
//! container is left (process, state, cgroup, mount, tap). The daemon is private to this
//! test binary (see `common/dockerd.rs`). Needs root and docker.io; under CI=true a
//! missing one fails the tests.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::dockerd::{self, Dockerd, IMAGE};
use common::{have, require, text};

/// A `--cidfile` path unique to a case, removed on drop.
struct Cid(PathBuf);

impl Cid {
    fn new(d: &Dockerd, case: &str) -> Self {
        let path = d.dir.join(format!("{case}.cid"));
        let _ = std::fs::remove_file(&path);
        Cid(path)
    }
    fn arg(&self) -> String {
        format!("--cidfile={}", self.0.display())
    }
    fn id(&self) -> String {
        Dockerd::cid(&self.0)
    }
}

impl Drop for Cid {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Removes the container if the test fails before it does.
struct Container<'a>(&'a Dockerd, String);

impl Drop for Container<'_> {
    fn drop(&mut self) {
        let _ = self.0.docker(&["rm", "-f", &self.1]);
    }
}

#[test]
fn hello_output_and_exit_status_pass_through() {
    let Some(d) = dockerd::get() else { return };
    let cid = Cid::new(d, "hello");
    let out = d.docker(&["run", "--rm", "--runtime=tender", &cid.arg(), IMAGE, "/hello.spt", "a", "b"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("Hello, args: a b") && stdout.contains("SUCCESS"), "{stdout}");
    d.assert_clean(&cid.id());

    // The image's CMD is /hello.spt.
    let out = d.docker(&["run", "--rm", "--runtime=tender", IMAGE]);
    assert!(text(&out.stdout).contains("Hello, world"), "{}\n{}", text(&out.stdout), text(&out.stderr));

    let cid = Cid::new(d, "exit7");
    let out = d.docker(&["run", "--rm", "--runtime=tender", &cid.arg(), IMAGE, "/exit_code.spt", "7"]);
    assert_eq!(out.status.code(), Some(7), "{}\n{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("solo5_exit(7)"));
    d.assert_clean(&cid.id());
}

#[test]
fn docker_logs_show_the_guest_console() {
    let Some(d) = dockerd::get() else { return };
    let name = format!("tender-logs-{}", std::process::id());
    let _guard = Container(d, name.clone());
    d.ok(&["run", "--name", &name, "--runtime=tender", IMAGE, "/hello.spt", "logged"]);
    let id = d.ok(&["inspect", "-f", "{{.Id}}", &name]).trim().to_owned();
    assert_eq!(d.ok(&["inspect", "-f", "{{.State.ExitCode}}", &name]).trim(), "0");
    let logs = d.ok(&["logs", &name]);
    assert!(logs.contains("Hello, args: logged"), "{logs}");
    d.ok(&["rm", &name]);
    d.assert_clean(&id);
}

#[test]
fn interactive_tty_works() {
    let Some(d) = dockerd::get() else { return };
    let cid = Cid::new(d, "tty");
    // `script` gives docker a terminal; its -e returns the child's status.
    let line = format!(
        "DOCKER_HOST={} {} run -it --rm --runtime=tender {} {IMAGE} /exit_code.spt 3",
        d.host,
        d.client.display(),
        cid.arg()
    );
    let out =
        Command::new("script").args(["-qec", &line, "/dev/null"]).stdin(std::process::Stdio::null()).output().unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{}", text(&out.stderr));
    // The pty's line discipline turns \n into \r\n: the guest wrote to a terminal.
    assert!(stdout.contains("exiting with status 3\r\n"), "{stdout:?}");
    d.assert_clean(&cid.id());
}

#[test]
fn stop_delivers_sigterm_and_rm_force_removes_a_running_guest() {
    let Some(d) = dockerd::get() else { return };
    // net with a 600 s timeout: runs until stopped.
    let args = ["/net.spt", "{tender:ipv4.addr}", "1", "600"];
    let name = format!("tender-stop-{}", std::process::id());
    let _guard = Container(d, name.clone());
    let mut run = vec!["run", "-d", "--name", &name, "--runtime=tender", IMAGE];
    run.extend(args);
    let id = d.ok(&run).trim().to_owned();
    assert!(d.wait_log(&name, "answering").contains("answering"));
    assert_eq!(d.ok(&["inspect", "-f", "{{.State.Running}}", &name]).trim(), "true");
    // docker top shows the guest and the container's init, not the runtime's create command.
    let top = d.ok(&["top", &name]);
    assert!(top.contains("/net.spt") && top.contains(" 1 600"), "docker top should show the guest:\n{top}");
    assert!(top.contains("tender-oci init"), "docker top should show the init:\n{top}");
    assert!(!top.contains(" create ") && !top.contains("--bundle"), "docker top shows create's command line:\n{top}");
    d.ok(&["stop", &name]);
    // 143 = SIGTERM reached the tender. Had it been ignored (as by a pid-1 process without a
    // handler), docker would have waited 10 s and sent SIGKILL: 137.
    assert_eq!(d.ok(&["inspect", "-f", "{{.State.ExitCode}}", &name]).trim(), "143");
    d.ok(&["rm", &name]);
    d.assert_clean(&id);

    let name = format!("tender-rmf-{}", std::process::id());
    let _guard2 = Container(d, name.clone());
    let mut run = vec!["run", "-d", "--name", &name, "--runtime=tender", IMAGE];
    run.extend(args);
    let id = d.ok(&run).trim().to_owned();
    assert!(d.wait_log(&name, "answering").contains("answering"));
    d.ok(&["rm", "-f", &name]);
    assert!(!d.docker(&["inspect", &name]).status.success(), "container still exists");
    d.assert_clean(&id);
}

/// The guest's memory mapping as the tender made it: the end of the region at
/// `GUEST_BASE` in `/proc/TENDER/maps` is the guest memory size.
fn guest_memory_end(tender_pid: i32) -> u64 {
    let maps = std::fs::read_to_string(format!("/proc/{tender_pid}/maps")).unwrap();
    let mut end = None;
    let mut expect_start = hypercall_abi::spt::GUEST_BASE;
    for line in maps.lines() {
        let range = line.split_whitespace().next().unwrap();
        let (s, e) = range.split_once('-').unwrap();
        let (s, e) = (u64::from_str_radix(s, 16).unwrap(), u64::from_str_radix(e, 16).unwrap());
        // The region is one contiguous run of mappings (split by per-segment protections).
        if s == expect_start {
            end = Some(e);
            expect_start = e;
        }
    }
    end.unwrap_or_else(|| panic!("no guest mapping at GUEST_BASE in:\n{maps}"))
}

#[test]
fn memory_limit_becomes_guest_memory() {
    let Some(d) = dockerd::get() else { return };
    let name = format!("tender-mem-{}", std::process::id());
    let _guard = Container(d, name.clone());
    let id = d
        .ok(&[
            "run",
            "-d",
            "--name",
            &name,
            "--memory",
            "64m",
            "--runtime=tender",
            IMAGE,
            "/net.spt",
            "{tender:ipv4.addr}",
            "1",
            "600",
        ])
        .trim()
        .to_owned();
    assert!(d.wait_log(&name, "answering").contains("answering"));
    let init: i32 = d.ok(&["inspect", "-f", "{{.State.Pid}}", &name]).trim().parse().unwrap();
    // The init supervises one child: the tender.
    let children = std::fs::read_to_string(format!("/proc/{init}/task/{init}/children")).unwrap();
    let tender: i32 = children.split_whitespace().next().expect("the tender runs").parse().unwrap();
    assert_eq!(std::fs::read_to_string(format!("/proc/{tender}/comm")).unwrap().trim(), "tender");
    assert_eq!(guest_memory_end(tender), 64 << 20, "guest memory is not 64 MiB");
    // And the cgroup limit is in force for both processes.
    let cgroup = std::fs::read_to_string(format!("/proc/{tender}/cgroup")).unwrap();
    let mem = cgroup.lines().find_map(|l| l.split_once(":memory:")).map(|(_, p)| p.to_owned());
    if let Some(path) = mem {
        let limit = std::fs::read_to_string(format!("/sys/fs/cgroup/memory{path}/memory.limit_in_bytes")).unwrap();
        assert_eq!(limit.trim(), (64u64 << 20).to_string());
    }
    d.ok(&["rm", "-f", &name]);
    d.assert_clean(&id);
}

#[test]
fn guest_answers_ping_at_the_containers_address() {
    let Some(d) = dockerd::get() else { return };
    let name = format!("tender-ping-{}", std::process::id());
    let _guard = Container(d, name.clone());
    let id = d
        .ok(&["run", "-d", "--name", &name, "--runtime=tender", IMAGE, "/net.spt", "{tender:ipv4.addr}", "3", "120"])
        .trim()
        .to_owned();
    let log = d.wait_log(&name, "answering");
    let ip = d.ok(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", &name]).trim().to_owned();
    assert!(log.contains(&format!("answering ARP and ICMP echo for {ip} ")), "{log}");
    let mac = d.ok(&["inspect", "-f", "{{.NetworkSettings.MacAddress}}", &name]).trim().to_owned();
    assert!(log.contains(&format!("MAC {mac}")), "the guest should have the container's MAC {mac}:\n{log}");
    let ping = d.in_netns("ping").args(["-c", "3", "-i", "0.2", "-W", "5", &ip]).output().unwrap();
    assert!(ping.status.success(), "ping {ip} failed:\n{}\n{}", text(&ping.stdout), d.ok(&["logs", &name]));
    assert_eq!(d.ok(&["wait", &name]).trim(), "0", "{}", d.ok(&["logs", &name]));
    let log = d.ok(&["logs", &name]);
    assert!(log.contains("3 echo replies") && log.contains("SUCCESS"), "{log}");
    d.ok(&["rm", &name]);
    d.assert_clean(&id);
}

/// Runs `script` with `sh` in the daemon's network namespace (where `-p` publishes),
/// bounded by `timeout` inside it; returns success and stdout + stderr.
fn sh_in_daemon_netns(d: &Dockerd, script: &str) -> (bool, String) {
    let out = d.in_netns("sh").args(["-c", script]).output().unwrap();
    (out.status.success(), text(&out.stdout) + &text(&out.stderr))
}

/// What a user of `docker run -p` does: the http guest answers through the published
/// port, also to `wrk` with a fresh connection per request (docker-proxy in front), and
/// the kv guest to `redis-benchmark` and `redis-cli`, every request answered.
#[test]
fn published_ports_serve_ordinary_clients() {
    let Some(d) = dockerd::get() else { return };
    if !require("wrk", have("wrk")) || !require("redis-benchmark (redis-tools)", have("redis-benchmark")) {
        return;
    }
    let name = format!("tender-port-{}", std::process::id());
    let _guard = Container(d, name.clone());
    // The http guest reads the leading --ipv4=… --ipv4-gateway=… words tender-oci adds.
    let id = d
        .ok(&["run", "-d", "--name", &name, "-p", "127.0.0.1:18080:80", "--runtime=tender", IMAGE, "/http.spt"])
        .trim()
        .to_owned();
    let log = d.wait_log(&name, "listening");
    assert!(log.contains("listening on"), "{log}");
    let (ok, out) = sh_in_daemon_netns(d, "timeout 30 curl -sS -i http://127.0.0.1:18080/");
    assert!(ok && out.starts_with("HTTP/1.1 200"), "curl through -p failed:\n{out}\n{}", d.ok(&["logs", &name]));
    let (ok, out) = sh_in_daemon_netns(
        d,
        "ulimit -n $(ulimit -Hn); timeout 60 wrk -t 2 -c 20 -d 5s -H 'Connection: close' http://127.0.0.1:18080/",
    );
    assert!(ok, "wrk through -p:\n{out}");
    assert!(!out.contains("Socket errors") && !out.contains("Non-2xx"), "wrk through -p saw errors:\n{out}");
    let requests: u64 = out
        .lines()
        .find_map(|l| l.trim().strip_suffix(" read").and_then(|l| l.split_whitespace().next()?.parse().ok()))
        .unwrap_or_else(|| panic!("no request count in wrk's output:\n{out}"));
    assert!(requests > 0, "{out}");
    eprintln!("wrk -H 'Connection: close' through -p: {requests} requests, 0 errors");
    d.ok(&["rm", "-f", &name]);
    d.assert_clean(&id);

    let id = d
        .ok(&["run", "-d", "--name", &name, "-p", "127.0.0.1:16379:6379", "--runtime=tender", IMAGE, "/kv.spt"])
        .trim()
        .to_owned();
    let log = d.wait_log(&name, "listening");
    assert!(log.contains("listening on"), "{log}");
    let (ok, out) =
        sh_in_daemon_netns(d, "timeout 120 redis-benchmark -h 127.0.0.1 -p 16379 -c 50 -n 5000 -t set,get,incr --csv");
    assert!(ok && !out.to_lowercase().contains("error"), "redis-benchmark through -p:\n{out}");
    for test in ["\"SET\"", "\"GET\"", "\"INCR\""] {
        assert!(out.lines().any(|l| l.starts_with(test)), "no {test} row:\n{out}");
    }
    let (ok, out) = sh_in_daemon_netns(d, "timeout 30 redis-cli -h 127.0.0.1 -p 16379 GET counter:__rand_int__");
    assert!(ok && out.trim() == "5000", "every INCR through -p counted once: {out}");
    // tender-oci's tap gives the guest TCP offload: large values cross in 64 KiB
    // segments (through docker-proxy, the bridge, the veth and the redirect), intact.
    assert!(log.contains("TCP offload (vnet_hdr)"), "the kv guest asked for TCP offload and did not get it: {log}");
    let (ok, out) = sh_in_daemon_netns(
        d,
        "f=$(mktemp) && seq 1 120000 | tr -d '\\n' > $f && timeout 30 redis-cli -h 127.0.0.1 -p 16379 -x SET big < $f \
         && timeout 30 redis-cli -h 127.0.0.1 -p 16379 --raw GET big | head -c -1 | cmp - $f && echo SAME; rm -f $f",
    );
    assert!(ok && out.contains("SAME"), "a 609 KB value through -p did not come back intact:\n{out}");
    let (ok, out) = sh_in_daemon_netns(
        d,
        "timeout 120 redis-benchmark -h 127.0.0.1 -p 16379 -c 10 -n 500 -d 102400 -t set,get --csv",
    );
    assert!(ok && !out.to_lowercase().contains("error"), "100 KB values through -p:\n{out}");
    d.ok(&["rm", "-f", &name]);
    d.assert_clean(&id);
}

#[test]
fn block_device_from_a_volume() {
    let Some(d) = dockerd::get() else { return };
    let disk = d.dir.join("disk.img");
    std::fs::write(&disk, vec![0u8; 1 << 20]).unwrap();
    let volume = format!("{}:/data/disk.img", disk.display());
    let cid = Cid::new(d, "blk");
    let out = d.docker(&[
        "run",
        "--rm",
        "--runtime=tender",
        &cid.arg(),
        "-v",
        &volume,
        "-e",
        "TENDER_BLOCK_storage=/data/disk.img",
        IMAGE,
        "/blk.spt",
    ]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("capacity 1048576 bytes") && stdout.contains("SUCCESS"), "{stdout}");
    // The guest wrote the host file: block n starts with n.
    let bytes = std::fs::read(&disk).unwrap();
    assert_eq!(u64::from_le_bytes(bytes[512 * 5..512 * 5 + 8].try_into().unwrap()), 5);
    d.assert_clean(&cid.id());
}

#[test]
fn bad_images_and_configs_fail_clearly_and_leak_nothing() {
    let Some(d) = dockerd::get() else { return };
    let cases: &[(&[&str], &str)] = &[
        (&["/bin/sh"], "process.args[0] /bin/sh"),
        (&["/blk.spt"], "declares block device `storage` but nothing attaches it"),
        (&["--network", "host", "/net.spt", "1.2.3.4"], "uses the host's network namespace"),
        (&["-e", "TENDER_BLOCK_storage=disk.img", "/blk.spt"], "must be an absolute path"),
        (&["/hello.spt", "{tender:ipv4}"], "declares no net device"),
    ];
    for (i, (args, needle)) in cases.iter().enumerate() {
        let cid = Cid::new(d, &format!("bad{i}"));
        let mut run = vec!["run".to_string(), "--runtime=tender".into(), cid.arg()];
        // Options go before the image, guest path and arguments after it.
        let split = args.iter().position(|a| a.starts_with('/')).unwrap();
        run.extend(args[..split].iter().map(|s| s.to_string()));
        run.push(IMAGE.into());
        run.extend(args[split..].iter().map(|s| s.to_string()));
        let run: Vec<&str> = run.iter().map(String::as_str).collect();
        let out = d.docker(&run);
        let err = text(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "{args:?} ran");
        assert!(err.contains(needle), "{args:?}: expected {needle:?} in:\n{err}");
        let id = cid.id();
        let _ = d.docker(&["rm", "-f", &id]);
        d.assert_clean(&id);
    }
}

#[test]
fn a_missing_guest_exits_127_as_with_runc() {
    let Some(d) = dockerd::get() else { return };
    let cid = Cid::new(d, "nope");
    let out = d.docker(&["run", "--rm", "--runtime=tender", &cid.arg(), IMAGE, "/nope.spt"]);
    let err = text(&out.stderr);
    // docker maps "no such file or directory" (Go's errno text) to 127, as for runc's
    // `exec: "/nope": stat /nope: no such file or directory`.
    assert_eq!(out.status.code(), Some(127), "{err}");
    assert!(err.contains("/nope.spt: no such file or directory"), "{err}");
    assert!(!err.contains("os error"), "the reason is given twice: {err}");
    let id = cid.id();
    let _ = d.docker(&["rm", "-f", &id]);
    d.assert_clean(&id);
}

#[test]
fn init_runs_the_guest_without_docker_init_and_says_so() {
    let Some(d) = dockerd::get() else { return };
    let cid = Cid::new(d, "init");
    let out = d.docker(&["run", "--rm", "--init", "--runtime=tender", &cid.arg(), IMAGE, "/hello.spt", "a"]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("Hello, args: a"), "{stdout}\n{stderr}");
    assert!(stderr.contains("--init is ignored"), "no warning about --init:\n{stdout}\n{stderr}");
    d.assert_clean(&cid.id());
}

#[test]
fn pids_limit_needs_two_and_says_why() {
    let Some(d) = dockerd::get() else { return };
    let cid = Cid::new(d, "pids1");
    let out = d.docker(&["run", "--rm", "--pids-limit", "1", "--runtime=tender", &cid.arg(), IMAGE, "/hello.spt"]);
    let err = text(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("pids.limit is 1") && err.contains("at least 2"), "{err}");
    let id = cid.id();
    let _ = d.docker(&["rm", "-f", &id]);
    d.assert_clean(&id);

    let cid = Cid::new(d, "pids2");
    let out = d.docker(&["run", "--rm", "--pids-limit", "2", "--runtime=tender", &cid.arg(), IMAGE, "/hello.spt", "p"]);
    assert_eq!(out.status.code(), Some(0), "{}\n{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("Hello, args: p"), "{}", text(&out.stdout));
    d.assert_clean(&cid.id());
}

/// Base64 as urunc's bunny writes `/urunc.json` values.
fn b64(s: &str) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in s.as_bytes().chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, &b)| n | (b as u32) << (16 - 8 * i));
        for i in 0..4 {
            out.push(if i <= chunk.len() { ABC[(n >> (18 - 6 * i) & 63) as usize] as char } else { '=' });
        }
    }
    out
}

/// Builds an image the way urunc's docs package a pre-built unikernel for docker: the
/// unikernel under /unikernel, the settings in /urunc.json (docker drops LABELs on the
/// way to the runtime, so the LABELs alone would not reach it).
fn build_urunc_image(d: &Dockerd, tag: &str, hypervisor: &str) {
    let ctx = d.dir.join(format!("urunc-{hypervisor}"));
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::copy(common::guest("hello"), ctx.join("hello.spt")).unwrap();
    let settings = [("unikernelType", "solo5"), ("hypervisor", hypervisor), ("binary", "/unikernel/hello.spt")];
    let json: serde_json::Map<String, serde_json::Value> =
        settings.iter().map(|(k, v)| (format!("com.urunc.unikernel.{k}"), b64(v).into())).collect();
    std::fs::write(ctx.join("urunc.json"), serde_json::Value::Object(json).to_string()).unwrap();
    let mut dockerfile =
        String::from("FROM scratch\nCOPY hello.spt /unikernel/hello.spt\nCOPY urunc.json /urunc.json\n");
    for (k, v) in settings {
        dockerfile.push_str(&format!("LABEL \"com.urunc.unikernel.{k}\"=\"{v}\"\n"));
    }
    dockerfile.push_str("CMD [\"from\", \"urunc\"]\n");
    std::fs::write(ctx.join("Dockerfile"), dockerfile).unwrap();
    d.ok(&["build", "-q", "-t", tag, ctx.to_str().unwrap()]);
}

#[test]
fn images_built_for_urunc_run_unchanged() {
    let Some(d) = dockerd::get() else { return };
    build_urunc_image(d, "tender-oci-urunc-spt:latest", "spt");
    let cid = Cid::new(d, "urunc");
    let out = d.docker(&["run", "--rm", "--runtime=tender", &cid.arg(), "tender-oci-urunc-spt:latest"]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", text(&out.stderr));
    // The guest is /urunc.json's binary; its arguments are the image's CMD.
    assert!(stdout.contains("Hello, args: from urunc") && stdout.contains("SUCCESS"), "{stdout}");
    d.assert_clean(&cid.id());

    build_urunc_image(d, "tender-oci-urunc-qemu:latest", "qemu");
    let cid = Cid::new(d, "urunc-qemu");
    let out = d.docker(&["run", "--rm", "--runtime=tender", &cid.arg(), "tender-oci-urunc-qemu:latest"]);
    let err = text(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("hypervisor is `qemu`") && err.contains("spt"), "{err}");
    let id = cid.id();
    let _ = d.docker(&["rm", "-f", &id]);
    d.assert_clean(&id);
}

#[test]
fn update_names_its_reason() {
    let Some(d) = dockerd::get() else { return };
    let name = format!("tender-update-{}", std::process::id());
    let _guard = Container(d, name.clone());
    let id = d
        .ok(&["run", "-d", "--name", &name, "--runtime=tender", IMAGE, "/net.spt", "{tender:ipv4.addr}", "1", "600"])
        .trim()
        .to_owned();
    assert!(d.wait_log(&name, "answering").contains("answering"), "{}", d.ok(&["logs", &name]));
    let out = d.docker(&["update", "--cpu-shares", "300", &name]);
    let err = text(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "update succeeded: {err}");
    // containerd's shim passes on the runtime's stdout and stderr only (not --log).
    assert!(err.contains("update is not supported by tender-oci: resources are fixed"), "{err}");
    d.ok(&["rm", "-f", &name]);
    d.assert_clean(&id);
}
