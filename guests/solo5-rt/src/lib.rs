//! A minimal `no_std` runtime for Rust guests of a Solo5 v0.12.1 tender, for
//! both of its targets: "spt" (the default) and "hvt" (cargo feature `hvt`).
//!
//! It plays the part of Solo5's C bindings (`bindings/{spt,hvt}/*.c`): it owns the
//! entry point, reads the boot info, consumes the `--solo5:LEVEL` words of the
//! command line, prints a banner, runs the application and exits with its
//! status. The API mirrors Solo5's (`include/solo5.h`), made safe:
//!
//! | Solo5 | here |
//! |---|---|
//! | `solo5_console_write` | [`console::write`], [`print!`], [`println!`] |
//! | `solo5_clock_monotonic`, `solo5_clock_wall` | [`clock_monotonic`], [`clock_wall`] |
//! | `solo5_yield` | [`yield_until`] |
//! | `solo5_block_acquire`/`_read`/`_write` | [`Block`] |
//! | `solo5_net_acquire`/`_read`/`_write` | [`Net`] |
//! | `solo5_exit`, `solo5_abort` | [`exit`], [`abort`], and panics |
//! | `solo5_set_tls_base` | [`set_tls_base`] |
//! | `manifest.json` + elftool | [`manifest!`] |
//! | `solo5_app_main` | [`main!`] |
//!
//! Everything target-specific sits behind one internal API in `platform/`:
//! `platform/spt.rs` makes host syscalls, all of them in [`sys`] and each one
//! of the nine that the tender's seccomp filter allows, with the argument
//! shapes it allows (docs/solo5-abi.md §5.4); `platform/hvt/` makes port-I/O
//! hypercalls and owns the CPU tables (docs/solo5-abi.md §6). `unsafe` lives only
//! there, in the entry code (`start.rs`) and in the libc memory functions
//! (`mem.rs`).
//!
//! A guest:
//! ```ignore
//! #![no_std]
//! #![no_main]
//! solo5_rt::manifest! {}
//! solo5_rt::main!(main);
//! fn main(args: &solo5_rt::Cmdline) -> i32 {
//!     solo5_rt::println!("Hello, {args}");
//!     0
//! }
//! ```
#![no_std]

pub mod check;
pub mod cmdline;
pub mod console;
pub mod device;
#[doc(hidden)]
pub mod manifest;
mod mem;
mod platform;
mod start;
#[cfg(not(feature = "hvt"))]
pub mod sys;
pub mod time;

/// Raw access to the hvt hypercall instruction, for test guests that must
/// break the protocol on purpose (the spt counterpart is `solo5_rt::sys::raw_syscall`).
#[cfg(feature = "hvt")]
pub mod hvt {
    pub use crate::platform::hvt::raw_out32;
}

use core::fmt;

pub use check::Checks;
pub use cmdline::Cmdline;
pub use device::{Block, BlockInfo, Net, NetInfo};
pub use hypercall_abi as abi;
pub use hypercall_abi::{Handle, Solo5Result};
pub use start::{boot_info, manifest};
pub use time::{HandleSet, clock_monotonic, clock_wall, handle_bit, yield_until};

use console::{LogLevel, log};
use hypercall_abi::exit::ABORT;

/// The target named in the ABI note that [`manifest!`] emits: spt, or hvt with
/// the `hvt` cargo feature.
#[doc(hidden)]
pub const ABI_TARGET: hypercall_abi::elf::AbiTarget = platform::imp::ABI_TARGET;

/// Which Solo5 target this runtime was built for: `"spt"` or `"hvt"`.
pub const TARGET: &str = platform::imp::NAME;

/// A failed Solo5 call (`solo5_result_t` other than `SOLO5_R_OK`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// `SOLO5_R_AGAIN`: nothing to read now.
    Again,
    /// `SOLO5_R_EINVAL`: bad name, handle, length, alignment or offset.
    Einval,
    /// `SOLO5_R_EUNSPEC`: the host call failed.
    Eunspec,
}

impl From<Error> for Solo5Result {
    fn from(e: Error) -> Self {
        match e {
            Error::Again => Solo5Result::Again,
            Error::Einval => Solo5Result::Einval,
            Error::Eunspec => Solo5Result::Eunspec,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Again => "SOLO5_R_AGAIN",
            Error::Einval => "SOLO5_R_EINVAL",
            Error::Eunspec => "SOLO5_R_EUNSPEC",
        })
    }
}

/// Ends the guest with `status` (`solo5_exit`): prints
/// `Solo5: solo5_exit(N) called` at log level info or above, then `exit_group`
/// (spt) or HALT (hvt).
pub fn exit(status: i32) -> ! {
    log(LogLevel::Info, format_args!("Solo5: solo5_exit({status}) called\n"));
    platform::imp::halt(status)
}

/// Ends the guest with status 255 (`solo5_abort`): prints
/// `Solo5: solo5_abort() called` at log level info or above, then `exit_group`
/// (spt) or HALT (hvt).
pub fn abort() -> ! {
    log(LogLevel::Info, format_args!("Solo5: solo5_abort() called\n"));
    platform::imp::halt(ABORT)
}

/// Sets the TLS base (`%fs` on x86_64, `solo5_set_tls_base`). Solo5's x86_64
/// convention is TLS variant II: `base` points just past the TLS data and holds
/// its own address. [`Error::Einval`] for a non-canonical address (spt: the
/// host kernel refuses it; hvt: checked before `wrmsr`, which would fault).
pub fn set_tls_base(base: u64) -> Result<(), Error> {
    platform::imp::set_tls_base(base)
}

/// A panic is Solo5's `PANIC`: `Solo5: ABORT: FILE:LINE: MESSAGE`, always
/// printed (even with `--solo5:quiet`), then exit status 255.
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    match info.location() {
        Some(at) => println!("Solo5: ABORT: {}:{}: {}", at.file(), at.line(), info.message()),
        None => println!("Solo5: ABORT: {}", info.message()),
    }
    platform::imp::abort()
}

/// Never called: nothing unwinds (panic = "abort"). The prebuilt libcore is
/// compiled for unwinding and refers to this symbol; fat LTO drops the reference,
/// this keeps builds without LTO linking (docs/guest-build.md item 2).
#[unsafe(no_mangle)]
extern "C" fn rust_eh_personality() {}

/// Declares the application's entry: `fn(&Cmdline) -> i32`, whose result is the
/// exit status (`solo5_app_main`).
///
/// ```ignore
/// solo5_rt::main!(main);
/// fn main(args: &solo5_rt::Cmdline) -> i32 { 0 }
/// ```
#[macro_export]
macro_rules! main {
    ($main:path) => {
        /// Called by solo5-rt's `_start`.
        #[unsafe(no_mangle)]
        fn __solo5_rt_app_main(cmdline: &$crate::Cmdline) -> i32 {
            let main: fn(&$crate::Cmdline) -> i32 = $main;
            main(cmdline)
        }
    };
}
