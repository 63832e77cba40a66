//! The hvt binding: the guest is a one-vCPU KVM virtual machine and asks the
//! tender for services with port-I/O hypercalls (docs/solo5-abi.md §6).
//!
//! A hypercall is an `outl` of the 32-bit guest-physical address of an argument
//! struct to port 0x500 + number; the tender reads the struct, does the work
//! and writes the outputs back before the `outl` completes. Guest memory is
//! identity-mapped and at most 4 GiB, so a pointer *is* that address.
//!
//! Time comes from the TSC, scaled with the frequency the tender put in the
//! boot info (integer math only: hvt guests are built without SSE); the wall
//! clock is the monotonic clock plus an offset read once at start with
//! WALLTIME, as in Solo5's `bindings/hvt/time.c`.

mod cpu;

use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use hypercall_abi::elf::AbiTarget;
use hypercall_abi::hvt::{
    HvtBlockIo, HvtBootInfo, HvtHalt, HvtNetRead, HvtNetWrite, HvtPoll, HvtPuts, HvtWalltime, Hypercall,
};
use hypercall_abi::{Handle, Solo5Result, exit::ABORT};

use super::Boot;
use crate::{Error, HandleSet};

/// The target named in the ABI note.
pub(crate) const ABI_TARGET: AbiTarget = AbiTarget::Hvt;
/// Shown in the banner.
pub(crate) const NAME: &str = "hvt";
/// What [`crate::boot_info`] returns on this platform.
pub type BootInfo = HvtBootInfo;

const NSEC_PER_SEC: u64 = 1_000_000_000;
/// `IA32_FS_BASE`: the TLS base register.
const MSR_FS_BASE: u32 = 0xC000_0100;

static BOOT_INFO: [AtomicU64; 7] = [const { AtomicU64::new(0) }; 7];
/// ns per TSC tick as a 32.32 fixed-point number: `(10⁹ << 32) / tsc_hz`.
static TSC_MULT: AtomicU64 = AtomicU64::new(0);
/// Wall clock minus monotonic clock, measured once at start.
static WALL_OFFSET: AtomicU64 = AtomicU64::new(0);

/// First thing `_start` does: loads the guest's own GDT, TSS and IDT (so a fault
/// becomes a `Solo5: trap` report and an abort, not a triple fault), copies the
/// boot info and calibrates the clocks.
///
/// # Safety
/// `boot_info` is the address the tender passed in `rdi`: a valid
/// [`HvtBootInfo`], readable for its 56 bytes (docs/solo5-abi.md §6.3–6.4). Must run
/// once, first, with interrupts off, on the boot stack.
pub(crate) unsafe fn init(boot_info: u64) -> Boot {
    // SAFETY: first and only call, interrupts off (the tender's contract).
    unsafe { cpu::init() };
    // SAFETY: the tender's contract (# Safety): a valid, readable boot info. It
    // is copied out once (the page is read-only to us anyway).
    let bi = unsafe { (boot_info as *const HvtBootInfo).read() };
    let words = [
        bi.mem_size,
        bi.kernel_end,
        bi.cpu_cycle_freq,
        bi.cmdline,
        bi.mft,
        u64::from(bi.host_features) | u64::from(bi.guest_features) << 32,
        bi.ring,
    ];
    for (slot, w) in BOOT_INFO.iter().zip(words) {
        slot.store(w, Relaxed);
    }
    assert!(bi.cpu_cycle_freq != 0, "the tender gave no TSC frequency");
    // Cannot overflow: 10⁹ << 32 < 2⁶², and the divisor is at least 1.
    TSC_MULT.store((NSEC_PER_SEC << 32) / bi.cpu_cycle_freq, Relaxed);
    let mut wall = HvtWalltime::default();
    // SAFETY: WALLTIME names no buffer; the tender writes `wall.nsecs`.
    unsafe { hypercall(Hypercall::Walltime, &mut wall) };
    WALL_OFFSET.store(wall.nsecs.wrapping_sub(clock_monotonic()), Relaxed);
    // No net ring is used even if one were offered: NET_READ/NET_WRITE are
    // always served (docs/solo5-abi.md §6.7).
    Boot { mem_size: bi.mem_size, mft: bi.mft, cmdline: bi.cmdline }
}

/// Nothing to do: POLL reports every device; the tender knows how many there are.
pub(crate) fn set_net_devices(_n: usize) {}

/// The boot info the tender passed (a copy).
pub(crate) fn boot_info() -> HvtBootInfo {
    let w = |i: usize| BOOT_INFO[i].load(Relaxed);
    HvtBootInfo {
        mem_size: w(0),
        kernel_end: w(1),
        cpu_cycle_freq: w(2),
        cmdline: w(3),
        mft: w(4),
        host_features: w(5) as u32,
        guest_features: (w(5) >> 32) as u32,
        ring: w(6),
    }
}

/// Makes hypercall `call` with argument struct `arg`: an `outl` of its address.
///
/// # Safety
/// Every guest buffer that `*arg` names (by address and length) must be
/// borrowed by the caller for the duration of the call, exclusively if the
/// tender writes into it (BLOCK_READ, NET_READ): the tender reads and writes
/// exactly those bytes and the struct's own output fields.
unsafe fn hypercall<T>(call: Hypercall, arg: &mut T) {
    // Identity-mapped memory below 4 GiB (the tender caps guest memory there):
    // the struct's address is its guest-physical address and fits in 32 bits.
    // Exposing the address tells the compiler that the asm may use `*arg`.
    let gpa = core::ptr::from_mut(arg).expose_provenance() as u32;
    // SAFETY: the tender writes only the output fields of `*arg` (a live
    // exclusive borrow, so nothing else observes the change) and the buffers
    // our caller vouches for (# Safety). No register or flag of ours changes.
    unsafe { raw_out32(call.port(), gpa) };
}

/// `out dx, eax`: a 4-byte port write, the hypercall instruction.
///
/// Public (as `solo5_rt::hvt::out32`) for the test guests that must break the
/// hypercall protocol on purpose; the runtime itself only uses [`hypercall`].
///
/// # Safety
/// For a hypercall port, the tender reads and writes the guest memory named by
/// `value` and the struct there: the caller must make sure no Rust reference
/// is invalidated by that (the tender may also end the guest instead).
#[inline(always)]
pub unsafe fn raw_out32(port: u16, value: u32) {
    // SAFETY: the caller vouches for what the tender does with the value; the
    // instruction itself touches no memory of ours, no stack, no flags.
    unsafe { asm!("out dx, eax", in("dx") port, in("eax") value, options(nostack, preserves_flags)) };
}

fn result(raw: i32) -> Result<(), Error> {
    match Solo5Result::from_raw(raw) {
        Some(Solo5Result::Ok) => Ok(()),
        Some(Solo5Result::Again) => Err(Error::Again),
        Some(Solo5Result::Einval) => Err(Error::Einval),
        _ => Err(Error::Eunspec),
    }
}

/// PUTS: the tender writes the bytes to its stdout.
pub(crate) fn console_write(bytes: &[u8]) {
    let mut puts = HvtPuts { data: bytes.as_ptr().expose_provenance() as u64, len: bytes.len() as u64 };
    // SAFETY: `bytes` is borrowed for the call; the tender only reads it.
    unsafe { hypercall(Hypercall::Puts, &mut puts) };
}

fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: reads the time-stamp counter into edx:eax; no memory, no flags.
    unsafe { asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags)) };
    u64::from(hi) << 32 | u64::from(lo)
}

/// Nanoseconds from the TSC: `tsc × mult >> 32` in 128 bits (an integer
/// multiply, no division, no overflow for any TSC value).
pub(crate) fn clock_monotonic() -> u64 {
    ((u128::from(rdtsc()) * u128::from(TSC_MULT.load(Relaxed))) >> 32) as u64
}

pub(crate) fn clock_wall() -> u64 {
    clock_monotonic().wrapping_add(WALL_OFFSET.load(Relaxed))
}

/// Solo5's hvt `solo5_yield`: POLL with the time left until `deadline` (0 if it
/// has passed); the tender waits on its timerfd and the taps.
pub(crate) fn yield_until(deadline: u64) -> HandleSet {
    let mut poll = HvtPoll { timeout_nsecs: deadline.saturating_sub(clock_monotonic()), ready_set: 0, ret: 0 };
    // SAFETY: POLL names no buffer; the tender writes the ready set and count.
    unsafe { hypercall(Hypercall::Poll, &mut poll) };
    poll.ready_set
}

/// BLOCK_READ into `buf` (borrowed exclusively for the call); the caller made
/// Solo5's guest-side checks, the tender checks the capacity again.
pub(crate) fn block_read(handle: Handle, _fd: i32, offset: u64, buf: &mut [u8]) -> Result<(), Error> {
    let data = buf.as_mut_ptr().expose_provenance() as u64;
    let mut io = HvtBlockIo { handle, offset, data, len: buf.len() as u64, ret: 0 };
    // SAFETY: `buf` is borrowed exclusively for the call; the tender writes at
    // most `buf.len()` bytes into it (any bytes are valid `u8`s).
    unsafe { hypercall(Hypercall::BlockRead, &mut io) };
    result(io.ret)
}

/// BLOCK_WRITE of `buf` (borrowed for the call; the tender only reads it).
pub(crate) fn block_write(handle: Handle, _fd: i32, offset: u64, buf: &[u8]) -> Result<(), Error> {
    let data = buf.as_ptr().expose_provenance() as u64;
    let mut io = HvtBlockIo { handle, offset, data, len: buf.len() as u64, ret: 0 };
    // SAFETY: `buf` is borrowed for the call; the tender only reads it.
    unsafe { hypercall(Hypercall::BlockWrite, &mut io) };
    result(io.ret)
}

/// NET_READ into `buf` (borrowed exclusively for the call).
pub(crate) fn net_read(handle: Handle, _fd: i32, buf: &mut [u8]) -> Result<usize, Error> {
    let data = buf.as_mut_ptr().expose_provenance() as u64;
    let mut rd = HvtNetRead { handle, data, len: buf.len() as u64, ret: 0 };
    // SAFETY: `buf` is borrowed exclusively for the call; the tender writes at
    // most `buf.len()` bytes into it (any bytes are valid `u8`s).
    unsafe { hypercall(Hypercall::NetRead, &mut rd) };
    // The tender never reports more than it was given room for.
    result(rd.ret).map(|()| (rd.len as usize).min(buf.len()))
}

/// NET_WRITE of `frame` (borrowed for the call; the tender only reads it).
pub(crate) fn net_write(handle: Handle, _fd: i32, frame: &[u8]) -> Result<(), Error> {
    let data = frame.as_ptr().expose_provenance() as u64;
    let mut wr = HvtNetWrite { handle, data, len: frame.len() as u64, ret: 0 };
    // SAFETY: `frame` is borrowed for the call; the tender only reads it.
    unsafe { hypercall(Hypercall::NetWrite, &mut wr) };
    result(wr.ret)
}

/// Writes `IA32_FS_BASE`. A non-canonical base would make `wrmsr` fault (#GP);
/// it is refused with `Einval` instead, as the spt kernel refuses it.
pub(crate) fn set_tls_base(base: u64) -> Result<(), Error> {
    let canonical = ((base << 16) as i64 >> 16) as u64 == base;
    if !canonical {
        return Err(Error::Einval);
    }
    // SAFETY: changes only the FS base, which no Rust code here reads through
    // (no thread locals in stable no_std Rust, no stack protector); the base is
    // canonical, so wrmsr does not fault.
    unsafe {
        asm!("wrmsr", in("ecx") MSR_FS_BASE, in("eax") base as u32, in("edx") (base >> 32) as u32,
            options(nomem, nostack, preserves_flags));
    }
    Ok(())
}

/// HALT with `cookie`: 0, or the address of the trap registers
/// (`HvtTrapRegs`), which the tender may read 512 bytes of.
pub(crate) fn halt_with(status: i32, cookie: u64) -> ! {
    let mut halt = HvtHalt { cookie, exit_status: status };
    // SAFETY: the tender reads at most 512 bytes at `cookie` (trap registers
    // the caller keeps alive, or none) and never resumes the guest.
    unsafe { hypercall(Hypercall::Halt, &mut halt) };
    // The tender never resumes a halted guest; if one did, stop here for good
    // (an `hlt` with interrupts off is a visible, unhandled exit).
    loop {
        // SAFETY: stops the vCPU; touches no memory.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) };
    }
}

/// HALT: the tender exits with `status`.
pub(crate) fn halt(status: i32) -> ! {
    halt_with(status, 0)
}

/// A panic ends the guest with status 255.
pub(crate) fn abort() -> ! {
    halt_with(ABORT, 0)
}
