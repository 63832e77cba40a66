//! Checks the register state the tender hands over at entry (spt only): every general
//! register zero but the ABI's (`rdi` = boot info, `rsp` = stack) and `r15` (which
//! holds the entry address itself), RFLAGS as at execve (0x202), and the x87, SSE,
//! AVX and AVX-512 state (xmm/ymm/zmm0-31, k0-7, MXCSR, FCW) in its initial state:
//! nothing of the tender left in any register. Prints `entry state: clean` and exits
//! 0, or names every register that is not, and exits 1.
//!
//! Its entry is `entry_state_start` (build.rs passes `--entry`), which stores the
//! registers and an XSAVE image before any other code runs, then goes on to solo5-rt's
//! `_start`. hvt is not covered here: this machine's KVM cannot run XSAVE in a guest.
#![no_std]
#![no_main]

use solo5_rt::{Cmdline, println};

solo5_rt::manifest! {}
solo5_rt::main!(main);

/// Bytes of the XSAVE image kept (x87, SSE, AVX and AVX-512 fit in 2688).
const XSAVE_LEN: usize = 4096;
/// Components saved: x87, SSE, AVX, opmask, ZMM_Hi256, Hi16_ZMM.
const XSAVE_MASK: u32 = 0b1110_0111;
/// General registers in the order stored, then RFLAGS.
const REGS: [&str; 17] = [
    "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
    "rflags",
];

core::arch::global_asm!(
    ".pushsection .bss.entry_state, \"aw\", @nobits",
    ".balign 64",
    ".globl entry_state_xsave",
    ".hidden entry_state_xsave",
    "entry_state_xsave: .zero {xsave_len}",
    ".globl entry_state_regs",
    ".hidden entry_state_regs",
    "entry_state_regs: .zero 8 * 17",
    ".popsection",
    ".pushsection .text.entry_state_start, \"ax\", @progbits",
    ".globl entry_state_start",
    "entry_state_start:",
    "    pushfq",
    "    pop qword ptr [rip + entry_state_regs + 8 * 16]",
    "    mov [rip + entry_state_regs + 8 * 0], rax",
    "    mov [rip + entry_state_regs + 8 * 1], rbx",
    "    mov [rip + entry_state_regs + 8 * 2], rcx",
    "    mov [rip + entry_state_regs + 8 * 3], rdx",
    "    mov [rip + entry_state_regs + 8 * 4], rsi",
    "    mov [rip + entry_state_regs + 8 * 5], rdi",
    "    mov [rip + entry_state_regs + 8 * 6], rbp",
    "    mov [rip + entry_state_regs + 8 * 7], rsp",
    "    mov [rip + entry_state_regs + 8 * 8], r8",
    "    mov [rip + entry_state_regs + 8 * 9], r9",
    "    mov [rip + entry_state_regs + 8 * 10], r10",
    "    mov [rip + entry_state_regs + 8 * 11], r11",
    "    mov [rip + entry_state_regs + 8 * 12], r12",
    "    mov [rip + entry_state_regs + 8 * 13], r13",
    "    mov [rip + entry_state_regs + 8 * 14], r14",
    "    mov [rip + entry_state_regs + 8 * 15], r15",
    "    mov eax, {mask}",
    "    xor edx, edx",
    "    xsave64 [rip + entry_state_xsave]",
    "    mov rdi, [rip + entry_state_regs + 8 * 5]",
    "    jmp _start",
    ".popsection",
    xsave_len = const XSAVE_LEN,
    mask = const XSAVE_MASK,
);

unsafe extern "C" {
    static entry_state_xsave: [u8; XSAVE_LEN];
    static entry_state_regs: [u64; 17];
}

fn main(_: &Cmdline) -> i32 {
    // SAFETY: written once by entry_state_start before any Rust code ran, never again.
    let (regs, xsave) = unsafe { (&entry_state_regs, &entry_state_xsave) };
    let mut dirty = 0;
    for (name, &value) in REGS.iter().zip(regs) {
        let expected = match *name {
            // The ABI's: boot info, stack; r15 is the jump's own target.
            "rdi" | "rsp" | "r15" => continue,
            "rflags" => 0x202,
            _ => 0,
        };
        if value != expected {
            println!("entry state: {name} = {value:#x}, expected {expected:#x}");
            dirty += 1;
        }
    }
    let u16_at = |at: usize| u16::from_le_bytes([xsave[at], xsave[at + 1]]);
    let u32_at = |at: usize| u32::from_le_bytes([xsave[at], xsave[at + 1], xsave[at + 2], xsave[at + 3]]);
    // XSAVE writes a component only while it is in use; an untouched one reads 0 here.
    if !matches!(u16_at(0), 0 | 0x037f) {
        println!("entry state: x87 control word {:#x}", u16_at(0));
        dirty += 1;
    }
    if !matches!(u32_at(24), 0 | 0x1f80) {
        println!("entry state: MXCSR {:#x}", u32_at(24));
        dirty += 1;
    }
    // Everything else but MXCSR_MASK (28..32, the CPU's) and the XSAVE header (512..576)
    // is register contents: x87 status/tag/pointers, st0-7, xmm0-15, ymm/zmm upper
    // halves, zmm16-31, k0-7.
    let contents = (2..24).chain(32..512).chain(576..XSAVE_LEN);
    let nonzero: usize = contents.filter(|&at| xsave[at] != 0).count();
    if nonzero > 0 {
        let first = (2..24).chain(32..512).chain(576..XSAVE_LEN).find(|&at| xsave[at] != 0).unwrap_or(0);
        println!("entry state: {nonzero} non-zero bytes of extended register state (first at XSAVE offset {first})");
        dirty += 1;
    }
    if dirty == 0 {
        println!("entry state: clean");
        0
    } else {
        1
    }
}
