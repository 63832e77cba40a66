//! TLS base: set_tls_base with Solo5's x86_64 convention (variant II: the base
//! points at a word holding its own address) and `%fs:0` reads it back.
//! `tls notls` instead reads `%fs:0` with the base still 0, as the runtime left
//! it at start: SIGSEGV (Solo5's `notls` test).
#![no_std]
#![no_main]

use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering};
use solo5_rt::{Checks, Cmdline, Error, println, set_tls_base};

solo5_rt::manifest! {}
solo5_rt::main!(main);

/// Two one-word "TLS blocks" (no .tdata/.tbss: the thread pointer word only).
static BLOCKS: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

/// Reads the word at `%fs:0`.
fn fs0() -> u64 {
    let v: u64;
    // SAFETY: a read only. Callers either set FS to one of `BLOCKS` (a live
    // static, 8 bytes readable) or, for `notls`, to 0, where the read must fault.
    unsafe { asm!("mov {}, qword ptr fs:[0]", out(reg) v, options(nostack, readonly, preserves_flags)) };
    v
}

fn main(args: &Cmdline) -> i32 {
    if args.arg(0) == Some("notls") {
        println!("about to read %fs:0 with no TLS base set");
        let v = fs0();
        println!("FAIL: %fs:0 read {v:#x} without a TLS base");
        return 1;
    }

    let mut checks = Checks::new();
    for (i, block) in BLOCKS.iter().enumerate() {
        let tp = block.as_ptr() as u64;
        block.store(tp, Ordering::Relaxed);
        let set = set_tls_base(tp);
        checks.check_with("set_tls_base", set.is_ok(), format_args!("block {i} at {tp:#x}: {set:?}"));
        let got = fs0();
        checks.check_with("%fs:0 is the thread pointer", got == tp, format_args!("read {got:#x}, want {tp:#x}"));
    }
    // The kernel refuses a non-canonical base; Solo5 maps that to EINVAL.
    let bad = set_tls_base(0x8000_0000_0000_0000);
    checks.check_with("non-canonical base is EINVAL", bad == Err(Error::Einval), format_args!("{bad:?}"));
    checks.check("reset base to 0", set_tls_base(0).is_ok());
    checks.finish()
}
