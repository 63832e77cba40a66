//! Writes to address 8, in the unmapped first 64 KiB: SIGSEGV (Solo5's `zeropage` test).
#![no_std]
#![no_main]

use solo5_rt::{Cmdline, println};

solo5_rt::manifest! {}
solo5_rt::main!(main);

const ADDR: usize = 8;

fn main(_: &Cmdline) -> i32 {
    let target = core::hint::black_box(ADDR) as *mut u64;
    println!("about to write to address {ADDR:#x}");
    // SAFETY: deliberately unsound: nothing may be mapped at 8 (the spt tender
    // leaves [0, 0x10000) unmapped), so the write must fault. If it does not,
    // the guest only reports the failure.
    unsafe { target.write_volatile(1) };
    println!("FAIL: address {ADDR:#x} is writable");
    1
}
