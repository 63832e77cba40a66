//! A small synchronous rtnetlink client: the few link, address, route and tc requests
//! the guest network needs, in the calling thread's network namespace.
//!
//! Why not `ip`: twelve processes per net device, text to scrape and stderr as the only
//! error. Why not the `rtnetlink` crate: it needs an async runtime, and the container's
//! init must stay one thread (it is cloned without `CLONE_VM` and forks the tender).

use std::net::{IpAddr, Ipv4Addr};

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage};
use netlink_packet_route::tc::{
    TcAction, TcActionAttribute, TcActionMirrorOption, TcActionOption, TcActionType, TcAttribute, TcFilterU32Option,
    TcHandle, TcHeader, TcMessage, TcMirror, TcMirrorActionType, TcOption, TcU32Key, TcU32Selector, TcU32SelectorFlags,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// `ETH_P_ALL`, the tc filter protocol that matches every frame.
const ETH_P_ALL: u16 = 0x0003;
/// `TCA_ACT_TAB`: the first (only) action of a filter.
const TCA_ACT_TAB: u16 = 1;
/// Receive buffer: a dump of a busy namespace's links fits many times over.
const RECV_BUF: usize = 64 * 1024;

/// A request the kernel refused, or a socket failure.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// The netlink socket itself.
    #[error("netlink socket: {0}")]
    Socket(std::io::Error),
    /// The kernel answered a request with an error.
    #[error("{what}: {source}")]
    Refused {
        /// The request, in words (`add ingress qdisc on eth0`).
        what: String,
        /// The kernel's errno.
        source: std::io::Error,
    },
    /// An answer that is not a netlink message.
    #[error("{what}: malformed netlink answer: {reason}")]
    Malformed {
        /// The request.
        what: String,
        /// Why it did not parse.
        reason: String,
    },
}

impl NetlinkError {
    /// The errno of a refused request.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Self::Refused { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// A network interface as the kernel describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Interface index.
    pub index: u32,
    /// Name.
    pub name: String,
    /// Hardware address (empty for interfaces without one).
    pub mac: Vec<u8>,
    /// MTU.
    pub mtu: u32,
    /// `IFLA_IFALIAS`.
    pub alias: Option<String>,
    /// Loopback.
    pub loopback: bool,
}

/// An IPv4 address on an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Net {
    /// Address.
    pub addr: Ipv4Addr,
    /// Prefix length.
    pub prefix: u8,
}

/// A default route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefaultRoute {
    /// Outgoing interface.
    pub oif: u32,
    /// Gateway, if any.
    pub gateway: Option<Ipv4Addr>,
}

/// An rtnetlink socket in the namespace of the thread that opened it.
pub struct Netlink {
    socket: Socket,
    seq: u32,
}

impl Netlink {
    /// Opens a socket (in the calling thread's network namespace).
    pub fn open() -> Result<Self, NetlinkError> {
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(NetlinkError::Socket)?;
        socket.bind_auto().map_err(NetlinkError::Socket)?;
        socket.connect(&SocketAddr::new(0, 0)).map_err(NetlinkError::Socket)?;
        Ok(Self { socket, seq: 0 })
    }

    /// Sends `msg` and collects the answers until the ack (or, for dumps, the end).
    fn request(
        &mut self,
        what: &dyn Fn() -> String,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        self.seq = self.seq.wrapping_add(1);
        let mut packet = NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::from(msg));
        packet.header.flags = NLM_F_REQUEST | flags;
        packet.header.sequence_number = self.seq;
        packet.finalize();
        let mut buf = vec![0; packet.buffer_len()];
        packet.serialize(&mut buf);
        self.socket.send(&buf, 0).map_err(NetlinkError::Socket)?;

        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut out = Vec::new();
        let mut recv = vec![0u8; RECV_BUF];
        loop {
            let n = self.socket.recv(&mut &mut recv[..], 0).map_err(NetlinkError::Socket)?;
            let mut at = 0;
            while at < n {
                let msg: NetlinkMessage<RouteNetlinkMessage> = NetlinkMessage::deserialize(&recv[at..n])
                    .map_err(|e| NetlinkError::Malformed { what: what(), reason: e.to_string() })?;
                let len = msg.header.length as usize;
                if len == 0 {
                    return Err(NetlinkError::Malformed { what: what(), reason: "zero-length message".into() });
                }
                at += len;
                if msg.header.sequence_number != self.seq {
                    continue;
                }
                match msg.payload {
                    NetlinkPayload::Error(e) if e.code.is_some() => {
                        return Err(NetlinkError::Refused { what: what(), source: e.to_io() })
                    }
                    // An ack ends a request; Done ends a dump.
                    NetlinkPayload::Error(_) | NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::InnerMessage(inner) => {
                        out.push(inner);
                        if !dump {
                            // Echoed objects are followed by the ack.
                            continue;
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// Every interface.
    pub fn links(&mut self) -> Result<Vec<Link>, NetlinkError> {
        let answers = self.request(
            &|| "list interfaces".into(),
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            NLM_F_DUMP,
        )?;
        Ok(answers
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(link_of(&l)),
                _ => None,
            })
            .collect())
    }

    /// IPv4 addresses of interface `index`, primary first (as the kernel lists them).
    pub fn ipv4_addresses(&mut self, index: u32) -> Result<Vec<Ipv4Net>, NetlinkError> {
        let mut msg = AddressMessage::default();
        msg.header.family = AddressFamily::Inet;
        let answers =
            self.request(&|| "list IPv4 addresses".into(), RouteNetlinkMessage::GetAddress(msg), NLM_F_DUMP)?;
        Ok(answers
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) if a.header.index == index => {
                    let addr = a.attributes.iter().find_map(|attr| match attr {
                        AddressAttribute::Local(IpAddr::V4(v4)) => Some(*v4),
                        _ => None,
                    });
                    let addr = addr.or_else(|| {
                        a.attributes.iter().find_map(|attr| match attr {
                            AddressAttribute::Address(IpAddr::V4(v4)) => Some(*v4),
                            _ => None,
                        })
                    })?;
                    Some(Ipv4Net { addr, prefix: a.header.prefix_len })
                }
                _ => None,
            })
            .collect())
    }

    /// The IPv4 default route of the main table, if any.
    pub fn default_route(&mut self) -> Result<Option<DefaultRoute>, NetlinkError> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = AddressFamily::Inet;
        let answers = self.request(&|| "list IPv4 routes".into(), RouteNetlinkMessage::GetRoute(msg), NLM_F_DUMP)?;
        const RT_TABLE_MAIN: u8 = 254;
        Ok(answers.into_iter().find_map(|m| match m {
            RouteNetlinkMessage::NewRoute(r)
                if r.header.destination_prefix_length == 0 && r.header.table == RT_TABLE_MAIN =>
            {
                let oif = r.attributes.iter().find_map(|a| match a {
                    RouteAttribute::Oif(i) => Some(*i),
                    _ => None,
                })?;
                let gateway = r.attributes.iter().find_map(|a| match a {
                    RouteAttribute::Gateway(RouteAddress::Inet(gw)) => Some(*gw),
                    _ => None,
                });
                Some(DefaultRoute { oif, gateway })
            }
            _ => None,
        }))
    }

    /// Sets the MTU and alias of interface `index` and brings it up.
    pub fn configure_up(&mut self, index: u32, name: &str, mtu: u32, alias: &str) -> Result<(), NetlinkError> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        msg.attributes = vec![LinkAttribute::Mtu(mtu), LinkAttribute::IfAlias(alias.to_owned())];
        self.request(&|| format!("configure and bring up {name}"), RouteNetlinkMessage::SetLink(msg), NLM_F_ACK)?;
        Ok(())
    }

    /// Adds an ingress qdisc to interface `index` (fails with EEXIST if it has one).
    pub fn add_ingress_qdisc(&mut self, index: u32, name: &str) -> Result<(), NetlinkError> {
        let msg = ingress_qdisc(index);
        self.request(
            &|| format!("add an ingress qdisc on {name}"),
            RouteNetlinkMessage::NewQueueDiscipline(msg),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        )?;
        Ok(())
    }

    /// Deletes the ingress qdisc of interface `index`, with its filters. `Ok(false)` if it
    /// had none.
    pub fn del_ingress_qdisc(&mut self, index: u32, name: &str) -> Result<bool, NetlinkError> {
        let msg = ingress_qdisc(index);
        match self.request(
            &|| format!("delete the ingress qdisc of {name}"),
            RouteNetlinkMessage::DelQueueDiscipline(msg),
            NLM_F_ACK,
        ) {
            Ok(_) => Ok(true),
            Err(e) if matches!(e.errno(), Some(libc::ENOENT | libc::EINVAL | libc::ENODEV)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Redirects every frame arriving on `from` to the egress of `to`:
    /// `tc filter add dev FROM parent ffff: protocol all u32 match u8 0 0 action mirred
    /// egress redirect dev TO`.
    pub fn redirect_ingress(&mut self, from: u32, from_name: &str, to: u32, to_name: &str) -> Result<(), NetlinkError> {
        let header = TcHeader {
            index: i32::try_from(from).unwrap_or(i32::MAX),
            parent: TcHandle::INGRESS,
            // info = priority << 16 | protocol (network byte order).
            info: (1 << 16) | u32::from(ETH_P_ALL.to_be()),
            ..TcHeader::default()
        };
        let mut mirror = TcMirror::default();
        mirror.generic.action = TcActionType::Stolen;
        mirror.eaction = TcMirrorActionType::EgressRedir;
        mirror.ifindex = to;
        let mut action = TcAction::default();
        action.tab = TCA_ACT_TAB;
        action.attributes = vec![
            TcActionAttribute::Kind("mirred".into()),
            TcActionAttribute::Options(vec![TcActionOption::Mirror(TcActionMirrorOption::Parms(mirror))]),
        ];
        let mut selector = TcU32Selector::default();
        selector.flags = TcU32SelectorFlags::Terminal;
        selector.nkeys = 1;
        selector.keys = vec![TcU32Key::default()];
        let mut msg = TcMessage::default();
        msg.header = header;
        msg.attributes = vec![
            TcAttribute::Kind("u32".into()),
            TcAttribute::Options(vec![
                TcOption::U32(TcFilterU32Option::Selector(selector)),
                TcOption::U32(TcFilterU32Option::Action(vec![action])),
            ]),
        ];
        self.request(
            &|| format!("redirect {from_name}'s ingress to {to_name}"),
            RouteNetlinkMessage::NewTrafficFilter(msg),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        )?;
        Ok(())
    }
}

fn ingress_qdisc(index: u32) -> TcMessage {
    let mut msg = TcMessage::default();
    msg.header.index = i32::try_from(index).unwrap_or(i32::MAX);
    msg.header.parent = TcHandle::INGRESS;
    msg.header.handle = TcHandle { major: 0xffff, minor: 0 };
    msg.attributes = vec![TcAttribute::Kind("ingress".into())];
    msg
}

fn link_of(l: &LinkMessage) -> Link {
    let mut link = Link {
        index: l.header.index,
        name: String::new(),
        mac: Vec::new(),
        mtu: 1500,
        alias: None,
        loopback: l.header.flags.contains(LinkFlags::Loopback),
    };
    for attr in &l.attributes {
        match attr {
            LinkAttribute::IfName(n) => link.name = n.clone(),
            LinkAttribute::Address(a) => link.mac = a.clone(),
            LinkAttribute::Mtu(m) => link.mtu = *m,
            LinkAttribute::IfAlias(a) => link.alias = Some(a.clone()),
            _ => {}
        }
    }
    link
}
