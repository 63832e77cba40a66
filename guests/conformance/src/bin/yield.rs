//! yield_until: a past deadline returns without waiting, a deadline 100 ms ahead is
//! met and not overslept by more than a wrong timer would (five times), and with no
//! devices the ready set is always empty.
//!
//! The upper bounds are about what a bug looks like, not about scheduling: like Solo5's
//! test_time (1 s sleep, 100 ms slack), but with a second of slack, because shared CI
//! hosts have delayed a 100 ms yield past 150 ms. A timer armed in the wrong unit, a
//! relative deadline taken as absolute or a lost wake-up is off by far more, or never
//! returns. The lower bound allows 10 ms for hvt, whose guest clock is the TSC while
//! the tender's timer runs on the host's CLOCK_MONOTONIC.
#![no_std]
#![no_main]

use solo5_rt::{Checks, Cmdline, clock_monotonic, yield_until};

solo5_rt::manifest! {}
solo5_rt::main!(main);

const MS: u64 = 1_000_000;
const SLEEP: u64 = 100 * MS;
const MIN_SLEPT: u64 = 90 * MS;
/// The deadline plus a second: far above scheduling delays, far below any wrong timer.
const MAX_SLEPT: u64 = SLEEP + 1000 * MS;
/// A past deadline must not wait for anything (the 100 ms timer, a second timer tick).
const MAX_IMMEDIATE: u64 = 1000 * MS;

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
            "yield to now+100ms takes 90-1100 ms",
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
