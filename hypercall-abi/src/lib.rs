//! The Solo5 v0.12.1 guest ⇄ tender contract, shared by the tender and our guests.
//!
//! Layouts, constants and hypercall numbers only; no behaviour. Every struct is
//! `#[repr(C)]` with its size pinned by a compile-time assert and its field offsets
//! pinned by the unit tests, both against `docs/solo5-abi.md`.
//!
//! * [`elf`]: the Solo5 ELF notes (ABI1 and MFT1) and load-address rules.
//! * [`mft`]: the application manifest (devices the guest declares).
//! * [`spt`]: the sandboxed-process model (boot info, addresses, host syscalls).
//! * [`hvt`]: the KVM model (boot info, low memory, port-I/O hypercalls).
#![no_std]

pub mod elf;
pub mod hvt;
pub mod mft;
pub mod spt;

/// Result codes returned by the Solo5 API (`solo5_result_t`).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Solo5Result {
    /// The call succeeded.
    Ok = 0,
    /// Nothing to do now; try again later (net read with no frame).
    Again = 1,
    /// Invalid argument (bad handle, size, alignment or offset).
    Einval = 2,
    /// Any other error.
    Eunspec = 3,
}

impl Solo5Result {
    /// Maps the raw value a tender writes into a hypercall struct back to the enum.
    pub const fn from_raw(raw: i32) -> Option<Self> {
        match raw {
            0 => Some(Self::Ok),
            1 => Some(Self::Again),
            2 => Some(Self::Einval),
            3 => Some(Self::Eunspec),
            _ => None,
        }
    }
}

/// Exit statuses of `solo5_exit` / `solo5_abort` (`include/solo5.h`).
pub mod exit {
    /// `SOLO5_EXIT_SUCCESS`.
    pub const SUCCESS: i32 = 0;
    /// `SOLO5_EXIT_FAILURE`.
    pub const FAILURE: i32 = 1;
    /// `SOLO5_EXIT_ABORT`: aborts, failed assertions, panics.
    pub const ABORT: i32 = 255;
}

/// The guest command line buffer, NUL included (`SOLO5_CMDLINE_SIZE`).
pub const CMDLINE_SIZE: usize = 8192;

/// Solo5 device handles are manifest indices; the ready set of yield is a bit per handle.
pub type Handle = u64;
