//! The spt binding: the guest runs inside the tender's process and its
//! hypercalls are the host syscalls in [`crate::sys`], each with exactly the
//! argument shapes the tender's seccomp filter allows (docs/solo5-abi.md §5.4).

use core::sync::atomic::{AtomicI32, AtomicU64, AtomicUsize, Ordering::Relaxed};

use hypercall_abi::elf::AbiTarget;
use hypercall_abi::mft::MFT_MAX_ENTRIES;
use hypercall_abi::spt::sys::{EAGAIN, EINTR};
use hypercall_abi::spt::{EpollEvent, SptBootInfo, TIMER_EPOLL_DATA, sys::STDOUT};
use hypercall_abi::{Handle, exit::ABORT};

use super::Boot;
use crate::sys::{self, Clock, Timespec};
use crate::{Error, HandleSet};

/// The target named in the ABI note.
pub(crate) const ABI_TARGET: AbiTarget = AbiTarget::Spt;
/// Shown in the banner.
pub(crate) const NAME: &str = "spt";
/// What [`crate::boot_info`] returns on this platform.
pub type BootInfo = SptBootInfo;

const NSEC_PER_SEC: u64 = 1_000_000_000;

static MEM_SIZE: AtomicU64 = AtomicU64::new(0);
static KERNEL_END: AtomicU64 = AtomicU64::new(0);
static CMDLINE_ADDR: AtomicU64 = AtomicU64::new(0);
static MFT_ADDR: AtomicU64 = AtomicU64::new(0);
static EPOLL_FD: AtomicI32 = AtomicI32::new(-1);
static TIMER_FD: AtomicI32 = AtomicI32::new(-1);
/// Number of NET_BASIC entries in the manifest (each has an fd in the epoll set).
static NET_DEVICES: AtomicUsize = AtomicUsize::new(0);

/// First thing `_start` does: drops the tender's FS base and copies the boot info.
///
/// # Safety
/// `boot_info` is the address the tender passed in `rdi`: a valid
/// [`SptBootInfo`], readable for its 40 bytes (docs/solo5-abi.md §5.3).
pub(crate) unsafe fn init(boot_info: u64) -> Boot {
    // Whatever FS base the tender left is not ours: with 0, a stray TLS access
    // faults instead of reading tender memory (Solo5 does the same).
    let _ = sys::arch_set_fs(0);
    // SAFETY: the tender's contract (# Safety): a valid boot info, readable for
    // its 40 bytes. It is copied out once; only its values are used afterwards.
    let bi = unsafe { (boot_info as *const SptBootInfo).read() };
    MEM_SIZE.store(bi.mem_size, Relaxed);
    KERNEL_END.store(bi.kernel_end, Relaxed);
    CMDLINE_ADDR.store(bi.cmdline, Relaxed);
    MFT_ADDR.store(bi.mft, Relaxed);
    EPOLL_FD.store(bi.epollfd, Relaxed);
    TIMER_FD.store(bi.timerfd, Relaxed);
    Boot { mem_size: bi.mem_size, mft: bi.mft, cmdline: bi.cmdline }
}

/// Called once the manifest is known: yield waits for one event per net device.
pub(crate) fn set_net_devices(n: usize) {
    NET_DEVICES.store(n, Relaxed);
}

/// The boot info the tender passed (a copy).
pub(crate) fn boot_info() -> SptBootInfo {
    SptBootInfo {
        mem_size: MEM_SIZE.load(Relaxed),
        kernel_end: KERNEL_END.load(Relaxed),
        cmdline: CMDLINE_ADDR.load(Relaxed),
        mft: MFT_ADDR.load(Relaxed),
        epollfd: EPOLL_FD.load(Relaxed),
        timerfd: TIMER_FD.load(Relaxed),
    }
}

/// `write(1, bytes)`; the result is ignored like Solo5's.
pub(crate) fn console_write(bytes: &[u8]) {
    let _ = sys::write(STDOUT as i32, bytes);
}

fn clock_ns(clock: Clock) -> u64 {
    match sys::clock_gettime(clock) {
        // A clock never reads before the epoch or boot; the casts are lossless.
        Ok(ts) => (ts.sec as u64) * NSEC_PER_SEC + ts.nsec as u64,
        // Solo5 asserts the same.
        Err(e) => panic!("clock_gettime({clock:?}) failed: {e}"),
    }
}

pub(crate) fn clock_monotonic() -> u64 {
    clock_ns(Clock::Monotonic)
}

pub(crate) fn clock_wall() -> u64 {
    clock_ns(Clock::Realtime)
}

/// Exactly Solo5's spt `solo5_yield`: arm the tender's timerfd at the absolute
/// deadline (lowest ns bit forced to 1, so that deadline 0 does not disarm the
/// timer and wait forever), then `epoll_pwait` for at most one event per net
/// device plus the timer, retrying on EINTR.
pub(crate) fn yield_until(deadline: u64) -> HandleSet {
    let deadline = deadline | 1;
    let value = Timespec { sec: (deadline / NSEC_PER_SEC) as i64, nsec: (deadline % NSEC_PER_SEC) as i64 };
    let ret = sys::timerfd_settime_abs(TIMER_FD.load(Relaxed), value);
    assert!(ret == 0, "timerfd_settime failed: {ret}");

    let mut events = [EpollEvent::default(); MFT_MAX_ENTRIES];
    let wanted = (NET_DEVICES.load(Relaxed) + 1).min(events.len());
    let events = &mut events[..wanted];
    let n = loop {
        let n = sys::epoll_pwait(EPOLL_FD.load(Relaxed), events);
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

/// `pread64(fd, buf, len, offset)`; the caller made Solo5's guest-side checks.
pub(crate) fn block_read(_handle: Handle, fd: i32, offset: u64, buf: &mut [u8]) -> Result<(), Error> {
    let n = sys::pread64(fd, buf, offset);
    if n == buf.len() as i64 { Ok(()) } else { Err(Error::Eunspec) }
}

/// `pwrite64(fd, buf, len, offset)`; the caller made Solo5's guest-side checks.
pub(crate) fn block_write(_handle: Handle, fd: i32, offset: u64, buf: &[u8]) -> Result<(), Error> {
    let n = sys::pwrite64(fd, buf, offset);
    if n == buf.len() as i64 { Ok(()) } else { Err(Error::Eunspec) }
}

/// `read(tapfd, buf, len)`.
pub(crate) fn net_read(_handle: Handle, fd: i32, buf: &mut [u8]) -> Result<usize, Error> {
    match sys::read(fd, buf) {
        n if n >= 0 => Ok(n as usize),
        n if n == -EAGAIN => Err(Error::Again),
        _ => Err(Error::Eunspec),
    }
}

/// `write(tapfd, frame, len)`: all of it or `Eunspec`.
pub(crate) fn net_write(_handle: Handle, fd: i32, frame: &[u8]) -> Result<(), Error> {
    let n = sys::write(fd, frame);
    if n == frame.len() as i64 { Ok(()) } else { Err(Error::Eunspec) }
}

/// `arch_prctl(ARCH_SET_FS, base)`; the kernel refuses a non-canonical base.
pub(crate) fn set_tls_base(base: u64) -> Result<(), Error> {
    if sys::arch_set_fs(base) == 0 { Ok(()) } else { Err(Error::Einval) }
}

/// `exit_group(status)`.
pub(crate) fn halt(status: i32) -> ! {
    sys::exit_group(status)
}

/// A panic ends the guest with status 255.
pub(crate) fn abort() -> ! {
    sys::exit_group(ABORT)
}
