//! The jump into an spt guest. After it no tender code runs again.

/// Switches to the guest stack and jumps to its entry with `rdi` = boot info.
///
/// The other general-purpose registers are cleared so the guest does not start with
/// tender pointers in them (it can still read the tender's memory: spt isolates with
/// the seccomp filter, not with the address space).
///
/// # Safety
/// `entry` must be the guest's loaded, executable entry point; `stack` must be the top
/// of mapped, writable guest memory with `stack + 8` 16-byte aligned; `boot_info` must
/// point at the guest's boot info. The seccomp filter must already be installed and
/// nothing owned by the caller may need dropping: this never returns.
pub unsafe fn enter_guest(entry: u64, stack: u64, boot_info: u64) -> ! {
    // SAFETY: the caller guarantees the three addresses; `noreturn` tells Rust that no
    // code of ours (no drop, no epilogue) runs after the jump.
    unsafe {
        core::arch::asm!(
            "mov rsp, {stack}",
            "xor eax, eax",
            "xor ebx, ebx",
            "xor ecx, ecx",
            "xor edx, edx",
            "xor esi, esi",
            "xor ebp, ebp",
            "xor r8d, r8d",
            "xor r9d, r9d",
            "xor r10d, r10d",
            "xor r11d, r11d",
            "xor r12d, r12d",
            "xor r13d, r13d",
            "xor r14d, r14d",
            "jmp r15",
            stack = in(reg) stack,
            in("r15") entry,
            in("rdi") boot_info,
            options(noreturn),
        )
    }
}
