//! Never exits and never makes a syscall after its first line: only a signal from the
//! host (SIGTERM, SIGKILL; `docker stop`) ends it.
#![no_std]
#![no_main]

use solo5_rt::{Cmdline, println};

solo5_rt::manifest! {}
solo5_rt::main!(main);

fn main(_: &Cmdline) -> i32 {
    println!("spinning forever");
    loop {
        core::hint::spin_loop();
    }
}
