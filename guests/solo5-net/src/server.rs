//! The interface (smoltcp on a [`TapDevice`]) and a TCP server loop.
//!
//! smoltcp has no listen backlog: a socket in `LISTEN` takes exactly one
//! connection (it becomes that connection), and a SYN that finds no listening
//! socket is answered with a reset. [`serve`] therefore keeps one listening
//! socket at all times and processes frames one at a time
//! (`Interface::poll_ingress_single`): as soon as a SYN turns the listener into
//! a connection, a fresh listener is added before the next frame is looked at.
//! A burst of SYNs thus gets one socket each, however large, for as long as the
//! heap has room; when it has not, no socket listens and smoltcp answers the
//! SYN with RST (a clean refusal; the listener comes back once memory is free).
//!
//! Sockets are created on demand and removed as soon as their connection is
//! over, so the number of connections is bounded by guest memory, not by a
//! constant. A connection we closed first ends in `TIME-WAIT`, which smoltcp
//! keeps for 10 s; its socket is removed one round after it enters that state
//! (once its last ACK has gone out), so a closed connection never holds memory
//! or blocks new ones. The price: a FIN the peer retransmits later (its copy
//! of our last ACK was lost) is answered with RST instead of an ACK; on a tap
//! nothing is lost, and the peer has closed by then either way.
//!
//! Socket buffers are sized when the listener is made ([`ServerConfig`]):
//! large ones (window scaling, for bulk transfers) while the heap is mostly
//! free, small ones once it fills, so many idle connections fit. The receive
//! buffer (the window peers may fill) is also capped by a share of a window
//! budget counted in frames of the device (of its MTU, or 64 KiB segments with
//! TCP offload). A closed connection's buffers go to a pool for the next
//! ones ([`crate::buffers`]), so that a connection costs no zeroing of them.

use alloc::vec::Vec;

use protocols::{Protocol, Received};
use smoltcp::iface::{Config, Interface, PollIngressSingleResult, SocketHandle, SocketSet, SocketStorage};
use smoltcp::socket::tcp;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Address};
use solo5_rt::{Net, clock_monotonic, clock_wall, yield_until};

use crate::buffers::{Pool, Region};
use crate::{NetConfig, TapDevice, heap};

/// The guest's network interface: smoltcp with its sockets, on one Solo5 net device.
pub struct Stack {
    /// smoltcp's interface (addresses, routes, ARP cache).
    pub iface: Interface,
    /// The device.
    pub device: TapDevice,
    /// The sockets.
    pub sockets: SocketSet<'static>,
    /// Slots in `sockets`' storage and the capacity of its vector (mirrored, so
    /// that a growth of the vector is known before it happens: see [`Stack::room_for_socket`]).
    slots: (usize, usize),
    /// Sockets in `sockets`.
    live: usize,
    /// Buffers of closed sockets, for the next ones.
    pool: Pool,
}

/// Now, in smoltcp's clock (microseconds of `solo5_clock_monotonic`).
pub fn now() -> Instant {
    Instant::from_micros((clock_monotonic() / 1000) as i64)
}

/// Initial capacity of the socket set's storage.
const INITIAL_SLOTS: usize = 64;

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
        let storage: Vec<SocketStorage<'static>> = Vec::with_capacity(INITIAL_SLOTS);
        Stack { iface, device, sockets: SocketSet::new(storage), slots: (0, INITIAL_SLOTS), live: 0, pool: Pool::new() }
    }

    /// Whether adding one more socket can grow the set's storage without
    /// exhausting the heap (the storage is a `Vec` that smoltcp pushes onto,
    /// and a failed push would abort the guest); `headroom` bytes must stay free.
    fn room_for_socket(&self, headroom: usize) -> bool {
        let (slots, cap) = self.slots;
        if self.live < slots || slots < cap {
            return true;
        }
        // The push reallocates to twice the capacity (RawVec's growth rule).
        let grown = cap.max(1) * 2 * core::mem::size_of::<SocketStorage<'static>>();
        heap::stats().free() >= grown.next_power_of_two() + headroom
    }

    /// Adds `socket`, keeping the mirrored slot count.
    fn add(&mut self, socket: tcp::Socket<'static>) -> SocketHandle {
        if self.live == self.slots.0 {
            // No free slot: smoltcp pushes a new one.
            if self.slots.0 == self.slots.1 {
                self.slots.1 = (self.slots.1 * 2).max(4);
            }
            self.slots.0 += 1;
        }
        self.live += 1;
        self.sockets.add(socket)
    }

    /// Removes a socket; its buffers go to the pool once it is dropped.
    fn remove(&mut self, socket: Lent) {
        drop(self.sockets.remove(socket.handle));
        self.live -= 1;
        socket.buffers.into_iter().for_each(|region| self.pool.give_back(region));
    }
}

/// How [`serve`] runs.
#[derive(Debug, Clone, Copy)]
pub struct ServerConfig {
    /// TCP port to listen on.
    pub port: u16,
    /// Receive and send buffer of a connection while the heap is mostly free
    /// (at most a quarter used): big enough for bulk transfers (smoltcp scales
    /// its window, RFC 7323, for buffers over 64 KiB).
    pub large_buffer: usize,
    /// Receive and send buffer of a connection once more of the heap is in use,
    /// and the smallest a connection gets.
    pub small_buffer: usize,
    /// Receive windows of all connections together, in frames of the device's
    /// MTU: a new connection's receive buffer is this many MTUs divided by the
    /// connections open (+1), between the small and the large size. The host
    /// queues at most ~1000 frames for the guest (the tap's `txqueuelen`: a
    /// count of frames, whatever their size); when every peer fills a large
    /// window at once, the frames beyond are dropped and the senders stall in
    /// loss recovery (smoltcp has no SACK). Counting in frames lets a tap with
    /// a larger MTU carry proportionally more bytes in flight. One connection
    /// alone still gets a large window. The send buffer may be
    /// [`SEND_SHARE_FACTOR`] times the share: what we send is paced by the
    /// peers' windows, not the tap's queue.
    pub window_frames: usize,
    /// New connections are refused (RST) while fewer than this many bytes of
    /// the heap would stay free: room for the application's data and the
    /// requests of connections already open.
    pub reserve: usize,
    /// Close a connection that has sent nothing for this long (`None`: never).
    pub idle_timeout: Option<Duration>,
    /// A connection whose request has been incomplete for this long is answered
    /// with [`Protocol::timed_out`] and closed (`None`: never). Slow clients
    /// (slowloris) cost a socket each until then, never other clients' turns.
    pub request_timeout: Option<Duration>,
    /// After a round that took frames, keep polling the device this long before
    /// waiting (`solo5_yield`). A client on another CPU answers within a few
    /// microseconds; sleeping in between made both sides pay a wake-up per
    /// round trip (100 KB SETs: 2-3x more waits, and runs that stayed at half
    /// rate). `Duration::ZERO`: wait as soon as the device is drained.
    pub busy_poll: Duration,
}

/// Connection counters, for the guest's statistics.
#[derive(Debug, Default, Clone, Copy)]
pub struct ServerStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections open now.
    pub open: usize,
    /// Most connections open at once.
    pub peak: usize,
    /// Times a SYN could find no listener because the heap was too full.
    pub refused_rounds: u64,
}

/// A socket and the buffers lent to it (given back when it is removed).
struct Lent {
    handle: SocketHandle,
    buffers: [Region; 2],
}

struct Conn<C> {
    socket: Lent,
    state: C,
    /// Received bytes not yet forming a whole request (or split by the ring),
    /// in a buffer the protocol may keep a big value of.
    input: Received,
    /// Reply bytes the socket had no room for yet.
    output: Vec<u8>,
    /// Bytes at the start of `output` already sent (a big reply leaves in many
    /// rounds; an offset instead of draining the front keeps that linear).
    sent: usize,
    /// Close once `output` is sent.
    closing: bool,
    /// Seen in TIME-WAIT once (its last ACK is out after the next egress).
    time_wait: bool,
    /// When bytes last came in.
    last_input: Instant,
    /// Since when `input` holds an incomplete request.
    partial_since: Option<Instant>,
}

/// Most unanswered bytes kept for one connection: a request that grows past this
/// without completing (the protocols cap theirs at 1 MiB plus framing) ends the
/// connection with a reset, so one client cannot take the guest's whole heap.
pub const MAX_PENDING_INPUT: usize = 2 << 20;

/// Longest wait when smoltcp has no timer pending (nothing to do but wait for frames).
const IDLE_WAIT: Duration = Duration::from_secs(1);

/// A connection's send buffer is at most this many times its receive share of
/// the window budget. What we send is paced by the peers' windows, not the
/// tap's queue, so it need not be under the budget; but a buffer the pool
/// cannot supply comes zeroed from the heap, and when each connection was
/// given a zeroed 256 KiB send buffer connection-per-request rps fell by a
/// quarter (wrk -H "Connection: close", 50 clients: 0.77x native-http, against
/// 1.03x with buffers under the share, and 1.15x with this factor, 2026-12-05,
/// before the pool).
const SEND_SHARE_FACTOR: usize = 4;
/// Frames handled before the connections get their turn.
const FRAMES_PER_ROUND: usize = 256;

/// What `service` decided about a connection.
enum Next {
    Keep,
    Remove,
}

/// Serves `proto` on `config.port` forever; calls `ready` once the port listens
/// (a client may connect from then on).
///
/// Each round: take up to [`FRAMES_PER_ROUND`] waiting frames one at a time
/// (keeping a listener in place after each), answer every connection with new
/// input, send what that produced; then, if no frame came in during the round
/// nor for `config.busy_poll` before, wait (`solo5_yield`) for the next frame
/// or smoltcp's next timer.
pub fn serve<P: Protocol>(stack: &mut Stack, config: ServerConfig, proto: &mut P, ready: impl FnOnce()) -> ! {
    let mut conns: Vec<Conn<P::Conn>> = Vec::new();
    let mut listener: Option<Lent> = None;
    let mut stats = ServerStats::default();
    let mut scratch = Vec::new();
    listener_in_place(stack, &config, &mut listener, &mut conns, &mut stats, now());
    ready();
    // End of the last round that took frames: busy polling counts from it.
    let mut last_busy = now();

    loop {
        let timestamp = now();
        let mut frames = 0;
        while frames < FRAMES_PER_ROUND {
            match stack.iface.poll_ingress_single(timestamp, &mut stack.device, &mut stack.sockets) {
                PollIngressSingleResult::None => break,
                PollIngressSingleResult::PacketProcessed => {}
                PollIngressSingleResult::SocketStateChanged => {
                    listener_in_place(stack, &config, &mut listener, &mut conns, &mut stats, timestamp);
                }
            }
            frames += 1;
        }
        listener_in_place(stack, &config, &mut listener, &mut conns, &mut stats, timestamp);

        let mut i = 0;
        while i < conns.len() {
            let socket = stack.sockets.get_mut::<tcp::Socket>(conns[i].socket.handle);
            match service(socket, &mut conns[i], &config, proto, &mut scratch, timestamp) {
                Next::Keep => i += 1,
                Next::Remove => {
                    let conn = conns.swap_remove(i);
                    stack.remove(conn.socket);
                }
            }
        }
        stats.open = conns.len();

        // Send everything queued (replies, ACKs, window updates, SYN-ACKs).
        while let smoltcp::iface::PollResult::SocketStateChanged =
            stack.iface.poll_egress(timestamp, &mut stack.device, &mut stack.sockets)
        {}

        let drained = stack.device.take_drained();
        let round_end = now();
        if frames > 0 {
            last_busy = round_end;
        }
        if drained && frames == 0 && round_end - last_busy >= config.busy_poll {
            let wait = stack.iface.poll_delay(round_end, &stack.sockets).unwrap_or(IDLE_WAIT).min(IDLE_WAIT);
            // Wake for our own timeouts too (checked once per round).
            if wait > Duration::ZERO {
                let deadline = clock_monotonic() + wait.total_micros() * 1000;
                yield_until(deadline);
            }
        }
    }
}

/// Makes sure a socket listens: if the listener took a connection, it joins
/// the connections and a new listener is made (when the heap has room for it).
fn listener_in_place<C: Default>(
    stack: &mut Stack,
    config: &ServerConfig,
    listener: &mut Option<Lent>,
    conns: &mut Vec<Conn<C>>,
    stats: &mut ServerStats,
    timestamp: Instant,
) {
    if let Some(handle) = listener.as_ref().map(|l| l.handle) {
        let state = stack.sockets.get::<tcp::Socket>(handle).state();
        if state == tcp::State::Listen {
            return;
        }
        if state != tcp::State::Closed && conns.try_reserve(1).is_err() {
            // No room to track it: refuse this connection.
            stack.sockets.get_mut::<tcp::Socket>(handle).abort();
            return;
        }
        let socket = listener.take().expect("checked above");
        match state {
            // Cannot happen (a listener that failed goes back to Listen), but
            // a closed listener is simply replaced.
            tcp::State::Closed => stack.remove(socket),
            _ => {
                conns.push(Conn {
                    socket,
                    state: C::default(),
                    input: Received::default(),
                    output: Vec::new(),
                    sent: 0,
                    closing: false,
                    time_wait: false,
                    last_input: timestamp,
                    partial_since: None,
                });
                stats.accepted += 1;
                stats.peak = stats.peak.max(conns.len());
            }
        }
    }
    match new_listener(stack, config, conns.len()) {
        Some(lent) => *listener = Some(lent),
        None => stats.refused_rounds += 1,
    }
}

/// A listening socket with buffers sized for the heap's state, or `None` if
/// the heap is too full for one.
fn new_listener(stack: &mut Stack, config: &ServerConfig, open: usize) -> Option<Lent> {
    let h = heap::stats();
    let budget = config.window_frames.saturating_mul(stack.device.frame_payload());
    let share = budget / (open + 1);
    // Rounded down to a power of two (the heap's block sizes).
    let share = if share == 0 { 0 } else { 1 << share.ilog2() };
    let size = if h.used + 2 * config.large_buffer <= h.total / 4 { config.large_buffer } else { config.small_buffer };
    let mut rx_size = size.min(share).max(config.small_buffer);
    let mut tx_size = size.min(share.saturating_mul(SEND_SHARE_FACTOR)).max(config.small_buffer);
    let socket_bytes = core::mem::size_of::<SocketStorage<'static>>();
    loop {
        if stack.room_for_socket(config.reserve)
            && let Some(buffers) = stack.pool.pair(rx_size, tx_size, socket_bytes + config.reserve)
        {
            // SAFETY: the pool just handed these regions out, so no socket holds
            // them; this one alone gets them, and they go back to the pool only once
            // it has been removed and dropped (`Stack::remove`).
            let (rx, tx) = unsafe { (buffers[0].lend(), buffers[1].lend()) };
            let mut socket = tcp::Socket::new(tcp::SocketBuffer::new(rx), tcp::SocketBuffer::new(tx));
            // Replies must leave at once: request/response.
            socket.set_nagle_enabled(false);
            // ACK with the reply (sent in the same round) or at once: a delayed
            // ACK stalls a sender whose window we just opened.
            socket.set_ack_delay(None);
            // A peer that stops acknowledging for this long is gone.
            socket.set_timeout(Some(Duration::from_secs(60)));
            // Cannot fail: a new socket is closed and the port is not 0.
            let _ = socket.listen(config.port);
            return Some(Lent { handle: stack.add(socket), buffers });
        }
        if rx_size == config.small_buffer && tx_size == config.small_buffer {
            return None;
        }
        (rx_size, tx_size) = (config.small_buffer, config.small_buffer);
    }
}

/// Appends `bytes` to `v` unless the heap has no room.
fn try_extend(v: &mut Vec<u8>, bytes: &[u8]) -> Result<(), ()> {
    v.try_reserve(bytes.len()).map_err(|_| ())?;
    v.extend_from_slice(bytes);
    Ok(())
}

/// Moves one connection forward.
fn service<P: Protocol>(
    socket: &mut tcp::Socket<'_>,
    conn: &mut Conn<P::Conn>,
    config: &ServerConfig,
    proto: &mut P,
    scratch: &mut Vec<u8>,
    now: Instant,
) -> Next {
    use tcp::State;
    match socket.state() {
        // The connection is over (closed by both sides, reset, or timed out).
        State::Closed | State::Listen => return Next::Remove,
        State::TimeWait => {
            // Remove on the second sight: an egress has sent the last ACK by then.
            if conn.time_wait {
                return Next::Remove;
            }
            conn.time_wait = true;
            return Next::Keep;
        }
        State::SynReceived => return Next::Keep,
        _ => {}
    }

    if !conn.output.is_empty() && socket.can_send() {
        let n = socket.send_slice(&conn.output[conn.sent..]).unwrap_or(0);
        conn.sent += n;
        if conn.sent == conn.output.len() {
            conn.output.clear();
            conn.sent = 0;
        }
    }
    // Read only while earlier replies are out: a client that does not read its
    // replies stops being read (back-pressure instead of unbounded memory).
    while conn.output.is_empty() && !conn.closing && socket.can_recv() {
        scratch.clear();
        conn.last_input = now;
        let mut oom = false;
        let progress = if conn.input.is_empty() {
            // In place, straight from the socket's ring; a partial request at the
            // end (or one split by the ring's wrap) is kept in `input`, with room
            // for more of it if it is big.
            let received = socket.recv(|buf| {
                let p = proto.handle(&mut conn.state, buf, scratch);
                oom = conn.input.keep_unanswered(buf, &p).is_err();
                (buf.len(), p)
            });
            match received {
                Ok(p) => p,
                Err(_) => break,
            }
        } else {
            let limit = conn.input.read_limit();
            let Ok(n) = socket.recv(|buf| {
                let n = limit.map_or(buf.len(), |limit| buf.len().min(limit));
                oom = conn.input.try_extend(&buf[..n]).is_err();
                (n, n)
            }) else {
                break;
            };
            if n == 0 {
                break;
            }
            let p = proto.handle_received(&mut conn.state, &conn.input, scratch);
            oom |= conn.input.answered(&p).is_err();
            p
        };
        if !scratch.is_empty() {
            let n = socket.send_slice(scratch).unwrap_or(0);
            oom |= try_extend(&mut conn.output, &scratch[n..]).is_err();
        }
        if progress.close {
            conn.closing = true;
            conn.input = Received::default();
        } else if oom || conn.input.len() > MAX_PENDING_INPUT {
            // Too big a request, or no memory to hold it: this connection ends,
            // the others go on.
            socket.abort();
            conn.input = Received::default();
            conn.output = Vec::new();
            conn.sent = 0;
            return Next::Keep;
        }
        if progress.consumed > 0 || conn.input.is_empty() {
            conn.partial_since = (!conn.input.is_empty()).then_some(now);
        } else if conn.partial_since.is_none() {
            conn.partial_since = Some(now);
        }
    }
    if conn.input.is_empty() {
        conn.partial_since = None;
    }
    // A big request or reply is over: give its buffer back (memory counts
    // toward the application's limit, e.g. kv's maxmemory).
    const KEEP: usize = 64 * 1024;
    conn.input.shrink_if_empty(KEEP);
    if conn.output.is_empty() && conn.output.capacity() > KEEP {
        conn.output = Vec::new();
    }
    if scratch.capacity() > 4 * KEEP {
        *scratch = Vec::new();
    }
    if !conn.closing {
        let stalled = config.request_timeout.zip(conn.partial_since).is_some_and(|(t, since)| now - since >= t);
        let idle = config.idle_timeout.is_some_and(|t| now - conn.last_input >= t);
        if stalled || (idle && conn.output.is_empty()) {
            scratch.clear();
            if stalled {
                proto.timed_out(&mut conn.state, scratch);
            }
            let n = socket.send_slice(scratch).unwrap_or(0);
            let _ = try_extend(&mut conn.output, &scratch[n..]);
            conn.closing = true;
            conn.input = Received::default();
        }
    }
    // Close when asked to (after the replies), or when the peer has finished
    // sending and everything it sent is answered.
    if conn.output.is_empty() && (conn.closing || (!socket.may_recv() && !socket.can_recv())) && socket.may_send() {
        socket.close();
    }
    Next::Keep
}
