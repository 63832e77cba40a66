//! The tender's command line for a container (pure).
//!
//! ```text
//! --mem=MIB [--block:NAME=PATH]... [--net:NAME=TAP --net-mac:NAME=MAC]... GUEST [NET WORDS] ARGS...
//! ```
//!
//! Network words tell the guest the address docker gave the container (see the README,
//! "Networking"): if any guest argument contains a `{tender:…}` placeholder, the
//! placeholders are replaced and nothing is added; otherwise, when the first net device
//! has an IPv4 address, `--ipv4=ADDR/PREFIX` and `--ipv4-gateway=GW` (if there is a default
//! route; MirageOS's spelling, which our `guests/apps` parse too) are inserted after the
//! leading `--solo5:` words (which Solo5 bindings only honour in front).

use std::fmt;
use std::net::Ipv4Addr;
use std::path::Path;

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

/// MAC in `xx:xx:xx:xx:xx:xx` form.
pub struct Mac<'a>(pub &'a [u8; 6]);

impl fmt::Display for Mac<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
    }
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

/// The tender's arguments (without the program name).
pub fn tender_args(
    mem_mib: u64,
    blocks: &std::collections::BTreeMap<String, std::path::PathBuf>,
    nets: &[GuestNet],
    guest: &Path,
    args: &[String],
) -> Result<Vec<String>, CmdlineError> {
    let mut out = vec![format!("--mem={mem_mib}")];
    for (name, path) in blocks {
        out.push(format!("--block:{name}={}", path.display()));
    }
    for net in nets {
        out.push(format!("--net:{}={}", net.name, net.tap));
        out.push(format!("--net-mac:{}={}", net.name, Mac(&net.mac)));
    }
    out.push("--".into());
    out.push(guest.display().to_string());
    out.extend(guest_args(args, nets.first())?);
    Ok(out)
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
    fn full_command_line() {
        let blocks = BTreeMap::from([("storage".to_string(), std::path::PathBuf::from("/data/disk.img"))]);
        let args = tender_args(64, &blocks, &[net(Some(IP))], Path::new("/net.spt"), &strings(&["x"])).unwrap();
        assert_eq!(
            args,
            strings(&[
                "--mem=64",
                "--block:storage=/data/disk.img",
                "--net:service0=tap0",
                "--net-mac:service0=02:42:ac:11:00:02",
                "--",
                "/net.spt",
                "--ipv4=172.17.0.2/16",
                "--ipv4-gateway=172.17.0.1",
                "x",
            ])
        );
        // The tender accepts what we build.
        let parsed = tender::cli::parse(args.iter().map(Into::into)).unwrap();
        assert!(
            matches!(parsed, tender::cli::Command::Run(o) if o.cmdline == "--ipv4=172.17.0.2/16 --ipv4-gateway=172.17.0.1 x")
        );
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
