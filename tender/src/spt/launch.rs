//! The jump into an spt guest, with the tender leaving the address space first.
//!
//! After the jump no tender code runs again, so none of it needs to stay mapped. The
//! launch code below is copied to a page of its own; jumping there, it unmaps every
//! other mapping but the guest region (the tender's image, heap, stack, libc's TLS, the
//! vDSO), clears the FS base, installs the seccomp filter, puts the extended register
//! state (x87, SSE, AVX, AVX-512) in its initial state, wipes its data and enters the
//! guest with every general register zero but the ABI's.
//!
//! Its data (the filter, the ranges to unmap, the XSAVE image, its error message) lie
//! in a scratch area of guest memory right after the guest's command line (in the
//! pages the boot info already touched, so it costs no page fault), zeroed before the
//! jump. What the guest can find of the tender afterwards is the one
//! code page: position-independent instructions and nothing else, no data, pointers,
//! arguments or messages. `/proc/PID/cmdline` (`ps`) reads a copy of the tender's
//! arguments right after the scratch area, also in guest memory: the guest may rewrite
//! it, as any process may rewrite its own command line.

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

/// Longest copy of the arguments kept for `ps` (longer lists are cut at a word).
pub const TITLE_MAX: usize = 0x1_0000;

// Offsets in the scratch area.
const FPROG_AT: usize = 0;
const GAPS_AT: usize = 16;
/// The XSAVE image: 64-byte aligned, legacy region (512) + header (64).
const XSAVE_AT: usize = 64;
const XSAVE_LEN: usize = 576;
/// The error message: its length (8 bytes), then its text.
const MSG_AT: usize = XSAVE_AT + XSAVE_LEN;
const INSNS_AT: usize = 1024;
/// `MXCSR` in the XSAVE legacy region, and its initial value (all exceptions masked).
const MXCSR_AT: usize = 24;
const MXCSR_INIT: u32 = 0x1f80;
/// XSAVE components put in their initial state: x87, SSE, AVX, AVX-512 (opmask,
/// ZMM_Hi256, Hi16_ZMM). Not PKRU (the kernel's default stays), nor AMX (its XFD
/// would fault).
const XSTATE_INIT_MASK: u32 = 0b1110_0111;

const MESSAGE: &[u8] = b"tender: entering the guest failed: could not unmap the tender or install the seccomp filter\n";

// The launch code. Inputs: r8 = &sock_fprog, r9 = guest stack, r10 = the XSAVE image (0
// without XSAVE), r12 = &[(addr, len)], r13 = how many, r14 = boot info, r15 = guest
// entry, rbx = scratch area, rbp = its length. It uses no stack and touches no memory
// but the scratch area (the kernel keeps every register across `syscall` but rax, rcx
// and r11). Position-independent: it is copied into a page of its own.
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
    "    cld",
    "    test r10, r10",
    "    jz 3f",
    "    mov eax, {mask}", // xrstor with XSTATE_BV = 0: the components' initial state
    "    xor edx, edx",
    "    xrstor64 [r10]",
    "3:  mov rdi, rbx", // wipe the scratch area: filter, ranges, image, message
    "    mov rcx, rbp",
    "    xor eax, eax",
    "    rep stosb",
    "    mov rsp, r9",
    "    mov rdi, r14",
    "    test r10, r10",
    "    jnz 4f",
    "    pxor xmm0, xmm0", // no XSAVE: at least the SSE registers are clean
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
    "4:  xor eax, eax",
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
    "    push 0x202", // RFLAGS as at execve: IF and the reserved bit only
    "    popfq",
    "    jmp r15",
    // The tender is (partly) gone: say so with what is left, and exit 1 like any
    // other set-up failure.
    "9:  mov eax, 1", // write(2, msg, len)
    "    mov edi, 2",
    "    lea rsi, [rbx + {msg} + 8]",
    "    mov rdx, [rbx + {msg}]",
    "    syscall",
    "    mov eax, 231", // exit_group(1)
    "    mov edi, 1",
    "    syscall",
    "    ud2",
    ".globl tender_spt_launch_end",
    ".hidden tender_spt_launch_end",
    "tender_spt_launch_end:",
    ".popsection",
    mask = const XSTATE_INIT_MASK,
    msg = const MSG_AT,
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

/// The launch data, as it is written into the guest's scratch area.
#[derive(Debug)]
pub struct LaunchData {
    /// Guest address of the scratch area (64-byte aligned).
    addr: u64,
    bytes: Vec<u8>,
    unmap_count: usize,
    xsave: bool,
}

impl LaunchData {
    /// The data for a guest region `[guest_start, guest_end)`, the launch code at
    /// `code` and the filter `bpf`, to be written at guest address `after` rounded up to
    /// 64 bytes (the XSAVE image's alignment).
    pub fn new(
        bpf: &[sock_filter],
        guest_start: u64,
        guest_end: u64,
        code: (u64, u64),
        after: u64,
    ) -> Result<Self, SptError> {
        let addr = after.next_multiple_of(64);
        let filter_len = u16::try_from(bpf.len()).map_err(|_| SptError::FilterTooLong(bpf.len()))?;
        let (unmap, unmap_count) = gaps([(guest_start, guest_end), code]);
        let mut bytes = vec![0u8; INSNS_AT + std::mem::size_of_val(bpf)];
        let put = |bytes: &mut Vec<u8>, at: usize, value: &[u8]| bytes[at..at + value.len()].copy_from_slice(value);
        put(&mut bytes, FPROG_AT, &filter_len.to_ne_bytes());
        put(&mut bytes, FPROG_AT + 8, &(addr + INSNS_AT as u64).to_ne_bytes());
        for (i, (addr, len)) in unmap.iter().enumerate() {
            put(&mut bytes, GAPS_AT + 16 * i, &addr.to_ne_bytes());
            put(&mut bytes, GAPS_AT + 16 * i + 8, &len.to_ne_bytes());
        }
        put(&mut bytes, XSAVE_AT + MXCSR_AT, &MXCSR_INIT.to_ne_bytes());
        put(&mut bytes, MSG_AT, &(MESSAGE.len() as u64).to_ne_bytes());
        put(&mut bytes, MSG_AT + 8, MESSAGE);
        for (i, insn) in bpf.iter().enumerate() {
            let at = INSNS_AT + 8 * i;
            put(&mut bytes, at, &insn.code.to_ne_bytes());
            put(&mut bytes, at + 2, &[insn.jt, insn.jf]);
            put(&mut bytes, at + 4, &insn.k.to_ne_bytes());
        }
        // `struct sock_fprog` is 16 bytes (u16 length, padding, pointer).
        const { assert!(FPROG_AT + 16 <= GAPS_AT && GAPS_AT + 48 <= XSAVE_AT) };
        const { assert!(XSAVE_AT.is_multiple_of(64) && MSG_AT + 8 + MESSAGE.len() <= INSNS_AT) };
        Ok(Self { addr, bytes, unmap_count, xsave: xsave_in_use() })
    }

    /// Where to write [`Self::bytes`] in guest memory.
    pub fn addr(&self) -> u64 {
        self.addr
    }

    /// The bytes to write at [`Self::addr`].
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Where the data ends: the copy of the arguments for `ps` may go there.
    pub fn end(&self) -> u64 {
        self.addr + self.bytes.len() as u64
    }
}

/// The page holding the launch code (read-only and executable once built). Never
/// unmapped: the guest keeps it.
#[derive(Debug)]
pub struct LaunchCode {
    base: NonNull<c_void>,
    len: usize,
}

impl LaunchCode {
    /// Maps a page (or as many as the code needs) and copies the launch code into it.
    pub fn new() -> Result<Self, SptError> {
        let code = launch_code();
        let len = code.len().next_multiple_of(page_size());
        let len = NonZeroUsize::new(len).expect("there is launch code");
        let launch = |what, source| SptError::Launch { what, source };
        // SAFETY: a fresh anonymous mapping at an address the kernel picks replaces
        // nothing; it is owned by the returned value.
        let base =
            unsafe { mmap_anonymous(None, len, ProtFlags::PROT_READ | ProtFlags::PROT_WRITE, MapFlags::MAP_PRIVATE) }
                .map_err(|e| launch("mapping the launch code", e))?;
        // SAFETY: the mapping is `len` >= code.len() bytes, read-write, referenced by
        // nothing else.
        unsafe { base.as_ptr().cast::<u8>().copy_from_nonoverlapping(code.as_ptr(), code.len()) };
        // SAFETY: as above, the range is this value's own mapping.
        unsafe { mprotect(base, len.get(), ProtFlags::PROT_READ | ProtFlags::PROT_EXEC) }
            .map_err(|e| launch("protecting the launch code", e))?;
        Ok(Self { base, len: len.get() })
    }

    /// `[start, end)` of the page(s).
    pub fn range(&self) -> (u64, u64) {
        let start = self.base.as_ptr() as u64;
        (start, start + self.len as u64)
    }

    /// Points `/proc/PID/cmdline` (what `ps` and `pgrep -f` show) at the copy of the
    /// arguments at guest address `title_addr` (`title_len` bytes). Where the kernel
    /// cannot (no CONFIG_CHECKPOINT_RESTORE), `ps` shows `[tender]` once the guest runs;
    /// that costs nothing else, so the run goes on.
    pub fn keep_cmdline_visible(&self, title_addr: u64, title_len: usize) {
        let code = self.range();
        let title = (title_addr, title_addr + title_len as u64);
        if title_len > 0 {
            let _ = super::mm_map::set_cmdline(BlockLayout { code, data: title, cmdline: title });
        }
    }

    /// Jumps to the launch code, which unmaps the tender, installs the filter, resets
    /// the extended registers, wipes the scratch area and enters the guest at `entry`
    /// with `rsp = stack` and `rdi = boot_info`.
    ///
    /// # Safety
    /// `data` must have been built for this code page and written at its address in
    /// mapped, writable guest memory; `entry` must be the guest's loaded, executable
    /// entry point, `stack` the top of mapped, writable guest memory with `stack + 8`
    /// 16-byte aligned (and the 8 bytes below it writable), `boot_info` the guest's boot
    /// info, all inside the guest region the data was built for. No new privileges must
    /// be set (for the filter), rseq unregistered (its area is unmapped) and nothing
    /// owned by the caller may need dropping: this never returns.
    pub unsafe fn enter(self, data: &LaunchData, entry: u64, stack: u64, boot_info: u64) -> ! {
        // Guest addresses lie below 64 GiB (spec::MAX_MEM_MIB): they fit a usize.
        let scratch = usize::try_from(data.addr).unwrap_or(usize::MAX);
        let xsave = if data.xsave { scratch + XSAVE_AT } else { 0 };
        // SAFETY: the page holds the launch code at its base; the scratch area holds the
        // fprog, ranges and XSAVE image the code reads, and the caller guarantees the
        // guest addresses. `noreturn`: no code of ours (no drop, no epilogue) runs after
        // the jump. rbx and rbp are set last, from registers, as the asm block may not
        // name them as operands.
        unsafe {
            std::arch::asm!(
                "mov rbx, {scratch}",
                "mov rbp, {len}",
                "jmp {code}",
                code = in(reg) self.base.as_ptr(),
                scratch = in(reg) scratch,
                len = in(reg) data.bytes.len(),
                in("r8") scratch + FPROG_AT,
                in("r9") stack,
                in("r10") xsave,
                in("r12") scratch + GAPS_AT,
                in("r13") data.unmap_count,
                in("r14") boot_info,
                in("r15") entry,
                options(noreturn),
            )
        }
    }
}

/// Whether the kernel runs this CPU with XSAVE state beyond x87 and SSE (AVX and up),
/// which the launch code must reset with XRSTOR. Asked of the kernel
/// (`ARCH_GET_XCOMP_SUPP`, one syscall) rather than with CPUID, which exits to the
/// hypervisor on virtual machines and cost more than the rest of the launch here.
/// Without it (older kernels, CPUs without XSAVE), the launch code clears xmm0-15.
fn xsave_in_use() -> bool {
    const ARCH_GET_XCOMP_SUPP: libc::c_ulong = 0x1021;
    /// XFEATURE_MASK_FPSSE: what FXSAVE-only CPUs have.
    const LEGACY: u64 = 0b11;
    let mut features: u64 = 0;
    // SAFETY: the kernel writes one u64 (the supported XSAVE feature mask) at the address
    // given, a live local of that type; nothing else is read or written.
    let rc = unsafe { libc::syscall(libc::SYS_arch_prctl, ARCH_GET_XCOMP_SUPP, &raw mut features) };
    rc == 0 && features & !LEGACY != 0
}

/// The tender's arguments as `/proc/PID/cmdline` holds them (each NUL-terminated), cut
/// at the last whole one that fits [`TITLE_MAX`].
pub fn title(args: impl IntoIterator<Item = std::ffi::OsString>) -> Vec<u8> {
    let mut out = Vec::new();
    for arg in args {
        let bytes = arg.as_encoded_bytes();
        if out.len() + bytes.len() + 1 > TITLE_MAX {
            break;
        }
        out.extend_from_slice(bytes);
        out.push(0);
    }
    out
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
    fn launch_code_is_small_and_holds_no_text() {
        let code = launch_code();
        assert!(code.len() > 64 && code.len() < 1024, "{} bytes", code.len());
        assert!(!code.windows(6).any(|w| w == b"tender"), "the message lives in the scratch area");
    }

    #[test]
    fn launch_data_lays_out_the_filter_ranges_and_xsave_image() {
        let bpf: [sock_filter; 3] = std::array::from_fn(|_| sock_filter { code: 6, jt: 1, jf: 2, k: 0x7fff_0000 });
        let data = LaunchData::new(&bpf, 0x1_0000, 0x80_0000, (0x7f00_0000_0000, 0x7f00_0000_1000), 0x1_2345).unwrap();
        assert_eq!(data.addr(), 0x1_2380, "64-byte aligned, after the command line");
        let b = data.bytes();
        assert_eq!(b.len(), INSNS_AT + 24);
        assert_eq!(data.end(), 0x1_2380 + b.len() as u64);
        assert_eq!(u16::from_ne_bytes([b[0], b[1]]), 3);
        assert_eq!(u64::from_ne_bytes(b[8..16].try_into().unwrap()), 0x1_2380 + INSNS_AT as u64);
        assert_eq!(data.unmap_count, 3);
        assert_eq!(u64::from_ne_bytes(b[GAPS_AT..GAPS_AT + 8].try_into().unwrap()), 0);
        let mxcsr = XSAVE_AT + MXCSR_AT;
        assert_eq!(u32::from_ne_bytes(b[mxcsr..mxcsr + 4].try_into().unwrap()), 0x1f80);
        // The XSAVE header (XSTATE_BV, XCOMP_BV, reserved) is zero: every component initial.
        assert!(b[XSAVE_AT + 512..XSAVE_AT + 576].iter().all(|&x| x == 0));
        assert_eq!(&b[INSNS_AT..INSNS_AT + 8], &[6, 0, 1, 2, 0, 0, 0xff, 0x7f]);
        assert!(b[MSG_AT + 8..].starts_with(b"tender: entering the guest failed"));
    }

    #[test]
    fn the_title_is_cut_at_a_whole_argument() {
        let args = ["tender", "--mem=8", "g.spt"].map(std::ffi::OsString::from);
        assert_eq!(title(args), b"tender\0--mem=8\0g.spt\0");
        let long = vec![std::ffi::OsString::from("x".repeat(TITLE_MAX / 2)); 3];
        assert_eq!(title(long).len(), TITLE_MAX / 2 + 1);
    }
}
