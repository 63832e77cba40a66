//! The command line, compatible with solo5-spt/solo5-hvt v0.12.1 (docs/solo5-abi.md §4).
//!
//! Hand-parsed rather than with clap: Solo5's grammar puts the device name inside the
//! option (`--block:NAME=PATH`), stops at the first non-option (the guest) and hands
//! everything after it to the guest untouched, none of which clap expresses.
//! Parsing makes no syscalls; checking names against the manifest happens later.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

use hypercall_abi::CMDLINE_SIZE;

use crate::spec::{self, BlockSpec, NetSpec, RunSpec, TapSpec};
pub use crate::spec::{DEFAULT_BLOCK_SIZE, DEFAULT_MEM_MIB, MAX_MEM_MIB};

/// What the user asked for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    /// Run a guest.
    Run(RunSpec),
    /// Print what a guest image contains.
    Inspect(PathBuf),
    /// `--audit`: attach the devices and print the exact filter a run would install,
    /// without running the guest.
    Audit(RunSpec),
    /// `--help`.
    Help,
    /// `--version`.
    Version,
}

/// Bad command line. Each message names the argument and how to fix it; where Solo5's
/// tenders have a message for the same error, ours starts with Solo5's words, so scripts
/// that look for them keep working.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CliError {
    /// No guest given.
    #[error("missing GUEST operand (the unikernel ELF to run)")]
    MissingGuest,
    /// Unknown option.
    #[error("invalid option: `{0}'")]
    InvalidOption(String),
    /// `--dumpcore=` without a directory.
    #[error("malformed option `{0}': expected --dumpcore=DIR (the directory the guest's core is written into)")]
    MalformedDumpcore(String),
    /// `--mem` value bad.
    #[error("malformed argument to --mem: `{0}' (give MiB as an integer between 1 and {MAX_MEM_MIB})")]
    MalformedMem(String),
    /// Device option without `NAME=VALUE`.
    #[error("malformed option `{0}': expected {1}")]
    MalformedDeviceOption(String, &'static str),
    /// Device name not `[A-Za-z0-9]{1,67}`.
    #[error(
        "invalid device name `{0}' in `{1}': names are 1 to 67 characters of [A-Za-z0-9], as in the guest's manifest"
    )]
    InvalidDeviceName(String, String),
    /// Same device given twice.
    #[error("device `{0}' is given more than once (`{1}')")]
    DuplicateDevice(String, String),
    /// Bad sector size.
    #[error(
        "Block size must be a multiple of 2 greater than or equal 512: `{0}' (use a power of two from 512 to 32768)"
    )]
    BadBlockSize(String),
    /// Bad MAC.
    #[error("malformed MAC address in `{0}': expected six hex bytes xx:xx:xx:xx:xx:xx, unicast")]
    BadMac(String),
    /// Sector size or MAC for a device that was not attached.
    #[error("`{0}' configures device `{1}', which no `{2}:{1}=...' option attaches")]
    OrphanDeviceSetting(String, String, &'static str),
    /// Command line too long.
    #[error("Guest command line too long (max={max} characters, got {0})", max = CMDLINE_SIZE - 1)]
    CmdlineTooLong(usize),
    /// Non-UTF-8 argument.
    #[error("argument is not valid UTF-8: {0:?}")]
    NotUtf8(OsString),
    /// An option that may be given once, given again.
    #[error("`{0}' is given more than once (give it once)")]
    Repeated(String),
    /// `--help` or `--version` with other arguments.
    #[error("`{0}' takes no other arguments (got `{1}')")]
    StrayArguments(&'static str, String),
    /// `inspect` without exactly one guest.
    #[error("usage: tender inspect GUEST")]
    InspectUsage,
}

/// The usage text (`tender --help`).
pub fn usage() -> String {
    format!(
        "\
usage: tender [OPTIONS] [--] GUEST [GUEST ARGS...]
       tender inspect GUEST

Runs a Solo5 (v0.12) unikernel. The backend comes from the guest's ABI note:
spt guests run in this process behind a seccomp filter, hvt guests in a KVM VM.

Options:
  --mem=MB                         guest memory in MiB (default {DEFAULT_MEM_MIB})
  --block:NAME=PATH                attach file or block device PATH as block device NAME
  --block-sector-size:NAME=N       block size of NAME: power of two >= 512 (default {DEFAULT_BLOCK_SIZE})
  --net:NAME=IFACE                 attach tap interface IFACE as network device NAME
  --net-mac:NAME=xx:xx:xx:xx:xx:xx MAC of NAME (default: random, locally administered)
  --x-exec-heap                    spt: make guest memory executable (unsafe; for JITs)
  --dumpcore=DIR                   hvt: when the guest aborts or faults, write its core
                                   to DIR/core.solo5-hvt.PID (solo5-hvt-debug's option)
  --audit                          attach the devices, print the seccomp filter this run
                                   would install (rules, pinned arguments, BPF length), exit
  --help                           print this text
  --version                        print the version and supported ABI

NAME is a device the guest declares in its manifest (`tender inspect GUEST`
lists them); every declared device must be attached.
"
    )
}

/// Parses `args` (without the program name).
pub fn parse<I>(args: I) -> Result<Command, CliError>
where
    I: IntoIterator<Item = OsString>,
{
    let args: Vec<String> =
        args.into_iter().map(|a| a.into_string().map_err(CliError::NotUtf8)).collect::<Result<_, _>>()?;
    if args.first().map(String::as_str) == Some("inspect") {
        return match args.as_slice() {
            [_, guest] => Ok(Command::Inspect(PathBuf::from(guest))),
            _ => Err(CliError::InspectUsage),
        };
    }

    let mut mem_bytes = DEFAULT_MEM_MIB << 20;
    let mut blocks = BTreeMap::new();
    let mut nets = BTreeMap::new();
    let mut block_sizes = BTreeMap::new();
    let mut macs = BTreeMap::new();
    let mut mem_given = false;
    let mut x_exec_heap = false;
    let mut dumpcore = None;
    let mut audit = false;
    let alone = |flag: &'static str, command: Command| match args.as_slice() {
        [_] => Ok(command),
        _ => Err(CliError::StrayArguments(flag, args.join(" "))),
    };

    let mut rest = args.iter();
    let guest = loop {
        let Some(arg) = rest.next() else { return Err(CliError::MissingGuest) };
        if arg == "--" {
            break rest.next().ok_or(CliError::MissingGuest)?;
        }
        if !arg.starts_with('-') {
            break arg;
        }
        match arg.as_str() {
            "--help" | "-h" => return alone("--help", Command::Help),
            "--version" => return alone("--version", Command::Version),
            "--x-exec-heap" => x_exec_heap = true,
            "--audit" => audit = true,
            _ => {
                if let Some(value) = arg.strip_prefix("--mem=") {
                    if std::mem::replace(&mut mem_given, true) {
                        return Err(CliError::Repeated(arg.clone()));
                    }
                    mem_bytes = parse_mem(value)?;
                } else if let Some(dir) = arg.strip_prefix("--dumpcore=") {
                    if dir.is_empty() {
                        return Err(CliError::MalformedDumpcore(arg.clone()));
                    }
                    if dumpcore.replace(PathBuf::from(dir)).is_some() {
                        return Err(CliError::Repeated(arg.clone()));
                    }
                } else if let Some(spec) = arg.strip_prefix("--block:") {
                    let (name, path) = device_spec(arg, spec, "--block:NAME=PATH")?;
                    insert_once(&mut blocks, name, PathBuf::from(path), arg)?;
                } else if let Some(spec) = arg.strip_prefix("--block-sector-size:") {
                    let (name, size) = device_spec(arg, spec, "--block-sector-size:NAME=N")?;
                    insert_once(&mut block_sizes, name, parse_block_size(size)?, arg)?;
                } else if let Some(spec) = arg.strip_prefix("--net:") {
                    let (name, iface) = device_spec(arg, spec, "--net:NAME=IFACE")?;
                    insert_once(&mut nets, name, iface.to_owned(), arg)?;
                } else if let Some(spec) = arg.strip_prefix("--net-mac:") {
                    let (name, mac) = device_spec(arg, spec, "--net-mac:NAME=xx:xx:xx:xx:xx:xx")?;
                    let mac = parse_mac(mac).ok_or_else(|| CliError::BadMac(arg.clone()))?;
                    insert_once(&mut macs, name, mac, arg)?;
                } else {
                    return Err(CliError::InvalidOption(arg.clone()));
                }
            }
        }
    };

    let cmdline = rest.map(String::as_str).collect::<Vec<_>>().join(" ");
    if !spec::cmdline_fits(cmdline.len()) {
        return Err(CliError::CmdlineTooLong(cmdline.len()));
    }

    let mut blocks_out = BTreeMap::new();
    for (name, path) in blocks {
        let block_size = block_sizes.remove(&name).unwrap_or(DEFAULT_BLOCK_SIZE);
        blocks_out.insert(name, BlockSpec { path, block_size });
    }
    if let Some((name, _)) = block_sizes.into_iter().next() {
        return Err(CliError::OrphanDeviceSetting(format!("--block-sector-size:{name}"), name, "--block"));
    }
    let mut nets_out = BTreeMap::new();
    for (name, iface) in nets {
        let mac = macs.remove(&name);
        nets_out.insert(name, NetSpec { tap: TapSpec::Named(iface), mac });
    }
    if let Some((name, _)) = macs.into_iter().next() {
        return Err(CliError::OrphanDeviceSetting(format!("--net-mac:{name}"), name, "--net"));
    }

    let run = RunSpec {
        mem_bytes,
        blocks: blocks_out,
        nets: nets_out,
        x_exec_heap,
        dumpcore,
        guest: PathBuf::from(guest),
        cmdline,
        title: None,
    };
    Ok(if audit { Command::Audit(run) } else { Command::Run(run) })
}

fn parse_mem(value: &str) -> Result<u64, CliError> {
    let malformed = || CliError::MalformedMem(value.to_owned());
    let mib: u64 = value.parse().map_err(|_| malformed())?;
    if mib == 0 || mib > MAX_MEM_MIB {
        return Err(malformed());
    }
    // Cannot overflow: mib <= MAX_MEM_MIB.
    Ok(mib << 20)
}

/// Splits `NAME=VALUE` and checks the name.
fn device_spec<'a>(arg: &str, spec: &'a str, form: &'static str) -> Result<(String, &'a str), CliError> {
    let (name, value) = spec.split_once('=').ok_or_else(|| CliError::MalformedDeviceOption(arg.to_owned(), form))?;
    if value.is_empty() {
        return Err(CliError::MalformedDeviceOption(arg.to_owned(), form));
    }
    if !spec::valid_device_name(name) {
        return Err(CliError::InvalidDeviceName(name.to_owned(), arg.to_owned()));
    }
    Ok((name.to_owned(), value))
}

fn insert_once<V>(map: &mut BTreeMap<String, V>, name: String, value: V, arg: &str) -> Result<(), CliError> {
    if map.contains_key(&name) {
        return Err(CliError::DuplicateDevice(name, arg.to_owned()));
    }
    map.insert(name, value);
    Ok(())
}

fn parse_block_size(value: &str) -> Result<u16, CliError> {
    match value.parse::<u16>() {
        Ok(n) if spec::valid_block_size(n) => Ok(n),
        _ => Err(CliError::BadBlockSize(value.to_owned())),
    }
}

fn parse_mac(value: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = value.split(':');
    for byte in &mut mac {
        let part = parts.next()?;
        if part.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    if parts.next().is_some() || !spec::valid_mac(&mac) {
        return None;
    }
    Some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_strs(args: &[&str]) -> Result<Command, CliError> {
        parse(args.iter().map(OsString::from))
    }

    fn run(args: &[&str]) -> RunSpec {
        match parse_strs(args) {
            Ok(Command::Run(r)) => r,
            other => panic!("{args:?} gave {other:?}"),
        }
    }

    #[test]
    fn solo5_test_runner_forms() {
        let r = run(&["--mem=2", "guest.spt", "Hello_Solo5"]);
        assert_eq!(r.mem_bytes, 2 << 20);
        assert_eq!(r.guest, PathBuf::from("guest.spt"));
        assert_eq!(r.cmdline, "Hello_Solo5");
        let r = run(&["--mem=2", "--block:storage=disk.img", "--", "guest.spt"]);
        assert_eq!(r.blocks["storage"], BlockSpec { path: "disk.img".into(), block_size: 512 });
        assert_eq!(r.cmdline, "");
    }

    #[test]
    fn guest_arguments_are_untouched_even_if_they_look_like_options() {
        let r = run(&["g.spt", "--solo5:quiet", "--mem=5", "a", "b"]);
        assert_eq!(r.mem_bytes, DEFAULT_MEM_MIB << 20);
        assert_eq!(r.cmdline, "--solo5:quiet --mem=5 a b");
    }

    #[test]
    fn device_options() {
        let r = run(&[
            "--block:disk0=/x",
            "--block-sector-size:disk0=4096",
            "--net:service0=tap0",
            "--net-mac:service0=02:00:00:00:00:01",
            "g.spt",
        ]);
        assert_eq!(r.blocks["disk0"].block_size, 4096);
        assert_eq!(r.nets["service0"], NetSpec { tap: TapSpec::Named("tap0".into()), mac: Some([2, 0, 0, 0, 0, 1]) });
    }

    #[test]
    fn audit_takes_the_run_options() {
        match parse_strs(&["--audit", "--block:disk=/x", "g.spt", "a"]) {
            Ok(Command::Audit(r)) => {
                assert_eq!(r.blocks["disk"].path, PathBuf::from("/x"));
                assert_eq!(r.cmdline, "a");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn dumpcore_takes_a_directory_once() {
        assert_eq!(run(&["--dumpcore=/tmp/cores", "g.hvt"]).dumpcore, Some(PathBuf::from("/tmp/cores")));
        assert_eq!(run(&["g.hvt"]).dumpcore, None);
        assert_eq!(
            parse_strs(&["--dumpcore=/a", "--dumpcore=/b", "g"]),
            Err(CliError::Repeated("--dumpcore=/b".into()))
        );
        assert_eq!(parse_strs(&["--dumpcore=", "g"]), Err(CliError::MalformedDumpcore("--dumpcore=".into())));
        assert_eq!(parse_strs(&["--dumpcore", "g"]), Err(CliError::InvalidOption("--dumpcore".into())));
    }

    #[test]
    fn help_version_inspect() {
        assert_eq!(parse_strs(&["--help"]), Ok(Command::Help));
        assert_eq!(parse_strs(&["--version"]), Ok(Command::Version));
        assert_eq!(parse_strs(&["inspect", "g.spt"]), Ok(Command::Inspect("g.spt".into())));
        assert_eq!(parse_strs(&["inspect"]), Err(CliError::InspectUsage));
        assert_eq!(parse_strs(&["-h"]), Ok(Command::Help));
        assert!(matches!(parse_strs(&["--help", "g.spt"]), Err(CliError::StrayArguments("--help", _))));
        assert!(matches!(parse_strs(&["--mem=2", "--version"]), Err(CliError::StrayArguments("--version", _))));
    }

    #[test]
    fn bad_input_names_the_culprit() {
        assert_eq!(parse_strs(&[]), Err(CliError::MissingGuest));
        assert_eq!(parse_strs(&["--mem=2"]), Err(CliError::MissingGuest));
        assert_eq!(parse_strs(&["--"]), Err(CliError::MissingGuest));
        assert_eq!(parse_strs(&["--bogus", "g"]), Err(CliError::InvalidOption("--bogus".into())));
        for mem in ["0", "x", "", "-1", "65537", "18446744073709551615", "17592186044416"] {
            assert_eq!(parse_strs(&[&format!("--mem={mem}"), "g"]), Err(CliError::MalformedMem(mem.into())));
        }
        assert!(matches!(parse_strs(&["--block:storage", "g"]), Err(CliError::MalformedDeviceOption(..))));
        assert!(matches!(parse_strs(&["--block:storage=", "g"]), Err(CliError::MalformedDeviceOption(..))));
        assert!(matches!(parse_strs(&["--block:st-orage=x", "g"]), Err(CliError::InvalidDeviceName(..))));
        assert!(matches!(parse_strs(&["--block:=x", "g"]), Err(CliError::InvalidDeviceName(..))));
        let long = format!("--block:{}=x", "a".repeat(68));
        assert!(matches!(parse_strs(&[&long, "g"]), Err(CliError::InvalidDeviceName(..))));
        assert!(matches!(parse_strs(&["--block:a=x", "--block:a=y", "g"]), Err(CliError::DuplicateDevice(..))));
        assert_eq!(parse_strs(&["--mem=2", "--mem=4", "g"]), Err(CliError::Repeated("--mem=4".into())));
        for size in ["256", "521", "0", "65536", "x"] {
            let arg = format!("--block-sector-size:a={size}");
            assert_eq!(parse_strs(&["--block:a=x", &arg, "g"]), Err(CliError::BadBlockSize(size.into())));
        }
        assert!(matches!(parse_strs(&["--block-sector-size:a=4096", "g"]), Err(CliError::OrphanDeviceSetting(..))));
        assert!(matches!(parse_strs(&["--net-mac:a=02:00:00:00:00:01", "g"]), Err(CliError::OrphanDeviceSetting(..))));
        for mac in [
            "01:00:00:00:00:01",
            "02:00:00:00:00",
            "02:00:00:00:00:01:02",
            "zz:00:00:00:00:01",
            "00:00:00:00:00:00",
            "2:0:0:0:0:1",
        ] {
            let arg = format!("--net-mac:a={mac}");
            assert!(matches!(parse_strs(&["--net:a=tap0", &arg, "g"]), Err(CliError::BadMac(_))), "{mac}");
        }
    }

    #[test]
    fn command_line_limit_is_8191_characters() {
        let ok = "x".repeat(CMDLINE_SIZE - 1);
        assert_eq!(run(&["g", &ok]).cmdline.len(), 8191);
        let too_long = "x".repeat(CMDLINE_SIZE);
        assert_eq!(parse_strs(&["g", &too_long]), Err(CliError::CmdlineTooLong(8192)));
        // Joined with spaces: two words of 4095 plus a space is 8191.
        let half = "y".repeat(4095);
        assert_eq!(run(&["g", &half, &half]).cmdline.len(), 8191);
    }
}
