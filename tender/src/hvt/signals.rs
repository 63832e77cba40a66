//! SIGINT and SIGTERM end an hvt run with status 1 ("Exiting on signal N"),
//! promptly, even while the guest spins without ever exiting to the tender.
//!
//! The handler only records the signal and sets `immediate_exit` in the vCPU's
//! `kvm_run`: a signal that lands while the vCPU runs makes `KVM_RUN` return
//! `EINTR`; one that lands just before the loop enters `KVM_RUN` makes that
//! call return at once; one that lands in `epoll_pwait` (POLL) interrupts it.
//! In each case the loop sees [`pending`] and stops. No `SA_RESTART`: a console
//! write blocked on a full pipe is interrupted too.

use std::sync::atomic::{AtomicI32, AtomicPtr, Ordering::SeqCst};

use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

/// The first terminating signal received, 0 if none.
static PENDING: AtomicI32 = AtomicI32::new(0);
/// `&kvm_run.immediate_exit` of the running vCPU, or null.
static IMMEDIATE_EXIT: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());

extern "C" fn on_signal(signal: libc::c_int) {
    let _ = PENDING.compare_exchange(0, signal, SeqCst, SeqCst);
    let flag = IMMEDIATE_EXIT.load(SeqCst);
    if !flag.is_null() {
        // SAFETY: a non-null pointer here is `immediate_exit` of a live vCPU's
        // `kvm_run` mapping: `ImmediateExit` stores it and clears it in its
        // `Drop`, which runs before the vCPU (and the mapping) goes away. A
        // byte store is async-signal-safe.
        unsafe { flag.write_volatile(1) };
    }
}

/// Installs the handler for SIGINT and SIGTERM.
pub fn install() -> Result<(), nix::Error> {
    let action = SigAction::new(SigHandler::Handler(on_signal), SaFlags::empty(), SigSet::empty());
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: `on_signal` is async-signal-safe: two atomic operations and a
        // byte store into memory that stays mapped while registered.
        unsafe { sigaction(signal, &action) }?;
    }
    Ok(())
}

/// The terminating signal received so far, if any.
pub fn pending() -> Option<i32> {
    match PENDING.load(SeqCst) {
        0 => None,
        signal => Some(signal),
    }
}

/// Registers a vCPU's `immediate_exit` byte with the handler for as long as
/// this value lives.
#[derive(Debug)]
pub struct ImmediateExit {
    _private: (),
}

impl ImmediateExit {
    /// Registers `flag`; if a signal already arrived, sets it at once.
    ///
    /// # Safety
    /// `flag` must stay valid for writes until this value is dropped (it is
    /// `immediate_exit` of a `kvm_run` mapping that outlives it).
    pub unsafe fn register(flag: *mut u8) -> Self {
        IMMEDIATE_EXIT.store(flag, SeqCst);
        if pending().is_some() {
            // SAFETY: valid for writes (# Safety).
            unsafe { flag.write_volatile(1) };
        }
        Self { _private: () }
    }
}

impl Drop for ImmediateExit {
    fn drop(&mut self) {
        IMMEDIATE_EXIT.store(std::ptr::null_mut(), SeqCst);
    }
}
