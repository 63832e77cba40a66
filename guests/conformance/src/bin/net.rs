//! Network device `service0`: answers ARP and ICMP echo for the IPv4 address
//! on the command line until it has sent COUNT echo replies.
//!
//! `net IPV4 [COUNT [TIMEOUT_S]]`, e.g. `net 10.0.0.2 5`; COUNT defaults to 1,
//! TIMEOUT_S (seconds for the whole run) to 60.
#![no_std]
#![no_main]

use core::fmt;
use core::net::Ipv4Addr;
use solo5_rt::{Checks, Cmdline, Error, Net, clock_monotonic, handle_bit, println, yield_until};

solo5_rt::manifest! {
    net service0;
}
solo5_rt::main!(main);

const NS_PER_SEC: u64 = 1_000_000_000;
const ETH_HDR: usize = 14;
/// The largest frame the tender can hand us: MTU (u16) plus the Ethernet header.
const FRAME_MAX: usize = u16::MAX as usize + ETH_HDR;

fn main(args: &Cmdline) -> i32 {
    let mut checks = Checks::new();
    let (Some(ip), Some(count), Some(timeout_s)) = (
        args.parse_arg::<Ipv4Addr>(0),
        args.arg(1).map_or(Some(1), |a| a.parse::<u64>().ok()),
        args.arg(2).map_or(Some(60), |a| a.parse::<u64>().ok()),
    ) else {
        checks.fail("arguments", format_args!("usage: net IPV4 [COUNT [TIMEOUT_S]], got {args:?}"));
        return checks.finish();
    };

    let net = match Net::acquire("service0") {
        Ok(n) => n,
        Err(e) => {
            checks.fail("acquire service0", format_args!("{e}"));
            return checks.finish();
        }
    };
    let info = net.info();
    println!("service0: handle {}, MAC {}, MTU is {}", net.handle(), Mac(info.mac), info.mtu);
    println!("answering ARP and ICMP echo for {ip} until {count} echo replies (timeout {timeout_s} s)");

    let mut frame = [0u8; FRAME_MAX];
    let frame_len = usize::from(info.mtu) + ETH_HDR;
    let me = Me { mac: info.mac, ip: ip.octets() };
    let give_up = clock_monotonic() + timeout_s * NS_PER_SEC;
    let (mut arp, mut echo) = (0u64, 0u64);

    while echo < count {
        let now = clock_monotonic();
        if now >= give_up {
            checks.fail(
                "answer echo requests",
                format_args!("timed out: {echo} of {count} echo replies, {arp} ARP replies"),
            );
            return checks.finish();
        }
        if yield_until(give_up.min(now + NS_PER_SEC)) & handle_bit(net.handle()) == 0 {
            continue;
        }
        // Drain the tap: it stays readable until empty.
        while echo < count {
            let n = match net.read(&mut frame[..frame_len]) {
                Ok(n) => n,
                Err(Error::Again) => break,
                Err(e) => {
                    checks.fail("net read", format_args!("{e}"));
                    return checks.finish();
                }
            };
            let Some((len, kind)) = me.reply(&mut frame[..n]) else { continue };
            if let Err(e) = net.write(&frame[..len]) {
                checks.fail("net write", format_args!("{e}"));
                return checks.finish();
            }
            match kind {
                Reply::Arp => arp += 1,
                Reply::Echo => echo += 1,
            }
        }
    }
    checks.check_with("answer echo requests", true, format_args!("{echo} echo replies, {arp} ARP replies"));
    checks.finish()
}

enum Reply {
    Arp,
    Echo,
}

/// Our addresses; turns requests for them into replies, in place.
struct Me {
    mac: [u8; 6],
    ip: [u8; 4],
}

impl Me {
    /// If `f` is an ARP request or ICMP echo request for us, rewrites it into the
    /// reply and returns the reply's length.
    fn reply(&self, f: &mut [u8]) -> Option<(usize, Reply)> {
        match u16::from_be_bytes([*f.get(12)?, *f.get(13)?]) {
            0x0806 => self.arp(f).map(|n| (n, Reply::Arp)),
            0x0800 => self.icmp_echo(f).map(|n| (n, Reply::Echo)),
            _ => None,
        }
    }

    /// Ethernet addresses for a reply to `f`'s sender.
    fn swap_eth(&self, f: &mut [u8]) {
        f.copy_within(6..12, 0);
        f[6..12].copy_from_slice(&self.mac);
    }

    fn arp(&self, f: &mut [u8]) -> Option<usize> {
        const LEN: usize = ETH_HDR + 28;
        let a = f.get(ETH_HDR..LEN)?;
        // Ethernet/IPv4 request (htype 1, ptype 0x0800, hlen 6, plen 4, oper 1) for our IP.
        if a[..8] != [0, 1, 8, 0, 6, 4, 0, 1] || a[24..28] != self.ip {
            return None;
        }
        self.swap_eth(f);
        let a = &mut f[ETH_HDR..LEN];
        a[7] = 2; // oper: reply
        a.copy_within(8..18, 18); // requester's MAC and IP become the target
        a[8..14].copy_from_slice(&self.mac);
        a[14..18].copy_from_slice(&self.ip);
        Some(LEN)
    }

    fn icmp_echo(&self, f: &mut [u8]) -> Option<usize> {
        let ip = f.get(ETH_HDR..)?;
        let ihl = usize::from(*ip.first()? & 0x0f) * 4;
        let total = usize::from(u16::from_be_bytes([*ip.get(2)?, *ip.get(3)?]));
        let unfragmented = ip.get(6)? & 0x3f == 0 && *ip.get(7)? == 0;
        if ip[0] >> 4 != 4 || ihl < 20 || total < ihl + 8 || total > ip.len() || !unfragmented {
            return None;
        }
        // ICMP (1) echo request (type 8, code 0) to us.
        if ip[9] != 1 || ip[16..20] != self.ip || ip[ihl] != 8 || ip[ihl + 1] != 0 {
            return None;
        }
        self.swap_eth(f);
        let ip = &mut f[ETH_HDR..ETH_HDR + total];
        ip.copy_within(12..16, 16); // the sender becomes the destination
        ip[12..16].copy_from_slice(&self.ip);
        ip[8] = 64; // TTL
        ip[10..12].fill(0);
        let sum = checksum(&ip[..ihl]);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        let icmp = &mut ip[ihl..];
        icmp[0] = 0; // echo reply
        icmp[2..4].fill(0);
        let sum = checksum(icmp);
        icmp[2..4].copy_from_slice(&sum.to_be_bytes());
        Some(ETH_HDR + total)
    }
}

/// The Internet checksum (RFC 1071) of `data`.
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

struct Mac([u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}
