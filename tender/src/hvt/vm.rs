//! The KVM side: one VM with one vCPU over the guest memory, set up as
//! solo5-hvt does (docs/solo5-abi.md §6.1), and the `KVM_RUN` loop.
//!
//! `unsafe` here: registering the guest memory with KVM, and reading the
//! `kvm_run` union members that kvm-ioctls does not hand out (the shape of a
//! port access, an internal error's details).

use kvm_bindings::{
    kvm_regs, kvm_run, kvm_sregs, kvm_userspace_memory_region, KVM_EXIT_INTERNAL_ERROR, KVM_EXIT_IO,
    KVM_MAX_CPUID_ENTRIES,
};
use kvm_ioctls::{Cap, Kvm, VcpuExit, VcpuFd, VmFd};

use super::exit::{handle_exit, ExitError, Flow, VmExit};
use super::hypercall::{Hypercalls, PortIo};
use super::layout;
use super::memory::GuestRam;
use super::signals::{self, ImmediateExit};

/// The only KVM API version there has ever been.
const KVM_API_VERSION: i32 = 12;

/// Errors creating the VM (before the guest runs).
#[derive(Debug, thiserror::Error)]
pub enum KvmError {
    /// /dev/kvm could not be opened.
    #[error("cannot open /dev/kvm: {0} (hvt guests need KVM: load kvm_intel/kvm_amd, or run on a host that has /dev/kvm, with read-write access to it)")]
    Open(kvm_ioctls::Error),
    /// Unexpected API version.
    #[error("/dev/kvm reports KVM API version {0}, expected {KVM_API_VERSION}")]
    ApiVersion(i32),
    /// A capability the backend needs is missing.
    #[error("KVM lacks {0}, which the hvt backend needs")]
    MissingCap(&'static str),
    /// An ioctl failed.
    #[error("KVM: {what} failed: {source}")]
    Ioctl {
        /// Which call.
        what: &'static str,
        /// Why.
        source: kvm_ioctls::Error,
    },
    /// The TSC frequency is unknown.
    #[error("KVM: KVM_GET_TSC_KHZ failed: {0} (EIO means the host TSC is unstable; the guest's clock needs it)")]
    TscFrequency(kvm_ioctls::Error),
}

fn ioctl(what: &'static str) -> impl FnOnce(kvm_ioctls::Error) -> KvmError {
    move |source| KvmError::Ioctl { what, source }
}

/// Why the vCPU loop stopped, with where the guest was.
#[derive(Debug, thiserror::Error)]
pub enum Stop {
    /// The exit ended the run.
    #[error("{error}{}", Rip(*rip))]
    Exit {
        /// What happened.
        error: ExitError,
        /// The guest's instruction pointer, if KVM could tell.
        rip: Option<u64>,
    },
    /// SIGINT or SIGTERM.
    #[error("Exiting on signal {0}")]
    Signal(i32),
}

/// ` (guest rip=0x…)`, or nothing: formats without allocating (the filter is on).
struct Rip(Option<u64>);

impl std::fmt::Display for Rip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(rip) => write!(f, " (guest rip={rip:#x})"),
            None => Ok(()),
        }
    }
}

/// The VM and its vCPU. Field order is drop order: the signal handler forgets
/// the vCPU's `kvm_run` before the vCPU unmaps it.
#[derive(Debug)]
pub struct Vm {
    immediate_exit: Option<ImmediateExit>,
    vcpu: VcpuFd,
    _vm: VmFd,
    _kvm: Kvm,
}

impl Vm {
    /// Creates the VM over `ram` and a vCPU in the state of §6.3, entering at
    /// `entry`. Returns it with the TSC frequency in Hz (for the boot info).
    pub fn new(ram: &GuestRam, entry: u64) -> Result<(Self, u64), KvmError> {
        let kvm = Kvm::new().map_err(KvmError::Open)?;
        let version = kvm.get_api_version();
        if version != KVM_API_VERSION {
            return Err(KvmError::ApiVersion(version));
        }
        for (cap, name) in [(Cap::UserMemory, "KVM_CAP_USER_MEMORY"), (Cap::GetTscKhz, "KVM_CAP_GET_TSC_KHZ")] {
            if !kvm.check_extension(cap) {
                return Err(KvmError::MissingCap(name));
            }
        }
        let vm = kvm.create_vm().map_err(ioctl("KVM_CREATE_VM"))?;
        let region = kvm_userspace_memory_region {
            slot: 0,
            flags: 0,
            guest_phys_addr: 0,
            memory_size: ram.size(),
            userspace_addr: ram.host_base() as u64,
        };
        // SAFETY: the region is our own guest mapping, `ram.size()` bytes at
        // `ram.host_base()`, and it outlives the VM: `run` keeps `ram` borrowed
        // for as long as the guest runs, and never returns once it ran; on a
        // setup error the VM is dropped (closing its fd) before `ram`.
        unsafe { vm.set_user_memory_region(region) }.map_err(ioctl("KVM_SET_USER_MEMORY_REGION"))?;
        let vcpu = vm.create_vcpu(0).map_err(ioctl("KVM_CREATE_VCPU"))?;
        let cpuid = kvm.get_supported_cpuid(KVM_MAX_CPUID_ENTRIES).map_err(ioctl("KVM_GET_SUPPORTED_CPUID"))?;
        vcpu.set_cpuid2(&cpuid).map_err(ioctl("KVM_SET_CPUID2"))?;
        let sregs = vcpu.get_sregs().map_err(ioctl("KVM_GET_SREGS"))?;
        vcpu.set_sregs(&layout::sregs(sregs)).map_err(ioctl("KVM_SET_SREGS"))?;
        vcpu.set_regs(&layout::regs(entry, ram.size())).map_err(ioctl("KVM_SET_REGS"))?;
        let tsc_khz = vcpu.get_tsc_khz().map_err(KvmError::TscFrequency)?;
        if tsc_khz == 0 {
            return Err(KvmError::TscFrequency(kvm_ioctls::Error::new(libc::EIO)));
        }
        Ok((Self { immediate_exit: None, vcpu, _vm: vm, _kvm: kvm }, u64::from(tsc_khz) * 1000))
    }

    /// The vCPU fd (for the seccomp filter).
    pub fn vcpu_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.vcpu)
    }

    /// The vCPU's general and segment registers (for `--dumpcore`); on failure, which
    /// ioctl failed.
    pub fn registers(&self) -> Result<(kvm_regs, kvm_sregs), (&'static str, kvm_ioctls::Error)> {
        let regs = self.vcpu.get_regs().map_err(|e| ("KVM_GET_REGS", e))?;
        let sregs = self.vcpu.get_sregs().map_err(|e| ("KVM_GET_SREGS", e))?;
        Ok((regs, sregs))
    }

    /// Lets SIGINT/SIGTERM stop `KVM_RUN` (see [`signals`]).
    pub fn arm_signals(&mut self) {
        let flag = &raw mut self.vcpu.get_kvm_run().immediate_exit;
        // SAFETY: `flag` points into the vCPU's `kvm_run` mapping, which lives
        // as long as `self.vcpu`; the guard is a field of `self` declared
        // before `vcpu`, so it is dropped (and forgets the pointer) first.
        self.immediate_exit = Some(unsafe { ImmediateExit::register(flag) });
    }

    /// Runs the guest until HALT (its status) or a fatal exit.
    pub fn run(&mut self, hypercalls: &mut Hypercalls<'_>) -> Result<i32, Stop> {
        loop {
            if let Some(signal) = signals::pending() {
                return Err(Stop::Signal(signal));
            }
            let exit = self.run_once();
            match handle_exit(exit, hypercalls) {
                Ok(Flow::Resume | Flow::Interrupted) => {}
                Ok(Flow::Halt(status)) => return Ok(status),
                Err(error) => {
                    let rip = self.vcpu.get_regs().ok().map(|r| r.rip);
                    return Err(Stop::Exit { error, rip });
                }
            }
        }
    }

    /// One `KVM_RUN`, its exit copied out of `kvm_run`.
    fn run_once(&mut self) -> VmExit {
        let exit = match self.vcpu.run() {
            Ok(VcpuExit::IoOut(port, data)) => {
                let mut value = [0u8; 4];
                let n = data.len().min(4);
                value[..n].copy_from_slice(&data[..n]);
                Some(VmExit::Io(PortIo { port, out: true, size: 0, count: 0, value: u32::from_le_bytes(value) }))
            }
            Ok(VcpuExit::IoIn(port, _)) => Some(VmExit::Io(PortIo { port, out: false, size: 0, count: 0, value: 0 })),
            Ok(VcpuExit::MmioWrite(gpa, data)) => Some(VmExit::Mmio { gpa, len: data.len(), write: true }),
            Ok(VcpuExit::MmioRead(gpa, data)) => Some(VmExit::Mmio { gpa, len: data.len(), write: false }),
            Ok(VcpuExit::MemoryFault { gpa, .. }) => Some(VmExit::MemoryFault { gpa: Some(gpa) }),
            Ok(VcpuExit::Hlt) => Some(VmExit::Hlt),
            Ok(VcpuExit::Shutdown) => Some(VmExit::Shutdown),
            Ok(VcpuExit::FailEntry(reason, _cpu)) => Some(VmExit::FailEntry { reason }),
            Ok(VcpuExit::Intr) => Some(VmExit::Interrupted),
            Ok(VcpuExit::InternalError) => None,
            Ok(_) => Some(VmExit::Other { reason: self.vcpu.get_kvm_run().exit_reason }),
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => Some(VmExit::Interrupted),
            Err(e) if e.errno() == libc::EFAULT => Some(VmExit::MemoryFault { gpa: None }),
            Err(e) => Some(VmExit::RunFailed(e.errno())),
        };
        // Fill in what `VcpuExit` leaves out, from the union member KVM used.
        let run = self.vcpu.get_kvm_run();
        match exit {
            Some(VmExit::Io(io)) => VmExit::Io(with_io_shape(run, io)),
            Some(exit) => exit,
            None => internal_error(run),
        }
    }
}

/// The size and count of the port access in `run` (kvm-ioctls only gives
/// `size × count` bytes of data).
fn with_io_shape(run: &kvm_run, io: PortIo) -> PortIo {
    if run.exit_reason != KVM_EXIT_IO {
        return io;
    }
    // SAFETY: exit_reason KVM_EXIT_IO says the kernel filled the `io` member;
    // it is plain integers.
    let raw = unsafe { run.__bindgen_anon_1.io };
    PortIo { size: raw.size, count: raw.count, ..io }
}

/// An internal-error exit with its suberror and data.
fn internal_error(run: &kvm_run) -> VmExit {
    if run.exit_reason != KVM_EXIT_INTERNAL_ERROR {
        return VmExit::Other { reason: run.exit_reason };
    }
    // SAFETY: exit_reason KVM_EXIT_INTERNAL_ERROR says the kernel filled the
    // `internal` member; it is plain integers.
    let internal = unsafe { run.__bindgen_anon_1.internal };
    let mut data = [0u64; 4];
    let n = (internal.ndata as usize).min(data.len()).min(internal.data.len());
    data[..n].copy_from_slice(&internal.data[..n]);
    VmExit::InternalError { suberror: internal.suberror, data, ndata: n }
}
