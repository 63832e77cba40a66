//! The guest entry point and the boot information it keeps (docs/solo5-abi.md
//! §5.1–5.3 for spt, §6.3–6.4 for hvt).
//!
//! The tender jumps to `_start` with `rdi` = the boot info (spt: 0x11000, hvt:
//! 0x10000) and `rsp` = top of memory − 8 (as if `_start` had been called), with
//! no other register defined. The platform binding reads its boot info; this
//! module reads the manifest copy and the command line, the same on both
//! platforms, and keeps what it read in atomics, since the guest is
//! single-threaded and has no mutable globals.

use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering::Relaxed};

use hypercall_abi::mft::{MFT_HEADER_SIZE, MFT_MAX_ENTRIES, MFT_VERSION, MftEntry, MftType};
use hypercall_abi::spt::MIN_FREE_MEMORY;
use hypercall_abi::{CMDLINE_SIZE, elf::PAGE_SIZE};

use crate::cmdline::{Cmdline, take_solo5_options};
use crate::console::{LogLevel, log, set_log_level};
use crate::platform::imp as platform;

/// `PT_INTERP` "/nonexistent/solo5/": the host kernel refuses to exec a guest
/// directly (status 127) instead of running it without a tender. The linker
/// script places `.interp` first.
#[used]
#[unsafe(link_section = ".interp")]
static INTERP: [u8; hypercall_abi::elf::GUEST_INTERP.len()] = interp();

const fn interp() -> [u8; hypercall_abi::elf::GUEST_INTERP.len()] {
    let mut out = [0; hypercall_abi::elf::GUEST_INTERP.len()];
    let mut i = 0;
    while i < out.len() {
        out[i] = hypercall_abi::elf::GUEST_INTERP[i];
        i += 1;
    }
    out
}

unsafe extern "C" {
    /// End of the image (page aligned), from the linker script.
    static _end: u8;
}

unsafe extern "Rust" {
    /// The application's main, defined by [`main!`](crate::main).
    fn __solo5_rt_app_main(cmdline: &Cmdline) -> i32;
}

static MFT_ENTRIES: AtomicPtr<MftEntry> = AtomicPtr::new(ptr::null_mut());
static MFT_LEN: AtomicUsize = AtomicUsize::new(0);

/// The entry point: the tender jumps here.
///
/// # Safety
/// Only the tender may call this, once, as described in docs/solo5-abi.md §5.3 (spt)
/// or §6.3 (hvt): `boot_info` points at a valid boot info of the platform
/// whose manifest and command-line pointers point at a valid manifest copy
/// and a NUL-terminated command line of at most [`CMDLINE_SIZE`] bytes, all in
/// guest memory that stays mapped and that nothing else writes while the
/// guest runs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _start(boot_info: u64) -> ! {
    // SAFETY: forwarded from the tender's contract (# Safety).
    let boot = unsafe { platform::init(boot_info) };

    // SAFETY: per the tender's contract, `boot.mft` is its validated manifest copy.
    let entries = unsafe { manifest_entries(boot.mft) };
    MFT_ENTRIES.store(entries.as_ptr().cast_mut(), Relaxed);
    MFT_LEN.store(entries.len(), Relaxed);
    platform::set_net_devices(entries.iter().filter(|e| e.device_type == MftType::NetBasic as u32).count());

    // SAFETY: per the tender's contract, `boot.cmdline` is a NUL-terminated
    // string inside its CMDLINE_SIZE-byte buffer.
    let line = unsafe { cmdline_bytes(boot.cmdline) };
    let (level, rest) = take_solo5_options(line);
    if let Some(level) = level {
        set_log_level(level);
    }
    let cmdline = Cmdline::new(rest);

    log(
        LogLevel::Info,
        format_args!(
            "Solo5: Bindings version v0.12.1 (solo5-rt {} for Rust, {})\n",
            env!("CARGO_PKG_VERSION"),
            platform::NAME
        ),
    );
    check_free_memory(boot.mem_size);

    // SAFETY: `__solo5_rt_app_main` is defined by `main!` with exactly this
    // signature; a guest without `main!` fails to link.
    let status = unsafe { __solo5_rt_app_main(&cmdline) };
    crate::exit(status)
}

/// Solo5 refuses to run with less than 512 KiB between the end of the image and
/// the top of memory, where the stack lives (`bindings/mem.c`).
fn check_free_memory(mem_size: u64) {
    // The address of a linker symbol, never read.
    let end = (&raw const _end) as u64;
    let heap_start = end.next_multiple_of(PAGE_SIZE);
    if heap_start.saturating_add(MIN_FREE_MEMORY) > mem_size {
        panic!("Not enough memory");
    }
}

/// Reads the manifest copy's header and returns its entries.
///
/// # Safety
/// A non-null, 8-aligned `addr` (others abort) points at a manifest (version,
/// count, then `count` entries) that stays mapped and unchanged for the rest of
/// the guest's life.
unsafe fn manifest_entries(addr: u64) -> &'static [MftEntry] {
    let base = addr as *const u32;
    assert!(addr != 0 && addr.is_multiple_of(align_of::<MftEntry>() as u64), "bad manifest address {addr:#x}");
    // SAFETY: the caller guarantees the 8-byte header is readable; the pointer is
    // non-null and 8-aligned (checked above).
    let (version, count) = unsafe { (base.read(), base.add(1).read()) };
    assert!(version == MFT_VERSION, "manifest version {version}");
    let count = count as usize;
    assert!((1..=MFT_MAX_ENTRIES).contains(&count), "manifest has {count} entries");
    let first = (addr as usize + MFT_HEADER_SIZE) as *const MftEntry;
    // An entry is plain bytes and integers: any contents are a valid value.
    // SAFETY: the caller guarantees `count` entries after the 8-byte header (so
    // `first` is 8-aligned, as MftEntry needs) that nothing writes later.
    unsafe { core::slice::from_raw_parts(first, count) }
}

/// The command line up to (not including) its NUL.
///
/// # Safety
/// `addr` is 0 or points at a readable buffer of [`CMDLINE_SIZE`] bytes that holds
/// a NUL and stays mapped and unchanged for the rest of the guest's life.
unsafe fn cmdline_bytes(addr: u64) -> &'static [u8] {
    if addr == 0 {
        return &[];
    }
    // SAFETY: the caller guarantees CMDLINE_SIZE readable, unchanging bytes.
    let buf = unsafe { core::slice::from_raw_parts(addr as *const u8, CMDLINE_SIZE) };
    let len = buf.iter().position(|&b| b == 0).expect("command line has no NUL");
    &buf[..len]
}

/// The manifest copy in guest memory: entry `i` is device handle `i`.
pub fn manifest() -> &'static [MftEntry] {
    let first = MFT_ENTRIES.load(Relaxed);
    if first.is_null() {
        return &[];
    }
    // SAFETY: `_start` stored this pointer and length from a slice it built
    // (`manifest_entries`) with a 'static lifetime; they never change after.
    unsafe { core::slice::from_raw_parts(first, MFT_LEN.load(Relaxed)) }
}

/// The boot info the tender passed (a copy): [`SptBootInfo`](hypercall_abi::spt::SptBootInfo)
/// on spt, [`HvtBootInfo`](hypercall_abi::hvt::HvtBootInfo) on hvt.
pub fn boot_info() -> platform::BootInfo {
    platform::boot_info()
}
