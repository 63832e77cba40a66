//! memcpy, memmove, memset, memcmp and bcmp: there is no libc to provide them.
//!
//! The prebuilt `compiler_builtins` of the linux-gnu target leaves them to libc
//! (its own versions need `-Zbuild-std`), yet LLVM emits calls to them for
//! `copy_from_slice`, `fill`, struct copies and `core::fmt` (docs/guest-build.md item 1).
//! Each is a string instruction in inline asm: written as a Rust loop, LLVM would
//! recognise the idiom and compile the loop back into a call to itself.
//!
//! The x86_64 System V ABI guarantees the direction flag is clear at every call,
//! so the `rep` instructions run forwards unless `memmove` sets it.

use core::arch::asm;

/// Copies `n` bytes from `src` to `dest`; the ranges must not overlap.
///
/// # Safety
/// `src` must be valid for `n` byte reads and `dest` for `n` byte writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcpy(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller guarantees both ranges; `rep movsb` touches exactly
    // `n` bytes of each, moving forwards (DF clear per the ABI).
    unsafe {
        asm!(
            "rep movsb",
            inout("rcx") n => _,
            inout("rdi") dest => _,
            inout("rsi") src => _,
            options(nostack, preserves_flags),
        );
    }
    dest
}

/// Copies `n` bytes from `src` to `dest`; the ranges may overlap.
///
/// # Safety
/// `src` must be valid for `n` byte reads and `dest` for `n` byte writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memmove(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dest as usize).wrapping_sub(src as usize) >= n {
        // dest is below src, or the ranges are disjoint: a forward copy never
        // overwrites a source byte before reading it.
        // SAFETY: same ranges as memcpy's, which the caller guarantees.
        unsafe { memcpy(dest, src, n) };
    } else {
        // dest overlaps the tail of src: copy backwards, from the last byte. n >= 1
        // here (dest - src < n), so `n - 1` does not wrap; DF is cleared again.
        // SAFETY: the caller guarantees both ranges; with DF set `rep movsb` walks
        // down from `x + n - 1` to `x`, touching exactly those same `n` bytes.
        unsafe {
            asm!(
                "std",
                "rep movsb",
                "cld",
                inout("rcx") n => _,
                inout("rdi") dest.add(n - 1) => _,
                inout("rsi") src.add(n - 1) => _,
                options(nostack),
            );
        }
    }
    dest
}

/// Fills `n` bytes at `dest` with the low byte of `c`.
///
/// # Safety
/// `dest` must be valid for `n` byte writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memset(dest: *mut u8, c: i32, n: usize) -> *mut u8 {
    // SAFETY: the caller guarantees the range; `rep stosb` writes exactly `n`
    // bytes of `al` forwards from `dest`.
    unsafe {
        asm!(
            "rep stosb",
            inout("rcx") n => _,
            inout("rdi") dest => _,
            in("al") c as u8,
            options(nostack, preserves_flags),
        );
    }
    dest
}

/// Compares `n` bytes; returns <0, 0 or >0 like C's memcmp (bytes as unsigned).
///
/// # Safety
/// `a` and `b` must be valid for `n` byte reads.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    if n == 0 {
        return 0;
    }
    let a_end: *const u8;
    let b_end: *const u8;
    // SAFETY: the caller guarantees both ranges. `repe cmpsb` reads at most `n`
    // bytes of each, stopping one byte past the first difference (or after the
    // last byte): both pointers then point one past the last compared pair.
    unsafe {
        asm!(
            "repe cmpsb",
            inout("rcx") n => _,
            inout("rsi") a => a_end,
            inout("rdi") b => b_end,
            options(nostack, readonly),
        );
    }
    // SAFETY: n >= 1, so at least one pair was compared and `x_end - 1` is that
    // last pair, inside the ranges the caller vouched for.
    let (x, y) = unsafe { (*a_end.sub(1), *b_end.sub(1)) };
    i32::from(x) - i32::from(y)
}

/// Like memcmp, but only zero / non-zero matters (LLVM emits it for `==` on slices).
///
/// # Safety
/// `a` and `b` must be valid for `n` byte reads.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: same contract as memcmp, forwarded from our caller.
    unsafe { memcmp(a, b, n) }
}
