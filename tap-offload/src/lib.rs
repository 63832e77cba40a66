//! TCP segmentation offload over a Linux tap with a `struct virtio_net_hdr`
//! before each frame, for a guest TCP/IP stack that (like smoltcp) never sends a
//! segment larger than its peer's MSS and checks every checksum itself.
//!
//! The tender grants the header to guests that ask (docs/solo5-abi.md §2.5).
//! [`Flows::incoming`] raises the MSS option of every SYN the stack receives and
//! remembers the real one, so the stack builds segments of up to 64 KiB;
//! [`Flows::outgoing`] tells the kernel where to cut each (`gso_size` = the real
//! MSS) and leaves the TCP checksum for it to finish. Checksums the host neither
//! left unfinished nor vouched for are checked here, as the stack is told not to.
//! IPv4 TCP only; anything else passes through untouched.
//!
//! No `std`, no floats: the guests build it with their own flags, and the host's
//! `cargo test` tests it.
#![no_std]

extern crate alloc;

use alloc::collections::BTreeMap;

/// Size of an Ethernet header (no VLAN tag).
pub const ETH_HDR: usize = 14;
/// Size of `struct virtio_net_hdr` before each frame (the size the tender sets).
pub const VNET_HDR: usize = hypercall_abi::mft::VIRTIO_NET_HDR_SIZE;
/// Largest IPv4 packet, so largest segment smoltcp may build.
pub const MAX_IP_PACKET: usize = 65_535;
/// Receive and transmit buffer: header, Ethernet (a VLAN tag too) and packet.
/// A read that fills it may have been cut short and is dropped.
pub const BUFFER: usize = VNET_HDR + ETH_HDR + 4 + MAX_IP_PACKET + 1;

const F_NEEDS_CSUM: u8 = 1;
const F_DATA_VALID: u8 = 2;
const GSO_TCPV4: u8 = 1;
const ETHERTYPE_IPV4: [u8; 2] = [0x08, 0x00];
const PROTO_TCP: u8 = 6;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
const OPT_END: u8 = 0;
const OPT_NOP: u8 = 1;
const OPT_MSS: u8 = 2;
/// The MSS smoltcp is told its peers take: its largest segment over IPv4.
const RAISED_MSS: u16 = 65_535 - 40;
/// RFC 9293's default MSS: a peer whose own is unknown takes at least this.
const DEFAULT_MSS: u16 = 536;
/// Connections remembered; past this the table starts over (each forgotten one
/// falls back to [`DEFAULT_MSS`] segments: slower, never wrong).
const MAX_FLOWS: usize = 65_536;

/// A TCP connection as the guest sees it: remote address and port, local port.
type FlowKey = ([u8; 4], u16, u16);

/// The real MSS of every connection whose SYN had its MSS raised.
#[derive(Debug)]
pub struct Flows {
    mss: BTreeMap<FlowKey, u16>,
    /// Largest IP packet the tap's MTU takes: anything but TCP must fit it.
    mtu: usize,
    /// Frames dropped: a bad checksum, a cut-short read, too large to send.
    pub dropped: u64,
}

/// Where the IPv4 TCP segment of a frame is.
struct TcpAt {
    /// IP header length.
    ihl: usize,
    /// Offset of the TCP header in the frame.
    at: usize,
    /// TCP header and payload.
    len: usize,
    /// TCP header length (with options).
    header: usize,
}

/// Where the IPv4 TCP segment in `frame` is, if it holds one whole.
fn tcp_v4(frame: &[u8]) -> Option<TcpAt> {
    let eth = ETH_HDR;
    if frame.len() < eth + 20 || frame[12..14] != ETHERTYPE_IPV4 || frame[eth] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(frame[eth] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([frame[eth + 2], frame[eth + 3]]));
    let frag = u16::from_be_bytes([frame[eth + 6], frame[eth + 7]]);
    // A fragment (offset or more-fragments set) has no whole TCP header to trust.
    if frame[eth + 9] != PROTO_TCP || ihl < 20 || frag & 0x3fff != 0 {
        return None;
    }
    let tcp = eth + ihl;
    let tcp_len = total.checked_sub(ihl)?;
    if total > frame.len() - eth || tcp_len < 20 {
        return None;
    }
    let header = usize::from(frame[tcp + 12] >> 4) * 4;
    if header < 20 || header > tcp_len {
        return None;
    }
    Some(TcpAt { ihl, at: tcp, len: tcp_len, header })
}

fn key(frame: &[u8], remote_ip_at: usize, tcp: usize, remote_is_src: bool) -> FlowKey {
    let ip: [u8; 4] = frame[remote_ip_at..remote_ip_at + 4].try_into().expect("4 bytes");
    let src = u16::from_be_bytes([frame[tcp], frame[tcp + 1]]);
    let dst = u16::from_be_bytes([frame[tcp + 2], frame[tcp + 3]]);
    if remote_is_src {
        (ip, src, dst)
    } else {
        (ip, dst, src)
    }
}

/// The ones'-complement sum of `data` (big-endian 16-bit words) added to `acc`, unfolded.
fn sum(data: &[u8], mut acc: u64) -> u64 {
    let mut words = data.chunks_exact(4);
    for w in &mut words {
        acc += u64::from(u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    }
    let rest = words.remainder();
    let mut tail = [0u8; 4];
    tail[..rest.len()].copy_from_slice(rest);
    acc + u64::from(u32::from_be_bytes(tail))
}

fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    // cast: the loop leaves at most 16 bits.
    #[allow(clippy::cast_possible_truncation)]
    let folded = acc as u16;
    folded
}

/// The IPv4 pseudo-header of a TCP segment of `tcp_len` bytes, unfolded.
fn pseudo_v4(frame: &[u8], tcp_len: usize) -> u64 {
    let eth = ETH_HDR;
    sum(&frame[eth + 12..eth + 20], u64::from(PROTO_TCP) + u64::try_from(tcp_len).expect("usize fits u64"))
}

impl Flows {
    /// For a tap of MTU `mtu`.
    pub fn new(mtu: u16) -> Self {
        Flows { mss: BTreeMap::new(), mtu: usize::from(mtu), dropped: 0 }
    }

    /// A frame read with its header (`buf`, `cut`: it filled the buffer): the
    /// frame's range in `buf`, or `None` to drop it. Checks TCP checksums the host
    /// did not vouch for, and raises the MSS of SYNs, remembering the real one.
    pub fn incoming(&mut self, buf: &mut [u8], cut: bool) -> Option<core::ops::Range<usize>> {
        if buf.len() < VNET_HDR + ETH_HDR || cut {
            self.dropped += 1;
            return None;
        }
        let flags = buf[0];
        let frame = &mut buf[VNET_HDR..];
        if let Some(TcpAt { at: tcp, len: tcp_len, .. }) = tcp_v4(frame) {
            // NEEDS_CSUM: the host made it and will not finish it (it stays in the
            // host: there is no wire). DATA_VALID: the host checked it.
            if flags & (F_NEEDS_CSUM | F_DATA_VALID) == 0
                && fold(sum(&frame[tcp..tcp + tcp_len], pseudo_v4(frame, tcp_len))) != 0xffff
            {
                self.dropped += 1;
                return None;
            }
            let tcp_flags = frame[tcp + 13];
            let key = key(frame, ETH_HDR + 12, tcp, true);
            if tcp_flags & TCP_SYN != 0 {
                let real = set_mss(&mut frame[tcp..], |_| RAISED_MSS).unwrap_or(DEFAULT_MSS).max(1);
                if self.mss.len() >= MAX_FLOWS {
                    self.mss.clear();
                }
                self.mss.insert(key, real);
            } else if tcp_flags & TCP_RST != 0 {
                self.mss.remove(&key);
            }
        }
        Some(VNET_HDR..buf.len())
    }

    /// Fills the header `hdr` for `frame` as smoltcp built it; `false` to drop it.
    /// TCP: a partial checksum for the host to finish, and, for a segment longer
    /// than the connection's real MSS, where the host must cut it.
    pub fn outgoing(&mut self, hdr: &mut [u8], frame: &mut [u8]) -> bool {
        hdr.fill(0);
        let Some(TcpAt { ihl, at: tcp, len: tcp_len, header: data_offset }) = tcp_v4(frame) else {
            // Not TCP: smoltcp made it no larger than a TCP segment, which the
            // tap's MTU may not take.
            if frame.len() > self.mtu + ETH_HDR {
                self.dropped += 1;
                return false;
            }
            return true;
        };
        let payload = tcp_len - data_offset;
        let key = key(frame, ETH_HDR + 16, tcp, false);
        if frame[tcp + 13] & TCP_RST != 0 {
            self.mss.remove(&key);
        }
        if frame[tcp + 13] & TCP_SYN != 0 {
            // smoltcp offers the MSS of a 64 KiB packet; offer the tap's, so that
            // peers beyond a router send what the tap takes without relying on
            // path-MTU discovery.
            let tap_mss = u16::try_from(self.mtu.saturating_sub(40)).unwrap_or(u16::MAX);
            set_mss(&mut frame[tcp..], |offered| offered.min(tap_mss));
        }
        let real = self.mss.get(&key).copied().unwrap_or(DEFAULT_MSS);
        // The MSS counts no options (RFC 9293 §3.7.1): they come off each segment.
        let seg = usize::from(real).saturating_sub(data_offset - 20).max(1);
        if payload > seg {
            hdr[1] = GSO_TCPV4;
            hdr[2..4].copy_from_slice(&u16_of(ETH_HDR + ihl + data_offset).to_le_bytes());
            hdr[4..6].copy_from_slice(&u16_of(seg).to_le_bytes());
        }
        hdr[0] = F_NEEDS_CSUM;
        hdr[6..8].copy_from_slice(&u16_of(tcp).to_le_bytes());
        hdr[8..10].copy_from_slice(&16u16.to_le_bytes());
        // The pseudo-header sum, not inverted: the host adds the segment to it.
        let partial = fold(pseudo_v4(frame, tcp_len));
        frame[tcp + 16..tcp + 18].copy_from_slice(&partial.to_be_bytes());
        true
    }
}

/// A header field's value: every offset and size here is under 64 KiB (an IPv4
/// packet's limit, checked by [`tcp_v4`]; an MSS is a u16).
fn u16_of(v: usize) -> u16 {
    u16::try_from(v).expect("under 64 KiB")
}

/// Replaces the value of the MSS option of the TCP header at the start of
/// `tcp` with `new(value)`; the old value, or `None` if it has no MSS option.
fn set_mss(tcp: &mut [u8], new: impl FnOnce(u16) -> u16) -> Option<u16> {
    let end = usize::from(tcp[12] >> 4) * 4;
    let mut at = 20;
    while at < end {
        match tcp[at] {
            OPT_END => break,
            OPT_NOP => at += 1,
            kind => {
                let len = usize::from(*tcp.get(at + 1)?);
                if len < 2 || at + len > end {
                    break;
                }
                if kind == OPT_MSS && len == 4 {
                    let old = u16::from_be_bytes([tcp[at + 2], tcp[at + 3]]);
                    tcp[at + 2..at + 4].copy_from_slice(&new(old).to_be_bytes());
                    return Some(old);
                }
                at += len;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    const GUEST: [u8; 4] = [10, 0, 0, 2];
    const PEER: [u8; 4] = [10, 0, 0, 1];

    /// An Ethernet + IPv4 + TCP frame from `src` to `dst` (ports 40000 → 6379 when
    /// the peer sends), with `options` and `payload`, and a correct checksum.
    fn frame(src: [u8; 4], dst: [u8; 4], flags: u8, options: &[u8], payload: &[u8]) -> Vec<u8> {
        let tcp_len = 20 + options.len() + payload.len();
        let mut f = alloc::vec![0u8; ETH_HDR + 20 + tcp_len];
        f[12..14].copy_from_slice(&ETHERTYPE_IPV4);
        let ip = &mut f[ETH_HDR..];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&u16_of(20 + tcp_len).to_be_bytes());
        ip[6] = 0x40; // DF
        ip[8] = 64;
        ip[9] = PROTO_TCP;
        ip[12..16].copy_from_slice(&src);
        ip[16..20].copy_from_slice(&dst);
        let (sport, dport) = if src == PEER { (40000u16, 6379u16) } else { (6379, 40000) };
        let t = &mut ip[20..];
        t[0..2].copy_from_slice(&sport.to_be_bytes());
        t[2..4].copy_from_slice(&dport.to_be_bytes());
        t[12] = u8::try_from((20 + options.len()) / 4).unwrap() << 4;
        t[13] = flags;
        t[20..20 + options.len()].copy_from_slice(options);
        t[20 + options.len()..].copy_from_slice(payload);
        let check = !fold(sum(&f[ETH_HDR + 20..], pseudo_v4(&f, tcp_len)));
        f[ETH_HDR + 36..ETH_HDR + 38].copy_from_slice(&check.to_be_bytes());
        f
    }

    fn with_header(flags: u8, frame: &[u8]) -> Vec<u8> {
        let mut buf = alloc::vec![0u8; VNET_HDR];
        buf[0] = flags;
        buf.extend_from_slice(frame);
        buf
    }

    fn le16(b: &[u8], at: usize) -> usize {
        usize::from(u16::from_le_bytes([b[at], b[at + 1]]))
    }

    const MSS_1460: [u8; 4] = [OPT_MSS, 4, 0x05, 0xb4];
    const TCP_ACK: u8 = 0x10;

    #[test]
    fn a_syn_gets_its_mss_raised_and_later_segments_are_cut_at_the_real_one() {
        let mut flows = Flows::new(1500);
        let mut syn = with_header(0, &frame(PEER, GUEST, TCP_SYN, &MSS_1460, &[]));
        let range = flows.incoming(&mut syn, false).expect("a valid SYN is kept");
        let tcp = &syn[range][ETH_HDR + 20..];
        assert_eq!(u16::from_be_bytes([tcp[22], tcp[23]]), RAISED_MSS, "the stack is told 65495");

        // The stack answers with its own MSS (of a 64 KiB packet): the peer is offered the tap's.
        let mut synack = frame(GUEST, PEER, TCP_SYN | TCP_ACK, &[OPT_MSS, 4, 0xff, 0xd7], &[]);
        let mut hdr = [0xaa; VNET_HDR];
        assert!(flows.outgoing(&mut hdr, &mut synack));
        assert_eq!(u16::from_be_bytes([synack[ETH_HDR + 42], synack[ETH_HDR + 43]]), 1460);

        // A 10,000-byte segment with timestamps (12 bytes of options): cut at 1460 - 12.
        let ts = [OPT_NOP, OPT_NOP, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2];
        let payload: Vec<u8> = (0..10_000u32).map(|i| u8::try_from(i % 251).unwrap()).collect();
        let mut seg = frame(GUEST, PEER, TCP_ACK, &ts, &payload);
        let whole = seg.clone();
        assert!(flows.outgoing(&mut hdr, &mut seg));
        assert_eq!(hdr[0], F_NEEDS_CSUM);
        assert_eq!(hdr[1], GSO_TCPV4);
        assert_eq!(le16(&hdr, 2), ETH_HDR + 20 + 32, "hdr_len: Ethernet, IPv4 and TCP headers");
        assert_eq!(le16(&hdr, 4), 1460 - 12, "gso_size: the real MSS less the options");
        assert_eq!((le16(&hdr, 6), le16(&hdr, 8)), (ETH_HDR + 20, 16), "csum_start, csum_offset");
        // Finishing the checksum as the kernel does gives the segment's true checksum.
        let (start, at) = (le16(&hdr, 6), le16(&hdr, 6) + le16(&hdr, 8));
        let finished = !fold(sum(&seg[start..], 0));
        assert_eq!(finished.to_be_bytes(), whole[at..at + 2], "partial + data = the full checksum");
        assert_eq!(seg[..at], whole[..at], "headers untouched but for the checksum");

        // A segment no longer than the real MSS needs no cutting.
        let mut small = frame(GUEST, PEER, TCP_ACK, &ts, &payload[..1448]);
        assert!(flows.outgoing(&mut hdr, &mut small));
        assert_eq!((hdr[0], hdr[1]), (F_NEEDS_CSUM, 0));
    }

    #[test]
    fn unknown_connections_are_cut_at_the_default_mss_and_forgotten_on_reset() {
        let mut flows = Flows::new(1500);
        let mut hdr = [0; VNET_HDR];
        let mut seg = frame(GUEST, PEER, TCP_ACK, &[], &[7; 3000]);
        assert!(flows.outgoing(&mut hdr, &mut seg));
        assert_eq!(le16(&hdr, 4), usize::from(DEFAULT_MSS), "never seen its SYN: RFC 9293's 536");

        let mut syn = with_header(0, &frame(PEER, GUEST, TCP_SYN, &MSS_1460, &[]));
        flows.incoming(&mut syn, false).unwrap();
        let mut rst = with_header(0, &frame(PEER, GUEST, TCP_RST, &[], &[]));
        flows.incoming(&mut rst, false).unwrap();
        let mut seg = frame(GUEST, PEER, TCP_ACK, &[], &[7; 3000]);
        assert!(flows.outgoing(&mut hdr, &mut seg));
        assert_eq!(le16(&hdr, 4), usize::from(DEFAULT_MSS), "a reset connection is forgotten");
    }

    #[test]
    fn checksums_the_host_did_not_vouch_for_are_checked() {
        let mut flows = Flows::new(1500);
        let good = frame(PEER, GUEST, TCP_ACK, &[], b"GET / HTTP/1.1\r\n\r\n");
        let mut bad = good.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(flows.incoming(&mut with_header(0, &good), false).is_some());
        assert!(flows.incoming(&mut with_header(0, &bad), false).is_none(), "a bad checksum is dropped");
        assert!(flows.incoming(&mut with_header(F_DATA_VALID, &bad), false).is_some(), "DATA_VALID: checked");
        // NEEDS_CSUM: made on this host, its checksum field holds a partial sum.
        assert!(flows.incoming(&mut with_header(F_NEEDS_CSUM, &bad), false).is_some());
        assert_eq!(flows.dropped, 1);
        assert!(flows.incoming(&mut with_header(0, &good), true).is_none(), "a read that filled the buffer");
        assert!(flows.incoming(&mut [0; 12], false).is_none(), "shorter than header and Ethernet");
        assert_eq!(flows.dropped, 3);
    }

    #[test]
    fn non_tcp_frames_must_fit_the_tap() {
        let mut flows = Flows::new(1500);
        let mut hdr = [0xaa; VNET_HDR];
        let mut arp = alloc::vec![0u8; 42];
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert!(flows.outgoing(&mut hdr, &mut arp));
        assert_eq!(hdr, [0; VNET_HDR], "no offload asked for");
        let mut big = alloc::vec![0u8; ETH_HDR + 1501];
        big[12..14].copy_from_slice(&[0x08, 0x06]);
        assert!(!flows.outgoing(&mut hdr, &mut big), "larger than the MTU: dropped");
    }

    #[test]
    fn mss_option_found_among_others() {
        // Data offset 10 words: NOP, NOP, timestamps (10), MSS 1460, window scale (3), NOP.
        let mut tcp = [0u8; 40];
        tcp[12] = 10 << 4;
        tcp[20..40].copy_from_slice(&[1, 1, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0, 2, 4, 0x05, 0xb4, 3, 3, 7, 1]);
        assert_eq!(set_mss(&mut tcp, |_| RAISED_MSS), Some(1460));
        assert_eq!(u16::from_be_bytes([tcp[34], tcp[35]]), RAISED_MSS);
        let mut none = [0u8; 32];
        none[12] = 8 << 4;
        none[20..32].copy_from_slice(&[1, 1, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(set_mss(&mut none, |_| RAISED_MSS), None, "no MSS option");
        // A length byte running past the header ends the search.
        let mut bad = [0u8; 24];
        bad[12] = 6 << 4;
        bad[20..24].copy_from_slice(&[5, 40, 0, 0]);
        assert_eq!(set_mss(&mut bad, |_| RAISED_MSS), None);
    }

    #[test]
    fn ones_complement_sum_of_rfc_1071s_example() {
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data, 0)), 0xddf2);
        // An odd length is padded with a zero byte.
        assert_eq!(fold(sum(&data[..7], 0)), fold(sum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0x00], 0)));
    }
}
