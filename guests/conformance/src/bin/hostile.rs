//! One escape attempt per run, each of which the spt filter must end with SIGSYS
//! (status 159). `hostile VARIANT`; the guest declares one block device `storage`
//! (attach a 64 KiB file) so the block variants forge arguments of allowed calls.
//!
//! Syscalls outside the table: `open`, `execve`, `socket`, `mmap-exec`,
//! `mprotect-exec`, `fork`, `clone`, `fork-bomb`, `ptrace`, `kill`, `ioctl`,
//! `getrandom`. Allowed syscalls with forged arguments: `read-fd0`, `write-fd0`,
//! `pread-other-fd`, `pread-oversize`, `pread-short`, `pread-past-capacity`,
//! `pread-negative`, `pwrite-oversize`, `pwrite-past-capacity`, `clock-boottime`,
//! `arch-set-gs`. If a call returns, containment failed: `FAIL`, status 1.
#![no_std]
#![no_main]

use solo5_rt::{Cmdline, println};

solo5_rt::manifest! {
    block storage;
}
solo5_rt::main!(main);

const SYS_READ: u64 = 0;
const SYS_WRITE: u64 = 1;
const SYS_MMAP: u64 = 9;
const SYS_MPROTECT: u64 = 10;
const SYS_IOCTL: u64 = 16;
const SYS_PREAD64: u64 = 17;
const SYS_PWRITE64: u64 = 18;
const SYS_SOCKET: u64 = 41;
const SYS_CLONE: u64 = 56;
const SYS_FORK: u64 = 57;
const SYS_EXECVE: u64 = 59;
const SYS_KILL: u64 = 62;
const SYS_PTRACE: u64 = 101;
const SYS_ARCH_PRCTL: u64 = 158;
const SYS_CLOCK_GETTIME: u64 = 228;
const SYS_OPENAT: u64 = 257;
const SYS_GETRANDOM: u64 = 318;

const AT_FDCWD: u64 = -100i64 as u64;
const PROT_RWX: u64 = 7;
const MAP_PRIVATE_ANON: u64 = 0x22;
const TCGETS: u64 = 0x5401;
const ARCH_SET_GS: u64 = 0x1001;
const CLOCK_BOOTTIME: u64 = 7;
const SIGKILL: u64 = 9;

fn main(args: &Cmdline) -> i32 {
    let Some(variant) = args.arg(0) else {
        println!("FAIL: usage: hostile VARIANT");
        return 1;
    };
    let Some(storage) = solo5_rt::manifest().iter().find(|e| e.name_bytes() == b"storage") else {
        println!("FAIL: no storage device in the manifest");
        return 1;
    };
    let fd = storage.hostfd() as u64;
    let bs = u64::from(storage.block_size());
    let capacity = storage.block_capacity();

    // Every pointer handed to the kernel points at one of these; none is larger than
    // the longest count passed below (2 blocks of at most 4 KiB).
    let mut buf = [0u8; 8192];
    let b = buf.as_mut_ptr() as u64;
    let path = c"/etc/passwd".as_ptr() as u64;
    let sh = c"/bin/sh".as_ptr() as u64;
    let text = main as fn(&Cmdline) -> i32 as usize as u64 & !0xfff;

    let (nr, a) = match variant {
        "open" => (SYS_OPENAT, [AT_FDCWD, path, 0, 0, 0, 0]),
        "execve" => (SYS_EXECVE, [sh, 0, 0, 0, 0, 0]),
        "socket" => (SYS_SOCKET, [2, 1, 0, 0, 0, 0]),
        "mmap-exec" => (SYS_MMAP, [0, 4096, PROT_RWX, MAP_PRIVATE_ANON, -1i64 as u64, 0]),
        "mprotect-exec" => (SYS_MPROTECT, [text, 4096, PROT_RWX, 0, 0, 0]),
        "fork" | "fork-bomb" => (SYS_FORK, [0; 6]),
        // SIGCHLD, no new stack: would behave like fork.
        "clone" => (SYS_CLONE, [17, 0, 0, 0, 0, 0]),
        "ptrace" => (SYS_PTRACE, [0, 0, 0, 0, 0, 0]),
        // pid 1 with signal 0 would only probe; SIGKILL to a nonexistent pgrp is still a kill.
        "kill" => (SYS_KILL, [(-999_999i64) as u64, SIGKILL, 0, 0, 0, 0]),
        "ioctl" => (SYS_IOCTL, [1, TCGETS, b, 0, 0, 0]),
        "getrandom" => (SYS_GETRANDOM, [b, 16, 0, 0, 0, 0]),
        "read-fd0" => (SYS_READ, [0, b, 16, 0, 0, 0]),
        "write-fd0" => (SYS_WRITE, [0, b, 16, 0, 0, 0]),
        "pread-other-fd" => (SYS_PREAD64, [1, b, bs, 0, 0, 0]),
        "pread-oversize" => (SYS_PREAD64, [fd, b, 2 * bs, 0, 0, 0]),
        "pread-short" => (SYS_PREAD64, [fd, b, bs - 1, 0, 0, 0]),
        "pread-past-capacity" => (SYS_PREAD64, [fd, b, bs, capacity, 0, 0]),
        "pread-negative" => (SYS_PREAD64, [fd, b, bs, -(bs as i64) as u64, 0, 0]),
        "pwrite-oversize" => (SYS_PWRITE64, [fd, b, 2 * bs, 0, 0, 0]),
        "pwrite-past-capacity" => (SYS_PWRITE64, [fd, b, bs, capacity - bs + 1, 0, 0]),
        "clock-boottime" => (SYS_CLOCK_GETTIME, [CLOCK_BOOTTIME, b, 0, 0, 0, 0]),
        "arch-set-gs" => (SYS_ARCH_PRCTL, [ARCH_SET_GS, 0, 0, 0, 0, 0]),
        other => {
            println!("FAIL: unknown variant {other:?}");
            return 1;
        }
    };
    println!("about to try: {variant}");
    let rounds = if variant == "fork-bomb" { 1000 } else { 1 };
    for _ in 0..rounds {
        // SAFETY: every pointer argument points at `buf` (8 KiB, larger than any count
        // above), a NUL-terminated literal, or this guest's own text page; if the kernel
        // ran a call after all, it could only write into `buf` or change this guest.
        let ret = unsafe { solo5_rt::sys::raw_syscall(nr, a) };
        if ret == 0 && (nr == SYS_FORK || nr == SYS_CLONE) {
            // A child escaped the filter's kill: make it leave at once.
            solo5_rt::exit(3);
        }
        println!("FAIL: {variant} returned {ret}");
    }
    1
}
