//! Memory: how much the tender itself keeps resident next to its guest, for
//! `--mem=64` and `--mem=1024`. Target: ≤ 1 MiB beyond the guest pages the guest
//! touched, and untouched guest memory free.
//!
//! Runs the `http` guest (it starts, allocates its socket buffers and waits), then
//! reads `/proc/PID/smaps`: the guest's pages are the mappings inside
//! `[0x10000, mem)`, everything else is the tender's: on spt only its launch block,
//! since it unmaps its binary, heap, stack and vDSO before the jump. Not a criterion
//! benchmark: there is nothing to time.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use benches::Netns;

const GUEST_BASE: u64 = 0x10000;

/// Outside the guest range: RSS, private (clean + dirty), private dirty; and the
/// guest range's RSS. In KiB.
fn split_rss(pid: u32, mem: u64) -> (u64, u64, u64, u64) {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).expect("smaps");
    let (mut tender, mut private, mut dirty, mut guest) = (0, 0, 0, 0);
    let mut in_guest = false;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if let Some((start, end)) = first.split_once('-') {
            if let (Ok(s), Ok(e)) = (u64::from_str_radix(start, 16), u64::from_str_radix(end, 16)) {
                in_guest = s >= GUEST_BASE && e <= mem;
                continue;
            }
        }
        let kb = |v: &str| -> u64 { v.trim().trim_end_matches("kB").trim().parse().unwrap_or(0) };
        if let Some(v) = line.strip_prefix("Rss:") {
            if in_guest {
                guest += kb(v);
            } else {
                tender += kb(v);
            }
        } else if let Some(v) = line.strip_prefix("Private_Clean:") {
            if !in_guest {
                private += kb(v);
            }
        } else if let Some(v) = line.strip_prefix("Private_Dirty:") {
            if !in_guest {
                private += kb(v);
                dirty += kb(v);
            }
        }
    }
    (tender, private, dirty, guest)
}

fn main() {
    if !benches::is_root() {
        println!("memory: SKIPPED: needs root (a tap in a private network namespace)");
        return;
    }
    benches::build_all();
    let ns = Netns::new("mem").expect("network namespace");
    ns.add_tap("mem0", Some("10.99.0.1/24")).expect("tap");
    println!("memory: tender RSS beyond the guest's own pages (target ≤ 1024 KiB)");
    println!("(RSS counts file pages shared with other processes, such as libc's; private = mapped by no");
    println!(" other process; private dirty = pages written: what one more tender really adds)");
    println!(
        "| tender | --mem | RSS outside the guest | private | private dirty | guest pages resident | guest mapped |"
    );
    println!("|---|---|---|---|---|---|---|");
    let tenders = [("spt (static, as built)", benches::release_bin("tender"))];
    println!("memory: hvt not measured: its guest memory is a KVM memory region, not the guest's addresses here");
    for (what, tender) in &tenders {
        for mem_mib in [64u64, 1024] {
            let mut child = ns
                .command(tender)
                .args([format!("--mem={mem_mib}"), "--net:service0=mem0".into()])
                .arg(benches::guest("http", "spt"))
                .args(["--ipv4=10.99.0.2/24"])
                .stdout(Stdio::piped())
                .spawn()
                .expect("tender");
            let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
            let ready = lines.any(|l| l.is_ok_and(|l| l.contains("listening on")));
            assert!(ready, "http guest did not start");
            // Let the guest finish setting up its sockets: their pages are the guest's.
            std::thread::sleep(std::time::Duration::from_millis(200));
            let (rss, private, dirty, guest) = split_rss(child.id(), mem_mib << 20);
            let _ = child.kill();
            let _ = child.wait();
            let mapped = (mem_mib << 10) - GUEST_BASE / 1024;
            println!(
                "| {what} | {mem_mib} MiB | {rss} KiB | {private} KiB | {dirty} KiB | {guest} KiB | {mapped} KiB |"
            );
        }
    }
}
