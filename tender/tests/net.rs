//! Net echo over a real tap, on both backends: the guest answers ARP and ICMP echo
//! for its address while the host pings it. Everything happens inside a network
//! namespace this test creates and removes, so no traffic leaves the machine. Needs
//! root, `ip` and `ping` (and /dev/kvm for hvt). A round trip through the hvt
//! backend costs about 1 ms here (docs/solo5-abi.md §11): five pings are cheap.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{guest, have, is_root, require, tender, Backend};

/// A network namespace holding one tap, removed (with the tap) on drop.
struct Netns {
    name: String,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip runs");
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

impl Netns {
    fn with_tap(tap: &str, host_addr: &str, mtu: u32) -> Self {
        let name = format!("tender-test-{}-{tap}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        ip(&["netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns.ip(&["tuntap", "add", tap, "mode", "tap"]);
        ns.ip(&["link", "set", tap, "mtu", &mtu.to_string()]);
        ns.ip(&["addr", "add", host_addr, "dev", tap]);
        ns.ip(&["link", "set", tap, "up"]);
        ns
    }

    fn ip(&self, args: &[&str]) {
        let mut full = vec!["-n", &self.name];
        full.extend_from_slice(args);
        ip(&full);
    }

    fn command(&self, program: &std::path::Path) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).output();
    }
}

/// Kills the tender if the test fails before it exits.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One case, run on each backend (with its own tap and subnet, so both can
/// run at once).
fn guest_answers_ping_over_a_tap(backend: Backend, subnet: u8) {
    if !require("root", is_root())
        || !require("ip (iproute2)", have("ip"))
        || !require("ping (iputils-ping)", have("ping"))
        || !backend.available()
    {
        return;
    }
    let tap = format!("tap{subnet}");
    let (host, me) = (format!("10.13.{subnet}.1/24"), format!("10.13.{subnet}.2"));
    let ns = Netns::with_tap(&tap, &host, 1500);
    let child = ns
        .command(tender())
        .args([format!("--net:service0={tap}").as_str(), "--net-mac:service0=02:00:00:13:00:02"])
        .arg(backend.guest("net"))
        .args([me.as_str(), "5", "30"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tender starts");
    let mut tender_proc = Reap(child);
    // Ping once the guest listens (its boot is emulated code on hvt): read its
    // output on a thread until that line, keep the rest for the asserts below.
    let guest_out = tender_proc.0.stdout.take().unwrap();
    let (listening_tx, listening) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufRead::lines(std::io::BufReader::new(guest_out)).map_while(Result::ok) {
            if line.contains("answering ARP") {
                let _ = listening_tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let _ = listening.recv_timeout(Duration::from_secs(20));

    let ping = ns
        .command(std::path::Path::new("ping"))
        .args(["-c", "5", "-i", "0.2", "-W", "2", me.as_str()])
        .output()
        .expect("ping runs");
    let ping_out = String::from_utf8_lossy(&ping.stdout).into_owned();

    let deadline = Instant::now() + Duration::from_secs(30);
    while tender_proc.0.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let child = std::mem::replace(&mut tender_proc.0, Command::new("true").spawn().unwrap());
    let out = child.wait_with_output().unwrap();
    let stdout = reader.join().unwrap();
    assert!(ping.status.success(), "ping failed:\n{ping_out}\n--- guest\n{stdout}");
    assert!(ping_out.contains("5 received"), "{ping_out}");
    assert_eq!(out.status.code(), Some(0), "guest:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("MAC 02:00:00:13:00:02"), "{stdout}");
    assert!(stdout.contains("MTU is 1500"), "{stdout}");
    assert!(stdout.contains("SUCCESS"), "{stdout}");
}

#[test]
fn spt_guest_answers_ping_over_a_tap() {
    guest_answers_ping_over_a_tap(Backend::Spt, 0);
}

#[test]
fn hvt_guest_answers_ping_over_a_tap() {
    guest_answers_ping_over_a_tap(Backend::Hvt, 2);
}

#[test]
fn tap_errors_name_the_interface_and_the_fix() {
    if !require("root", is_root()) || !require("ip (iproute2)", have("ip")) {
        return;
    }
    let out = Command::new(tender()).args(["--net:service0=nosuchtap0"]).arg(guest("net")).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("could not attach interface: nosuchtap0: no such interface"), "{err}");

    let ns = Netns::with_tap("tap9", "10.13.9.1/24", 9000);
    ns.ip(&["link", "set", "tap9", "down"]);
    let out = ns.command(tender()).args(["--net:service0=tap9"]).arg(guest("net")).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("tap9: interface is down"), "{err}");
}

#[test]
fn guest_sees_the_tap_mtu() {
    if !require("root", is_root()) || !require("ip (iproute2)", have("ip")) {
        return;
    }
    let ns = Netns::with_tap("tap1", "10.13.1.1/24", 9000);
    // Count 0: print device info and exit without waiting for traffic.
    let out = ns
        .command(tender())
        .args(["--net:service0=tap1"])
        .arg(guest("net"))
        .args(["10.13.1.2", "0", "1"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("MTU is 9000"), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
}
