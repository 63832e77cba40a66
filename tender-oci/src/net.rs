//! Guest networking inside the container's network namespace.
//!
//! The guest's net devices, in manifest order, take the namespace's `eth0`, `eth1`, …:
//! for each, a bridge `tbrN` joins `ethN` and a tap `ttapN`; `ethN` loses its IPv4
//! address (handed to the guest on its command line, see [`crate::cmdline`]) and its MAC
//! (the guest takes it, so docker's view of the container stays true; `ethN` gets a
//! random locally administered one). A device with no `ethN` gets a tap of its own,
//! connected to nothing. All of it lives in the container's namespace and goes with it.
//!
//! Uses iproute2's `ip` (JSON output for reading).

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

use crate::cmdline::{GuestNet, Ipv4Config, Mac};

/// Where `ip` may live (the runtime's PATH, as set by containerd, may lack sbin).
const IP_CANDIDATES: &[&str] = &["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"];

/// Network setup errors.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// No iproute2.
    #[error("iproute2's `ip` is not installed (looked in {}): install iproute2", IP_CANDIDATES.join(", "))]
    NoIp,
    /// An `ip` command failed.
    #[error("`ip {args}` failed: {stderr}")]
    Ip {
        /// Its arguments.
        args: String,
        /// What it said.
        stderr: String,
    },
    /// Its JSON was not what we expect.
    #[error("cannot read the output of `ip {args}`: {source}")]
    Parse {
        /// Its arguments.
        args: String,
        /// Why.
        source: serde_json::Error,
    },
    /// Reading random bytes for a MAC.
    #[error("/dev/urandom: {0}")]
    Random(std::io::Error),
}

#[derive(Debug, Deserialize)]
struct Link {
    #[serde(default)]
    address: Option<String>,
    #[serde(default)]
    mtu: Option<u32>,
    #[serde(default)]
    addr_info: Vec<AddrInfo>,
}

#[derive(Debug, Deserialize)]
struct AddrInfo {
    family: String,
    local: Option<String>,
    prefixlen: Option<u8>,
}

#[derive(Debug, Deserialize)]
struct Route {
    gateway: Option<Ipv4Addr>,
    dev: Option<String>,
}

/// An interface as `ip -j addr show` describes it.
#[derive(Debug, PartialEq, Eq)]
struct LinkInfo {
    mac: [u8; 6],
    mtu: u32,
    ipv4: Option<(Ipv4Addr, u8)>,
}

/// What `ip -j addr show dev IFACE` says: MAC, MTU, first IPv4 address.
fn parse_link(json: &str) -> Result<Option<LinkInfo>, serde_json::Error> {
    let links: Vec<Link> = serde_json::from_str(json)?;
    Ok(links.into_iter().next().map(|l| {
        let mac = l.address.as_deref().and_then(parse_mac).unwrap_or_default();
        let ipv4 = l
            .addr_info
            .iter()
            .find(|a| a.family == "inet")
            .and_then(|a| Some((a.local.as_deref()?.parse().ok()?, a.prefixlen?)));
        LinkInfo { mac, mtu: l.mtu.unwrap_or(1500), ipv4 }
    }))
}

/// The gateway of the default route through `iface`, from `ip -j -4 route show default`.
fn parse_gateway(json: &str, iface: &str) -> Result<Option<Ipv4Addr>, serde_json::Error> {
    let routes: Vec<Route> = serde_json::from_str(json)?;
    Ok(routes.into_iter().find(|r| r.dev.as_deref() == Some(iface)).and_then(|r| r.gateway))
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for byte in &mut mac {
        *byte = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// Runs `ip`.
struct Ip(PathBuf);

impl Ip {
    fn find() -> Result<Self, NetError> {
        IP_CANDIDATES.iter().map(Path::new).find(|p| p.exists()).map(|p| Ip(p.to_owned())).ok_or(NetError::NoIp)
    }

    fn run(&self, args: &[&str]) -> Result<String, NetError> {
        let out = Command::new(&self.0)
            .args(args)
            .output()
            .map_err(|e| NetError::Ip { args: args.join(" "), stderr: e.to_string() })?;
        if !out.status.success() {
            return Err(NetError::Ip {
                args: args.join(" "),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn exists(&self, iface: &str) -> bool {
        Command::new(&self.0).args(["link", "show", "dev", iface]).output().is_ok_and(|o| o.status.success())
    }
}

fn random_mac() -> Result<[u8; 6], NetError> {
    use std::io::Read;
    let mut mac = [0u8; 6];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut mac)).map_err(NetError::Random)?;
    mac[0] = (mac[0] & 0xfe) | 0x02; // unicast, locally administered
    Ok(mac)
}

/// Sets up a tap per net device `names` (manifest order) in the current network namespace.
pub fn setup(names: &[String]) -> Result<Vec<GuestNet>, NetError> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let ip = Ip::find()?;
    let mut out = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let (eth, tap, br) = (format!("eth{i}"), format!("ttap{i}"), format!("tbr{i}"));
        ip.run(&["tuntap", "add", "dev", &tap, "mode", "tap"])?;
        if !ip.exists(&eth) {
            ip.run(&["link", "set", "dev", &tap, "up"])?;
            out.push(GuestNet { name: name.clone(), tap, mac: random_mac()?, ipv4: None });
            continue;
        }
        let args = ["-j", "addr", "show", "dev", eth.as_str()];
        let text = ip.run(&args)?;
        let parse_err = |source| NetError::Parse { args: args.join(" "), source };
        let link = parse_link(&text).map_err(parse_err)?.unwrap_or(LinkInfo { mac: [0; 6], mtu: 1500, ipv4: None });
        let (mac, mtu, addr) = (link.mac, link.mtu, link.ipv4);
        let args = ["-j", "-4", "route", "show", "default"];
        let gateway =
            parse_gateway(&ip.run(&args)?, &eth).map_err(|source| NetError::Parse { args: args.join(" "), source })?;
        let guest_mac = if mac == [0; 6] { random_mac()? } else { mac };
        let eth_mac = random_mac()?;
        let mtu = mtu.to_string();
        ip.run(&["link", "set", "dev", &tap, "mtu", &mtu])?;
        ip.run(&["link", "add", "name", &br, "type", "bridge"])?;
        ip.run(&["link", "set", "dev", &br, "mtu", &mtu])?;
        ip.run(&["-4", "addr", "flush", "dev", &eth])?;
        ip.run(&["link", "set", "dev", &eth, "address", &Mac(&eth_mac).to_string()])?;
        ip.run(&["link", "set", "dev", &eth, "master", &br])?;
        ip.run(&["link", "set", "dev", &tap, "master", &br])?;
        for dev in [&br, &tap, &eth] {
            ip.run(&["link", "set", "dev", dev, "up"])?;
        }
        let ipv4 = addr.map(|(addr, prefix)| Ipv4Config { addr, prefix, gateway });
        out.push(GuestNet { name: name.clone(), tap, mac: guest_mac, ipv4 });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_iproute2_json() {
        let addr = r#"[{"ifindex":9,"ifname":"eth0","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"mtu":1500,
            "link_type":"ether","address":"02:42:ac:11:00:02","addr_info":[
            {"family":"inet6","local":"fe80::42:acff:fe11:2","prefixlen":64},
            {"family":"inet","local":"172.17.0.2","prefixlen":16,"broadcast":"172.17.255.255"}]}]"#;
        let link = parse_link(addr).unwrap().unwrap();
        assert_eq!(link.mac, [0x02, 0x42, 0xac, 0x11, 0, 2]);
        assert_eq!(link.mtu, 1500);
        assert_eq!(link.ipv4, Some((Ipv4Addr::new(172, 17, 0, 2), 16)));
        assert_eq!(parse_link("[]").unwrap(), None);
        let routes = r#"[{"dst":"default","gateway":"172.17.0.1","dev":"eth0","flags":[]}]"#;
        assert_eq!(parse_gateway(routes, "eth0").unwrap(), Some(Ipv4Addr::new(172, 17, 0, 1)));
        assert_eq!(parse_gateway(routes, "eth1").unwrap(), None);
        assert_eq!(parse_gateway("[]", "eth0").unwrap(), None);
    }

    #[test]
    fn macs() {
        assert_eq!(parse_mac("02:42:AC:11:00:02"), Some([2, 0x42, 0xac, 0x11, 0, 2]));
        assert_eq!(parse_mac("02:42:ac:11:00"), None);
        assert_eq!(parse_mac("02:42:ac:11:00:02:03"), None);
        let m = random_mac().unwrap();
        assert_eq!(m[0] & 0x03, 0x02);
    }
}
