//! What the networked guests share: command line, bring-up, the server loop,
//! and the durable kv's block-device journal.
#![no_std]

extern crate alloc;

pub mod journal;

use solo5_net::{Duration, NetConfig, ServerConfig, Stack, heap, serve};
use solo5_rt::{Cmdline, Net, println};

/// Socket buffer per direction of a connection while at most a quarter of the
/// heap is in use: 256 KiB, so 100 KB – 1 MB values move in few round trips
/// (window scaling).
pub const LARGE_BUFFER: usize = 256 * 1024;
/// Socket buffer per direction once more of the heap is in use: many idle
/// connections fit (about 10 KiB each with the socket itself).
pub const SMALL_BUFFER: usize = 4 * 1024;

/// All connections' receive windows together, in frames of the tap's MTU (see
/// `ServerConfig::window_frames`): a new connection gets this divided by the
/// connections open, plus one. 350 frames is about a third of the tap's queue
/// (1000 frames) and 512 KiB at the default MTU of 1500.
pub const WINDOW_FRAMES: usize = 350;

/// How long the server keeps polling after a round that took frames before it
/// waits: about one client round trip on another CPU (see
/// `ServerConfig::busy_poll`). It costs at most this much CPU per burst.
pub const BUSY_POLL: Duration = Duration::from_micros(20);

/// The kv guests' store: `maxmemory` is three quarters of the guest's heap (the
/// rest holds connections), memory use as the allocator counts it, the wall clock
/// for expiry. Prints the limit once, as `NAME: maxmemory …`.
pub fn kv_store(name: &str) -> protocols::resp::Kv {
    fn clock_ms() -> u64 {
        solo5_rt::clock_wall() / 1_000_000
    }
    fn used_memory() -> usize {
        solo5_net::heap::stats().used
    }
    let total = solo5_net::heap::stats().total;
    let maxmemory = total / 4 * 3;
    let config = protocols::resp::KvConfig { clock_ms, used_memory: Some(used_memory), maxmemory, total_memory: total };
    solo5_rt::println!("{name}: maxmemory {maxmemory} bytes ({} MiB heap), policy noeviction", total >> 20);
    protocols::resp::Kv::with_config(config)
}

/// Timeouts a server applies to its connections (`None`: never).
#[derive(Debug, Clone, Copy, Default)]
pub struct Timeouts {
    /// Close a connection that sent nothing for this long.
    pub idle: Option<Duration>,
    /// Answer a request still incomplete after this long (`Protocol::timed_out`) and close.
    pub request: Option<Duration>,
}

fn usage(name: &str) {
    println!("usage: {name} --ipv4=ADDR/PREFIX [--ipv4-gateway=GW] [PORT] [--idle-timeout=S] [--request-timeout=S]");
}

/// Parses `--ipv4=… [--ipv4-gateway=…] [PORT] [--idle-timeout=S]
/// [--request-timeout=S]` (a timeout of 0 means none), brings up `service0`
/// and serves `proto` forever. Returns only on a bad command line or a missing device.
pub fn run_server<P: protocols::Protocol>(
    name: &str,
    args: &Cmdline,
    default_port: u16,
    mut timeouts: Timeouts,
    proto: &mut P,
) -> i32 {
    let (config, rest) = match NetConfig::parse(args.as_bytes()) {
        Ok(parsed) => parsed,
        Err(e) => {
            println!("{name}: {e}");
            usage(name);
            return 2;
        }
    };
    let mut port = default_port;
    for (i, word) in core::str::from_utf8(rest).unwrap_or("?").split_ascii_whitespace().enumerate() {
        let seconds = |v: &str| v.parse::<u64>().ok().map(|s| (s > 0).then(|| Duration::from_secs(s)));
        let parsed = if let Some(v) = word.strip_prefix("--idle-timeout=") {
            seconds(v).map(|t| timeouts.idle = t)
        } else if let Some(v) = word.strip_prefix("--request-timeout=") {
            seconds(v).map(|t| timeouts.request = t)
        } else if i == 0 {
            word.parse::<u16>().ok().filter(|p| *p != 0).map(|p| port = p)
        } else {
            None
        };
        if parsed.is_none() {
            if i == 0 && !word.starts_with("--") {
                println!("{name}: bad port {word:?}");
            } else {
                println!("{name}: bad argument {word:?}");
            }
            usage(name);
            return 2;
        }
    }
    let net = match Net::acquire("service0") {
        Ok(net) => net,
        Err(e) => {
            println!("{name}: service0: {e}");
            return 1;
        }
    };
    let mut stack = Stack::new(net, &config);
    let info = stack.device.net().info();
    let mac = info.mac;
    let heap_total = heap::stats().total;
    let ready = || {
        println!(
            "{name}: listening on {}:{port} ({config}), MAC {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}, heap {} MiB, MTU {}{}",
            config.addr,
            mac[0],
            mac[1],
            mac[2],
            mac[3],
            mac[4],
            mac[5],
            heap_total >> 20,
            info.mtu,
            if info.vnet_hdr { ", TCP offload (vnet_hdr)" } else { "" },
        );
    };
    let server = ServerConfig {
        port,
        large_buffer: LARGE_BUFFER,
        small_buffer: SMALL_BUFFER,
        window_frames: WINDOW_FRAMES,
        // An eighth of the heap stays for the application's data and requests.
        reserve: heap_total / 8,
        idle_timeout: timeouts.idle,
        request_timeout: timeouts.request,
        busy_poll: BUSY_POLL,
    };
    serve(&mut stack, server, proto, ready)
}
