//! A profile as plain `'static` data: what build.rs generates from the JSON and what
//! the library resolves per run. Shared with build.rs (`#[path]`), so it holds no
//! run-time code and no syscall numbers (those come from the target's libc).

/// `KVM_RUN`, `_IO(KVMIO, 0x80)`: enter the guest (linux/kvm.h).
pub const KVM_RUN: u64 = 0xAE80;
/// `KVM_GET_REGS`, `_IOR(KVMIO, 0x81, struct kvm_regs)` with the 144-byte
/// x86_64 `struct kvm_regs` (linux/kvm.h).
pub const KVM_GET_REGS: u64 = 0x8090_AE81;
/// `KVM_GET_SREGS`, `_IOR(KVMIO, 0x83, struct kvm_sregs)` with the 312-byte
/// x86_64 `struct kvm_sregs` (linux/kvm.h).
pub const KVM_GET_SREGS: u64 = 0x8138_AE83;
/// `AT_FDCWD` (-100) as a 64-bit syscall argument: sign-extended, as a `long`
/// argument reaches the kernel.
pub const AT_FDCWD: u64 = 0xFFFF_FFFF_FFFF_FF9C;

/// Comparison operator of an argument check (unsigned, 64-bit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `arg == value`.
    Eq,
    /// `arg <= value`.
    Le,
}

/// Syscalls a profile may name. Kept short on purpose: a profile naming anything
/// else fails the build, so a typo cannot silently allow a different call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syscall {
    Read,
    Write,
    Pread64,
    Pwrite64,
    ArchPrctl,
    ClockGettime,
    ExitGroup,
    EpollPwait,
    TimerfdSettime,
    Ioctl,
    RtSigreturn,
    Linkat,
}

impl Syscall {
    /// The kernel's name, as in the profiles and libc's `SYS_*`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Pread64 => "pread64",
            Self::Pwrite64 => "pwrite64",
            Self::ArchPrctl => "arch_prctl",
            Self::ClockGettime => "clock_gettime",
            Self::ExitGroup => "exit_group",
            Self::EpollPwait => "epoll_pwait",
            Self::TimerfdSettime => "timerfd_settime",
            Self::Ioctl => "ioctl",
            Self::RtSigreturn => "rt_sigreturn",
            Self::Linkat => "linkat",
        }
    }
}

/// A run parameter (`$name` in the JSON), known only when a run resolves the profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Param {
    EpollFd,
    TimerFd,
    VcpuFd,
    /// The fd of the device a `for_each` rule is repeated for.
    Fd,
    BlockSize,
    LastBlockOffset,
    Capacity,
    LastByteOffset,
    /// `--dumpcore`: the directory the core is linked into.
    DumpcoreDirFd,
    /// `--dumpcore`: the unnamed core file created up front (`O_TMPFILE`).
    CoreFd,
    /// `--dumpcore`: address of the read-only `/proc/self/fd/N` string naming the core file.
    CoreLinkFrom,
    /// `--dumpcore`: address of the read-only `core.solo5-hvt.PID` string.
    CoreName,
    /// `--dumpcore`: the offset of the core file's last page.
    CoreLastPageOffset,
}

impl Param {
    /// The name after the `$`.
    pub fn name(self) -> &'static str {
        match self {
            Self::EpollFd => "epoll_fd",
            Self::TimerFd => "timer_fd",
            Self::VcpuFd => "vcpu_fd",
            Self::Fd => "fd",
            Self::BlockSize => "block_size",
            Self::LastBlockOffset => "last_block_offset",
            Self::Capacity => "capacity",
            Self::LastByteOffset => "last_byte_offset",
            Self::DumpcoreDirFd => "dumpcore_dir_fd",
            Self::CoreFd => "core_fd",
            Self::CoreLinkFrom => "core_link_from",
            Self::CoreName => "core_name",
            Self::CoreLastPageOffset => "core_last_page_offset",
        }
    }
}

/// The value an argument is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value {
    /// A number or a named constant, fixed at build time.
    Const(u64),
    /// Filled in per run.
    Param(Param),
}

/// What a rule is repeated for: once per attached device of a kind, or once if the
/// run writes a core on abort (`--dumpcore`, hvt) and not at all otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForEach {
    Block,
    Net,
    Dumpcore,
}

/// One argument check, before the run's values are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArgCheck {
    pub arg: u8,
    pub op: Op,
    pub value: Value,
}

/// One rule of a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    pub syscall: Syscall,
    /// The Solo5 API call(s) it serves.
    pub hypercall: &'static str,
    /// One line saying why it is allowed.
    pub why: &'static str,
    pub for_each: Option<ForEach>,
    /// Alternatives (ORed) of checks (ANDed); empty means any arguments.
    pub any_of: &'static [&'static [ArgCheck]],
}

/// A validated profile, not yet bound to a run. The default action is always to kill
/// the process: the schema admits no other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    pub(crate) name: &'static str,
    pub(crate) rules: &'static [Rule],
}
