//! `native-kv [ADDR:PORT]`: the `kv` guest's RESP server (`protocols::resp`) as an
//! ordinary Linux process on the kernel's TCP stack; default 127.0.0.1:6379.

use protocols::resp::{Kv, KvConfig};

fn clock_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:6379".into());
    let listener = std::net::TcpListener::bind(&addr)?;
    println!("native-kv: listening on {addr}");
    // No memory limit (as redis-server's default); keys expire by the wall clock.
    let config = KvConfig { clock_ms, ..KvConfig::default() };
    benches::native::serve(listener, &mut Kv::with_config(config))
}
