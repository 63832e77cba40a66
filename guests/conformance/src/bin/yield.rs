//! yield_until: a past deadline returns at once, a deadline 100 ms ahead takes
//! 90–150 ms (five times), and with no devices the ready set is always empty.
#![no_std]
#![no_main]

use solo5_rt::{Checks, Cmdline, clock_monotonic, yield_until};

solo5_rt::manifest! {}
solo5_rt::main!(main);

const MS: u64 = 1_000_000;
const SLEEP: u64 = 100 * MS;
const MIN_SLEPT: u64 = 90 * MS;
const MAX_SLEPT: u64 = 150 * MS;
/// A past deadline must not wait for anything; this only bounds scheduler noise.
const MAX_IMMEDIATE: u64 = 50 * MS;

fn main(_: &Cmdline) -> i32 {
    let mut checks = Checks::new();

    // Deadline 0 is special: without the forced lowest bit it would disarm the
    // timerfd, and the wait would never end.
    for (name, deadline) in
        [("deadline 0 returns at once", 0), ("past deadline returns at once", clock_monotonic() - 1)]
    {
        let start = clock_monotonic();
        let ready = yield_until(deadline);
        let took = clock_monotonic() - start;
        checks.check_with(name, ready == 0 && took < MAX_IMMEDIATE, format_args!("ready set {ready:#x}, {}", Ms(took)));
    }

    for _ in 0..5 {
        let start = clock_monotonic();
        let ready = yield_until(start + SLEEP);
        let took = clock_monotonic() - start;
        checks.check_with(
            "yield to now+100ms takes 90-150 ms",
            (MIN_SLEPT..=MAX_SLEPT).contains(&took),
            format_args!("{}", Ms(took)),
        );
        checks.check_with("no devices: ready set empty", ready == 0, format_args!("{ready:#x}"));
    }

    checks.finish()
}

/// Nanoseconds shown as milliseconds with three decimals (no floats in guests).
struct Ms(u64);

impl core::fmt::Display for Ms {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}.{:03} ms", self.0 / MS, self.0 % MS / 1000)
    }
}
