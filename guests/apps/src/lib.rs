//! What the networked guests share: command line, bring-up, the server loop.
#![no_std]

use solo5_net::{NetConfig, ServerConfig, Stack, serve};
use solo5_rt::{Cmdline, Net, println};

/// Connections served at once: `redis-benchmark`'s and `wrk`'s 50 plus spares
/// (a connection that closes first on our side spends 10 s in TIME-WAIT).
pub const MAX_CONNS: usize = 128;
/// Socket buffer per direction and connection.
pub const BUFFER: usize = 16 * 1024;

/// Parses `--ipv4=… [--ipv4-gateway=…] [PORT]`, brings up `service0` and serves
/// `proto` forever. Returns only on a bad command line or a missing device.
pub fn run_server<P: protocols::Protocol>(name: &str, args: &Cmdline, default_port: u16, proto: &mut P) -> i32 {
    let (config, rest) = match NetConfig::parse(args.as_bytes()) {
        Ok(parsed) => parsed,
        Err(e) => {
            println!("{name}: {e}");
            println!("usage: {name} --ipv4=ADDR/PREFIX [--ipv4-gateway=GW] [PORT]");
            return 2;
        }
    };
    let word = core::str::from_utf8(rest).unwrap_or("?").trim();
    let port = match word {
        "" => default_port,
        word => match word.parse::<u16>() {
            Ok(p) if p != 0 => p,
            _ => {
                println!("{name}: bad port {word:?}");
                println!("usage: {name} --ipv4=ADDR/PREFIX [--ipv4-gateway=GW] [PORT]");
                return 2;
            }
        },
    };
    let net = match Net::acquire("service0") {
        Ok(net) => net,
        Err(e) => {
            println!("{name}: service0: {e}");
            return 1;
        }
    };
    let mut stack = Stack::new(net, &config);
    let mac = stack.device.net().info().mac;
    let ready = || {
        println!(
            "{name}: listening on {}:{port} ({config}), MAC {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}, {MAX_CONNS} connections",
            config.addr, mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]
        );
    };
    serve(&mut stack, ServerConfig { port, max_conns: MAX_CONNS, buffer: BUFFER }, proto, ready)
}
