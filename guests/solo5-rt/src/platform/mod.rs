//! The platform binding: everything that differs between a Solo5 spt guest (a
//! process whose hypercalls are host syscalls) and an hvt guest (a KVM virtual
//! machine whose hypercalls are port I/O). The rest of the runtime calls only
//! the functions below, which both `spt.rs` and `hvt/` provide with the same
//! signatures; the `hvt` cargo feature picks one.
//!
//! | function | spt (docs/solo5-abi.md §5.4) | hvt (§6.3–6.5) |
//! |---|---|---|
//! | `init` | `arch_prctl(ARCH_SET_FS, 0)`, read the boot info at 0x11000 | own GDT/TSS/IDT, read the boot info at 0x10000, calibrate the clocks |
//! | `console_write` | `write(1, …)` | PUTS |
//! | `clock_monotonic` | `clock_gettime(CLOCK_MONOTONIC)` | TSC × (10⁹ / TSC frequency) |
//! | `clock_wall` | `clock_gettime(CLOCK_REALTIME)` | monotonic + offset from WALLTIME at start |
//! | `yield_until` | `timerfd_settime` (absolute) + `epoll_pwait` | POLL with a relative timeout |
//! | `block_read`/`block_write` | `pread64`/`pwrite64` on the host fd | BLOCK_READ/BLOCK_WRITE on the handle |
//! | `net_read`/`net_write` | `read`/`write` on the tap fd | NET_READ/NET_WRITE on the handle |
//! | `set_tls_base` | `arch_prctl(ARCH_SET_FS, base)` | `wrmsr` IA32_FS_BASE |
//! | `halt` | `exit_group(status)` | HALT |

#[cfg(feature = "hvt")]
pub(crate) mod hvt;
#[cfg(not(feature = "hvt"))]
pub(crate) mod spt;

#[cfg(feature = "hvt")]
pub(crate) use hvt as imp;
#[cfg(not(feature = "hvt"))]
pub(crate) use spt as imp;

/// What the platform-independent start-up needs from the boot info.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Boot {
    /// Top of guest memory (the stack starts just below it).
    pub(crate) mem_size: u64,
    /// Address of the manifest copy.
    pub(crate) mft: u64,
    /// Address of the NUL-terminated command line (0: none).
    pub(crate) cmdline: u64,
}
