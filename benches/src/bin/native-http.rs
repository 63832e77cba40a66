//! `native-http [ADDR:PORT]`: the `http` guest's server (`protocols::http`) as an
//! ordinary Linux process on the kernel's TCP stack; default 127.0.0.1:8080.

fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:8080".into());
    let listener = std::net::TcpListener::bind(&addr)?;
    println!("native-http: listening on {addr}");
    benches::native::serve(listener, &mut protocols::http::Http::new())
}
