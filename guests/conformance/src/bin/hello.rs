//! Prints a greeting and the command line. `hello a b` → `Hello, args: a b`.
//! Also checks what every guest relies on: initialised data, zeroed bss, and
//! the runtime's memmove/memcmp (overlapping copies both ways, ordering).
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicU32, Ordering};
use solo5_rt::{Checks, Cmdline, println};

solo5_rt::manifest! {}
solo5_rt::main!(main);

/// In .data: the tender must have copied the initialised data segment.
static DATA: AtomicU32 = AtomicU32::new(0x5253_4F4C);
/// In .bss: the tender's guest memory must start zeroed.
static BSS: AtomicU32 = AtomicU32::new(0);

fn main(args: &Cmdline) -> i32 {
    println!("Hello, world");
    println!("Hello, args: {args}");

    let mut checks = Checks::new();
    // Also proves both segments are writable.
    checks.check("initialised data", DATA.fetch_add(1, Ordering::Relaxed) == 0x5253_4F4C);
    checks.check("zeroed bss", BSS.fetch_add(1, Ordering::Relaxed) == 0);

    // black_box: keep LLVM from evaluating these at compile time, so that the
    // runtime's memmove and memcmp really run.
    let mut buf = *b"0123456789abcdefghij";
    let ten = core::hint::black_box(10);
    buf.copy_within(0..ten, 5); // overlapping, destination above: copied backwards
    checks.check("memmove up", &buf == b"012340123456789fghij");
    buf.copy_within(5..5 + ten, 0); // overlapping, destination below: copied forwards
    checks.check("memmove down", &buf == b"012345678956789fghij");
    let (a, b) = core::hint::black_box((&b"abcdef"[..], &b"abcdeg"[..]));
    checks.check("memcmp orders bytes", a.cmp(b).is_lt() && b.cmp(a).is_gt() && a.cmp(a).is_eq());
    checks.finish()
}
