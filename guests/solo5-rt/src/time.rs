//! Clocks and `yield` (docs/solo5-abi.md §5.4 for spt, §6.5 for hvt).

use hypercall_abi::Handle;

use crate::platform::imp as platform;

/// A set of device handles, one bit per handle (the manifest index).
pub type HandleSet = u64;

/// Nanoseconds of a monotonic clock; the time base of [`yield_until`]. spt: the
/// host's CLOCK_MONOTONIC; hvt: the TSC scaled by its frequency.
pub fn clock_monotonic() -> u64 {
    platform::clock_monotonic()
}

/// Nanoseconds since the Unix epoch (the host's CLOCK_REALTIME).
pub fn clock_wall() -> u64 {
    platform::clock_wall()
}

/// Waits until `deadline` (absolute [`clock_monotonic`] ns) or until a network
/// device has input, and returns the set of devices that have input (empty on
/// timeout). A deadline in the past returns at once.
pub fn yield_until(deadline: u64) -> HandleSet {
    platform::yield_until(deadline)
}

/// The bit of `handle` in a [`HandleSet`].
pub const fn handle_bit(handle: Handle) -> HandleSet {
    1 << handle
}
