//! `memcpy`, `memmove`, `memset`, `memcmp` and `bcmp`.
//!
//! The guest links no C library and the `compiler_builtins` shipped for
//! `x86_64-unknown-linux-gnu` does not provide these, yet LLVM emits calls to them
//! for struct copies and zeroing. They are written with `rep movsb`/`rep stosb`
//! in inline assembly so that LLVM cannot recognise the loop as a memcpy idiom
//! and turn the body into a call to itself. `memcmp` is a byte loop that reads
//! through volatile loads for the same reason.

use core::arch::asm;

/// Copies `n` bytes forwards.
///
/// # Safety
/// `dst` and `src` must be valid for `n` bytes; the ranges may overlap only if
/// `dst <= src`.
#[inline(always)]
unsafe fn copy_forward(dst: *mut u8, src: *const u8, n: usize) {
    // SAFETY: the caller guarantees both ranges are valid; DF is clear (the
    // entry code executes `cld` and nothing ever sets it without clearing it).
    unsafe {
        asm!(
            "rep movsb",
            inout("rcx") n => _,
            inout("rdi") dst => _,
            inout("rsi") src => _,
            options(nostack, preserves_flags)
        );
    }
}

#[no_mangle]
#[inline(never)]
pub unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: forwarded contract of memcpy (non-overlapping valid ranges).
    unsafe { copy_forward(dst, src, n) };
    dst
}

#[no_mangle]
#[inline(never)]
pub unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dst as usize) <= (src as usize) || (dst as usize) >= (src as usize).wrapping_add(n) {
        // SAFETY: forward copy is correct when dst is below src or the ranges
        // do not overlap; the caller guarantees validity.
        unsafe { copy_forward(dst, src, n) };
    } else if n != 0 {
        // Overlap with dst above src: copy backwards (DF set for the copy only).
        // SAFETY: rdi/rsi point at the last byte of each valid range.
        unsafe {
            asm!(
                "std",
                "rep movsb",
                "cld",
                inout("rcx") n => _,
                inout("rdi") dst.add(n - 1) => _,
                inout("rsi") src.add(n - 1) => _,
                options(nostack)
            );
        }
    }
    dst
}

#[no_mangle]
#[inline(never)]
pub unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
    // SAFETY: the caller guarantees `dst` is valid for `n` bytes.
    unsafe {
        asm!(
            "rep stosb",
            inout("rcx") n => _,
            inout("rdi") dst => _,
            in("al") c as u8,
            options(nostack, preserves_flags)
        );
    }
    dst
}

#[no_mangle]
#[inline(never)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    let mut i = 0;
    while i < n {
        // SAFETY: the caller guarantees both ranges are valid for `n` bytes.
        let (x, y) = unsafe { (a.add(i).read_volatile(), b.add(i).read_volatile()) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
        i += 1;
    }
    0
}

#[no_mangle]
#[inline(never)]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: same contract as memcmp.
    unsafe { memcmp(a, b, n) }
}
