//! Keeping `/proc/PID/cmdline` readable once the tender's stack is unmapped.
//!
//! The kernel reads a process's command line from its memory (`arg_start..arg_end`,
//! originally on the stack). The launch block holds a copy, and `PR_SET_MM_MAP` (which
//! needs no capability, unlike `PR_SET_MM_ARG_START`) points the kernel at it, so `ps`
//! and `pgrep -f` keep showing the tender's arguments while the guest runs. The
//! environment's bounds stay on the unmapped stack: `/proc/PID/environ` reads empty.

use nix::errno::Errno;

/// `struct prctl_mm_map` (linux/prctl.h).
#[repr(C)]
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PrctlMmMap {
    pub start_code: u64,
    pub end_code: u64,
    pub start_data: u64,
    pub end_data: u64,
    pub start_brk: u64,
    pub brk: u64,
    pub start_stack: u64,
    pub arg_start: u64,
    pub arg_end: u64,
    pub env_start: u64,
    pub env_end: u64,
    pub auxv: u64,
    pub auxv_size: u32,
    pub exe_fd: u32,
}

/// `PR_SET_MM_MAP`.
const PR_SET_MM_MAP: libc::c_ulong = 14;

/// The process's current layout from `/proc/self/stat` (fields 26–28 and 45–51) and
/// `brk`, with the auxiliary vector and executable left as they are.
pub fn parse_stat(stat: &str, brk: u64) -> Option<PrctlMmMap> {
    // The name (field 2) is in parentheses and may hold spaces or ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<u64> = rest.split_ascii_whitespace().skip(1).map(|f| f.parse().unwrap_or(0)).collect();
    // `fields[0]` is field 4 (ppid).
    let field = |n: usize| fields.get(n - 4).copied();
    Some(PrctlMmMap {
        start_code: field(26)?,
        end_code: field(27)?,
        start_stack: field(28)?,
        start_data: field(45)?,
        end_data: field(46)?,
        start_brk: field(47)?,
        brk,
        arg_start: field(48)?,
        arg_end: field(49)?,
        env_start: field(50)?,
        env_end: field(51)?,
        auxv: 0,
        auxv_size: 0,
        exe_fd: u32::MAX,
    })
}

/// Points the kernel's command-line bounds at `[start, end)`. Errors are the kernel's
/// (`EINVAL` without CONFIG_CHECKPOINT_RESTORE; the caller decides what they cost).
pub fn set_cmdline(start: u64, end: u64) -> Result<(), Errno> {
    let stat =
        std::fs::read_to_string("/proc/self/stat").map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(0)))?;
    // SAFETY: sbrk(0) only reports the current break.
    let brk = unsafe { libc::sbrk(0) } as u64;
    let mut map = parse_stat(&stat, brk).ok_or(Errno::EINVAL)?;
    map.arg_start = start;
    map.arg_end = end;
    // SAFETY: the kernel copies `map` (of the size given) and only changes the
    // addresses it reports for this process; ours lie in mapped memory.
    let rc =
        unsafe { libc::prctl(libc::PR_SET_MM, PR_SET_MM_MAP, &raw const map, std::mem::size_of::<PrctlMmMap>(), 0) };
    Errno::result(rc).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_land_in_their_places() {
        // A real line (Linux 6.x, 52 fields) with a name holding ") (".
        let stat = "2562 (ten) (der) S 1 2562 1 34816 2562 4194560 92 0 0 0 0 0 0 0 20 0 1 0 \
                    123 4000000 200 18446744073709551615 4194304 4915200 140722000000000 0 0 0 0 \
                    0 0 0 0 0 17 1 0 0 0 0 0 5000000 5100000 6000000 140722000001000 \
                    140722000001040 140722000001040 140722000002000 0";
        let map = parse_stat(stat, 6100000).unwrap();
        assert_eq!(
            map,
            PrctlMmMap {
                start_code: 4194304,
                end_code: 4915200,
                start_stack: 140722000000000,
                start_data: 5000000,
                end_data: 5100000,
                start_brk: 6000000,
                brk: 6100000,
                arg_start: 140722000001000,
                arg_end: 140722000001040,
                env_start: 140722000001040,
                env_end: 140722000002000,
                auxv: 0,
                auxv_size: 0,
                exe_fd: u32::MAX,
            }
        );
        assert_eq!(std::mem::size_of::<PrctlMmMap>(), 104);
    }

    #[test]
    fn short_or_garbled_stat_is_refused() {
        assert_eq!(parse_stat("1 (x) S 0 0", 0), None);
        assert_eq!(parse_stat("no parenthesis", 0), None);
    }

    #[test]
    fn own_stat_parses() {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        let map = parse_stat(&stat, 0).unwrap();
        assert!(map.start_code < map.end_code && map.arg_start < map.arg_end, "{map:x?}");
    }
}
