//! `native-kv [ADDR:PORT]`: the `kv` guest's RESP server (`protocols::resp`) as an
//! ordinary Linux process on the kernel's TCP stack; default 127.0.0.1:6379.

use protocols::resp::{Kv, KvConfig};

fn clock_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn main() -> std::io::Result<()> {
    // Big values are kept in the buffers they were read into, so a 100 KB SET
    // frees the value it replaces and allocates the next request's buffer.
    // glibc would give the freed top of the heap back to the kernel each time
    // (its trim threshold is 128 KiB) and fault it in again for the next one;
    // redis's jemalloc keeps freed pages for a while. Keep them, as it does.
    // SAFETY: mallopt takes no pointers and only tunes the allocator; no
    // allocation is in progress on this single thread.
    unsafe { libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20) };
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:6379".into());
    let listener = std::net::TcpListener::bind(&addr)?;
    println!("native-kv: listening on {addr}");
    // No memory limit (as redis-server's default); keys expire by the wall clock.
    let config = KvConfig { clock_ms, ..KvConfig::default() };
    benches::native::serve(listener, &mut Kv::with_config(config))
}
