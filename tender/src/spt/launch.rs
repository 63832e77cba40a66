//! The jump into an spt guest, with the tender leaving the address space first.
//!
//! After the jump no tender code runs again, so none of it needs to stay mapped. A
//! small launch block (the code below and the filter) is mapped on its own; jumping
//! there, the tender unmaps every other mapping but the guest region (its image, heap,
//! stack, libc's TLS, the vDSO), clears the FS base, installs the seccomp filter and
//! enters the guest. The guest then finds nothing of the tender to read or reuse (no
//! pointers, no code, no data), and the tender's own memory is given back: the
//! process is the guest region plus this block.

use std::ffi::c_void;
use std::num::NonZeroUsize;
use std::ptr::NonNull;

use nix::errno::Errno;
use nix::sys::mman::{mmap_anonymous, mprotect, MapFlags, ProtFlags};
use seccompiler::sock_filter;

use super::mm_map::BlockLayout;
use super::SptError;

/// The end of the user address space every mapping of ours lies below: 47 bits. (With
/// 5-level paging the kernel only maps above it on request, which nothing here makes.)
pub const USER_END: u64 = 0x7fff_ffff_f000;

/// At most three ranges to unmap: below, between and above the two kept ones.
pub type Gaps = ([(u64, u64); 3], usize);

/// The `(start, len)` ranges of `[0, USER_END)` outside both `keep` ranges
/// (`[start, end)`, page-aligned, disjoint).
pub fn gaps(mut keep: [(u64, u64); 2]) -> Gaps {
    keep.sort_unstable();
    let mut out = [(0, 0); 3];
    let mut n = 0;
    let mut from = 0;
    for (start, end) in keep {
        if start > from {
            out[n] = (from, start - from);
            n += 1;
        }
        from = from.max(end);
    }
    if from < USER_END {
        out[n] = (from, USER_END - from);
        n += 1;
    }
    (out, n)
}

// The launch code. Inputs: r8 = &sock_fprog, r9 = guest stack, r12 = &[(addr, len)],
// r13 = how many, r14 = boot info, r15 = guest entry. It uses no stack and no memory
// but the block it runs from (the kernel keeps every register across `syscall` but
// rax, rcx and r11). Position-independent: it is copied into the block.
std::arch::global_asm!(
    ".pushsection .text.tender_spt_launch, \"ax\", @progbits",
    ".balign 16",
    ".globl tender_spt_launch_start",
    ".hidden tender_spt_launch_start",
    "tender_spt_launch_start:",
    "    test r13, r13",
    "    jz 2f",
    "1:  mov eax, 11", // munmap(addr, len)
    "    mov rdi, [r12]",
    "    mov rsi, [r12 + 8]",
    "    syscall",
    "    test rax, rax",
    "    jnz 9f",
    "    add r12, 16",
    "    dec r13",
    "    jnz 1b",
    "2:  mov eax, 158", // arch_prctl(ARCH_SET_FS, 0): no pointer into the old TLS
    "    mov edi, 0x1002",
    "    xor esi, esi",
    "    syscall",
    "    test rax, rax",
    "    jnz 9f",
    "    mov eax, 317", // seccomp(SECCOMP_SET_MODE_FILTER, 0, fprog)
    "    mov edi, 1",
    "    xor esi, esi",
    "    mov rdx, r8",
    "    syscall",
    "    test rax, rax",
    "    jnz 9f",
    "    mov rsp, r9",
    "    mov rdi, r14",
    "    xor eax, eax",
    "    xor ebx, ebx",
    "    xor ecx, ecx",
    "    xor edx, edx",
    "    xor esi, esi",
    "    xor ebp, ebp",
    "    xor r8d, r8d",
    "    xor r9d, r9d",
    "    xor r10d, r10d",
    "    xor r11d, r11d",
    "    xor r12d, r12d",
    "    xor r13d, r13d",
    "    xor r14d, r14d",
    "    pxor xmm0, xmm0",
    "    pxor xmm1, xmm1",
    "    pxor xmm2, xmm2",
    "    pxor xmm3, xmm3",
    "    pxor xmm4, xmm4",
    "    pxor xmm5, xmm5",
    "    pxor xmm6, xmm6",
    "    pxor xmm7, xmm7",
    "    pxor xmm8, xmm8",
    "    pxor xmm9, xmm9",
    "    pxor xmm10, xmm10",
    "    pxor xmm11, xmm11",
    "    pxor xmm12, xmm12",
    "    pxor xmm13, xmm13",
    "    pxor xmm14, xmm14",
    "    pxor xmm15, xmm15",
    "    jmp r15",
    // The tender is (partly) gone: say so with what is left, and exit 1 like any
    // other set-up failure.
    "9:  mov eax, 1", // write(2, msg, len)
    "    mov edi, 2",
    "    lea rsi, [rip + 8f]",
    "    lea rdx, [rip + 7f]",
    "    sub rdx, rsi",
    "    syscall",
    "    mov eax, 231", // exit_group(1)
    "    mov edi, 1",
    "    syscall",
    "    ud2",
    "8:  .ascii \"tender: entering the guest failed: could not unmap the tender or install the seccomp filter\\n\"",
    "7:",
    ".globl tender_spt_launch_end",
    ".hidden tender_spt_launch_end",
    "tender_spt_launch_end:",
    ".popsection",
);

extern "C" {
    static tender_spt_launch_start: u8;
    static tender_spt_launch_end: u8;
}

/// The launch code's bytes.
fn launch_code() -> &'static [u8] {
    // SAFETY: both symbols are labels in the one `global_asm!` block above, start before
    // end, in a read-only executable section of this binary that is never unmapped
    // while the tender runs Rust code.
    unsafe {
        let start = &raw const tender_spt_launch_start;
        let end = &raw const tender_spt_launch_end;
        std::slice::from_raw_parts(start, end.offset_from_unsigned(start))
    }
}

/// `struct sock_fprog`.
#[repr(C)]
struct SockFprog {
    len: u16,
    filter: *const sock_filter,
}

const FPROG_AT: usize = 0;
const GAPS_AT: usize = 16;
const INSNS_AT: usize = 64;

/// The launch block: code, then `sock_fprog`, the ranges to unmap, the BPF program and
/// a copy of the command line; read-only and executable once built. Never unmapped:
/// the guest keeps it.
#[derive(Debug)]
pub struct LaunchBlock {
    base: NonNull<c_void>,
    data: usize,
    unmap_count: usize,
    /// Where its code, data and copy of the command line lie (`/proc/PID/cmdline` is
    /// read from the process's memory, and the original is on the stack being unmapped).
    layout: BlockLayout,
}

impl LaunchBlock {
    /// Maps and fills the block for a guest region `[guest_start, guest_end)`;
    /// `cmdline` is the tender's own, NUL-terminated arguments.
    pub fn new(bpf: &[sock_filter], cmdline: &[u8], guest_start: u64, guest_end: u64) -> Result<Self, SptError> {
        let code = launch_code();
        let data = code.len().next_multiple_of(16);
        let filter_len = u16::try_from(bpf.len()).map_err(|_| SptError::FilterTooLong(bpf.len()))?;
        let cmdline_at = data + INSNS_AT + std::mem::size_of_val(bpf);
        let len = (cmdline_at + cmdline.len()).next_multiple_of(page_size());
        let len = NonZeroUsize::new(len).expect("the block holds code");
        let launch = |what, source| SptError::Launch { what, source };
        // SAFETY: a fresh anonymous mapping at an address the kernel picks replaces
        // nothing; it is owned by the returned block.
        let base =
            unsafe { mmap_anonymous(None, len, ProtFlags::PROT_READ | ProtFlags::PROT_WRITE, MapFlags::MAP_PRIVATE) }
                .map_err(|e| launch("mapping the launch block", e))?;
        let start = base.as_ptr() as u64;
        let (unmap, unmap_count) = gaps([(guest_start, guest_end), (start, start + len.get() as u64)]);
        // SAFETY: the block is `len` bytes, mapped read-write just above and referenced
        // by nothing else; every write below ends before `len` (computed from the same
        // sizes), at 8-aligned offsets of a page-aligned base.
        unsafe {
            let p = base.as_ptr().cast::<u8>();
            p.copy_from_nonoverlapping(code.as_ptr(), code.len());
            let insns = p.add(data + INSNS_AT).cast::<sock_filter>();
            insns.copy_from_nonoverlapping(bpf.as_ptr(), bpf.len());
            p.add(data + FPROG_AT).cast::<SockFprog>().write(SockFprog { len: filter_len, filter: insns });
            p.add(data + GAPS_AT).cast::<[(u64, u64); 3]>().write(unmap);
            p.add(cmdline_at).copy_from_nonoverlapping(cmdline.as_ptr(), cmdline.len());
        }
        // SAFETY: as above, the range is this block's own mapping.
        unsafe { mprotect(base, len.get(), ProtFlags::PROT_READ | ProtFlags::PROT_EXEC) }
            .map_err(|e| launch("protecting the launch block", e))?;
        let end = start + (cmdline_at + cmdline.len()) as u64;
        let layout = BlockLayout {
            code: (start, start + code.len() as u64),
            data: (start + data as u64, end),
            cmdline: (start + cmdline_at as u64, end),
        };
        Ok(Self { base, data, unmap_count, layout })
    }

    /// Points `/proc/PID/cmdline` (what `ps` and `pgrep -f` show) at the block's copy.
    /// Where the kernel cannot (no CONFIG_CHECKPOINT_RESTORE), `ps` shows `[tender]`
    /// once the guest runs; that costs nothing else, so the run goes on.
    pub fn keep_cmdline_visible(&self) {
        let (start, end) = self.layout.cmdline;
        if start != end {
            let _ = super::mm_map::set_cmdline(self.layout);
        }
    }

    /// Jumps to the launch code, which unmaps the tender, installs the filter and
    /// enters the guest at `entry` with `rsp = stack` and `rdi = boot_info`.
    ///
    /// # Safety
    /// `entry` must be the guest's loaded, executable entry point, `stack` the top of
    /// mapped, writable guest memory with `stack + 8` 16-byte aligned, `boot_info` the
    /// guest's boot info, all inside the guest region this block was built for. No new
    /// privileges must be set (for the filter), rseq unregistered (its area is
    /// unmapped) and nothing owned by the caller may need dropping: this never returns.
    pub unsafe fn enter(self, entry: u64, stack: u64, boot_info: u64) -> ! {
        let data = self.base.as_ptr() as usize + self.data;
        // SAFETY: the block holds the launch code at its base and the fprog and ranges
        // at `data`, read-only from here on; the caller guarantees the guest addresses.
        // `noreturn`: no code of ours (no drop, no epilogue) runs after the jump.
        unsafe {
            std::arch::asm!(
                "jmp {code}",
                code = in(reg) self.base.as_ptr(),
                in("r8") data + FPROG_AT,
                in("r9") stack,
                in("r12") data + GAPS_AT,
                in("r13") self.unmap_count,
                in("r14") boot_info,
                in("r15") entry,
                options(noreturn),
            )
        }
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096)
}

extern "C" {
    /// glibc (2.35+): where the rseq area sits relative to the thread pointer, and
    /// its size (0 when glibc did not register one).
    static __rseq_offset: isize;
    static __rseq_size: u32;
}

/// `RSEQ_SIG` on x86.
const RSEQ_SIG: u32 = 0x5305_3053;
const RSEQ_FLAG_UNREGISTER: u32 = 1;

/// Unregisters glibc's rseq area: the kernel writes the CPU number into it on every
/// preemption, and with the tender's TLS unmapped that write would kill the guest with
/// SIGSEGV. The registered length is not exported (glibc 2.36 registers 32 bytes and
/// says 20), and the kernel refuses any other, so the plausible ones are tried.
pub fn unregister_rseq() -> Result<(), SptError> {
    // SAFETY: plain reads of two constants glibc sets before main.
    let (offset, size) = unsafe { (__rseq_offset, __rseq_size) };
    if size == 0 {
        return Ok(());
    }
    let thread_pointer: usize;
    // SAFETY: on x86_64 glibc keeps the TCB's own address at fs:0; reading it has no
    // side effects.
    unsafe { std::arch::asm!("mov {}, fs:0", out(reg) thread_pointer, options(nostack, readonly, preserves_flags)) };
    let area = thread_pointer.wrapping_add_signed(offset);
    let mut last = Errno::EINVAL;
    for len in [32, size, size.next_multiple_of(32)] {
        // SAFETY: unregistering only tells the kernel to stop writing to `area`; it
        // touches no memory of ours.
        let rc = unsafe { libc::syscall(libc::SYS_rseq, area, len, RSEQ_FLAG_UNREGISTER, RSEQ_SIG) };
        match Errno::result(rc) {
            Ok(_) | Err(Errno::ENOSYS) => return Ok(()),
            Err(Errno::EINVAL) => last = Errno::EINVAL,
            Err(e) => last = e,
        }
    }
    Err(SptError::Launch { what: "unregistering glibc's rseq area", source: last })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn covered(keep: [(u64, u64); 2]) -> Vec<(u64, u64)> {
        let (g, n) = gaps(keep);
        let mut all: Vec<(u64, u64)> = g[..n].iter().map(|&(s, l)| (s, s + l)).collect();
        all.extend(keep);
        all.sort_unstable();
        all
    }

    #[test]
    fn gaps_cover_everything_but_the_kept_ranges() {
        let guest = (0x1_0000, 0x200_0000);
        for block in [(0x7f00_0000_0000, 0x7f00_0000_2000), (0x300_0000, 0x300_1000), (0x1000, 0x2000)] {
            for keep in [[guest, block], [block, guest]] {
                let all = covered(keep);
                assert_eq!(all.first().unwrap().0, 0, "{keep:x?}");
                assert_eq!(all.last().unwrap().1, USER_END, "{keep:x?}");
                for w in all.windows(2) {
                    assert_eq!(w[0].1, w[1].0, "contiguous and disjoint: {all:x?}");
                }
                let (g, n) = gaps(keep);
                assert!(g[..n].iter().all(|&(_, l)| l > 0));
            }
        }
    }

    #[test]
    fn adjacent_ranges_leave_no_empty_gap() {
        let (g, n) = gaps([(0, 0x2000), (0x2000, USER_END)]);
        assert_eq!(n, 0, "{g:x?}");
        let (g, n) = gaps([(0x1_0000, 0x20_0000), (0x20_0000, 0x20_1000)]);
        assert_eq!(&g[..n], &[(0, 0x1_0000), (0x20_1000, USER_END - 0x20_1000)]);
    }

    #[test]
    fn launch_code_is_copied_whole() {
        let code = launch_code();
        assert!(code.len() > 64 && code.len() < 1024, "{} bytes", code.len());
        assert!(code.ends_with(b"seccomp filter\n"), "the message ends the block");
    }
}
