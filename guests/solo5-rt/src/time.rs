//! Clocks and `yield` (solo5-abi.md §5.4).

use hypercall_abi::spt::{EpollEvent, TIMER_EPOLL_DATA};
use hypercall_abi::{Handle, mft::MFT_MAX_ENTRIES, spt::sys::EINTR};

use crate::start::{epoll_fd, net_devices, timer_fd};
use crate::sys::{self, Clock, Timespec};

const NSEC_PER_SEC: u64 = 1_000_000_000;

/// A set of device handles, one bit per handle (the manifest index).
pub type HandleSet = u64;

fn clock_ns(clock: Clock) -> u64 {
    match sys::clock_gettime(clock) {
        // A clock never reads before the epoch or boot; the casts are lossless.
        Ok(ts) => (ts.sec as u64) * NSEC_PER_SEC + ts.nsec as u64,
        // Solo5 asserts the same.
        Err(e) => panic!("clock_gettime({clock:?}) failed: {e}"),
    }
}

/// Nanoseconds of CLOCK_MONOTONIC; the time base of [`yield_until`].
pub fn clock_monotonic() -> u64 {
    clock_ns(Clock::Monotonic)
}

/// Nanoseconds since the Unix epoch (CLOCK_REALTIME).
pub fn clock_wall() -> u64 {
    clock_ns(Clock::Realtime)
}

/// Waits until `deadline` (absolute [`clock_monotonic`] ns) or until a network
/// device has input, and returns the set of devices that have input (empty on
/// timeout). A deadline in the past returns at once.
///
/// Exactly Solo5's spt `solo5_yield`: arm the tender's timerfd at the absolute
/// deadline (lowest ns bit forced to 1, so that deadline 0 does not disarm the
/// timer and wait forever), then `epoll_pwait` for at most one event per net
/// device plus the timer, retrying on EINTR.
pub fn yield_until(deadline: u64) -> HandleSet {
    let deadline = deadline | 1;
    let value = Timespec { sec: (deadline / NSEC_PER_SEC) as i64, nsec: (deadline % NSEC_PER_SEC) as i64 };
    let ret = sys::timerfd_settime_abs(timer_fd(), value);
    assert!(ret == 0, "timerfd_settime failed: {ret}");

    let mut events = [EpollEvent::default(); MFT_MAX_ENTRIES];
    let wanted = (net_devices() + 1).min(events.len());
    let events = &mut events[..wanted];
    let n = loop {
        let n = sys::epoll_pwait(epoll_fd(), events);
        if n != -EINTR {
            break n;
        }
    };
    assert!(n >= 0, "epoll_pwait failed: {n}");

    let mut ready: HandleSet = 0;
    for event in &events[..n as usize] {
        let data = event.data; // a copy: the struct is packed
        if data != TIMER_EPOLL_DATA && data < u64::from(HandleSet::BITS) {
            ready |= 1 << data;
        }
    }
    ready
}

/// The bit of `handle` in a [`HandleSet`].
pub const fn handle_bit(handle: Handle) -> HandleSet {
    1 << handle
}
