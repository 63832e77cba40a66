//! Monotonic clock never goes back and advances; wall clock is sane.
//! Prints `WALLCLOCK <ns>` so that the host can compare it with its own time.
//! `clocks [READS]`: how many monotonic reads to compare (default 100 000;
//! fewer keep the run short where guest code is emulated, as on hvt here).
#![no_std]
#![no_main]

use solo5_rt::{Checks, Cmdline, clock_monotonic, clock_wall, println};

solo5_rt::manifest! {}
solo5_rt::main!(main);

const DEFAULT_READS: u32 = 100_000;
/// 2024-01-01T00:00:00Z and 2100-01-01T00:00:00Z, in ns since the epoch.
const WALL_MIN: u64 = 1_704_067_200 * NS_PER_SEC;
const WALL_MAX: u64 = 4_102_444_800 * NS_PER_SEC;
const NS_PER_SEC: u64 = 1_000_000_000;

fn main(args: &Cmdline) -> i32 {
    let mut checks = Checks::new();
    let Some(reads) = args.arg(0).map_or(Some(DEFAULT_READS), |a| a.parse::<u32>().ok()).filter(|&n| n > 0) else {
        checks.fail("arguments", format_args!("usage: clocks [READS > 0], got {args:?}"));
        return checks.finish();
    };

    let first = clock_monotonic();
    let mut prev = first;
    let mut backwards = 0u32;
    for _ in 0..reads {
        let now = clock_monotonic();
        if now < prev {
            backwards += 1;
        }
        prev = now;
    }
    checks.check_with(
        "monotonic never goes back",
        backwards == 0,
        format_args!("{backwards} of {reads} reads went back"),
    );
    checks.check_with("monotonic advances", prev > first, format_args!("{} ns over {reads} reads", prev - first));

    let wall = clock_wall();
    println!("WALLCLOCK {wall}");
    checks.check_with(
        "wall clock after 2024-01-01 and before 2100",
        (WALL_MIN..WALL_MAX).contains(&wall),
        format_args!("{} s since the epoch", wall / NS_PER_SEC),
    );
    checks.check("wall clock advances", clock_wall() >= wall);

    checks.finish()
}
