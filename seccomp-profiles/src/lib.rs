//! The tender's seccomp filters, kept as data (`profiles/*.json`, one per backend) and
//! compiled for one run: [`bpf`] generates the program (hot syscalls decide in the
//! fewest instructions), seccompiler's types carry it and its `apply_filter` installs it.
//!
//! A profile names syscalls and argument checks; values are numbers, named constants
//! (`CLOCK_MONOTONIC`) or run parameters (`$epoll_fd`, and per device `$fd`,
//! `$block_size`, `$last_block_offset`). [`Profile::resolve`] substitutes the run's
//! values and [`ResolvedFilter::compile`] turns the result into BPF whose default
//! action kills the process.

use std::fmt;

pub mod bpf;

use seccompiler::BpfProgram;
use serde::Deserialize;

/// The spt profile: what a guest may do once it runs inside the tender's process.
pub const SPT_X86_64_JSON: &str = include_str!("../profiles/spt-x86_64.json");
/// The hvt profile: what the KVM backend's vCPU loop may do once setup is over.
pub const HVT_X86_64_JSON: &str = include_str!("../profiles/hvt-x86_64.json");

/// `KVM_RUN`, `_IO(KVMIO, 0x80)`: enter the guest (linux/kvm.h).
pub const KVM_RUN: u64 = 0xAE80;
/// `KVM_GET_REGS`, `_IOR(KVMIO, 0x81, struct kvm_regs)` with the 144-byte
/// x86_64 `struct kvm_regs` (linux/kvm.h).
pub const KVM_GET_REGS: u64 = 0x8090_AE81;

/// Errors building a filter.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The JSON does not match the profile schema.
    #[error("seccomp profile {profile}: malformed: {source}")]
    Malformed {
        /// Which profile.
        profile: &'static str,
        /// What serde said.
        source: serde_json::Error,
    },
    /// A rule names a syscall this crate has no number for.
    #[error("seccomp profile: unknown syscall `{0}`")]
    UnknownSyscall(String),
    /// A value is neither a number, a known constant nor a known parameter.
    #[error("seccomp profile: rule for `{syscall}` uses unknown value `{value}`")]
    UnknownValue {
        /// The rule's syscall.
        syscall: String,
        /// The unresolved value.
        value: String,
    },
    /// A block device whose capacity is below one block cannot be pinned.
    #[error("block device with fd {fd}: capacity {capacity} is smaller than its block size {block_size}")]
    BlockTooSmall {
        /// Its fd.
        fd: i32,
        /// Its capacity.
        capacity: u64,
        /// Its block size.
        block_size: u64,
    },
    /// The filter needs more BPF instructions than the kernel accepts (4096).
    #[error("seccomp filter: {0} BPF instructions, more than the kernel's limit of 4096")]
    TooLong(usize),
}

/// Comparison operator of an argument check (unsigned, 64-bit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// `arg == value`.
    Eq,
    /// `arg <= value`.
    Le,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    #[allow(dead_code)]
    comment: String,
    default_action: DefaultAction,
    rules: Vec<RuleSpec>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum DefaultAction {
    KillProcess,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ForEach {
    Block,
    Net,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    syscall: String,
    hypercall: String,
    why: String,
    #[serde(default)]
    for_each: Option<ForEach>,
    any_of: Vec<Vec<CheckSpec>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckSpec {
    arg: u8,
    op: Op,
    value: ValueSpec,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ValueSpec {
    Number(u64),
    Name(String),
}

/// A parsed profile, not yet bound to a run.
#[derive(Debug)]
pub struct Profile {
    name: &'static str,
    rules: Vec<RuleSpec>,
}

/// A block device as the filter sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockParams {
    /// Host fd.
    pub fd: i32,
    /// Block size in bytes.
    pub block_size: u64,
    /// Capacity in bytes (a multiple of the block size, at least one block).
    pub capacity: u64,
}

/// The values a profile is resolved with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunParams {
    /// The yield epoll fd.
    pub epoll_fd: i32,
    /// The yield timerfd.
    pub timer_fd: i32,
    /// Attached block devices.
    pub blocks: Vec<BlockParams>,
    /// Fds of attached net devices.
    pub nets: Vec<i32>,
}

/// One argument check with its value resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Check {
    /// Argument index (0-5).
    pub arg: u8,
    /// Operator.
    pub op: Op,
    /// Value compared with.
    pub value: u64,
}

/// One allowed syscall shape: all checks must hold (empty = always allowed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedRule {
    /// Syscall name.
    pub syscall: &'static str,
    /// Syscall number.
    pub nr: i64,
    /// The Solo5 API call(s) it serves.
    pub hypercall: String,
    /// One line saying why it is allowed.
    pub why: String,
    /// Checks, ANDed.
    pub checks: Vec<Check>,
}

/// A profile bound to one run: exactly the syscall shapes that will be allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedFilter {
    /// The rules, in profile order (per-device rules in device order).
    pub rules: Vec<ResolvedRule>,
}

/// Syscalls a profile may name. Kept short on purpose: a profile naming anything
/// else fails to load, so a typo cannot silently allow a different call.
fn syscall_nr(name: &str) -> Option<(&'static str, i64)> {
    Some(match name {
        "read" => ("read", libc::SYS_read),
        "write" => ("write", libc::SYS_write),
        "pread64" => ("pread64", libc::SYS_pread64),
        "pwrite64" => ("pwrite64", libc::SYS_pwrite64),
        "arch_prctl" => ("arch_prctl", libc::SYS_arch_prctl),
        "clock_gettime" => ("clock_gettime", libc::SYS_clock_gettime),
        "exit_group" => ("exit_group", libc::SYS_exit_group),
        "epoll_pwait" => ("epoll_pwait", libc::SYS_epoll_pwait),
        "timerfd_settime" => ("timerfd_settime", libc::SYS_timerfd_settime),
        "ioctl" => ("ioctl", libc::SYS_ioctl),
        "rt_sigreturn" => ("rt_sigreturn", libc::SYS_rt_sigreturn),
        _ => return None,
    })
}

/// Named constants a profile may use as values.
fn constant(name: &str) -> Option<u64> {
    Some(match name {
        "CLOCK_REALTIME" => libc::CLOCK_REALTIME as u64,
        "CLOCK_MONOTONIC" => libc::CLOCK_MONOTONIC as u64,
        "STDOUT_FILENO" => libc::STDOUT_FILENO as u64,
        "ARCH_SET_FS" => 0x1002,
        "STDERR_FILENO" => libc::STDERR_FILENO as u64,
        "KVM_RUN" => KVM_RUN,
        "KVM_GET_REGS" => KVM_GET_REGS,
        _ => return None,
    })
}

/// The device a `for_each` rule is being expanded for.
#[derive(Clone, Copy)]
enum Device {
    None,
    Block(BlockParams),
    Net(i32),
}

/// Fds are non-negative ints; as syscall arguments the kernel sees them zero-extended.
fn fd_value(fd: i32) -> u64 {
    u64::from(fd.unsigned_abs())
}

impl Profile {
    /// The spt profile (`profiles/spt-x86_64.json`).
    pub fn spt() -> Result<Self, ProfileError> {
        Self::from_json("spt-x86_64", SPT_X86_64_JSON)
    }

    /// The hvt profile (`profiles/hvt-x86_64.json`); resolve it with
    /// [`Profile::resolve_hvt`], which also pins the vCPU fd.
    pub fn hvt() -> Result<Self, ProfileError> {
        Self::from_json("hvt-x86_64", HVT_X86_64_JSON)
    }

    /// Parses a profile; every syscall name is checked here.
    pub fn from_json(name: &'static str, json: &str) -> Result<Self, ProfileError> {
        let file: ProfileFile =
            serde_json::from_str(json).map_err(|source| ProfileError::Malformed { profile: name, source })?;
        let DefaultAction::KillProcess = file.default_action;
        for rule in &file.rules {
            syscall_nr(&rule.syscall).ok_or_else(|| ProfileError::UnknownSyscall(rule.syscall.clone()))?;
        }
        Ok(Self { name, rules: file.rules })
    }

    /// The profile's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Binds the profile to one run's fds and devices.
    pub fn resolve(&self, run: &RunParams) -> Result<ResolvedFilter, ProfileError> {
        self.resolve_with(run, None)
    }

    /// Binds the hvt profile to one run: as [`Profile::resolve`], plus
    /// `$vcpu_fd`, the fd of the run's vCPU.
    pub fn resolve_hvt(&self, run: &RunParams, vcpu_fd: i32) -> Result<ResolvedFilter, ProfileError> {
        self.resolve_with(run, Some(vcpu_fd))
    }

    fn resolve_with(&self, run: &RunParams, vcpu_fd: Option<i32>) -> Result<ResolvedFilter, ProfileError> {
        let mut rules = Vec::new();
        for spec in &self.rules {
            let devices: Vec<Device> = match spec.for_each {
                None => vec![Device::None],
                Some(ForEach::Block) => run.blocks.iter().copied().map(Device::Block).collect(),
                Some(ForEach::Net) => run.nets.iter().copied().map(Device::Net).collect(),
            };
            for device in devices {
                let (syscall, nr) =
                    syscall_nr(&spec.syscall).ok_or_else(|| ProfileError::UnknownSyscall(spec.syscall.clone()))?;
                // No alternatives means the syscall is allowed with any arguments.
                let alternatives: Vec<&[CheckSpec]> =
                    if spec.any_of.is_empty() { vec![&[]] } else { spec.any_of.iter().map(Vec::as_slice).collect() };
                for checks in alternatives {
                    let checks = checks
                        .iter()
                        .map(|c| {
                            Ok(Check {
                                arg: c.arg,
                                op: c.op,
                                value: resolve_value(&spec.syscall, &c.value, run, vcpu_fd, device)?,
                            })
                        })
                        .collect::<Result<Vec<_>, ProfileError>>()?;
                    rules.push(ResolvedRule {
                        syscall,
                        nr,
                        hypercall: spec.hypercall.clone(),
                        why: spec.why.clone(),
                        checks,
                    });
                }
            }
        }
        Ok(ResolvedFilter { rules })
    }
}

fn resolve_value(
    syscall: &str,
    value: &ValueSpec,
    run: &RunParams,
    vcpu_fd: Option<i32>,
    device: Device,
) -> Result<u64, ProfileError> {
    let unknown = |v: &str| ProfileError::UnknownValue { syscall: syscall.to_owned(), value: v.to_owned() };
    let name = match value {
        ValueSpec::Number(n) => return Ok(*n),
        ValueSpec::Name(name) => name.as_str(),
    };
    let Some(param) = name.strip_prefix('$') else {
        return constant(name).ok_or_else(|| unknown(name));
    };
    match (param, device) {
        ("epoll_fd", _) => Ok(fd_value(run.epoll_fd)),
        ("timer_fd", _) => Ok(fd_value(run.timer_fd)),
        ("vcpu_fd", _) => vcpu_fd.map(fd_value).ok_or_else(|| unknown(name)),
        ("fd", Device::Block(b)) => Ok(fd_value(b.fd)),
        ("fd", Device::Net(fd)) => Ok(fd_value(fd)),
        ("block_size", Device::Block(b)) => Ok(b.block_size),
        ("last_block_offset", Device::Block(b)) => b
            .capacity
            .checked_sub(b.block_size)
            .ok_or(ProfileError::BlockTooSmall { fd: b.fd, capacity: b.capacity, block_size: b.block_size }),
        ("capacity", Device::Block(b)) => Ok(b.capacity),
        ("last_byte_offset", Device::Block(b)) => b.capacity.checked_sub(1).ok_or(ProfileError::BlockTooSmall {
            fd: b.fd,
            capacity: b.capacity,
            block_size: b.block_size,
        }),
        _ => Err(unknown(name)),
    }
}

impl ResolvedFilter {
    /// Distinct syscall names allowed, in first-use order.
    pub fn syscalls(&self) -> Vec<&'static str> {
        let mut out: Vec<&'static str> = Vec::new();
        for r in &self.rules {
            if !out.contains(&r.syscall) {
                out.push(r.syscall);
            }
        }
        out
    }

    /// Compiles to BPF ([`bpf`]): arch check (kill on mismatch), then one compare
    /// per allowed syscall, hottest first, each followed by its argument checks;
    /// default kill. Fails only if the program exceeds the kernel's 4096 instructions.
    pub fn compile(&self) -> Result<BpfProgram, ProfileError> {
        let program = bpf::program(&self.rules);
        if program.len() > bpf::BPF_MAX_LEN {
            return Err(ProfileError::TooLong(program.len()));
        }
        Ok(program)
    }
}

impl fmt::Display for ResolvedFilter {
    /// One line per allowed shape: `syscall(arg0 == 4, arg2 == 512)  # hypercall: why`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for r in &self.rules {
            let checks: Vec<String> = r
                .checks
                .iter()
                .map(|c| format!("arg{} {} {:#x}", c.arg, if c.op == Op::Eq { "==" } else { "<=" }, c.value))
                .collect();
            let checks = if checks.is_empty() { "any arguments".to_owned() } else { checks.join(" && ") };
            writeln!(f, "{:<16} {:<48} # {}: {}", r.syscall, checks, r.hypercall, r.why)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> RunParams {
        RunParams {
            epoll_fd: 5,
            timer_fd: 6,
            blocks: vec![BlockParams { fd: 4, block_size: 512, capacity: 4 << 20 }],
            nets: vec![7],
        }
    }

    #[test]
    fn spt_profile_parses_and_pins_every_argument_the_spec_pins() {
        let filter = Profile::spt().unwrap().resolve(&run()).unwrap();
        let shape = |name: &str| -> Vec<Vec<Check>> {
            filter.rules.iter().filter(|r| r.syscall == name).map(|r| r.checks.clone()).collect()
        };
        let eq = |arg, value| Check { arg, op: Op::Eq, value };
        assert_eq!(shape("clock_gettime"), vec![vec![eq(0, 1)], vec![eq(0, 0)]]);
        assert_eq!(shape("write"), vec![vec![eq(0, 1)], vec![eq(0, 7)]]);
        assert_eq!(shape("read"), vec![vec![eq(0, 7)]]);
        assert_eq!(shape("epoll_pwait"), vec![vec![eq(0, 5)]]);
        assert_eq!(shape("timerfd_settime"), vec![vec![eq(0, 6)]]);
        assert_eq!(shape("arch_prctl"), vec![vec![eq(0, 0x1002)]]);
        assert_eq!(shape("exit_group"), vec![Vec::<Check>::new()]);
        // solo5-abi.md 5.5: pread64 iff fd == 4 && count == 512 && offset <= 4193792.
        let block = vec![eq(0, 4), eq(2, 512), Check { arg: 3, op: Op::Le, value: 4_193_792 }];
        assert_eq!(shape("pread64"), vec![block.clone()]);
        assert_eq!(shape("pwrite64"), vec![block]);
    }

    #[test]
    fn allowed_syscalls_are_exactly_the_nine_of_the_spec() {
        let filter = Profile::spt().unwrap().resolve(&run()).unwrap();
        let mut names = filter.syscalls();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "arch_prctl",
                "clock_gettime",
                "epoll_pwait",
                "exit_group",
                "pread64",
                "pwrite64",
                "read",
                "timerfd_settime",
                "write"
            ]
        );
    }

    /// Every rule serves a Solo5 API call and every API call that reaches the host has a
    /// rule (solo5-abi.md 5.4): a rule no hypercall needs is an unjustified hole.
    #[test]
    fn rules_and_hypercalls_match_one_to_one() {
        let profile = Profile::spt().unwrap();
        let mut served: Vec<&str> = profile.rules.iter().flat_map(|r| r.hypercall.split(", ")).collect();
        served.sort_unstable();
        served.dedup();
        let expected = [
            "solo5_abort",
            "solo5_block_read",
            "solo5_block_write",
            "solo5_clock_monotonic",
            "solo5_clock_wall",
            "solo5_console_write",
            "solo5_exit",
            "solo5_net_read",
            "solo5_net_write",
            "solo5_set_tls_base",
            "solo5_yield",
        ];
        assert_eq!(served, expected);
        assert!(profile.rules.iter().all(|r| !r.why.trim().is_empty()));
    }

    #[test]
    fn no_devices_means_no_device_syscalls() {
        let filter =
            Profile::spt().unwrap().resolve(&RunParams { epoll_fd: 3, timer_fd: 4, ..Default::default() }).unwrap();
        let names = filter.syscalls();
        for forbidden in ["read", "pread64", "pwrite64"] {
            assert!(!names.contains(&forbidden), "{forbidden} allowed without a device");
        }
        assert_eq!(filter.rules.iter().filter(|r| r.syscall == "write").count(), 1);
    }

    #[test]
    fn compiles_for_the_maximum_device_count() {
        let blocks = (0..63).map(|i| BlockParams { fd: 10 + i, block_size: 512, capacity: 4096 }).collect();
        let run = RunParams { epoll_fd: 3, timer_fd: 4, blocks, nets: vec![] };
        let bpf = Profile::spt().unwrap().resolve(&run).unwrap().compile().unwrap();
        assert!(bpf.len() <= 4096, "{} instructions", bpf.len());
    }

    #[test]
    fn block_smaller_than_one_block_is_refused() {
        let run = RunParams { blocks: vec![BlockParams { fd: 4, block_size: 512, capacity: 256 }], ..run() };
        assert!(matches!(Profile::spt().unwrap().resolve(&run), Err(ProfileError::BlockTooSmall { .. })));
    }

    #[test]
    fn hvt_profile_pins_every_rule_to_the_run() {
        let filter = Profile::hvt().unwrap().resolve_hvt(&run(), 9).unwrap();
        let shape = |name: &str| -> Vec<Vec<Check>> {
            filter.rules.iter().filter(|r| r.syscall == name).map(|r| r.checks.clone()).collect()
        };
        let eq = |arg, value| Check { arg, op: Op::Eq, value };
        let le = |arg, value| Check { arg, op: Op::Le, value };
        assert_eq!(shape("ioctl"), vec![vec![eq(0, 9), eq(1, KVM_RUN)], vec![eq(0, 9), eq(1, KVM_GET_REGS)]]);
        assert_eq!(shape("clock_gettime"), vec![vec![eq(0, 0)]]);
        assert_eq!(shape("write"), vec![vec![eq(0, 1)], vec![eq(0, 2)], vec![eq(0, 7)]]);
        assert_eq!(shape("read"), vec![vec![eq(0, 7)]]);
        assert_eq!(shape("epoll_pwait"), vec![vec![eq(0, 5)]]);
        assert_eq!(shape("timerfd_settime"), vec![vec![eq(0, 6)]]);
        let block = vec![eq(0, 4), le(2, 4 << 20), le(3, (4 << 20) - 1)];
        assert_eq!(shape("pread64"), vec![block.clone()]);
        assert_eq!(shape("pwrite64"), vec![block]);
        assert_eq!(shape("rt_sigreturn"), vec![Vec::<Check>::new()]);
        assert_eq!(shape("exit_group"), vec![Vec::<Check>::new()]);
        let mut names = filter.syscalls();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "clock_gettime",
                "epoll_pwait",
                "exit_group",
                "ioctl",
                "pread64",
                "pwrite64",
                "read",
                "rt_sigreturn",
                "timerfd_settime",
                "write"
            ]
        );
        assert!(Profile::hvt().unwrap().rules.iter().all(|r| !r.why.trim().is_empty()));
        assert!(Profile::hvt().unwrap().resolve_hvt(&run(), 9).unwrap().compile().is_ok());
    }

    #[test]
    fn hvt_profile_needs_the_vcpu_fd() {
        assert!(matches!(Profile::hvt().unwrap().resolve(&run()), Err(ProfileError::UnknownValue { .. })));
    }

    #[test]
    fn kvm_ioctl_numbers_follow_the_linux_encoding() {
        // _IOC(dir, type, nr, size) = dir << 30 | size << 16 | type << 8 | nr; KVMIO = 0xAE.
        const IOC_READ: u64 = 2;
        assert_eq!(KVM_RUN, 0xAE << 8 | 0x80);
        assert_eq!(KVM_GET_REGS, IOC_READ << 30 | 144 << 16 | 0xAE << 8 | 0x81);
    }

    #[test]
    fn typos_in_a_profile_are_errors() {
        let bad_syscall = r#"{"comment":"","default_action":"kill_process","rules":[{"syscall":"opne","hypercall":"x","why":"y","any_of":[]}]}"#;
        assert!(matches!(Profile::from_json("t", bad_syscall), Err(ProfileError::UnknownSyscall(_))));
        let bad_value = r#"{"comment":"","default_action":"kill_process","rules":[{"syscall":"write","hypercall":"x","why":"y","any_of":[[{"arg":0,"op":"eq","value":"$nope"}]]}]}"#;
        let p = Profile::from_json("t", bad_value).unwrap();
        assert!(matches!(p.resolve(&run()), Err(ProfileError::UnknownValue { .. })));
        let bad_field = r#"{"comment":"","default_action":"kill_process","rules":[],"extra":1}"#;
        assert!(matches!(Profile::from_json("t", bad_field), Err(ProfileError::Malformed { .. })));
    }
}
