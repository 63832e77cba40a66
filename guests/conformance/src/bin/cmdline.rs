//! Prints the length and the last 10 characters of its command line (after
//! the `--solo5:` words): `CMDLINE_LEN <n>` and `CMDLINE_TAIL <tail>`.
#![no_std]
#![no_main]

use solo5_rt::{Cmdline, println};

solo5_rt::manifest! {}
solo5_rt::main!(main);

fn main(args: &Cmdline) -> i32 {
    let bytes = args.as_bytes();
    let tail = &bytes[bytes.len().saturating_sub(10)..];
    println!("CMDLINE_LEN {}", bytes.len());
    match core::str::from_utf8(tail) {
        Ok(tail) => println!("CMDLINE_TAIL {tail}"),
        Err(_) => println!("CMDLINE_TAIL (not UTF-8) {tail:?}"),
    }
    println!("SUCCESS");
    0
}
