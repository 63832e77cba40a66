//! `kv`: an in-memory key-value server speaking RESP (redis's protocol) on TCP.
//!
//! `kv --ipv4=ADDR/PREFIX [--ipv4-gateway=GW] [PORT]`, PORT defaults to 6379.
//! The commands and their replies are `protocols::resp`'s, the same code the
//! native baseline (`benches` `native-kv`) runs. `maxmemory` is three quarters
//! of the guest's heap (the rest holds connections); a write past it is answered
//! `-OOM …` and the server goes on.
#![no_std]
#![no_main]

solo5_rt::manifest! {
    net service0 with vnet_hdr;
}
solo5_rt::main!(main);

fn main(args: &solo5_rt::Cmdline) -> i32 {
    apps::run_server("kv", args, 6379, apps::Timeouts::default(), &mut apps::kv_store("kv"))
}
