//! Net echo over a real tap: the guest answers ARP and ICMP echo for its address while
//! the host pings it. Everything happens inside a network namespace this test creates
//! and removes, so no traffic leaves the machine. Needs root, `ip` and `ping`.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{guest, have, is_root, require, tender};

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

#[test]
fn guest_answers_ping_over_a_tap() {
    if !require("root", is_root())
        || !require("ip (iproute2)", have("ip"))
        || !require("ping (iputils-ping)", have("ping"))
    {
        return;
    }
    let ns = Netns::with_tap("tap0", "10.13.0.1/24", 1500);
    let child = ns
        .command(tender())
        .args(["--net:service0=tap0", "--net-mac:service0=02:00:00:13:00:02"])
        .arg(guest("net"))
        .args(["10.13.0.2", "5", "30"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tender starts");
    let mut tender_proc = Reap(child);

    let ping = ns
        .command(std::path::Path::new("ping"))
        .args(["-c", "5", "-i", "0.2", "-W", "2", "10.13.0.2"])
        .output()
        .expect("ping runs");
    let ping_out = String::from_utf8_lossy(&ping.stdout).into_owned();

    let deadline = Instant::now() + Duration::from_secs(30);
    while tender_proc.0.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let child = std::mem::replace(&mut tender_proc.0, Command::new("true").spawn().unwrap());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(ping.status.success(), "ping failed:\n{ping_out}\n--- guest\n{stdout}");
    assert!(ping_out.contains("5 received"), "{ping_out}");
    assert_eq!(out.status.code(), Some(0), "guest:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("MAC 02:00:00:13:00:02"), "{stdout}");
    assert!(stdout.contains("MTU is 1500"), "{stdout}");
    assert!(stdout.contains("SUCCESS"), "{stdout}");
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
