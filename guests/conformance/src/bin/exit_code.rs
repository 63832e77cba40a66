//! Exits with the status given as its first argument: `exit_code 7` → status 7.
#![no_std]
#![no_main]

use solo5_rt::{Cmdline, println};

solo5_rt::manifest! {}
solo5_rt::main!(main);

fn main(args: &Cmdline) -> i32 {
    match args.parse_arg::<i32>(0) {
        Some(status) => {
            println!("exiting with status {status}");
            status
        }
        None => {
            println!("FAIL: usage: exit_code STATUS, got {args:?}");
            1
        }
    }
}
