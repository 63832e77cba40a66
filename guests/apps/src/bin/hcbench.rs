//! `hcbench`: hypercall latency, measured inside a guest.
//!
//! `hcbench KIND ITERATIONS` times ITERATIONS calls of one Solo5 call kind and
//! writes `KIND NS_PER_OP_X1000` into block 0 of `storage` (the console is one of
//! the measured calls, so the harness points stdout at /dev/null and reads the
//! result from the block file; benches/benches/hypercalls.rs). Kinds:
//!
//! | kind | call | host syscall (spt) |
//! |---|---|---|
//! | `walltime` | `solo5_clock_wall` | `clock_gettime(CLOCK_REALTIME)` |
//! | `monotonic` | `solo5_clock_monotonic` | `clock_gettime(CLOCK_MONOTONIC)` |
//! | `console` | `solo5_console_write` of 16 bytes | `write(1, …, 16)` |
//! | `yield0` | `solo5_yield(0)` | `timerfd_settime` + `epoll_pwait` |
//! | `block_read` | `solo5_block_read` of 512 bytes | `pread64` |
//! | `block_write` | `solo5_block_write` of 512 bytes | `pwrite64` |
//! | `net_write` | `solo5_net_write` of a 60-byte frame | `write(tapfd, …, 60)` |
//!
//! Block I/O cycles over blocks 1..=8 of the device (block 0 holds the result).
#![no_std]
#![no_main]

use solo5_rt::{Block, Net, clock_monotonic, clock_wall, console, yield_until};

solo5_rt::manifest! {
    block storage;
    net service0;
}
solo5_rt::main!(main);

/// A frame nobody on the host wants: to a locally administered unicast MAC that
/// is not the tap's, so the kernel drops it after the tap's receive path.
const FRAME: [u8; 60] = {
    let mut f = [0u8; 60];
    let dst = [0x02, 0x00, 0x00, 0xbe, 0xac, 0x01];
    let mut i = 0;
    while i < 6 {
        f[i] = dst[i];
        i += 1;
    }
    f[12] = 0x88; // EtherType 0x88b5: IEEE "local experimental"
    f[13] = 0xb5;
    f
};

fn time(iters: u64, mut op: impl FnMut(u64)) -> u64 {
    let start = clock_monotonic();
    for i in 0..iters {
        op(i);
    }
    // ns per op × 1000, in integers (no floats in guests)
    (clock_monotonic() - start) * 1000 / iters
}

fn main(args: &solo5_rt::Cmdline) -> i32 {
    let (Some(kind), Some(iters)) = (args.arg(0), args.parse_arg::<u64>(1).filter(|n| *n > 0)) else {
        solo5_rt::println!("usage: hcbench KIND ITERATIONS");
        return 2;
    };
    let (Ok(block), Ok(net)) = (Block::acquire("storage"), Net::acquire("service0")) else {
        solo5_rt::println!("hcbench: devices missing");
        return 1;
    };
    if block.info().block_size != 512 || block.info().capacity < 9 * 512 {
        solo5_rt::println!("hcbench: storage must have 512-byte blocks and at least 9 of them");
        return 1;
    }
    let mut buf = [0u8; 512];
    // Results feed `sink` so that no call can be optimised away.
    let mut sink = 0u64;
    let ns_x1000 = match kind {
        "walltime" => time(iters, |_| sink ^= clock_wall()),
        "monotonic" => time(iters, |_| sink ^= clock_monotonic()),
        "console" => time(iters, |_| console::write(b"0123456789abcde\n")),
        "yield0" => time(iters, |_| sink ^= yield_until(0)),
        "block_read" => time(iters, |i| sink ^= u64::from(block.read(512 * (1 + i % 8), &mut buf).is_ok())),
        "block_write" => time(iters, |i| sink ^= u64::from(block.write(512 * (1 + i % 8), &buf).is_ok())),
        "net_write" => time(iters, |_| sink ^= u64::from(net.write(&FRAME).is_ok())),
        _ => {
            solo5_rt::println!("hcbench: unknown kind {kind}");
            return 2;
        }
    };
    let mut report = [b' '; 512];
    let mut w = Writer { buf: &mut report, at: 0 };
    let _ = core::fmt::write(&mut w, format_args!("{kind} {ns_x1000}\niterations {iters}\nsink {}\nend\n", sink & 1));
    if block.write(0, &report).is_err() {
        return 1;
    }
    0
}

struct Writer<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl core::fmt::Write for Writer<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let end = self.at + s.len();
        self.buf.get_mut(self.at..end).ok_or(core::fmt::Error)?.copy_from_slice(s.as_bytes());
        self.at = end;
        Ok(())
    }
}
