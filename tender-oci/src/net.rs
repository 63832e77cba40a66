//! Guest networking inside the container's network namespace: a fresh one (docker's
//! prestart hook has moved `eth0` in) or one given by path (a CNI pod sandbox, podman,
//! `ctr --with-ns`), which belongs to someone else and must be left as found.
//!
//! The guest's net devices, in manifest order, take the namespace's interfaces: the one
//! holding the default route first, then the others by name. For each, this makes a tap
//! `ttapN` and redirects every frame between the interface and the tap with tc (an
//! ingress qdisc and a match-all u32 filter with a mirred redirect, each way). The
//! interface keeps its MAC and IPv4 address; the guest takes the same MAC and address
//! (passed on its command line, see [`crate::cmdline`]), so it answers at the container's
//! (the pod's) IP and `docker inspect` stays true. Nothing in the namespace sees those
//! frames but the guest.
//!
//! The tap is not persistent: it lives exactly as long as the processes holding its
//! descriptor (the container's init and the tender), and carries the container's id in
//! its alias, which is how a second guest in the same namespace learns who holds it.
//! [`teardown`] removes the redirects when the guest has ended (the init does, and
//! `delete` again, from outside, in case the init was killed), so that a restarted
//! container — which Kubernetes starts in the same pod — takes the namespace again.

use std::os::fd::OwnedFd;

use hypercall_abi::mft::{net_features, MftType};
use tender::loader::Manifest;

use crate::cmdline::{GuestNet, Ipv4Config};
use crate::netlink::{Link, Netlink, NetlinkError};

/// Alias prefix of a tap tender-oci made: `tender-oci:ID`.
pub const ALIAS_PREFIX: &str = "tender-oci:";
/// Tap names: `ttap0`, `ttap1`, ….
pub const TAP_PREFIX: &str = "ttap";
/// MTU of a tap with no interface behind it.
const DEFAULT_MTU: u16 = 1500;

/// Network setup errors.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A netlink request failed.
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    /// Another container's guest holds this namespace.
    #[error("the network namespace is taken by container `{holder}`, whose guest owns {iface}: one networked guest per network namespace (pod): stop that container first, or give this one a network of its own")]
    Taken {
        /// Its container id.
        holder: String,
        /// The tap it holds.
        iface: String,
    },
    /// Creating the tap failed.
    #[error(
        "create tap {tap}: {source} (the container needs /dev/net/tun and CAP_NET_ADMIN in its network namespace)"
    )]
    Tap {
        /// Its name.
        tap: String,
        /// Why.
        source: std::io::Error,
    },
    /// The tap vanished between creating and configuring it.
    #[error("tap {0} disappeared right after it was made")]
    TapGone(String),
    /// An MTU the guest cannot use.
    #[error("interface {iface} has MTU {mtu}, larger than a guest frame can be (65535)")]
    Mtu {
        /// The interface.
        iface: String,
        /// Its MTU.
        mtu: u32,
    },
    /// Reading random bytes for a MAC.
    #[error("/dev/urandom: {0}")]
    Random(std::io::Error),
}

/// A guest net device, set up: what the guest is told, and the tap the tender takes.
#[derive(Debug)]
pub struct GuestLink {
    /// Name, MAC and address for the guest.
    pub net: GuestNet,
    /// The tap's descriptor (non-blocking).
    pub fd: OwnedFd,
    /// Its MTU.
    pub mtu: u16,
    /// Opened with `IFF_VNET_HDR` and offloads (the guest asked for them).
    pub vnet_hdr: bool,
    /// The namespace interface redirected to it, if any.
    pub iface: Option<String>,
}

fn random_mac() -> Result<[u8; 6], NetError> {
    use std::io::Read;
    let mut mac = [0u8; 6];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut mac)).map_err(NetError::Random)?;
    mac[0] = (mac[0] & 0xfe) | 0x02; // unicast, locally administered
    Ok(mac)
}

/// The alias a tap of container `id` carries.
pub fn alias(id: &str) -> String {
    format!("{ALIAS_PREFIX}{id}")
}

/// The container holding a tap in `links`, other than `id`.
fn holder<'a>(links: &'a [Link], id: &str) -> Option<(&'a str, &'a str)> {
    links.iter().find_map(|l| {
        let holder = l.alias.as_deref()?.strip_prefix(ALIAS_PREFIX)?;
        (holder != id).then_some((holder, l.name.as_str()))
    })
}

/// The interfaces guest net devices take, in order: the default route's first, then the
/// others with an Ethernet address, by name (loopback and our own taps never).
fn candidates(links: &[Link], default_oif: Option<u32>) -> Vec<&Link> {
    let mut out: Vec<&Link> =
        links.iter().filter(|l| !l.loopback && l.mac.len() == 6 && !l.name.starts_with(TAP_PREFIX)).collect();
    out.sort_by_key(|l| (Some(l.index) != default_oif, l.name.clone()));
    out
}

/// Sets up a tap per net device `names` (manifest order) for container `id` in the
/// current network namespace.
/// A guest that asked for [`net_features::VNET_HDR`] gets a tap with headers and offloads.
pub fn setup(names: &[String], manifest: &Manifest, id: &str) -> Result<Vec<GuestLink>, NetError> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let mut nl = Netlink::open()?;
    let links = nl.links()?;
    if let Some((holder, iface)) = holder(&links, id) {
        return Err(NetError::Taken { holder: holder.to_owned(), iface: iface.to_owned() });
    }
    let default = nl.default_route()?;
    let ifaces: Vec<Link> = candidates(&links, default.map(|d| d.oif)).into_iter().cloned().collect();
    let mut out = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let tap = format!("{TAP_PREFIX}{i}");
        let vnet_hdr = manifest
            .find(name, MftType::NetBasic)
            .is_some_and(|h| manifest.entries()[h].net_asks_for(net_features::VNET_HDR));
        let fd = tender::devices::create_tap(&tap, vnet_hdr).map_err(|source| {
            if source.raw_os_error() == Some(libc::EBUSY) {
                NetError::Taken { holder: "another process".into(), iface: tap.clone() }
            } else {
                NetError::Tap { tap: tap.clone(), source }
            }
        })?;
        let tap_index = nl.links()?.into_iter().find(|l| l.name == tap).ok_or(NetError::TapGone(tap.clone()))?.index;
        let Some(eth) = ifaces.get(i) else {
            nl.configure_up(tap_index, &tap, u32::from(DEFAULT_MTU), &alias(id))?;
            let net = GuestNet { name: name.clone(), tap, mac: random_mac()?, ipv4: None };
            out.push(GuestLink { net, fd, mtu: DEFAULT_MTU, vnet_hdr, iface: None });
            continue;
        };
        let mtu = u16::try_from(eth.mtu).map_err(|_| NetError::Mtu { iface: eth.name.clone(), mtu: eth.mtu })?;
        nl.configure_up(tap_index, &tap, eth.mtu, &alias(id))?;
        // A redirect left by a guest that was killed before it could remove it.
        nl.del_ingress_qdisc(eth.index, &eth.name)?;
        nl.add_ingress_qdisc(eth.index, &eth.name)?;
        nl.add_ingress_qdisc(tap_index, &tap)?;
        nl.redirect_ingress(eth.index, &eth.name, tap_index, &tap)?;
        nl.redirect_ingress(tap_index, &tap, eth.index, &eth.name)?;
        let gateway = default.filter(|d| d.oif == eth.index).and_then(|d| d.gateway);
        let ipv4 =
            nl.ipv4_addresses(eth.index)?.first().map(|a| Ipv4Config { addr: a.addr, prefix: a.prefix, gateway });
        let mac: [u8; 6] = eth.mac.as_slice().try_into().expect("candidates have 6-byte MACs");
        let net = GuestNet { name: name.clone(), tap, mac, ipv4 };
        out.push(GuestLink { net, fd, mtu, vnet_hdr, iface: Some(eth.name.clone()) });
    }
    Ok(out)
}

/// Removes the redirects container `id` put on `ifaces` in the current network
/// namespace, unless another container's guest holds the namespace now (a restarted
/// container may have taken it before the old one is deleted). Idempotent.
pub fn teardown(ifaces: &[String], id: &str) -> Result<(), NetError> {
    if ifaces.is_empty() {
        return Ok(());
    }
    let mut nl = Netlink::open()?;
    let links = nl.links()?;
    if holder(&links, id).is_some() {
        return Ok(());
    }
    for name in ifaces {
        if let Some(link) = links.iter().find(|l| &l.name == name) {
            nl.del_ingress_qdisc(link.index, name)?;
        }
    }
    Ok(())
}

/// [`teardown`] in the network namespace at `netns` (a path such as
/// `/var/run/netns/cni-…`), from a thread of its own so the caller's namespace never
/// changes. A namespace that no longer exists needs nothing.
pub fn teardown_in(netns: &std::path::Path, ifaces: &[String], id: &str) -> Result<(), NetError> {
    let Ok(file) = std::fs::File::open(netns) else { return Ok(()) };
    let (ifaces, id) = (ifaces.to_vec(), id.to_owned());
    std::thread::spawn(move || {
        nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| NetError::Netlink(NetlinkError::Socket(std::io::Error::from_raw_os_error(e as i32))))?;
        teardown(&ifaces, &id)
    })
    .join()
    .unwrap_or(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(index: u32, name: &str, alias: Option<&str>) -> Link {
        Link {
            index,
            name: name.into(),
            mac: if name == "lo" { vec![0; 6] } else { vec![2, 0, 0, 0, 0, u8::try_from(index).unwrap()] },
            mtu: 1500,
            alias: alias.map(Into::into),
            loopback: name == "lo",
        }
    }

    #[test]
    fn the_default_route_interface_comes_first() {
        let links = [link(1, "lo", None), link(2, "eth1", None), link(3, "eth0", None), link(4, "net1", None)];
        let names = |c: Vec<&Link>| c.iter().map(|l| l.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(candidates(&links, None)), ["eth0", "eth1", "net1"]);
        assert_eq!(names(candidates(&links, Some(4))), ["net1", "eth0", "eth1"]);
        let with_tap = [link(3, "eth0", None), link(5, "ttap0", None)];
        assert_eq!(names(candidates(&with_tap, None)), ["eth0"]);
    }

    #[test]
    fn a_tap_alias_names_its_holder() {
        let links = [link(3, "eth0", None), link(5, "ttap0", Some("tender-oci:abc"))];
        assert_eq!(holder(&links, "def"), Some(("abc", "ttap0")));
        assert_eq!(holder(&links, "abc"), None);
        assert_eq!(holder(&links[..1], "def"), None);
        assert_eq!(alias("abc"), "tender-oci:abc");
    }

    #[test]
    fn macs() {
        let m = random_mac().unwrap();
        assert_eq!(m[0] & 0x03, 0x02);
    }
}
