//! The spt backend: the guest runs in this process behind a seccomp filter
//! (docs/solo5-abi.md §5). The backend does no parsing: it gets a validated [`GuestImage`](crate::loader::GuestImage)
//! and attached devices, builds the guest's address space, installs the filter and
//! jumps. From then on the guest's syscalls are its hypercalls.

mod launch;
mod map;
mod mm_map;

use std::convert::Infallible;
use std::os::fd::{AsFd, AsRawFd};

use hypercall_abi::spt::{self, SptBootInfo};
use nix::sys::signal::Signal;
use seccomp_profiles::{Profile, ProfileError, ResolvedFilter};
use seccompiler::BpfProgram;

use crate::boot::{self, BootData, BootError, GuestConfig};
use crate::devices::AttachedDevices;
use crate::guest_file::GuestFile;
use crate::yield_set::{YieldSet, YieldSetError};
pub use map::GuestRegion;

/// Errors setting up an spt guest.
#[derive(Debug, thiserror::Error)]
pub enum SptError {
    /// `--mem` does not even cover the low area.
    #[error("guest memory of {0} bytes is too small")]
    MemoryTooSmall(u64),
    /// mmap of the guest region failed.
    #[error("error allocating guest memory at {addr:#x} ({len} bytes): {source} (is --mem too large for this host?)")]
    Map {
        /// Wanted address.
        addr: u64,
        /// Length.
        len: u64,
        /// Why.
        source: nix::Error,
    },
    /// The kernel placed the region elsewhere (no MAP_FIXED_NOREPLACE support).
    #[error(
        "guest memory mapped at {got:#x} instead of {wanted:#x}: kernel lacks MAP_FIXED_NOREPLACE (needs Linux 4.17+)"
    )]
    MapMoved {
        /// Wanted address.
        wanted: u64,
        /// Address the kernel chose.
        got: u64,
    },
    /// A write or protection outside the guest region (a loader invariant broke).
    #[error("guest range {addr:#x}+{len:#x} lies outside guest memory")]
    OutOfRange {
        /// Start.
        addr: u64,
        /// Length.
        len: u64,
    },
    /// mprotect of a segment failed.
    #[error("mprotect of guest range {start:#x}..{end:#x} failed: {source}")]
    Protect {
        /// Start.
        start: u64,
        /// End.
        end: u64,
        /// Why.
        source: nix::Error,
    },
    /// epoll/timerfd setup failed.
    #[error("yield machinery: {0}")]
    Yield(#[from] YieldSetError),
    /// Building the filter failed.
    #[error(transparent)]
    Filter(#[from] ProfileError),
    /// A start-up step both backends share.
    #[error(transparent)]
    Boot(#[from] BootError),
    /// Preparing the jump (launch block, no-new-privs, rseq) failed.
    #[error("{what} failed: {source}")]
    Launch {
        /// The step.
        what: &'static str,
        /// Why.
        source: nix::Error,
    },
    /// More BPF instructions than a filter can hold.
    #[error("the seccomp filter has {0} instructions, more than the kernel's 4096")]
    FilterTooLong(usize),
}

/// The yield machinery and the filter for one run: everything the guest's syscalls are
/// pinned to, without any guest memory yet. `--audit` stops here.
#[derive(Debug)]
pub struct SptFilter {
    /// The epoll set and deadline timer the guest's yield uses.
    yield_set: YieldSet,
    /// The profile resolved with this run's fds and devices.
    pub resolved: ResolvedFilter,
    /// Its BPF.
    pub bpf: BpfProgram,
}

impl SptFilter {
    /// Creates the epoll set and timerfd (as solo5-spt does) and resolves the spt
    /// profile against them and `devices`.
    pub fn new(devices: &AttachedDevices) -> Result<Self, SptError> {
        let yield_set = YieldSet::for_devices(devices)?;
        let resolved = Profile::spt().resolve(&yield_set.filter_params(devices))?;
        let bpf = resolved.compile()?;
        Ok(Self { yield_set, resolved, bpf })
    }
}

/// Runs the guest. Returns only on a setup error; otherwise the guest's `exit_group`
/// (or a signal) ends the process.
/// The guest file is closed once its segments are in guest memory: the guest inherits no
/// descriptor of it.
pub fn run(config: GuestConfig<'_>, elf: GuestFile, devices: AttachedDevices) -> Result<Infallible, SptError> {
    boot::refuse_read_implies_exec()?;
    // The filter is resolved before the guest exists, so a bad profile costs nothing.
    let filter = SptFilter::new(&devices)?;

    let image = config.image;
    let mut region = GuestRegion::map(spt::GUEST_BASE, config.mem_size, config.exec_heap)?;
    // Memory is fresh and zero, so [filesz, memsz) needs no clearing and stays untouched.
    boot::load_segments(&config, &elf, &mut region)?;
    drop(elf);

    let boot = BootData::new(spt::MFT_ADDR, &devices.manifest, config.cmdline);
    let boot_info = SptBootInfo {
        mem_size: config.mem_size,
        kernel_end: image.kernel_end,
        cmdline: boot.cmdline_addr,
        mft: spt::MFT_ADDR,
        epollfd: filter.yield_set.epoll().0.as_raw_fd(),
        timerfd: filter.yield_set.timer().as_fd().as_raw_fd(),
    };
    region.write(spt::BOOT_INFO_ADDR, &boot_info.to_bytes())?;
    boot.write(spt::MFT_ADDR, |addr, bytes| region.write(addr, bytes))?;

    for seg in &image.segments {
        region.protect(seg.start, seg.end, seg.perms)?;
    }

    // A program with std's start-up (tender-oci, which links the tender; the `tender`
    // binary skips it) has SIGSEGV/SIGBUS handlers (stack overflow detection) and
    // SIGPIPE ignored. Under the guest those handlers would run tender code with the
    // guest's FS base and make syscalls the filter kills, turning a guest fault (139)
    // into SIGSYS (159); solo5-spt installs no handlers at all.
    boot::default_signal_actions(&[Signal::SIGSEGV, Signal::SIGBUS, Signal::SIGPIPE])?;
    // The launch code's page, and its data in the guest's scratch area (wiped before the
    // jump); the copy of our arguments for `ps` goes to guest memory too.
    let launch = launch::LaunchCode::new()?;
    let cmdline_end = boot.cmdline_addr + boot.cmdline.len() as u64;
    let data = launch::LaunchData::new(&filter.bpf, spt::GUEST_BASE, config.mem_size, launch.range(), cmdline_end)?;
    region.write(data.addr(), data.bytes())?;
    let title = match config.title {
        Some(words) => launch::title(words.iter().map(std::ffi::OsString::from)),
        None => launch::title(std::env::args_os()),
    };
    region.write(data.end(), &title)?;
    launch.keep_cmdline_visible(data.end(), title.len());
    nix::sys::prctl::set_no_new_privs().map_err(|source| SptError::Launch { what: "setting no-new-privs", source })?;
    launch::unregister_rseq()?;
    // SAFETY: the entry lies in a loaded executable segment (checked by the loader), the
    // stack is the top of the mapped, writable region (mem - 8, mem a multiple of 1 MiB,
    // so rsp + 8 is 16-aligned), the boot info was written above, all inside the region
    // the launch data was written at its scratch address in the region above; no-new-privs
    // is set and rseq unregistered just above. Everything the guest uses (fds, region)
    // stays alive: nothing is dropped, and the launch code unmaps the tender's memory,
    // never its fds.
    unsafe { launch.enter(&data, image.entry, config.mem_size - spt::STACK_OFFSET, spt::BOOT_INFO_ADDR) }
}
