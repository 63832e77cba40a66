//! Calls abort(): status 255 and `Solo5: solo5_abort() called`.
#![no_std]
#![no_main]

use solo5_rt::{Cmdline, println};

solo5_rt::manifest! {}
solo5_rt::main!(main);

fn main(_: &Cmdline) -> i32 {
    println!("about to call solo5_abort()");
    solo5_rt::abort()
}
