//! `native-kv [ADDR:PORT]`: the `kv` guest's RESP server (`protocols::resp`) as an
//! ordinary Linux process on the kernel's TCP stack; default 127.0.0.1:6379.

fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:6379".into());
    let listener = std::net::TcpListener::bind(&addr)?;
    println!("native-kv: listening on {addr}");
    benches::native::serve(listener, &mut protocols::resp::Kv::new())
}
