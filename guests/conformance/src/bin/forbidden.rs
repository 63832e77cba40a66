//! Makes one syscall that the spt seccomp filter must kill with SIGSYS (status
//! 159 from a shell). `forbidden [VARIANT]`, VARIANT one of:
//!
//! | variant | call | breaks |
//! |---|---|---|
//! | `dup` (default) | `dup(1)` | syscall not allowed (Solo5's test_seccomp) |
//! | `getpid` | `getpid()` | syscall not allowed |
//! | `write-stderr` | `write(2, …)` | `write` only to fd 1 or a net fd |
//! | `clock-cputime` | `clock_gettime(CLOCK_PROCESS_CPUTIME_ID)` | clocks 0 and 1 only |
//! | `arch-get-fs` | `arch_prctl(ARCH_GET_FS, …)` | `ARCH_SET_FS` only |
//! | `epoll-timerfd` | `epoll_pwait(timerfd, …)` | the epoll fd only |
//! | `timerfd-epollfd` | `timerfd_settime(epollfd, …)` | the timer fd only |
//! | `x32` | x32 `getpid` (nr 0x40000027) | x32 numbers are killed |
//!
//! If the call returns, the filter is missing or too wide: `FAIL`, status 1.
#![no_std]
#![no_main]

use solo5_rt::{Cmdline, boot_info, println};

solo5_rt::manifest! {}
solo5_rt::main!(main);

const SYS_WRITE: u64 = 1;
const SYS_DUP: u64 = 32;
const SYS_GETPID: u64 = 39;
const SYS_ARCH_PRCTL: u64 = 158;
const SYS_CLOCK_GETTIME: u64 = 228;
const SYS_EPOLL_PWAIT: u64 = 281;
const SYS_TIMERFD_SETTIME: u64 = 286;
const X32_SYSCALL_BIT: u64 = 0x4000_0000;
const ARCH_GET_FS: u64 = 0x1003;
const CLOCK_PROCESS_CPUTIME_ID: u64 = 2;
const STDERR: u64 = 2;

fn main(args: &Cmdline) -> i32 {
    let variant = args.arg(0).unwrap_or("dup");
    let bi = boot_info();
    // Scratch space for the calls that write through a pointer (all of them
    // write at most 16 bytes here, if the kernel gets to run them at all).
    let mut scratch = [0u64; 4];
    let p = scratch.as_mut_ptr() as u64;
    let message = b"this must not reach stderr\n";
    let (nr, args6) = match variant {
        "dup" => (SYS_DUP, [1, 0, 0, 0, 0, 0]),
        "getpid" => (SYS_GETPID, [0; 6]),
        "write-stderr" => (SYS_WRITE, [STDERR, message.as_ptr() as u64, message.len() as u64, 0, 0, 0]),
        "clock-cputime" => (SYS_CLOCK_GETTIME, [CLOCK_PROCESS_CPUTIME_ID, p, 0, 0, 0, 0]),
        "arch-get-fs" => (SYS_ARCH_PRCTL, [ARCH_GET_FS, p, 0, 0, 0, 0]),
        // maxevents 1, timeout 0: even if allowed, the call would not block.
        "epoll-timerfd" => (SYS_EPOLL_PWAIT, [bi.timerfd as u64, p, 1, 0, 0, 0]),
        // A NULL new_value: even if allowed, the call would fail with EFAULT.
        "timerfd-epollfd" => (SYS_TIMERFD_SETTIME, [bi.epollfd as u64, 0, 0, 0, 0, 0]),
        "x32" => (X32_SYSCALL_BIT | SYS_GETPID, [0; 6]),
        other => {
            println!("FAIL: unknown variant {other:?}");
            return 1;
        }
    };
    println!("about to make a forbidden syscall: {variant}");
    // If the kernel runs the call after all: dup and getpid touch no memory, the
    // write reads `message`, clock_gettime, arch_prctl(ARCH_GET_FS) and
    // epoll_pwait write at most 16 bytes into `scratch`, timerfd_settime with a
    // NULL value reads nothing.
    // SAFETY: none of the calls can touch memory other than `message` and
    // `scratch` (above); under the tender the filter kills the guest first.
    let ret = unsafe { solo5_rt::sys::raw_syscall(nr, args6) };
    println!("FAIL: forbidden syscall {variant} returned {ret}");
    1
}
