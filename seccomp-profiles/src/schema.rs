//! The JSON schema of `profiles/*.json` and its validation into a [`Profile`].
//!
//! Compiled into build.rs (`#[path]`), which turns every profile into Rust data, and
//! into the library's unit tests, which check the same validation and that the
//! generated data equals the JSON. Never part of the run path: serde stays out of
//! the tender.

use serde::Deserialize;

use crate::model::{
    ArgCheck, ForEach, Op, Param, Profile, Rule, Syscall, Value, AT_FDCWD, KVM_GET_REGS, KVM_GET_SREGS, KVM_RUN,
};

/// Syscalls a profile may name (every [`Syscall`]).
const SYSCALLS: [Syscall; 12] = [
    Syscall::Read,
    Syscall::Write,
    Syscall::Pread64,
    Syscall::Pwrite64,
    Syscall::ArchPrctl,
    Syscall::ClockGettime,
    Syscall::ExitGroup,
    Syscall::EpollPwait,
    Syscall::TimerfdSettime,
    Syscall::Ioctl,
    Syscall::RtSigreturn,
    Syscall::Linkat,
];

/// Run parameters a profile may use as `$name` (every [`Param`]).
const PARAMS: [Param; 13] = [
    Param::EpollFd,
    Param::TimerFd,
    Param::VcpuFd,
    Param::Fd,
    Param::BlockSize,
    Param::LastBlockOffset,
    Param::Capacity,
    Param::LastByteOffset,
    Param::DumpcoreDirFd,
    Param::CoreFd,
    Param::CoreLinkFrom,
    Param::CoreName,
    Param::CoreLastPageOffset,
];

/// Named constants a profile may use as values. Linux's values, the same on every
/// architecture (the library's tests compare them with libc).
pub const CONSTANTS: [(&str, u64); 10] = [
    ("CLOCK_REALTIME", 0),
    ("CLOCK_MONOTONIC", 1),
    ("STDOUT_FILENO", 1),
    ("STDERR_FILENO", 2),
    // asm/prctl.h; libc does not export it.
    ("ARCH_SET_FS", 0x1002),
    ("KVM_RUN", KVM_RUN),
    ("KVM_GET_REGS", KVM_GET_REGS),
    ("KVM_GET_SREGS", KVM_GET_SREGS),
    ("AT_FDCWD", AT_FDCWD),
    ("AT_SYMLINK_FOLLOW", 0x400),
];

/// A profile that fails validation; each names the file, the rule and the fix.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The file is not a profile object.
    #[error("{file}: {source}; a profile is {{\"comment\", \"default_action\": \"kill_process\", \"rules\": [...]}}")]
    Malformed {
        /// The profile file.
        file: String,
        /// What serde said.
        source: serde_json::Error,
    },
    /// A rule does not match the rule schema (typo in a field name, wrong type...).
    #[error(
        "{file}: rules[{index}] (`{syscall}`): {source}; a rule has \"syscall\", \"hypercall\", \"why\", \
         \"any_of\": [[{{\"arg\", \"op\": \"eq\"|\"le\", \"value\"}}]] and optionally \"for_each\": \"block\"|\"net\"|\"dumpcore\""
    )]
    MalformedRule {
        /// The profile file.
        file: String,
        /// The rule's index in `rules`.
        index: usize,
        /// The rule's `syscall`, if readable.
        syscall: String,
        /// What serde said.
        source: serde_json::Error,
    },
    /// A rule names a syscall this crate has no number for.
    #[error("{file}: rules[{index}]: unknown syscall `{name}`; use one of {known}, or add it to `Syscall`")]
    UnknownSyscall {
        /// The profile file.
        file: String,
        /// The rule's index in `rules`.
        index: usize,
        /// The unknown name.
        name: String,
        /// The names allowed.
        known: String,
    },
    /// A value is neither a number, a known constant nor a parameter valid in its rule.
    #[error("{file}: rules[{index}] (`{syscall}`): unknown value `{value}`; use a number or one of {known}")]
    UnknownValue {
        /// The profile file.
        file: String,
        /// The rule's index in `rules`.
        index: usize,
        /// The rule's syscall.
        syscall: String,
        /// The unresolved value.
        value: String,
        /// The constants and parameters valid in this rule.
        known: String,
    },
    /// An argument index outside the six syscall arguments.
    #[error("{file}: rules[{index}] (`{syscall}`): no argument {arg}; syscall arguments are 0-5")]
    BadArg {
        /// The profile file.
        file: String,
        /// The rule's index in `rules`.
        index: usize,
        /// The rule's syscall.
        syscall: String,
        /// The argument index.
        arg: u8,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileJson {
    #[allow(dead_code)]
    comment: String,
    #[allow(dead_code)]
    default_action: DefaultActionJson,
    // Parsed one by one, so an error can name its rule.
    rules: Vec<serde_json::Value>,
}

/// The only default action: anything not allowed kills the process.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum DefaultActionJson {
    KillProcess,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleJson {
    syscall: String,
    hypercall: String,
    why: String,
    #[serde(default)]
    for_each: Option<ForEachJson>,
    any_of: Vec<Vec<CheckJson>>,
}

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ForEachJson {
    Block,
    Net,
    Dumpcore,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckJson {
    arg: u8,
    op: OpJson,
    value: ValueJson,
}

#[derive(Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
enum OpJson {
    Eq,
    Le,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ValueJson {
    Number(u64),
    Name(String),
}

/// Where a rule sits, for error messages.
struct At<'a> {
    file: &'a str,
    index: usize,
    syscall: &'a str,
}

/// Parses and validates one profile. `file` names it in errors; the profile's name
/// is the file's stem (`profiles/spt-x86_64.json` → `spt-x86_64`).
///
/// The result borrows nothing: its strings and slices are leaked, which suits the
/// two callers (build.rs and tests), both short-lived, and gives exactly the
/// `'static` types the library embeds, so the two compare with `==`.
pub fn parse(file: &str, json: &str) -> Result<Profile, SchemaError> {
    let profile: ProfileJson =
        serde_json::from_str(json).map_err(|source| SchemaError::Malformed { file: file.to_owned(), source })?;
    let rules = profile
        .rules
        .into_iter()
        .enumerate()
        .map(|(index, rule)| parse_rule(file, index, rule))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Profile { name: leak(profile_name(file)), rules: rules.leak() })
}

fn profile_name(file: &str) -> &str {
    let base = file.rsplit('/').next().unwrap_or(file);
    base.strip_suffix(".json").unwrap_or(base)
}

fn parse_rule(file: &str, index: usize, rule: serde_json::Value) -> Result<Rule, SchemaError> {
    let syscall_field = rule.get("syscall").and_then(serde_json::Value::as_str).unwrap_or("?").to_owned();
    let rule: RuleJson = serde_json::from_value(rule).map_err(|source| SchemaError::MalformedRule {
        file: file.to_owned(),
        index,
        syscall: syscall_field,
        source,
    })?;
    let syscall =
        SYSCALLS.into_iter().find(|s| s.name() == rule.syscall).ok_or_else(|| SchemaError::UnknownSyscall {
            file: file.to_owned(),
            index,
            name: rule.syscall.clone(),
            known: SYSCALLS.map(Syscall::name).join(", "),
        })?;
    let for_each = rule.for_each.map(|f| match f {
        ForEachJson::Block => ForEach::Block,
        ForEachJson::Net => ForEach::Net,
        ForEachJson::Dumpcore => ForEach::Dumpcore,
    });
    let at = At { file, index, syscall: &rule.syscall };
    let any_of = rule
        .any_of
        .iter()
        .map(|checks| {
            let checks = checks.iter().map(|c| parse_check(&at, for_each, c)).collect::<Result<Vec<_>, _>>()?;
            let checks: &'static [ArgCheck] = checks.leak();
            Ok(checks)
        })
        .collect::<Result<Vec<_>, SchemaError>>()?;
    Ok(Rule { syscall, hypercall: leak(&rule.hypercall), why: leak(&rule.why), for_each, any_of: any_of.leak() })
}

fn parse_check(at: &At<'_>, for_each: Option<ForEach>, check: &CheckJson) -> Result<ArgCheck, SchemaError> {
    if check.arg > 5 {
        return Err(SchemaError::BadArg {
            file: at.file.to_owned(),
            index: at.index,
            syscall: at.syscall.to_owned(),
            arg: check.arg,
        });
    }
    let op = match check.op {
        OpJson::Eq => Op::Eq,
        OpJson::Le => Op::Le,
    };
    Ok(ArgCheck { arg: check.arg, op, value: parse_value(at, for_each, &check.value)? })
}

fn parse_value(at: &At<'_>, for_each: Option<ForEach>, value: &ValueJson) -> Result<Value, SchemaError> {
    let name = match value {
        ValueJson::Number(n) => return Ok(Value::Const(*n)),
        ValueJson::Name(name) => name.as_str(),
    };
    let found = match name.strip_prefix('$') {
        None => CONSTANTS.iter().find(|(c, _)| *c == name).map(|&(_, v)| Value::Const(v)),
        Some(param) => PARAMS.into_iter().find(|p| p.name() == param && param_valid_in(*p, for_each)).map(Value::Param),
    };
    found.ok_or_else(|| SchemaError::UnknownValue {
        file: at.file.to_owned(),
        index: at.index,
        syscall: at.syscall.to_owned(),
        value: name.to_owned(),
        known: known_values(for_each),
    })
}

/// Device parameters exist only in rules repeated per device of their kind: anywhere
/// else they would have no value in any run.
fn param_valid_in(param: Param, for_each: Option<ForEach>) -> bool {
    match param {
        Param::EpollFd | Param::TimerFd | Param::VcpuFd => true,
        Param::Fd => matches!(for_each, Some(ForEach::Block | ForEach::Net)),
        Param::BlockSize | Param::LastBlockOffset | Param::Capacity | Param::LastByteOffset => {
            for_each == Some(ForEach::Block)
        }
        Param::DumpcoreDirFd | Param::CoreFd | Param::CoreLinkFrom | Param::CoreName | Param::CoreLastPageOffset => {
            for_each == Some(ForEach::Dumpcore)
        }
    }
}

/// The constants and parameters a rule with this `for_each` may use.
fn known_values(for_each: Option<ForEach>) -> String {
    let constants = CONSTANTS.iter().map(|(c, _)| (*c).to_owned());
    let params = PARAMS.into_iter().filter(|p| param_valid_in(*p, for_each)).map(|p| format!("${}", p.name()));
    constants.chain(params).collect::<Vec<_>>().join(", ")
}

fn leak(s: &str) -> &'static str {
    s.to_owned().leak()
}
