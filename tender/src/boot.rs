//! What both backends do alike to start a guest: refuse a personality that would make
//! guest memory executable, put the signals the guest's run depends on back to their
//! kernel defaults, and lay out the manifest and command line after the boot info
//! (docs/solo5-abi.md §3). Each backend keeps only what differs: where guest memory lives,
//! its boot-info struct and how it enters the guest.

use hypercall_abi::CMDLINE_SIZE;
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

use crate::loader::{GuestImage, Manifest};

/// One guest, validated and ready for a backend.
#[derive(Debug, Clone, Copy)]
pub struct GuestConfig<'a> {
    /// The image, validated for `mem_size`.
    pub image: &'a GuestImage,
    /// Guest memory size in bytes (hvt: already rounded to 2 MiB).
    pub mem_size: u64,
    /// The guest command line (< 8192 bytes, checked by [`crate::spec::RunSpec::validate`]).
    pub cmdline: &'a str,
    /// Map guest memory executable (spt only).
    pub exec_heap: bool,
    /// Write a core into this directory when the guest aborts (hvt only, `--dumpcore`).
    pub dumpcore: Option<&'a std::path::Path>,
    /// What `ps` shows once the guest runs (spt), as words; `None`: our own arguments.
    pub title: Option<&'a [String]>,
}

/// Failures of the shared start-up steps.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// Reading a segment of the guest file failed (it shrank while loading, or I/O).
    #[error("reading phdr[{phdr}] ({len} bytes at offset {offset:#x}) of the guest file: {source}")]
    Segment {
        /// Its program header.
        phdr: usize,
        /// File offset.
        offset: u64,
        /// Bytes.
        len: u64,
        /// Why.
        source: std::io::Error,
    },
    /// The guest file was written or truncated while its segments were read.
    #[error("{0}")]
    Changed(std::io::Error),
    /// The process runs with READ_IMPLIES_EXEC.
    #[error("refusing to run: the process personality has READ_IMPLIES_EXEC (readable guest memory would be executable); run without `setarch -X`")]
    ReadImpliesExec,
    /// Resetting a signal's action failed.
    #[error("could not reset {signal} to its default action: {source}")]
    Signal {
        /// Which signal.
        signal: Signal,
        /// Why.
        source: nix::Error,
    },
}

/// With READ_IMPLIES_EXEC every readable page is executable: W^X for the guest is gone
/// (spt), and guest memory would be executable in the tender (hvt).
pub fn refuse_read_implies_exec() -> Result<(), BootError> {
    match nix::sys::personality::get() {
        Ok(p) if p.contains(nix::sys::personality::Persona::READ_IMPLIES_EXEC) => Err(BootError::ReadImpliesExec),
        _ => Ok(()),
    }
}

/// Puts `signals` back to their kernel defaults, whatever the program linking the tender
/// set up: std's start-up (tender-oci's) ignores SIGPIPE, which would hide a closed
/// console (Solo5's tenders die with 141), and installs SIGSEGV/SIGBUS handlers, which
/// on spt would run tender code under the guest's filter.
pub fn default_signal_actions(signals: &[Signal]) -> Result<(), BootError> {
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for &signal in signals {
        // SAFETY: installing SIG_DFL runs no handler code of ours, so none of sigaction's
        // handler-safety requirements apply.
        unsafe { sigaction(signal, &default) }.map_err(|source| BootError::Signal { signal, source })?;
    }
    Ok(())
}

/// Guest memory a backend lends for writing during setup.
pub trait GuestBytes {
    /// The backend's error.
    type Error: From<BootError>;
    /// The `len` bytes at guest address `addr`, writable.
    fn bytes_mut(&mut self, addr: u64, len: usize) -> Result<&mut [u8], Self::Error>;
}

/// Reads every segment's file bytes straight into guest memory (fresh memory:
/// [filesz, memsz) stays zero), then checks the file did not change since it was
/// opened (a racing truncation can read as zeros, and zeros as code crash the guest).
pub fn load_segments<M: GuestBytes>(
    config: &GuestConfig<'_>,
    elf: &crate::guest_file::GuestFile,
    mem: &mut M,
) -> Result<(), M::Error> {
    for seg in &config.image.segments {
        let fail =
            |source| BootError::Segment { phdr: seg.phdr_index, offset: seg.file_offset, len: seg.filesz, source };
        let len = usize::try_from(seg.filesz).map_err(|_| fail(std::io::ErrorKind::FileTooLarge.into()))?;
        elf.read_exact_at(seg.file_offset, mem.bytes_mut(seg.vaddr, len)?).map_err(fail)?;
    }
    elf.check_unchanged().map_err(BootError::Changed)?;
    Ok(())
}

/// The manifest and the NUL-terminated command line, as they follow each other in guest
/// memory from the manifest's address on.
#[derive(Debug)]
pub struct BootData {
    /// The encoded manifest, at the backend's `MFT_ADDR`.
    pub mft: Vec<u8>,
    /// Where the command line goes: right after the manifest.
    pub cmdline_addr: u64,
    /// The command line with its NUL.
    pub cmdline: Vec<u8>,
}

impl BootData {
    /// Lays out `manifest` at `mft_addr` and `cmdline` after it.
    pub fn new(mft_addr: u64, manifest: &Manifest, cmdline: &str) -> Self {
        let mft = manifest.encode();
        debug_assert!(cmdline.len() < CMDLINE_SIZE, "RunSpec::validate bounds the command line");
        let mut bytes = Vec::with_capacity(cmdline.len() + 1);
        bytes.extend_from_slice(cmdline.as_bytes());
        bytes.push(0);
        Self { cmdline_addr: mft_addr + mft.len() as u64, mft, cmdline: bytes }
    }

    /// Writes both with `write(guest address, bytes)`.
    pub fn write<E>(&self, mft_addr: u64, mut write: impl FnMut(u64, &[u8]) -> Result<(), E>) -> Result<(), E> {
        write(mft_addr, &self.mft)?;
        write(self.cmdline_addr, &self.cmdline)
    }
}
