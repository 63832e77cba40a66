//! The hvt backend: the guest runs in a one-vCPU KVM virtual machine and asks
//! for services with port-I/O hypercalls (docs/solo5-abi.md §6). Like the spt
//! backend it gets a validated [`GuestImage`](crate::loader::GuestImage) and attached devices and does no
//! parsing.
//!
//! * [`memory`]: guest memory (vm-memory) and every guest pointer check.
//! * [`layout`]: boot GDT, page tables and registers (pure).
//! * [`vm`]: VM and vCPU (kvm-ioctls), the `KVM_RUN` loop.
//! * [`exit`]: what each exit means ([`exit::handle_exit`]).
//! * [`hypercall`]: decoding and serving hypercalls (the host syscalls).
//! * [`signals`]: SIGINT/SIGTERM end the run promptly.
//! * [`dumpcore`]: `--dumpcore=DIR`, the guest's core when it aborts.
//!
//! After setup the tender installs its own seccomp filter
//! (`seccomp-profiles/profiles/hvt-x86_64.json`) and enters the loop; from
//! then on it never returns: the process ends with the guest's HALT status, or
//! 1 with a message on stderr.

pub mod dumpcore;
pub mod exit;
pub mod hypercall;
pub mod layout;
pub mod memory;
pub mod signals;
pub mod vm;

use std::convert::Infallible;
use std::io::Write;
use std::os::fd::AsFd;

use hypercall_abi::hvt::{HvtBootInfo, BOOT_INFO_ADDR, MEM_ALIGN, MEM_MAX, MFT_ADDR};
use nix::sys::signal::Signal;
use seccomp_profiles::{Profile, ProfileError, ResolvedFilter};
use seccompiler::BpfProgram;

use crate::boot::{self, BootData, BootError, GuestConfig};
use crate::devices::AttachedDevices;
use crate::guest_file::GuestFile;
use dumpcore::{CoreFile, DumpcoreError};
use hypercall::{HypercallError, Hypercalls, Poller};
use memory::{GuestRam, MemoryError};
use vm::{KvmError, Vm};

/// Errors setting up an hvt guest (before it runs).
#[derive(Debug, thiserror::Error)]
pub enum HvtError {
    /// `--mem` below 2 MiB.
    #[error("--mem: hvt guest memory must be at least 2 MiB (got {0} bytes)")]
    MemoryTooSmall(u64),
    /// `--mem` above 4 GiB.
    #[error("--mem: guest memory size {0} bytes exceeds the max size {MEM_MAX} bytes of an hvt guest")]
    MemoryTooLarge(u64),
    /// `--x-exec-heap` is spt only.
    #[error("--x-exec-heap is for spt guests only: an hvt guest's memory is never executable in the tender, and the guest maps its own memory")]
    ExecHeap,
    /// Guest memory.
    #[error(transparent)]
    Memory(#[from] MemoryError),
    /// `--dumpcore`.
    #[error(transparent)]
    Dumpcore(#[from] DumpcoreError),
    /// KVM.
    #[error(transparent)]
    Kvm(#[from] KvmError),
    /// POLL machinery.
    #[error(transparent)]
    Poll(#[from] HypercallError),
    /// The filter.
    #[error(transparent)]
    Filter(#[from] ProfileError),
    /// Signal handling.
    #[error("could not set up {what}: {source}")]
    Signal {
        /// What.
        what: &'static str,
        /// Why.
        source: nix::Error,
    },
    /// A start-up step both backends share.
    #[error(transparent)]
    Boot(#[from] BootError),
    /// Loading the filter failed.
    #[error("installing the seccomp filter failed: {0}")]
    Install(seccompiler::Error),
}

/// Guest memory for `--mem` bytes: rounded down to a multiple of 2 MiB, at
/// least 2 MiB, at most 4 GiB (docs/solo5-abi.md §4). Returns the size and whether
/// it was rounded.
pub fn mem_size(requested: u64) -> Result<(u64, bool), HvtError> {
    let size = requested - requested % MEM_ALIGN;
    if size < MEM_ALIGN {
        return Err(HvtError::MemoryTooSmall(requested));
    }
    if size > MEM_MAX {
        return Err(HvtError::MemoryTooLarge(requested));
    }
    Ok((size, size != requested))
}

/// A VM ready to run: memory loaded and protected, vCPU set up, POLL
/// machinery and the seccomp filter built for exactly these fds.
#[derive(Debug)]
pub struct Prepared {
    /// Declared before `ram`: the VM goes away before its memory.
    vm: Vm,
    ram: GuestRam,
    poller: Poller,
    /// `--dumpcore`: the core to write if the guest aborts.
    core: Option<CoreFile>,
    /// The rules the filter allows, resolved for this run (`tender --audit`).
    pub filter: ResolvedFilter,
    /// The compiled filter.
    pub bpf: BpfProgram,
}

impl Prepared {
    /// Everything but the run: guest memory with the image, GDT, page tables,
    /// boot info, manifest and command line (docs/solo5-abi.md §6.2, §6.4), the VM
    /// and vCPU (§6.1, §6.3), and the filter.
    pub fn new(config: &GuestConfig<'_>, elf: &GuestFile, devices: &AttachedDevices) -> Result<Self, HvtError> {
        let image = config.image;
        let mut ram = GuestRam::new(config.mem_size)?;
        let (vm, tsc_hz) = Vm::new(&ram, image.entry)?;

        // Memory is fresh and zero, so [filesz, memsz) needs no clearing.
        boot::load_segments(config, elf, &mut ram)?;
        for (gpa, value) in layout::boot_gdt().into_iter().chain(layout::page_table_entries(config.mem_size)) {
            ram.write(gpa, &value.to_le_bytes())?;
        }
        let boot = BootData::new(MFT_ADDR, &devices.manifest, config.cmdline);
        let boot_info = HvtBootInfo {
            mem_size: config.mem_size,
            kernel_end: image.kernel_end,
            cpu_cycle_freq: tsc_hz,
            cmdline: boot.cmdline_addr,
            mft: MFT_ADDR,
            // No net ring: the guest uses the NET_READ/NET_WRITE hypercalls (§6.7).
            host_features: 0,
            guest_features: 0,
            ring: 0,
        };
        ram.write(BOOT_INFO_ADDR, &boot_info.to_bytes())?;
        boot.write(MFT_ADDR, |addr, bytes| ram.write(addr, bytes))?;
        // X becomes R on the host; only the writable segments stay writable.
        for seg in image.segments.iter().filter(|s| !s.perms.write) {
            let what = if seg.perms.exec { "guest text" } else { "guest read-only data" };
            ram.protect_read_only(seg.start, seg.end, what)?;
        }

        let poller = Poller::new(devices.nets.iter().map(|n| (n.handle, n.tap.as_fd())))?;
        // Last, so that the option changes no other fd of the run.
        let core = config.dumpcore.map(|dir| CoreFile::create(dir, config.mem_size)).transpose()?;
        let mut run_params = poller.set().filter_params(devices);
        run_params.dumpcore = core.as_ref().map(CoreFile::filter_params);
        let filter = Profile::hvt().resolve_hvt(&run_params, vm.vcpu_fd())?;
        let bpf = filter.compile()?;
        Ok(Self { vm, ram, poller, core, filter, bpf })
    }
}

/// Runs the guest. Returns only on a setup error; otherwise the process ends
/// with the guest's HALT status, or with 1 after a message on stderr.
/// The guest file is closed once its segments are in guest memory.
pub fn run(config: &GuestConfig<'_>, elf: GuestFile, devices: AttachedDevices) -> Result<Infallible, HvtError> {
    boot::refuse_read_implies_exec()?;
    signals::install().map_err(|source| HvtError::Signal { what: "SIGINT/SIGTERM handlers", source })?;
    let Prepared { mut vm, ram, poller, core, bpf, .. } = Prepared::new(config, &elf, &devices)?;
    drop(elf);
    let stdout = std::io::stdout();
    let mut hypercalls = Hypercalls::new(&ram, stdout.as_fd(), &poller, &devices);

    // A console write to a closed pipe ends the run by SIGPIPE, as in solo5-hvt
    // (Rust's runtime ignores it, which would hide the error).
    boot::default_signal_actions(&[Signal::SIGPIPE])?;
    vm.arm_signals();
    seccompiler::apply_filter(&bpf).map_err(HvtError::Install)?;

    // From here on only the filter's syscalls: nothing is allocated on purpose,
    // nothing freed, mapped or closed, and the process ends without returning.
    let status = match vm.run(&mut hypercalls) {
        Ok(status) => {
            if let Some(core) = &core {
                core.on_halt(status, &vm, &ram, hypercalls.trap_regs());
            }
            status
        }
        Err(stop) => {
            // Formatted on the stack and written once (stderr is unbuffered:
            // `writeln!` straight to it would be one write per piece).
            const SIZE: usize = 4096;
            let mut buf = [0u8; SIZE];
            let mut rest = &mut buf[..];
            let _ = writeln!(rest, "tender: {stop}");
            let len = SIZE - rest.len();
            let _ = std::io::stderr().write_all(&buf[..len]);
            1
        }
    };
    exit_now(status)
}

/// `exit_group(status)` without running destructors or atexit handlers (they
/// would unmap and free, which the filter forbids). The kernel keeps the low
/// 8 bits, as for the guest's own `exit_group` on spt. Nothing is buffered:
/// the console is written with raw `write`s, stderr is unbuffered.
fn exit_now(status: i32) -> ! {
    // SAFETY: `_exit` ends the process at once; no Rust state is observed after.
    unsafe { libc::_exit(status) }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn memory_is_rounded_down_to_2_mib_between_2_mib_and_4_gib() {
        assert_eq!(mem_size(512 * MIB).unwrap(), (512 * MIB, false));
        assert_eq!(mem_size(3 * MIB).unwrap(), (2 * MIB, true));
        assert_eq!(mem_size(4096 * MIB).unwrap(), (4096 * MIB, false));
        assert!(matches!(mem_size(MIB), Err(HvtError::MemoryTooSmall(_))));
        assert!(matches!(mem_size(4098 * MIB), Err(HvtError::MemoryTooLarge(_))));
        assert!(mem_size(4098 * MIB).unwrap_err().to_string().contains("exceeds the max size 4294967296 bytes"));
    }
}
