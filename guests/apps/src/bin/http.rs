//! `http`: an HTTP/1.1 keep-alive server answering one small fixed page.
//!
//! `http --ipv4=ADDR/PREFIX [--ipv4-gateway=GW] [PORT]`, PORT defaults to 80.
//! Request handling is `protocols::http`'s, as in the native baseline
//! (`benches` `native-http`).
#![no_std]
#![no_main]

solo5_rt::manifest! {
    net service0 with vnet_hdr;
}
solo5_rt::main!(main);

fn main(args: &solo5_rt::Cmdline) -> i32 {
    apps::run_server(
        "http",
        args,
        80,
        apps::Timeouts {
            idle: Some(solo5_net::Duration::from_secs(60)),
            request: Some(solo5_net::Duration::from_secs(10)),
        },
        &mut protocols::http::Http::new(),
    )
}
