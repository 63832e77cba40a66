//! `cargo xtask boot-order`: which functions of the tender an spt boot runs, in the
//! order it first runs them, written to `tender/boot-order.txt` for the linker.
//!
//! Why: an spt boot is dominated by page faults and page-table work on this kind of
//! host, and a boot touches ~150 functions scattered over the whole ~900 KB of the
//! tender's text (glibc, std, ours): 13 of its 14 fault-around windows, ~200 pages
//! mapped and then unmapped again. `tender/build.rs` hands this list to lld
//! (`--symbol-ordering-file`), which places them first and together (5 windows).
//!
//! How: the boot is single-stepped under ptrace (`tender --mem=2 hello.spt`, ~100 000
//! instructions, ~30 s) and each instruction pointer inside the tender's image is
//! looked up in its symbol table. The names are the mangled ones lld matches: they
//! stay valid across edits of function bodies (cargo's hashes depend on the package,
//! not its code) and go stale with a toolchain or dependency bump, a renamed
//! function, or a new one on the boot path. Stale entries only cost speed (the boot
//! benchmark shows it); run this again then.

use std::fmt;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use nix::sys::ptrace;
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use object::{Object, ObjectSymbol, SymbolKind};

/// What can go wrong while tracing a boot.
#[derive(Debug)]
pub enum BootOrderError {
    /// Reading the binary or `/proc`.
    Io(&'static str, io::Error),
    /// A ptrace or wait call.
    Trace(&'static str, nix::Error),
    /// The binary's symbol table.
    Elf(object::Error),
    /// The traced boot did not end with status 0.
    Boot(String),
}

impl fmt::Display for BootOrderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(what, e) => write!(f, "{what}: {e}"),
            Self::Trace(what, e) => write!(f, "{what}: {e}"),
            Self::Elf(e) => write!(f, "reading the tender's symbols: {e}"),
            Self::Boot(why) => write!(f, "the traced boot failed: {why}"),
        }
    }
}

impl std::error::Error for BootOrderError {}

/// The function symbols of an executable: `(start, end, name)`, sorted by start.
#[derive(Debug)]
pub struct FunctionTable(Vec<(u64, u64, String)>);

impl FunctionTable {
    /// Reads the functions (text symbols with a size) of the ELF file `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<Self, BootOrderError> {
        let file = object::File::parse(bytes).map_err(BootOrderError::Elf)?;
        let mut functions: Vec<(u64, u64, String)> = file
            .symbols()
            .filter(|s| s.kind() == SymbolKind::Text && s.size() > 0)
            .filter_map(|s| Some((s.address(), s.address() + s.size(), s.name().ok()?.to_owned())))
            .collect();
        functions.sort_unstable();
        Ok(Self(functions))
    }

    /// The function holding address `addr` (link-time address).
    pub fn lookup(&self, addr: u64) -> Option<&str> {
        let i = self.0.partition_point(|&(start, _, _)| start <= addr).checked_sub(1)?;
        let (_, end, name) = &self.0[i];
        (addr < *end).then_some(name.as_str())
    }
}

/// Where the executable `exe` was loaded in process `pid`: the load bias (a static
/// PIE is linked at 0) and the end of its last mapping.
fn image_range(pid: Pid, exe: &Path) -> Result<(u64, u64), BootOrderError> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .map_err(|e| BootOrderError::Io("reading the traced tender's maps", e))?;
    let exe = exe.to_str().unwrap_or_default();
    let mut range: Option<(u64, u64)> = None;
    for line in maps.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 6 || fields[5] != exe {
            continue;
        }
        let (start, end) = fields[0].split_once('-').unwrap_or_default();
        let parse = |hex: &str| u64::from_str_radix(hex, 16).unwrap_or_default();
        let bias = parse(start) - parse(fields[2]);
        let (lo, hi) = range.unwrap_or((u64::MAX, 0));
        range = Some((lo.min(bias), hi.max(parse(end))));
    }
    range.ok_or_else(|| BootOrderError::Boot(format!("{exe} is not mapped in the traced process")))
}

/// Single-steps `tender ARGS` and returns the tender's functions in first-run order.
pub fn trace(tender: &Path, args: &[&str]) -> Result<Vec<String>, BootOrderError> {
    let tender = tender.canonicalize().map_err(|e| BootOrderError::Io("finding the tender", e))?;
    let bytes = std::fs::read(&tender).map_err(|e| BootOrderError::Io("reading the tender", e))?;
    let functions = FunctionTable::parse(&bytes)?;
    let mut cmd = Command::new(&tender);
    // No environment: `cargo run` sets LD_LIBRARY_PATH, which sends glibc's start-up
    // down paths a normal boot does not take.
    cmd.args(args).env_clear().stdin(Stdio::null()).stdout(Stdio::null());
    // SAFETY: PTRACE_TRACEME is one async-signal-safe syscall between fork and exec.
    unsafe { cmd.pre_exec(|| ptrace::traceme().map_err(io::Error::from)) };
    let child = cmd.spawn().map_err(|e| BootOrderError::Io("starting the tender", e))?;
    let pid = Pid::from_raw(child.id() as i32);
    let wait = || waitpid(pid, None).map_err(|e| BootOrderError::Trace("waitpid", e));
    // Stopped at the exec. If this process dies mid-trace, the tender dies too.
    wait()?;
    ptrace::setoptions(pid, ptrace::Options::PTRACE_O_EXITKILL)
        .map_err(|e| BootOrderError::Trace("PTRACE_SETOPTIONS", e))?;
    let (bias, end) = image_range(pid, &tender)?;

    let mut order = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut signal: Option<Signal> = None;
    loop {
        let rip = ptrace::getregs(pid).map_err(|e| BootOrderError::Trace("PTRACE_GETREGS", e))?.rip;
        if (bias..end).contains(&rip) {
            if let Some(name) = functions.lookup(rip - bias) {
                if seen.insert(name) {
                    order.push(name.to_owned());
                }
            }
        }
        ptrace::step(pid, signal.take()).map_err(|e| BootOrderError::Trace("PTRACE_SINGLESTEP", e))?;
        match wait()? {
            WaitStatus::Exited(_, 0) => return Ok(order),
            WaitStatus::Exited(_, status) => return Err(BootOrderError::Boot(format!("exit status {status}"))),
            WaitStatus::Signaled(_, sig, _) => return Err(BootOrderError::Boot(format!("killed by {sig}"))),
            WaitStatus::Stopped(_, Signal::SIGTRAP) => {}
            // Anything else is the tender's own signal: deliver it with the next step.
            WaitStatus::Stopped(_, sig) => signal = Some(sig),
            _ => {}
        }
    }
}

/// The file `tender/build.rs` passes to lld: a comment header, then one name per line
/// (lld drops `#` comments).
pub fn render(order: &[String]) -> String {
    let mut out = String::from(
        "# Functions an spt boot runs, in first-run order: lld places them first and together.\n\
         # Generated by `cargo xtask boot-order`; see xtask/src/boot_order.rs.\n",
    );
    for name in order {
        out.push_str(name);
        out.push('\n');
    }
    out
}

/// The names of an order file (`#` comments and blank lines dropped).
pub fn parse(text: &str) -> Vec<&str> {
    text.lines().map(|l| l.split('#').next().unwrap_or_default().trim()).filter(|l| !l.is_empty()).collect()
}

/// How many of `names` the executable `bytes` defines as functions.
pub fn present(bytes: &[u8], names: &[&str]) -> Result<usize, BootOrderError> {
    let table = FunctionTable::parse(bytes)?;
    let defined: std::collections::HashSet<&str> = table.0.iter().map(|(_, _, n)| n.as_str()).collect();
    Ok(names.iter().filter(|n| defined.contains(*n)).count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_finds_the_function_holding_an_address() {
        let table = FunctionTable(vec![(0x10, 0x20, "a".into()), (0x20, 0x28, "b".into()), (0x40, 0x50, "c".into())]);
        assert_eq!(table.lookup(0x10), Some("a"));
        assert_eq!(table.lookup(0x1f), Some("a"));
        assert_eq!(table.lookup(0x20), Some("b"));
        assert_eq!(table.lookup(0x28), None, "between functions");
        assert_eq!(table.lookup(0x0f), None, "before the first");
        assert_eq!(table.lookup(0x50), None, "after the last");
    }

    #[test]
    fn this_executable_has_its_own_functions() {
        let exe = std::env::current_exe().unwrap();
        let table = FunctionTable::parse(&std::fs::read(exe).unwrap()).unwrap();
        assert!(table.0.iter().any(|(_, _, n)| n.contains("lookup_finds_the_function")), "symbols are read");
        assert!(table.0.windows(2).all(|w| w[0].0 <= w[1].0), "sorted");
    }

    #[test]
    fn the_order_file_is_one_name_per_line_after_comments() {
        let text = render(&["_start".into(), "main".into()]);
        assert!(text.starts_with('#'));
        assert_eq!(parse(&text), ["_start", "main"]);
        assert_eq!(parse("a # why\n\n  b\n#c\n"), ["a", "b"]);
    }

    #[test]
    fn present_counts_the_names_this_executable_defines() {
        let bytes = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let table = FunctionTable::parse(&bytes).unwrap();
        let own = table.0.iter().find(|(_, _, n)| n.contains("present_counts")).unwrap().2.clone();
        assert_eq!(present(&bytes, &[own.as_str(), "no_such_function_anywhere"]).unwrap(), 1);
    }
}
