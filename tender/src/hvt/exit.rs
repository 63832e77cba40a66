//! What to do with each vCPU exit (docs/solo5-abi.md §6.8).
//!
//! [`VmExit`] is an exit copied out of `kvm_run` (so it borrows nothing and
//! tests can make them up); [`handle_exit`] is the dispatch: a hypercall is
//! decoded and served, HALT ends the run with the guest's status, a signal
//! interruption is reported to the loop, and everything else ends the run
//! with an [`ExitError`] that names the exit.

use super::hypercall::{decode, DecodeError, HypercallError, Hypercalls, Outcome, PortIo};

/// A vCPU exit, copied out of `kvm_run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmExit {
    /// `KVM_EXIT_IO`: a port access.
    Io(PortIo),
    /// `KVM_EXIT_MMIO`: an access to a guest-physical address with no memory
    /// the guest may write (no RAM there, or a page the tender made read-only
    /// on this machine's kvm_pvm, which reports MMIO where KVM returns EFAULT).
    Mmio {
        /// The address.
        gpa: u64,
        /// Bytes.
        len: usize,
        /// A write (or a read).
        write: bool,
    },
    /// `KVM_RUN` failed with EFAULT (with `KVM_EXIT_MEMORY_FAULT` if the kernel
    /// says where): the guest wrote to memory the tender maps read-only.
    MemoryFault {
        /// The address, if KVM reported it.
        gpa: Option<u64>,
    },
    /// `KVM_EXIT_HLT`.
    Hlt,
    /// `KVM_EXIT_SHUTDOWN`: triple fault.
    Shutdown,
    /// `KVM_EXIT_FAIL_ENTRY`.
    FailEntry {
        /// `hardware_entry_failure_reason`.
        reason: u64,
    },
    /// `KVM_EXIT_INTERNAL_ERROR`.
    InternalError {
        /// `suberror` (1: emulation failure).
        suberror: u32,
        /// The first words of `data` (the instruction bytes for an emulation failure).
        data: [u64; 4],
        /// How many words KVM filled in.
        ndata: usize,
    },
    /// `KVM_EXIT_INTR`, or `KVM_RUN` failed with EINTR/EAGAIN: a signal.
    Interrupted,
    /// `KVM_RUN` failed with another errno.
    RunFailed(i32),
    /// Any other exit reason.
    Other {
        /// `exit_reason`.
        reason: u32,
    },
}

/// KVM's `exit_reason` numbers of the exits named in messages (linux/kvm.h).
use kvm_bindings::{KVM_EXIT_HLT, KVM_EXIT_MMIO, KVM_EXIT_SHUTDOWN};

/// Why the run ended. Messages start like solo5-hvt's (`KVM: …`, `Invalid
/// guest …`), so scripts that look for those words keep working.
#[derive(Debug, thiserror::Error)]
pub enum ExitError {
    /// A port access that is not a served hypercall.
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A hypercall with bad arguments, or a fatal host I/O error.
    #[error(transparent)]
    Hypercall(#[from] HypercallError),
    /// The guest wrote to memory the tender maps read-only (its text or rodata).
    #[error("KVM: host/guest translation fault: the guest wrote to {}, which the tender maps read-only (guest text or rodata)", Gpa(*gpa))]
    TranslationFault {
        /// Where, if known.
        gpa: Option<u64>,
    },
    /// An MMIO access outside guest memory: no device lives there.
    #[error("KVM: unhandled exit: exit_reason={KVM_EXIT_MMIO:#x} (MMIO {} of {len} bytes at gpa {gpa:#x}, outside guest memory of {mem_size:#x} bytes; this tender emulates no devices)", if *.write { "write" } else { "read" })]
    Mmio {
        /// The address.
        gpa: u64,
        /// Bytes.
        len: usize,
        /// A write.
        write: bool,
        /// Guest memory size.
        mem_size: u64,
    },
    /// HLT with interrupts off: the guest can never continue.
    #[error(
        "KVM: unhandled exit: exit_reason={KVM_EXIT_HLT:#x} (HLT: the guest stopped its CPU instead of calling HALT)"
    )]
    Hlt,
    /// Triple fault.
    #[error("KVM: unhandled exit: exit_reason={KVM_EXIT_SHUTDOWN:#x} (shutdown: the guest triple-faulted)")]
    Shutdown,
    /// VM entry failed.
    #[error("KVM: entry failure: hw_entry_failure_reason={0:#x}")]
    FailEntry(u64),
    /// KVM could not handle something (here: x87/SSE instructions, docs/solo5-abi.md §11).
    #[error("KVM: internal error exit: suberror={suberror:#x}{} data={:x?}", if *.suberror == 1 { " (emulation failure; on kvm_pvm, x87 and SSE instructions end here)" } else { "" }, &.data[..*.ndata])]
    InternalError {
        /// `suberror`.
        suberror: u32,
        /// The first words of KVM's `data` (an array: built under the filter, no allocation).
        data: [u64; 4],
        /// How many of them KVM filled in (at most 4).
        ndata: usize,
    },
    /// `KVM_RUN` itself failed.
    #[error("KVM: KVM_RUN failed: {}", std::io::Error::from_raw_os_error(*.0))]
    RunFailed(i32),
    /// Another exit reason.
    #[error("KVM: unhandled exit: exit_reason={reason:#x}")]
    Unhandled {
        /// `exit_reason`.
        reason: u32,
    },
}

/// `gpa 0x…` or `guest memory`: formats without allocating (the filter is on).
struct Gpa(Option<u64>);

impl std::fmt::Display for Gpa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(gpa) => write!(f, "gpa {gpa:#x}"),
            None => f.write_str("guest memory"),
        }
    }
}

/// What the loop does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Run the vCPU again.
    Resume,
    /// A signal interrupted `KVM_RUN` or POLL: check [`super::signals::pending`].
    Interrupted,
    /// The guest called HALT with this status.
    Halt(i32),
}

/// Handles one exit.
pub fn handle_exit(exit: VmExit, hypercalls: &mut Hypercalls<'_>) -> Result<Flow, ExitError> {
    let mem_size = hypercalls.mem_size();
    match exit {
        VmExit::Io(io) => {
            let request = decode(io, hypercalls.served())?;
            Ok(match hypercalls.handle(request)? {
                Outcome::Resume => Flow::Resume,
                Outcome::Interrupted => Flow::Interrupted,
                Outcome::Halt(status) => Flow::Halt(status),
            })
        }
        VmExit::Interrupted => Ok(Flow::Interrupted),
        // An MMIO exit inside guest RAM is a write the host refused: kvm_pvm's
        // way of reporting what KVM reports as EFAULT.
        VmExit::Mmio { gpa, .. } if gpa < mem_size => Err(ExitError::TranslationFault { gpa: Some(gpa) }),
        VmExit::Mmio { gpa, len, write } => Err(ExitError::Mmio { gpa, len, write, mem_size }),
        VmExit::MemoryFault { gpa } => Err(ExitError::TranslationFault { gpa }),
        VmExit::Hlt => Err(ExitError::Hlt),
        VmExit::Shutdown => Err(ExitError::Shutdown),
        VmExit::FailEntry { reason } => Err(ExitError::FailEntry(reason)),
        VmExit::InternalError { suberror, data, ndata } => {
            Err(ExitError::InternalError { suberror, data, ndata: ndata.min(data.len()) })
        }
        VmExit::RunFailed(errno) => Err(ExitError::RunFailed(errno)),
        VmExit::Other { reason } => Err(ExitError::Unhandled { reason }),
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;
    use crate::devices::AttachedDevices;
    use crate::hvt::hypercall::{Poller, TransferError};
    use crate::hvt::memory::GuestRam;
    use crate::loader::Manifest;
    use hypercall_abi::mft::{MFT_ENTRY_SIZE, MFT_NAME_SIZE};

    const MEM: u64 = 4 << 20;

    /// A manifest with no devices (the reserved entry only).
    fn no_devices() -> AttachedDevices {
        let mut payload = Vec::new();
        payload.extend_from_slice(&1u32.to_le_bytes());
        payload.extend_from_slice(&1u32.to_le_bytes());
        let mut entry = [0u8; MFT_ENTRY_SIZE];
        entry[MFT_NAME_SIZE..MFT_NAME_SIZE + 4].copy_from_slice(&0x4000_0000u32.to_le_bytes());
        payload.extend_from_slice(&entry);
        AttachedDevices { manifest: Manifest::parse(&payload).unwrap(), blocks: vec![], nets: vec![] }
    }

    /// Runs `f` with hypercalls over fresh guest memory whose console is a pipe;
    /// returns what `f` returned and what the guest printed.
    fn with_hypercalls<T>(f: impl FnOnce(&GuestRam, &mut Hypercalls<'_>) -> T) -> (T, Vec<u8>) {
        let ram = GuestRam::new(MEM).unwrap();
        let devices = no_devices();
        let poller = Poller::new([]).unwrap();
        let (r, w) = nix::unistd::pipe().unwrap();
        let out = {
            let mut hc = Hypercalls::new(&ram, w.as_fd(), &poller, &devices);
            f(&ram, &mut hc)
        };
        drop(w);
        let mut printed = Vec::new();
        std::io::Read::read_to_end(&mut std::fs::File::from(r), &mut printed).unwrap();
        (out, printed)
    }

    /// A block device "storage" (handle 1) of 4 KiB over a file that then shrinks to
    /// nothing, as a file truncated under a running guest does.
    #[test]
    fn a_block_file_shrunk_under_the_guest_ends_the_run_naming_it() {
        let mut payload = Vec::new();
        payload.extend_from_slice(&1u32.to_le_bytes());
        payload.extend_from_slice(&2u32.to_le_bytes());
        let mut reserved = [0u8; MFT_ENTRY_SIZE];
        reserved[MFT_NAME_SIZE..MFT_NAME_SIZE + 4].copy_from_slice(&0x4000_0000u32.to_le_bytes());
        let mut storage = [0u8; MFT_ENTRY_SIZE];
        storage[..7].copy_from_slice(b"storage");
        storage[MFT_NAME_SIZE..MFT_NAME_SIZE + 4].copy_from_slice(&1u32.to_le_bytes());
        payload.extend_from_slice(&reserved);
        payload.extend_from_slice(&storage);
        let path = std::env::temp_dir().join(format!("tender-hvt-shrunk-{}", std::process::id()));
        let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        file.set_len(4096).unwrap();
        let block = crate::devices::AttachedBlock { handle: 1, file, block_size: 512, capacity: 4096 };
        let devices =
            AttachedDevices { manifest: Manifest::parse(&payload).unwrap(), blocks: vec![block], nets: vec![] };
        devices.blocks[0].file.set_len(0).unwrap();

        let ram = GuestRam::new(MEM).unwrap();
        let poller = Poller::new([]).unwrap();
        let stdout = std::io::stdout();
        let mut hc = Hypercalls::new(&ram, stdout.as_fd(), &poller, &devices);
        let mut read = Vec::new();
        for word in [1u64, 512, 0x20_1000, 512] {
            read.extend_from_slice(&word.to_le_bytes()); // handle, offset, data, len
        }
        ram.write(0x20_0000, &read).unwrap();
        let err = handle_exit(outl(0x505, 0x20_0000), &mut hc).unwrap_err(); // BLOCK_READ
        assert!(
            matches!(&err, ExitError::Hypercall(HypercallError::Block { source: TransferError::Short(0), .. })),
            "{err:?}"
        );
        assert_eq!(
            err.to_string(),
            "Fatal error when reading block device 'storage' (512 bytes at offset 512): short transfer of 0 bytes"
        );
    }

    fn outl(port: u16, value: u32) -> VmExit {
        VmExit::Io(PortIo { port, out: true, size: 4, count: 1, value })
    }

    #[test]
    fn puts_then_halt() {
        let ((first, second), printed) = with_hypercalls(|ram, hc| {
            ram.write(0x20_0000, b"hello\n").unwrap();
            let mut puts = Vec::new();
            puts.extend_from_slice(&0x20_0000u64.to_le_bytes());
            puts.extend_from_slice(&6u64.to_le_bytes());
            ram.write(0x20_1000, &puts).unwrap();
            let mut halt = vec![0u8; 16];
            halt[8..12].copy_from_slice(&(-1i32).to_le_bytes());
            ram.write(0x20_2000, &halt).unwrap();
            (handle_exit(outl(0x502, 0x20_1000), hc).unwrap(), handle_exit(outl(0x508, 0x20_2000), hc).unwrap())
        });
        assert_eq!(first, Flow::Resume);
        assert_eq!(second, Flow::Halt(-1));
        assert_eq!(printed, b"hello\n");
    }

    #[test]
    fn walltime_writes_the_host_clock_into_the_struct() {
        let (ns, _) = with_hypercalls(|ram, hc| {
            assert_eq!(handle_exit(outl(0x501, 0x30_0000), hc).unwrap(), Flow::Resume);
            u64::from_le_bytes(
                ram.read_struct::<[u8; 8]>(ram.check(0x30_0000, 8, super::super::memory::Access::Read).unwrap()),
            )
        });
        let host = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let host = u64::try_from(host).unwrap();
        assert!(ns <= host && host - ns < 10_000_000_000, "walltime {ns}, host {host}");
    }

    #[test]
    fn poll_with_no_devices_times_out_empty() {
        let ((flow, ready, ret), _) = with_hypercalls(|ram, hc| {
            ram.write(0x30_0000, &1_000_000u64.to_le_bytes()).unwrap();
            ram.write(0x30_0008, &[0xff; 12]).unwrap();
            let flow = handle_exit(outl(0x503, 0x30_0000), hc).unwrap();
            let b = ram.read_struct::<[u8; 24]>(ram.check(0x30_0000, 24, super::super::memory::Access::Read).unwrap());
            (flow, u64::from_le_bytes(b[8..16].try_into().unwrap()), i32::from_le_bytes(b[16..20].try_into().unwrap()))
        });
        assert_eq!((flow, ready, ret), (Flow::Resume, 0, 0));
    }

    #[test]
    fn bad_pointers_end_the_run_with_solo5_words() {
        let (errors, printed) = with_hypercalls(|ram, hc| {
            let puts = |data: u64, len: u64| {
                let mut s = data.to_le_bytes().to_vec();
                s.extend_from_slice(&len.to_le_bytes());
                ram.write(0x20_0000, &s).unwrap();
            };
            let mut errors = Vec::new();
            puts(MEM - 8, 8); // ends exactly at the end: refused (strict <)
            errors.push(handle_exit(outl(0x502, 0x20_0000), hc).unwrap_err().to_string());
            puts(0x10_0000, u64::MAX); // wraps
            errors.push(handle_exit(outl(0x502, 0x20_0000), hc).unwrap_err().to_string());
            errors.push(handle_exit(outl(0x501, 0xffff_fff0), hc).unwrap_err().to_string());
            errors.push(handle_exit(outl(0x501, u32::try_from(MEM - 4).unwrap()), hc).unwrap_err().to_string());
            errors.push(handle_exit(outl(0x501, 0x1_0000), hc).unwrap_err().to_string());
            errors
        });
        assert!(printed.is_empty());
        assert!(
            errors[0].starts_with("PUTS: data: Invalid guest access: gpa=0x3ffff8, sz=8: ends at or beyond"),
            "{}",
            errors[0]
        );
        assert!(
            errors[1].contains("Invalid guest access: gpa=0x100000, sz=18446744073709551615: wraps"),
            "{}",
            errors[1]
        );
        assert!(
            errors[2].starts_with("WALLTIME: argument struct: Invalid guest access: gpa=0xfffffff0"),
            "{}",
            errors[2]
        );
        assert!(errors[3].contains("gpa=0x3ffffc, sz=8"), "{}", errors[3]);
        assert!(errors[4].contains("low area"), "{}", errors[4]);
    }

    #[test]
    fn unserved_ports_and_numbers_end_the_run() {
        let (errors, _) = with_hypercalls(|_, hc| {
            [
                outl(0x509, 0),
                outl(0x500, 0),
                outl(0x505, 0),
                VmExit::Io(PortIo { port: 0x501, out: false, size: 4, count: 1, value: 0 }),
                VmExit::Io(PortIo { port: 0x501, out: true, size: 1, count: 4, value: 0x20_0000 }),
            ]
            .map(|e| handle_exit(e, hc).unwrap_err().to_string())
        });
        assert!(errors[0].starts_with("Invalid guest port access: port=0x509"), "{}", errors[0]);
        assert!(errors[1].starts_with("Invalid guest hypercall: num=0"), "{}", errors[1]);
        assert!(errors[2].starts_with("Invalid guest hypercall: num=5 (no block device"), "{}", errors[2]);
        assert!(errors[3].contains("port=0x501 (in,"), "{}", errors[3]);
        assert!(errors[4].contains("4 x 1 bytes"), "{}", errors[4]);
    }

    #[test]
    fn cpu_exits_are_named() {
        let (errors, _) = with_hypercalls(|_, hc| {
            [
                VmExit::Shutdown,
                VmExit::Hlt,
                VmExit::FailEntry { reason: 0x21 },
                VmExit::InternalError { suberror: 1, data: [0x0f_0b, 0, 0, 0], ndata: 1 },
                VmExit::Mmio { gpa: 0x10_0000, len: 1, write: true },
                VmExit::Mmio { gpa: 4 << 30, len: 8, write: true },
                VmExit::MemoryFault { gpa: None },
                VmExit::Other { reason: 0x1c },
                VmExit::RunFailed(libc::ENOMEM),
            ]
            .map(|e| handle_exit(e, hc).unwrap_err().to_string())
        });
        assert!(errors[0].contains("exit_reason=0x8 (shutdown: the guest triple-faulted)"), "{}", errors[0]);
        assert!(errors[1].contains("exit_reason=0x5 (HLT"), "{}", errors[1]);
        assert_eq!(errors[2], "KVM: entry failure: hw_entry_failure_reason=0x21");
        assert!(errors[3].starts_with("KVM: internal error exit: suberror=0x1 (emulation failure"), "{}", errors[3]);
        assert!(errors[3].contains("[f0b]"), "{}", errors[3]);
        // MMIO inside RAM is kvm_pvm's EFAULT: Solo5's xnow message.
        assert!(
            errors[4].starts_with("KVM: host/guest translation fault: the guest wrote to gpa 0x100000"),
            "{}",
            errors[4]
        );
        assert!(errors[5].contains("MMIO write of 8 bytes at gpa 0x100000000, outside guest memory"), "{}", errors[5]);
        assert!(errors[6].starts_with("KVM: host/guest translation fault"), "{}", errors[6]);
        assert_eq!(errors[7], "KVM: unhandled exit: exit_reason=0x1c");
        assert!(errors[8].starts_with("KVM: KVM_RUN failed: Cannot allocate memory"), "{}", errors[8]);
    }

    #[test]
    fn interruptions_go_back_to_the_loop() {
        let (flow, _) = with_hypercalls(|_, hc| handle_exit(VmExit::Interrupted, hc).unwrap());
        assert_eq!(flow, Flow::Interrupted);
    }
}
