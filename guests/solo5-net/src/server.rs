//! The interface (smoltcp on a [`TapDevice`]) and a TCP server loop.

use alloc::vec;
use alloc::vec::Vec;

use protocols::{Progress, Protocol};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Address};
use solo5_rt::{Net, clock_monotonic, clock_wall, yield_until};

use crate::{NetConfig, TapDevice};

/// The guest's network interface: smoltcp with its sockets, on one Solo5 net device.
pub struct Stack {
    /// smoltcp's interface (addresses, routes, ARP cache).
    pub iface: Interface,
    /// The device.
    pub device: TapDevice,
    /// The sockets.
    pub sockets: SocketSet<'static>,
}

/// Now, in smoltcp's clock (microseconds of `solo5_clock_monotonic`).
pub fn now() -> Instant {
    Instant::from_micros((clock_monotonic() / 1000) as i64)
}

impl Stack {
    /// Brings up `net` with the address (and gateway) of `config`.
    pub fn new(net: Net, config: &NetConfig) -> Self {
        let mut device = TapDevice::new(net);
        let mut iface_config = Config::new(HardwareAddress::Ethernet(EthernetAddress(device.net().info().mac)));
        // Seeds TCP initial sequence numbers and local ports: any varying value will do.
        iface_config.random_seed = clock_wall() ^ clock_monotonic().rotate_left(32);
        let mut iface = Interface::new(iface_config, &mut device, now());
        let addr: Ipv4Address = config.addr;
        iface.update_ip_addrs(|addrs| {
            // One address; the list has room for at least one.
            let _ = addrs.push(IpCidr::new(addr.into(), config.prefix));
        });
        if let Some(gw) = config.gateway {
            // Cannot fail: the route table has room for a default route.
            let _ = iface.routes_mut().add_default_ipv4_route(gw);
        }
        Stack { iface, device, sockets: SocketSet::new(vec![]) }
    }
}

/// How [`serve`] runs.
#[derive(Debug, Clone, Copy)]
pub struct ServerConfig {
    /// TCP port to listen on.
    pub port: u16,
    /// Connections served at once (each one a listening socket while idle). A
    /// client beyond that is refused (RST) until one closes.
    pub max_conns: usize,
    /// Receive and send buffer of each socket, in bytes.
    pub buffer: usize,
}

struct Conn<C> {
    handle: SocketHandle,
    state: C,
    /// Received bytes not yet forming a whole request (or split by the ring).
    input: Vec<u8>,
    /// Reply bytes the socket had no room for yet.
    output: Vec<u8>,
    /// Close once `output` is sent.
    closing: bool,
}

/// Most unanswered bytes kept for one connection: a request that grows past this
/// without completing (the protocols cap theirs at 1 MiB plus framing) ends the
/// connection with a reset, so one client cannot take the guest's whole heap.
pub const MAX_PENDING_INPUT: usize = 2 << 20;

/// Longest wait when smoltcp has no timer pending (nothing to do but wait for frames).
const IDLE_WAIT: Duration = Duration::from_secs(1);

/// Serves `proto` on `config.port` forever; calls `ready` once every socket
/// listens (a client may connect from then on).
///
/// Each round: read every waiting frame and let smoltcp process it, answer every
/// connection with new input, send what that produced; then, if no frame came in
/// during the round, wait (`solo5_yield`) for the next frame or smoltcp's next
/// timer. A busy server thus polls the device (one `read` that finds nothing)
/// instead of paying for a yield per round.
pub fn serve<P: Protocol>(stack: &mut Stack, config: ServerConfig, proto: &mut P, ready: impl FnOnce()) -> ! {
    let mut conns: Vec<Conn<P::Conn>> = (0..config.max_conns.max(1))
        .map(|_| {
            let rx = tcp::SocketBuffer::new(vec![0; config.buffer]);
            let tx = tcp::SocketBuffer::new(vec![0; config.buffer]);
            let mut socket = tcp::Socket::new(rx, tx);
            // Replies must leave at once: request/response, not bulk transfer.
            socket.set_nagle_enabled(false);
            // Cannot fail: a new socket is closed and the port is not 0.
            let _ = socket.listen(config.port);
            let handle = stack.sockets.add(socket);
            Conn { handle, state: P::Conn::default(), input: Vec::new(), output: Vec::new(), closing: false }
        })
        .collect();
    let mut scratch = Vec::with_capacity(config.buffer);
    ready();

    loop {
        let frames_before = stack.device.frames.0;
        let timestamp = now();
        stack.iface.poll(timestamp, &mut stack.device, &mut stack.sockets);

        let mut produced = false;
        for conn in &mut conns {
            let socket = stack.sockets.get_mut::<tcp::Socket>(conn.handle);
            produced |= service(socket, conn, config.port, proto, &mut scratch);
        }
        if produced {
            stack.iface.poll_egress(timestamp, &mut stack.device, &mut stack.sockets);
        }

        let got_frames = stack.device.frames.0 != frames_before;
        let drained = stack.device.take_drained();
        if drained && !got_frames {
            let wait = stack.iface.poll_delay(timestamp, &stack.sockets).unwrap_or(IDLE_WAIT).min(IDLE_WAIT);
            if wait > Duration::ZERO {
                let deadline = clock_monotonic() + wait.total_micros() * 1000;
                yield_until(deadline);
            }
        }
    }
}

/// Moves one connection forward; `true` if it queued bytes to send.
fn service<P: Protocol>(
    socket: &mut tcp::Socket<'_>,
    conn: &mut Conn<P::Conn>,
    port: u16,
    proto: &mut P,
    scratch: &mut Vec<u8>,
) -> bool {
    use tcp::State;
    match socket.state() {
        State::Closed => {
            // Fresh, or the last connection is fully gone: listen again.
            conn.state = P::Conn::default();
            conn.input.clear();
            conn.output.clear();
            conn.closing = false;
            // Cannot fail: the socket is closed and the port is not 0.
            let _ = socket.listen(port);
            return false;
        }
        State::Listen | State::SynReceived | State::TimeWait => return false,
        _ => {}
    }

    let mut queued = false;
    if !conn.output.is_empty() && socket.can_send() {
        let n = socket.send_slice(&conn.output).unwrap_or(0);
        conn.output.drain(..n);
        queued |= n > 0;
    }
    // Read only while earlier replies are out: a client that does not read its
    // replies stops being read (back-pressure instead of unbounded memory).
    while conn.output.is_empty() && !conn.closing && socket.can_recv() {
        scratch.clear();
        let progress = if conn.input.is_empty() {
            // In place, straight from the socket's ring; a partial request at the
            // end (or one split by the ring's wrap) is kept in `input`.
            let received = socket.recv(|buf| {
                let p = proto.handle(&mut conn.state, buf, scratch);
                conn.input.extend_from_slice(&buf[p.consumed..]);
                (buf.len(), p)
            });
            match received {
                Ok(p) => p,
                Err(_) => break,
            }
        } else {
            let Ok(n) = socket.recv(|buf| {
                conn.input.extend_from_slice(buf);
                (buf.len(), buf.len())
            }) else {
                break;
            };
            if n == 0 {
                break;
            }
            let p = proto.handle(&mut conn.state, &conn.input, scratch);
            conn.input.drain(..p.consumed);
            Progress { consumed: p.consumed, close: p.close }
        };
        if !scratch.is_empty() {
            let n = socket.send_slice(scratch).unwrap_or(0);
            conn.output.extend_from_slice(&scratch[n..]);
            queued |= n > 0;
        }
        if progress.close {
            conn.closing = true;
            conn.input.clear();
        } else if conn.input.len() > MAX_PENDING_INPUT {
            socket.abort();
            conn.input = Vec::new();
            conn.output = Vec::new();
            return true;
        }
    }
    // Close when asked to (after the replies), or when the peer has finished
    // sending and everything it sent is answered.
    if conn.output.is_empty() && (conn.closing || (!socket.may_recv() && !socket.can_recv())) && socket.may_send() {
        socket.close();
        queued = true;
    }
    queued
}
