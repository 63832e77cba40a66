//! Every host syscall an spt guest makes, and nothing else (docs/solo5-abi.md §5.4).
//!
//! The tender's seccomp filter kills the guest on any other syscall and on any
//! other argument shape, so the wrappers below take exactly the arguments the
//! filter allows: `write` to the console or a net fd, `clock_gettime` of clock
//! 0 or 1, `arch_prctl(ARCH_SET_FS)`, `pread64`/`pwrite64` whose length the
//! block layer has already checked, and the epoll/timer fds from the boot info.
//!
//! All wrappers are safe functions: each passes the kernel only memory that a
//! Rust reference proves valid for the length it names. Results are the raw
//! kernel return values (negative errno on failure); callers turn them into
//! Solo5 results.

use core::arch::asm;
use hypercall_abi::spt::{EpollEvent, sys as nr};

/// `struct timespec` on x86_64.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Timespec {
    pub(crate) sec: i64,
    pub(crate) nsec: i64,
}

/// `struct itimerspec` on x86_64.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct Itimerspec {
    interval: Timespec,
    value: Timespec,
}

/// The clocks the filter lets a guest read.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Clock {
    Realtime,
    Monotonic,
}

/// Makes syscall `nr` with six arguments and returns `rax`.
///
/// Public for the test guests that must break the rules on purpose (the
/// `forbidden` guest); the runtime itself only uses the wrappers below.
///
/// # Safety
/// The syscall may read or write any memory its arguments point at, or change
/// process state the Rust code relies on: the caller must make sure that the
/// call, with these arguments, cannot break memory safety (for instance because
/// it does not touch memory, or because the process is about to be killed).
#[inline(always)]
pub unsafe fn raw_syscall(nr: u64, args: [u64; 6]) -> i64 {
    let ret: i64;
    // The asm uses only the syscall registers (rax in/out, six arguments in, rcx
    // and r11 clobbered by `syscall`) and never the stack.
    // SAFETY: the caller vouches for the effects of the syscall (# Safety).
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") nr as i64 => ret,
            in("rdi") args[0],
            in("rsi") args[1],
            in("rdx") args[2],
            in("r10") args[3],
            in("r8") args[4],
            in("r9") args[5],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// `write(fd, buf, len)`: console (fd 1) and net frames.
pub(crate) fn write(fd: i32, buf: &[u8]) -> i64 {
    // SAFETY: the kernel only reads `buf.len()` bytes from `buf`, which the
    // shared borrow keeps valid and unchanged for the duration of the call.
    unsafe { raw_syscall(nr::WRITE, [fd as u64, buf.as_ptr() as u64, buf.len() as u64, 0, 0, 0]) }
}

/// `read(fd, buf, len)`: net frames.
pub(crate) fn read(fd: i32, buf: &mut [u8]) -> i64 {
    // SAFETY: the kernel writes at most `buf.len()` bytes into `buf`, which the
    // exclusive borrow makes ours alone; any byte pattern is a valid `u8`.
    unsafe { raw_syscall(nr::READ, [fd as u64, buf.as_mut_ptr() as u64, buf.len() as u64, 0, 0, 0]) }
}

/// `pread64(fd, buf, len, offset)`: block reads (the caller checked len and offset).
pub(crate) fn pread64(fd: i32, buf: &mut [u8], offset: u64) -> i64 {
    // SAFETY: as for `read`: at most `buf.len()` bytes land in our exclusive
    // borrow. The offset only selects where in the host file to read.
    unsafe { raw_syscall(nr::PREAD64, [fd as u64, buf.as_mut_ptr() as u64, buf.len() as u64, offset, 0, 0]) }
}

/// `pwrite64(fd, buf, len, offset)`: block writes (the caller checked len and offset).
pub(crate) fn pwrite64(fd: i32, buf: &[u8], offset: u64) -> i64 {
    // SAFETY: as for `write`: the kernel only reads `buf.len()` bytes of a live
    // shared borrow.
    unsafe { raw_syscall(nr::PWRITE64, [fd as u64, buf.as_ptr() as u64, buf.len() as u64, offset, 0, 0]) }
}

/// `arch_prctl(ARCH_SET_FS, base)`: sets the TLS base register.
pub(crate) fn arch_set_fs(base: u64) -> i64 {
    // No Rust code in a guest reads through FS: stable no_std Rust has no thread
    // locals, the linker script no TLS segment, and no stack protector is on.
    // SAFETY: changes only the FS base, which nothing relies on (above); the
    // kernel refuses a non-canonical base (EPERM) rather than faulting.
    unsafe { raw_syscall(nr::ARCH_PRCTL, [nr::ARCH_SET_FS, base, 0, 0, 0, 0]) }
}

/// `clock_gettime(clock, &ts)`.
pub(crate) fn clock_gettime(clock: Clock) -> Result<Timespec, i64> {
    let id = match clock {
        Clock::Realtime => nr::CLOCK_REALTIME,
        Clock::Monotonic => nr::CLOCK_MONOTONIC,
    };
    let mut ts = Timespec::default();
    // SAFETY: the kernel writes one `struct timespec` (16 bytes, two i64, any
    // bit pattern valid) into `ts`, a live local of exactly that layout.
    let ret = unsafe { raw_syscall(nr::CLOCK_GETTIME, [id, &raw mut ts as u64, 0, 0, 0, 0]) };
    if ret == 0 { Ok(ts) } else { Err(ret) }
}

/// `timerfd_settime(fd, TFD_TIMER_ABSTIME, &{0, value}, NULL)`: one-shot absolute deadline.
pub(crate) fn timerfd_settime_abs(fd: i32, value: Timespec) -> i64 {
    let spec = Itimerspec { interval: Timespec::default(), value };
    // SAFETY: the kernel reads one `struct itimerspec` from `spec`, a live local
    // of that layout; the old-value pointer is NULL, so nothing is written.
    unsafe { raw_syscall(nr::TIMERFD_SETTIME, [fd as u64, nr::TFD_TIMER_ABSTIME, &raw const spec as u64, 0, 0, 0]) }
}

/// `epoll_pwait(fd, events, events.len(), -1, NULL, 0)`: waits without a timeout
/// (the timerfd in the set provides the deadline).
pub(crate) fn epoll_pwait(fd: i32, events: &mut [EpollEvent]) -> i64 {
    const NO_TIMEOUT: i64 = -1;
    // SAFETY: the kernel writes at most `events.len()` packed 12-byte
    // `epoll_event`s (two integers, any bit pattern valid) into our exclusive
    // borrow; no signal mask is passed.
    unsafe {
        raw_syscall(
            nr::EPOLL_PWAIT,
            [fd as u64, events.as_mut_ptr() as u64, events.len() as u64, NO_TIMEOUT as u64, 0, 0],
        )
    }
}

/// `exit_group(status)`.
pub(crate) fn exit_group(status: i32) -> ! {
    // SAFETY: the process ends here; no Rust state survives to be observed.
    // `noreturn`: exit_group never comes back.
    unsafe {
        asm!("syscall", in("rax") nr::EXIT_GROUP, in("rdi") status as i64, options(noreturn, nostack));
    }
}
