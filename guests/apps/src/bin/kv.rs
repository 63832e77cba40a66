//! `kv`: an in-memory key-value server speaking RESP (redis's protocol) on TCP.
//!
//! `kv --ipv4=ADDR/PREFIX [--ipv4-gateway=GW] [PORT]`, PORT defaults to 6379.
//! The commands and their replies are `protocols::resp`'s, the same code the
//! native baseline (`benches` `native-kv`) runs. `maxmemory` is three quarters
//! of the guest's heap (the rest holds connections); a write past it is answered
//! `-OOM …` and the server goes on.
#![no_std]
#![no_main]

use protocols::resp::{Kv, KvConfig};
use solo5_net::heap;

solo5_rt::manifest! {
    net service0;
}
solo5_rt::main!(main);

fn clock_ms() -> u64 {
    solo5_rt::clock_wall() / 1_000_000
}

fn used_memory() -> usize {
    heap::stats().used
}

fn main(args: &solo5_rt::Cmdline) -> i32 {
    let total = heap::stats().total;
    let maxmemory = total / 4 * 3;
    let config = KvConfig { clock_ms, used_memory: Some(used_memory), maxmemory, total_memory: total };
    solo5_rt::println!("kv: maxmemory {maxmemory} bytes ({} MiB heap), policy noeviction", total >> 20);
    apps::run_server("kv", args, 6379, apps::Timeouts::default(), &mut Kv::with_config(config))
}
