//! Panics: `Solo5: ABORT: <file>:<line>: this guest panics on purpose (42)`, status 255.
#![no_std]
#![no_main]

use solo5_rt::{Cmdline, println};

solo5_rt::manifest! {}
solo5_rt::main!(main);

fn main(_: &Cmdline) -> i32 {
    println!("about to panic");
    let answer = core::hint::black_box(42);
    panic!("this guest panics on purpose ({answer})");
}
