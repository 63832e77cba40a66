//! The tender's seccomp filters, kept as data (`profiles/*.json`, one per backend) and
//! compiled for one run: [`bpf`] generates the program (hot syscalls decide in the
//! fewest instructions), seccompiler's types carry it and its `apply_filter` installs it.
//!
//! A profile names syscalls and argument checks; values are numbers, named constants
//! (`CLOCK_MONOTONIC`) or run parameters (`$epoll_fd`, and per device `$fd`,
//! `$block_size`, `$last_block_offset`). build.rs validates the JSON and embeds it as
//! Rust data, so a bad profile fails the build and a run parses nothing.
//! [`Profile::resolve`] substitutes the run's values and [`ResolvedFilter::compile`]
//! turns the result into BPF whose default action kills the process.

use std::fmt;

pub mod bpf;
mod model;
#[cfg(test)]
mod schema;

use seccompiler::BpfProgram;

use model::{ArgCheck, ForEach, Param, Syscall, Value};
pub use model::{Op, Profile, AT_FDCWD, KVM_GET_REGS, KVM_GET_SREGS, KVM_RUN};

/// The profiles as build.rs generated them from `profiles/*.json`.
mod prebuilt {
    use crate::model::{ArgCheck, ForEach, Op, Param, Profile, Rule, Syscall, Value};

    include!(concat!(env!("OUT_DIR"), "/profiles.rs"));
}

/// The spt profile's source: what a guest may do once it runs inside the tender's process.
pub const SPT_X86_64_JSON: &str = include_str!("../profiles/spt-x86_64.json");
/// The hvt profile's source: what the KVM backend's vCPU loop may do once setup is over.
pub const HVT_X86_64_JSON: &str = include_str!("../profiles/hvt-x86_64.json");

/// Errors building a filter.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// A run parameter has no value in this run (`$vcpu_fd` outside hvt).
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

/// What the `--dumpcore` rules (hvt) pin: the core file is created unnamed before the
/// filter, and at abort linked into the directory under a name the tender wrote into
/// a read-only page, so every argument of every call it makes then is fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DumpcoreParams {
    /// The directory the core goes into (`O_PATH`).
    pub dir_fd: i32,
    /// The unnamed core file (`O_TMPFILE`, write-only).
    pub core_fd: i32,
    /// Address of the NUL-terminated `/proc/self/fd/N` (N = `core_fd`), read-only.
    pub link_from: u64,
    /// Address of the NUL-terminated `core.solo5-hvt.PID`, read-only.
    pub name: u64,
    /// Offset of the core file's last page: no write starts beyond it.
    pub last_page_offset: u64,
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
    /// `--dumpcore` (hvt): the `for_each: dumpcore` rules exist only with it.
    pub dumpcore: Option<DumpcoreParams>,
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
    /// Syscall number, as `seccomp_data.nr` holds it.
    pub nr: u32,
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

impl Syscall {
    /// The number, from the target's libc (so build.rs never needs the host's).
    fn nr(self) -> u32 {
        match self {
            Self::Read => const { bpf::sys_nr(libc::SYS_read) },
            Self::Write => const { bpf::sys_nr(libc::SYS_write) },
            Self::Pread64 => const { bpf::sys_nr(libc::SYS_pread64) },
            Self::Pwrite64 => const { bpf::sys_nr(libc::SYS_pwrite64) },
            Self::ArchPrctl => const { bpf::sys_nr(libc::SYS_arch_prctl) },
            Self::ClockGettime => const { bpf::sys_nr(libc::SYS_clock_gettime) },
            Self::ExitGroup => const { bpf::sys_nr(libc::SYS_exit_group) },
            Self::EpollPwait => const { bpf::sys_nr(libc::SYS_epoll_pwait) },
            Self::TimerfdSettime => const { bpf::sys_nr(libc::SYS_timerfd_settime) },
            Self::Ioctl => const { bpf::sys_nr(libc::SYS_ioctl) },
            Self::RtSigreturn => const { bpf::sys_nr(libc::SYS_rt_sigreturn) },
            Self::Linkat => const { bpf::sys_nr(libc::SYS_linkat) },
        }
    }
}

/// The device a `for_each` rule is being expanded for.
#[derive(Clone, Copy)]
enum Device {
    None,
    Block(BlockParams),
    Net(i32),
    Dumpcore(DumpcoreParams),
}

/// Fds are non-negative ints; as syscall arguments the kernel sees them zero-extended.
fn fd_value(fd: i32) -> u64 {
    u64::from(fd.unsigned_abs())
}

impl Profile {
    /// The spt profile (`profiles/spt-x86_64.json`). Never fails now that build.rs
    /// validates it; the `Result` keeps the API of the run-time parser it replaced.
    pub fn spt() -> Self {
        prebuilt::SPT_X86_64
    }

    /// The hvt profile (`profiles/hvt-x86_64.json`); resolve it with
    /// [`Profile::resolve_hvt`], which also pins the vCPU fd.
    pub fn hvt() -> Self {
        prebuilt::HVT_X86_64
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
        for rule in self.rules {
            for device in devices(rule.for_each, run) {
                // No alternatives means the syscall is allowed with any arguments.
                let alternatives: &[&[ArgCheck]] = if rule.any_of.is_empty() { &[&[]] } else { rule.any_of };
                for checks in alternatives {
                    let checks = checks
                        .iter()
                        .map(|c| {
                            Ok(Check {
                                arg: c.arg,
                                op: c.op,
                                value: resolve_value(rule.syscall, c.value, run, vcpu_fd, device)?,
                            })
                        })
                        .collect::<Result<Vec<_>, ProfileError>>()?;
                    rules.push(ResolvedRule {
                        syscall: rule.syscall.name(),
                        nr: rule.syscall.nr(),
                        hypercall: rule.hypercall.to_owned(),
                        why: rule.why.to_owned(),
                        checks,
                    });
                }
            }
        }
        Ok(ResolvedFilter { rules })
    }
}

/// The devices a rule is repeated for: once, device-less, unless it has a `for_each`.
fn devices(for_each: Option<ForEach>, run: &RunParams) -> Vec<Device> {
    match for_each {
        None => vec![Device::None],
        Some(ForEach::Block) => run.blocks.iter().copied().map(Device::Block).collect(),
        Some(ForEach::Net) => run.nets.iter().copied().map(Device::Net).collect(),
        Some(ForEach::Dumpcore) => run.dumpcore.into_iter().map(Device::Dumpcore).collect(),
    }
}

fn resolve_value(
    syscall: Syscall,
    value: Value,
    run: &RunParams,
    vcpu_fd: Option<i32>,
    device: Device,
) -> Result<u64, ProfileError> {
    let param = match value {
        Value::Const(n) => return Ok(n),
        Value::Param(param) => param,
    };
    let unknown =
        || ProfileError::UnknownValue { syscall: syscall.name().to_owned(), value: format!("${}", param.name()) };
    let too_small =
        |b: BlockParams| ProfileError::BlockTooSmall { fd: b.fd, capacity: b.capacity, block_size: b.block_size };
    match (param, device) {
        (Param::EpollFd, _) => Ok(fd_value(run.epoll_fd)),
        (Param::TimerFd, _) => Ok(fd_value(run.timer_fd)),
        (Param::VcpuFd, _) => vcpu_fd.map(fd_value).ok_or_else(unknown),
        (Param::Fd, Device::Block(b)) => Ok(fd_value(b.fd)),
        (Param::Fd, Device::Net(fd)) => Ok(fd_value(fd)),
        (Param::BlockSize, Device::Block(b)) => Ok(b.block_size),
        (Param::LastBlockOffset, Device::Block(b)) => b.capacity.checked_sub(b.block_size).ok_or_else(|| too_small(b)),
        (Param::Capacity, Device::Block(b)) => Ok(b.capacity),
        (Param::LastByteOffset, Device::Block(b)) => b.capacity.checked_sub(1).ok_or_else(|| too_small(b)),
        (Param::DumpcoreDirFd, Device::Dumpcore(d)) => Ok(fd_value(d.dir_fd)),
        (Param::CoreFd, Device::Dumpcore(d)) => Ok(fd_value(d.core_fd)),
        (Param::CoreLinkFrom, Device::Dumpcore(d)) => Ok(d.link_from),
        (Param::CoreName, Device::Dumpcore(d)) => Ok(d.name),
        (Param::CoreLastPageOffset, Device::Dumpcore(d)) => Ok(d.last_page_offset),
        // build.rs admits device parameters only in rules repeated per device of their kind.
        _ => Err(unknown()),
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
            dumpcore: None,
        }
    }

    #[test]
    fn spt_profile_parses_and_pins_every_argument_the_spec_pins() {
        let filter = Profile::spt().resolve(&run()).unwrap();
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
        // docs/solo5-abi.md 5.5: pread64 iff fd == 4 && count == 512 && offset <= 4193792.
        let block = vec![eq(0, 4), eq(2, 512), Check { arg: 3, op: Op::Le, value: 4_193_792 }];
        assert_eq!(shape("pread64"), vec![block.clone()]);
        assert_eq!(shape("pwrite64"), vec![block]);
    }

    #[test]
    fn allowed_syscalls_are_exactly_the_nine_of_the_spec() {
        let filter = Profile::spt().resolve(&run()).unwrap();
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
    /// rule (docs/solo5-abi.md 5.4): a rule no hypercall needs is an unjustified hole.
    #[test]
    fn rules_and_hypercalls_match_one_to_one() {
        let profile = Profile::spt();
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
        let filter = Profile::spt().resolve(&RunParams { epoll_fd: 3, timer_fd: 4, ..Default::default() }).unwrap();
        let names = filter.syscalls();
        for forbidden in ["read", "pread64", "pwrite64"] {
            assert!(!names.contains(&forbidden), "{forbidden} allowed without a device");
        }
        assert_eq!(filter.rules.iter().filter(|r| r.syscall == "write").count(), 1);
    }

    #[test]
    fn compiles_for_the_maximum_device_count() {
        let blocks = (0..63).map(|i| BlockParams { fd: 10 + i, block_size: 512, capacity: 4096 }).collect();
        let run = RunParams { epoll_fd: 3, timer_fd: 4, blocks, nets: vec![], dumpcore: None };
        let bpf = Profile::spt().resolve(&run).unwrap().compile().unwrap();
        assert!(bpf.len() <= 4096, "{} instructions", bpf.len());
    }

    #[test]
    fn block_smaller_than_one_block_is_refused() {
        let run = RunParams { blocks: vec![BlockParams { fd: 4, block_size: 512, capacity: 256 }], ..run() };
        assert!(matches!(Profile::spt().resolve(&run), Err(ProfileError::BlockTooSmall { .. })));
    }

    #[test]
    fn hvt_profile_pins_every_rule_to_the_run() {
        let filter = Profile::hvt().resolve_hvt(&run(), 9).unwrap();
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
        assert!(Profile::hvt().rules.iter().all(|r| !r.why.trim().is_empty()));
        assert!(Profile::hvt().resolve_hvt(&run(), 9).unwrap().compile().is_ok());
    }

    #[test]
    fn dumpcore_rules_exist_only_with_dumpcore_and_pin_every_argument() {
        let without = Profile::hvt().resolve_hvt(&run(), 9).unwrap();
        assert!(!without.syscalls().contains(&"linkat"));
        assert!(!without.rules.iter().any(|r| r.checks.iter().any(|c| c.value == KVM_GET_SREGS)));
        let dumpcore = DumpcoreParams {
            dir_fd: 10,
            core_fd: 11,
            link_from: 0x7000_1000,
            name: 0x7000_1040,
            last_page_offset: 1 << 21,
        };
        let with = Profile::hvt().resolve_hvt(&RunParams { dumpcore: Some(dumpcore), ..run() }, 9).unwrap();
        let eq = |arg, value| Check { arg, op: Op::Eq, value };
        let le = |arg, value| Check { arg, op: Op::Le, value };
        let added: Vec<(&str, Vec<Check>)> =
            with.rules[without.rules.len()..].iter().map(|r| (r.syscall, r.checks.clone())).collect();
        assert_eq!(
            added,
            [
                ("ioctl", vec![eq(0, 9), eq(1, KVM_GET_SREGS)]),
                ("linkat", vec![eq(0, AT_FDCWD), eq(1, 0x7000_1000), eq(2, 10), eq(3, 0x7000_1040), eq(4, 0x400)]),
                ("pwrite64", vec![eq(0, 11), le(2, 4096), le(3, 1 << 21)]),
            ]
        );
        assert_eq!(with.rules[..without.rules.len()], without.rules[..]);
        assert!(with.compile().is_ok());
    }

    #[test]
    fn hvt_profile_needs_the_vcpu_fd() {
        assert!(matches!(Profile::hvt().resolve(&run()), Err(ProfileError::UnknownValue { .. })));
    }

    #[test]
    fn kvm_ioctl_numbers_follow_the_linux_encoding() {
        // _IOC(dir, type, nr, size) = dir << 30 | size << 16 | type << 8 | nr; KVMIO = 0xAE.
        const IOC_READ: u64 = 2;
        assert_eq!(KVM_RUN, 0xAE << 8 | 0x80);
        assert_eq!(KVM_GET_REGS, IOC_READ << 30 | 144 << 16 | 0xAE << 8 | 0x81);
        assert_eq!(KVM_GET_SREGS, IOC_READ << 30 | 312 << 16 | 0xAE << 8 | 0x83);
    }

    /// A rule of a one-rule profile, as JSON.
    fn one_rule(rule: &str) -> String {
        format!(r#"{{"comment":"","default_action":"kill_process","rules":[{rule}]}}"#)
    }

    /// The validation build.rs runs on every profile.
    fn validate(json: &str) -> Result<Profile, schema::SchemaError> {
        schema::parse("profiles/t.json", json)
    }

    #[test]
    fn typos_in_a_profile_are_errors() {
        let bad_syscall = one_rule(r#"{"syscall":"opne","hypercall":"x","why":"y","any_of":[]}"#);
        assert!(matches!(validate(&bad_syscall), Err(schema::SchemaError::UnknownSyscall { .. })));
        let bad_value = one_rule(
            r#"{"syscall":"write","hypercall":"x","why":"y","any_of":[[{"arg":0,"op":"eq","value":"$nope"}]]}"#,
        );
        assert!(matches!(validate(&bad_value), Err(schema::SchemaError::UnknownValue { .. })));
        let bad_constant = one_rule(
            r#"{"syscall":"write","hypercall":"x","why":"y","any_of":[[{"arg":0,"op":"eq","value":"STDOUT"}]]}"#,
        );
        assert!(matches!(validate(&bad_constant), Err(schema::SchemaError::UnknownValue { .. })));
        let bad_field = r#"{"comment":"","default_action":"kill_process","rules":[],"extra":1}"#;
        assert!(matches!(validate(bad_field), Err(schema::SchemaError::Malformed { .. })));
        let bad_action = r#"{"comment":"","default_action":"allow","rules":[]}"#;
        assert!(matches!(validate(bad_action), Err(schema::SchemaError::Malformed { .. })));
        let bad_rule_field = one_rule(r#"{"syscall":"write","hypercall":"x","why":"y","any_of":[],"for_eahc":"net"}"#);
        assert!(matches!(validate(&bad_rule_field), Err(schema::SchemaError::MalformedRule { .. })));
        let bad_op =
            one_rule(r#"{"syscall":"write","hypercall":"x","why":"y","any_of":[[{"arg":0,"op":"lt","value":1}]]}"#);
        assert!(matches!(validate(&bad_op), Err(schema::SchemaError::MalformedRule { .. })));
    }

    #[test]
    fn validation_errors_name_the_file_the_rule_and_the_fix() {
        let json = one_rule(r#"{"syscall":"write","hypercall":"x","why":"y","for_each":"nett","any_of":[]}"#);
        let msg = validate(&json).unwrap_err().to_string();
        assert!(msg.starts_with("profiles/t.json: rules[0] (`write`): unknown variant `nett`"), "{msg}");
        assert!(msg.contains(r#""for_each": "block"|"net"|"dumpcore""#), "{msg}");
        let json = one_rule(r#"{"syscall":"opne","hypercall":"x","why":"y","any_of":[]}"#);
        let msg = validate(&json).unwrap_err().to_string();
        assert!(msg.contains("rules[0]: unknown syscall `opne`; use one of read, write,"), "{msg}");
    }

    #[test]
    fn device_parameters_only_in_rules_repeated_for_their_device() {
        let rule = |for_each: &str, value: &str| {
            one_rule(&format!(
                r#"{{"syscall":"read","hypercall":"x","why":"y",{for_each}"any_of":[[{{"arg":0,"op":"eq","value":"{value}"}}]]}}"#
            ))
        };
        assert!(validate(&rule(r#""for_each":"net","#, "$fd")).is_ok());
        assert!(validate(&rule(r#""for_each":"block","#, "$last_block_offset")).is_ok());
        assert!(validate(&rule("", "$epoll_fd")).is_ok());
        let msg = validate(&rule("", "$fd")).unwrap_err().to_string();
        assert!(msg.contains("unknown value `$fd`") && !msg.contains("$block_size"), "{msg}");
        assert!(validate(&rule(r#""for_each":"net","#, "$block_size")).is_err());
        assert!(validate(&rule("", "$capacity")).is_err());
        assert!(validate(&rule(r#""for_each":"dumpcore","#, "$core_fd")).is_ok());
        assert!(validate(&rule(r#""for_each":"dumpcore","#, "$fd")).is_err());
        assert!(validate(&rule(r#""for_each":"block","#, "$core_name")).is_err());
        assert!(validate(&rule("", "$dumpcore_dir_fd")).is_err());
    }

    #[test]
    fn arguments_are_0_to_5() {
        let rule = |arg: u8| {
            one_rule(&format!(
                r#"{{"syscall":"write","hypercall":"x","why":"y","any_of":[[{{"arg":{arg},"op":"eq","value":1}}]]}}"#
            ))
        };
        assert!(validate(&rule(5)).is_ok());
        assert!(matches!(validate(&rule(6)), Err(schema::SchemaError::BadArg { arg: 6, .. })));
    }

    /// What a run uses is what the JSON says: build.rs's output against the same
    /// validation run here.
    #[test]
    fn prebuilt_profiles_are_the_json() {
        let spt = schema::parse("profiles/spt-x86_64.json", SPT_X86_64_JSON).unwrap();
        assert_eq!(spt, Profile::spt());
        assert_eq!(spt.name(), "spt-x86_64");
        let hvt = schema::parse("profiles/hvt-x86_64.json", HVT_X86_64_JSON).unwrap();
        assert_eq!(hvt, Profile::hvt());
        assert_eq!(hvt.name(), "hvt-x86_64");
    }

    #[test]
    fn named_constants_are_linux_values() {
        let libc_values = [
            ("CLOCK_REALTIME", libc::CLOCK_REALTIME as u64),
            ("CLOCK_MONOTONIC", libc::CLOCK_MONOTONIC as u64),
            ("STDOUT_FILENO", libc::STDOUT_FILENO as u64),
            ("STDERR_FILENO", libc::STDERR_FILENO as u64),
            ("AT_FDCWD", i64::from(libc::AT_FDCWD).cast_unsigned()),
            ("AT_SYMLINK_FOLLOW", libc::AT_SYMLINK_FOLLOW as u64),
        ];
        for (name, value) in libc_values {
            assert_eq!(schema::CONSTANTS.iter().find(|(c, _)| *c == name), Some(&(name, value)));
        }
    }

    #[test]
    fn syscall_numbers_are_x86_64s() {
        // A few fixed points of arch/x86/entry/syscalls/syscall_64.tbl.
        assert_eq!(Syscall::Read.nr(), 0);
        assert_eq!(Syscall::Ioctl.nr(), 16);
        assert_eq!(Syscall::ArchPrctl.nr(), 158);
        assert_eq!(Syscall::EpollPwait.nr(), 281);
        assert_eq!(Syscall::Linkat.nr(), 265);
    }
}
