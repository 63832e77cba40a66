//! Keeping `/proc/PID/cmdline` readable once the tender's stack is unmapped.
//!
//! The kernel reads a process's command line from its memory (`arg_start..arg_end`,
//! originally on the stack). Guest memory holds a copy (after the launch data, see `launch`), and
//! `PR_SET_MM_MAP` (which needs no capability, unlike `PR_SET_MM_ARG_START`) points the
//! kernel at it, so `ps` and `pgrep -f` keep showing the tender's arguments while the
//! guest runs.
//!
//! `PR_SET_MM_MAP` replaces every address the kernel reports for the process, so the
//! others are set to describe what is left after the jump, known without asking the
//! kernel (reading `/proc/self/stat` for the old values was a tenth of a boot):
//! code is the launch code's page, data the copy of the arguments, the environment is
//! empty (it is unmapped),
//! the break stays where it is (`brk` before the jump keeps working) and the stack is
//! the tender's own, which goes away. Only `/proc/PID/stat` shows the difference.

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

/// What is left of the tender after the jump, as `[start, end)` address ranges.
#[derive(Clone, Copy, Debug)]
pub struct BlockLayout {
    /// The launch code's page.
    pub code: (u64, u64),
    /// What the kernel reports as data (the copy of the arguments).
    pub data: (u64, u64),
    /// The command line copy, NUL-terminated arguments.
    pub cmdline: (u64, u64),
}

impl PrctlMmMap {
    /// The layout the kernel should report once the guest runs: `block`'s code, data
    /// and command line, no environment, the break at `brk` and the stack at `stack`.
    /// Satisfies the kernel's checks (ordered pairs; every address in user space is
    /// the caller's to ensure: they are all of live mappings).
    pub fn after_launch(block: BlockLayout, brk: u64, stack: u64) -> Self {
        let (arg_start, arg_end) = block.cmdline;
        Self {
            start_code: block.code.0,
            end_code: block.code.1,
            start_data: block.data.0,
            end_data: block.data.1,
            start_brk: brk,
            brk,
            start_stack: stack,
            arg_start,
            arg_end,
            env_start: arg_end,
            env_end: arg_end,
            // Zero: keep the auxiliary vector; -1: keep /proc/PID/exe.
            auxv: 0,
            auxv_size: 0,
            exe_fd: u32::MAX,
        }
    }
}

/// Points the kernel's command-line bounds at the copy (and its other bounds
/// as [`PrctlMmMap::after_launch`] says). Errors are the kernel's (`EINVAL` without
/// CONFIG_CHECKPOINT_RESTORE; the caller decides what they cost).
pub fn set_cmdline(block: BlockLayout) -> Result<(), Errno> {
    // SAFETY: sbrk(0) only reports the current break.
    let brk = unsafe { libc::sbrk(0) } as u64;
    let stack_marker = 0u8;
    let map = PrctlMmMap::after_launch(block, brk, (&raw const stack_marker) as u64);
    // SAFETY: the kernel copies `map` (of the size given) and only changes the
    // addresses it reports for this process; ours lie in mapped memory.
    let rc =
        unsafe { libc::prctl(libc::PR_SET_MM, PR_SET_MM_MAP, &raw const map, std::mem::size_of::<PrctlMmMap>(), 0) };
    Errno::result(rc).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLOCK: BlockLayout = BlockLayout {
        code: (0x7f00_0000_0000, 0x7f00_0000_0200),
        data: (0x7f00_0000_0200, 0x7f00_0000_0700),
        cmdline: (0x7f00_0000_0500, 0x7f00_0000_0700),
    };

    #[test]
    fn the_layout_describes_the_block_and_an_empty_environment() {
        let map = PrctlMmMap::after_launch(BLOCK, 0x5555_0000_1000, 0x7ffc_0000_0000);
        assert_eq!(
            map,
            PrctlMmMap {
                start_code: 0x7f00_0000_0000,
                end_code: 0x7f00_0000_0200,
                start_data: 0x7f00_0000_0200,
                end_data: 0x7f00_0000_0700,
                start_brk: 0x5555_0000_1000,
                brk: 0x5555_0000_1000,
                start_stack: 0x7ffc_0000_0000,
                arg_start: 0x7f00_0000_0500,
                arg_end: 0x7f00_0000_0700,
                env_start: 0x7f00_0000_0700,
                env_end: 0x7f00_0000_0700,
                auxv: 0,
                auxv_size: 0,
                exe_fd: u32::MAX,
            }
        );
        assert_eq!(std::mem::size_of::<PrctlMmMap>(), 104);
    }

    /// The kernel's own checks (kernel/sys.c `validate_prctl_map_addr`): ordered pairs,
    /// and no data limit exceeded by brk - start_brk + end_data - start_data.
    #[test]
    fn the_layout_passes_the_kernels_order_checks() {
        let map = PrctlMmMap::after_launch(BLOCK, 0x5555_0000_1000, 0x7ffc_0000_0000);
        assert!(map.start_code < map.end_code);
        assert!(map.start_data <= map.end_data);
        assert!(map.start_brk <= map.brk);
        assert!(map.arg_start <= map.arg_end);
        assert!(map.env_start <= map.env_end);
        assert!((map.brk - map.start_brk) + (map.end_data - map.start_data) < 4096);
    }
}
