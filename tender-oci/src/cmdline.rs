//! The tender's run spec for a container, and the guest's command line (pure).
//!
//! Network words tell the guest the address docker gave the container (see the README,
//! "Networking"): if any guest argument contains a `{tender:…}` placeholder, the
//! placeholders are replaced and nothing is added; otherwise, when the first net device
//! has an IPv4 address, `--ipv4=ADDR/PREFIX` and `--ipv4-gateway=GW` (if there is a default
//! route; MirageOS's spelling, which our `guests/apps` parse too) are inserted after the
//! leading `--solo5:` words (which Solo5 bindings only honour in front).

use std::net::Ipv4Addr;
use std::path::Path;

use tender::spec::{BlockSpec, NetSpec, RunSpec, TapSpec};

/// Placeholder: `ADDR/PREFIX`.
pub const PH_IPV4: &str = "{tender:ipv4}";
/// Placeholder: `ADDR`.
pub const PH_IPV4_ADDR: &str = "{tender:ipv4.addr}";
/// Placeholder: the prefix length.
pub const PH_IPV4_PREFIX: &str = "{tender:ipv4.prefix}";
/// Placeholder: the netmask, dotted.
pub const PH_IPV4_NETMASK: &str = "{tender:ipv4.netmask}";
/// Placeholder: the default gateway.
pub const PH_GW: &str = "{tender:gw}";

const PLACEHOLDER_START: &str = "{tender:";

/// An IPv4 configuration moved from the container's interface to the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Config {
    /// The address.
    pub addr: Ipv4Addr,
    /// Prefix length (0..=32).
    pub prefix: u8,
    /// Default gateway, if the namespace had a default route.
    pub gateway: Option<Ipv4Addr>,
}

impl Ipv4Config {
    /// The netmask for the prefix.
    pub fn netmask(&self) -> Ipv4Addr {
        let bits = u32::MAX.checked_shl(32 - u32::from(self.prefix.min(32))).unwrap_or(0);
        Ipv4Addr::from(bits)
    }
}

/// A net device of the guest, attached to a tap in the container's namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestNet {
    /// Manifest name.
    pub name: String,
    /// The tap.
    pub tap: String,
    /// The guest's MAC.
    pub mac: [u8; 6],
    /// The address moved to the guest, if any.
    pub ipv4: Option<Ipv4Config>,
}

/// A guest argument asks for network information the container does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CmdlineError {
    /// Placeholder but no address.
    #[error("guest argument `{arg}` uses {placeholder}, but {why}")]
    NoAddress {
        /// The argument.
        arg: String,
        /// The placeholder.
        placeholder: &'static str,
        /// Why there is no value.
        why: &'static str,
    },
    /// `{tender:` that is not one of ours.
    #[error("guest argument `{0}` has an unknown {{tender:…}} placeholder (known: {PH_IPV4}, {PH_IPV4_ADDR}, {PH_IPV4_PREFIX}, {PH_IPV4_NETMASK}, {PH_GW})")]
    Unknown(String),
}

/// The tender's run spec for a container: the plan's guest, memory and block devices,
/// the taps [`crate::net::setup`] made, and the guest's arguments with the network words.
pub fn run_spec(
    mem_mib: u64,
    blocks: &std::collections::BTreeMap<String, std::path::PathBuf>,
    links: Vec<crate::net::GuestLink>,
    guest: &Path,
    args: &[String],
) -> Result<RunSpec, CmdlineError> {
    let words = guest_args(args, links.first().map(|l| &l.net))?;
    let mut spec = RunSpec::new(guest).with_args(&words);
    spec.mem_bytes = mem_mib << 20;
    for (name, path) in blocks {
        spec.blocks
            .insert(name.clone(), BlockSpec { path: path.clone(), block_size: tender::spec::DEFAULT_BLOCK_SIZE });
    }
    for link in links {
        let tap = TapSpec::Open { fd: link.fd, iface: link.net.tap, mtu: link.mtu, vnet_hdr: link.vnet_hdr };
        spec.nets.insert(link.net.name, NetSpec { tap, mac: Some(link.net.mac) });
    }
    Ok(spec)
}

/// The guest's arguments with the network information added (see the module doc).
pub fn guest_args(args: &[String], net: Option<&GuestNet>) -> Result<Vec<String>, CmdlineError> {
    let ipv4 = net.and_then(|n| n.ipv4);
    if args.iter().any(|a| a.contains(PLACEHOLDER_START)) {
        return args.iter().map(|a| substitute(a, net.is_some(), ipv4)).collect();
    }
    let mut out = args.to_vec();
    if let Some(ip) = ipv4 {
        let at = args.iter().take_while(|a| a.starts_with("--solo5:")).count();
        let mut words = vec![format!("--ipv4={}/{}", ip.addr, ip.prefix)];
        if let Some(gw) = ip.gateway {
            words.push(format!("--ipv4-gateway={gw}"));
        }
        out.splice(at..at, words);
    }
    Ok(out)
}

fn substitute(arg: &str, has_net: bool, ipv4: Option<Ipv4Config>) -> Result<String, CmdlineError> {
    let mut out = String::with_capacity(arg.len());
    let mut rest = arg;
    while let Some(start) = rest.find(PLACEHOLDER_START) {
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        let end = tail.find('}').ok_or_else(|| CmdlineError::Unknown(arg.to_owned()))? + 1;
        let placeholder = [PH_IPV4, PH_IPV4_ADDR, PH_IPV4_PREFIX, PH_IPV4_NETMASK, PH_GW]
            .into_iter()
            .find(|p| *p == &tail[..end])
            .ok_or_else(|| CmdlineError::Unknown(arg.to_owned()))?;
        let missing = |why| CmdlineError::NoAddress { arg: arg.to_owned(), placeholder, why };
        let ip = match ipv4 {
            Some(ip) => ip,
            None if !has_net => {
                return Err(missing("the guest declares no net device (its manifest has no `net` entry)"))
            }
            None => {
                return Err(missing(
                    "the container has no IPv4 address on eth0 (run it on a docker network that assigns one, not --network none)",
                ))
            }
        };
        let value = match placeholder {
            PH_IPV4 => format!("{}/{}", ip.addr, ip.prefix),
            PH_IPV4_ADDR => ip.addr.to_string(),
            PH_IPV4_PREFIX => ip.prefix.to_string(),
            PH_IPV4_NETMASK => ip.netmask().to_string(),
            _ => match ip.gateway {
                Some(gw) => gw.to_string(),
                None => return Err(missing("the container's network namespace has no default route")),
            },
        };
        out.push_str(&value);
        rest = &tail[end..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn net(ipv4: Option<Ipv4Config>) -> GuestNet {
        GuestNet { name: "service0".into(), tap: "tap0".into(), mac: [2, 0x42, 0xac, 0x11, 0, 2], ipv4 }
    }

    const IP: Ipv4Config =
        Ipv4Config { addr: Ipv4Addr::new(172, 17, 0, 2), prefix: 16, gateway: Some(Ipv4Addr::new(172, 17, 0, 1)) };

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn run_spec_carries_the_plan_and_the_taps() {
        let blocks = BTreeMap::from([("storage".to_string(), std::path::PathBuf::from("/data/disk.img"))]);
        let fd = std::fs::File::open("/dev/null").unwrap().into();
        let link =
            crate::net::GuestLink { net: net(Some(IP)), fd, mtu: 1400, vnet_hdr: false, iface: Some("eth0".into()) };
        let spec = run_spec(64, &blocks, vec![link], Path::new("/net.spt"), &strings(&["x"])).unwrap();
        assert_eq!(spec.guest, Path::new("/net.spt"));
        assert_eq!(spec.mem_bytes, 64 << 20);
        assert_eq!(spec.blocks["storage"], BlockSpec { path: "/data/disk.img".into(), block_size: 512 });
        let net = &spec.nets["service0"];
        assert_eq!(net.mac, Some([2, 0x42, 0xac, 0x11, 0, 2]));
        assert!(matches!(&net.tap, TapSpec::Open { iface, mtu: 1400, .. } if iface == "tap0"));
        assert_eq!(spec.cmdline, "--ipv4=172.17.0.2/16 --ipv4-gateway=172.17.0.1 x");
        assert_eq!(spec.validate(), Ok(()));
    }

    #[test]
    fn net_words_go_after_the_solo5_words() {
        let args = guest_args(&strings(&["--solo5:quiet", "a"]), Some(&net(Some(IP)))).unwrap();
        assert_eq!(args, strings(&["--solo5:quiet", "--ipv4=172.17.0.2/16", "--ipv4-gateway=172.17.0.1", "a"]));
        let no_gw = Ipv4Config { gateway: None, ..IP };
        assert_eq!(guest_args(&[], Some(&net(Some(no_gw)))).unwrap(), strings(&["--ipv4=172.17.0.2/16"]));
        assert_eq!(guest_args(&strings(&["a"]), Some(&net(None))).unwrap(), strings(&["a"]));
        assert_eq!(guest_args(&strings(&["a"]), None).unwrap(), strings(&["a"]));
    }

    #[test]
    fn placeholders_replace_the_words() {
        let args =
            strings(&["{tender:ipv4.addr}", "5", "--gw={tender:gw}", "m={tender:ipv4.netmask}/{tender:ipv4.prefix}"]);
        assert_eq!(
            guest_args(&args, Some(&net(Some(IP)))).unwrap(),
            strings(&["172.17.0.2", "5", "--gw=172.17.0.1", "m=255.255.0.0/16"])
        );
        let one = Ipv4Config { prefix: 32, ..IP };
        assert_eq!(
            guest_args(&strings(&["{tender:ipv4}"]), Some(&net(Some(one)))).unwrap(),
            strings(&["172.17.0.2/32"])
        );
        assert_eq!(one.netmask(), Ipv4Addr::new(255, 255, 255, 255));
        assert_eq!(Ipv4Config { prefix: 0, ..IP }.netmask(), Ipv4Addr::new(0, 0, 0, 0));
    }

    #[test]
    fn placeholder_errors_say_why() {
        let e = guest_args(&strings(&["{tender:ipv4}"]), Some(&net(None))).unwrap_err();
        assert!(e.to_string().contains("no IPv4 address on eth0"), "{e}");
        let e = guest_args(&strings(&["{tender:ipv4}"]), None).unwrap_err();
        assert!(e.to_string().contains("declares no net device"), "{e}");
        let e = guest_args(&strings(&["{tender:ipv6}"]), Some(&net(Some(IP)))).unwrap_err();
        assert!(matches!(e, CmdlineError::Unknown(_)), "{e}");
        let e =
            guest_args(&strings(&["{tender:gw}"]), Some(&net(Some(Ipv4Config { gateway: None, ..IP })))).unwrap_err();
        assert!(e.to_string().contains("no default route"), "{e}");
    }
}
