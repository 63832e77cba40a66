//! Writes into its own text segment, which is mapped R+X: the host kills the
//! tender with SIGSEGV (Solo5's `xnow` test).
#![no_std]
#![no_main]

use solo5_rt::{Cmdline, println};

solo5_rt::manifest! {}
solo5_rt::main!(main);

fn main(_: &Cmdline) -> i32 {
    let target = main as fn(&Cmdline) -> i32 as *mut u8;
    println!("about to write to the text segment at {target:p}");
    // SAFETY: deliberately unsound: the write must fault (SIGSEGV) because the
    // text segment is not writable. If it does not fault, the guest reports the
    // failure below without running the code it may have changed.
    unsafe { target.write_volatile(0xcc) };
    println!("FAIL: the text segment is writable");
    1
}
