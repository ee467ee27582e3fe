//! `memcpy`, `memmove`, `memset`, `memcmp`, `bcmp` and `rust_eh_personality`: the symbols the
//! prebuilt `core` expects from a C library; and `pvmmu_probe_store`, a store that may fault
//! (for [`expect::probe_store`](super::expect::probe_store)). This is the only inline assembly
//! of the shared board code (`rep movsb` / `rep stosb`, the probe); plain loops could be turned
//! back into calls to these very functions by the optimizer.

use core::arch::{asm, global_asm};

// `pvmmu_probe_store(addr, value) -> 1` stores `value` at `addr`; if that store faults, the
// trap path (which recognises `pvmmu_probe_insn`) jumps to `pvmmu_probe_recover`, which
// restores the stack and the callee-saved registers saved here and returns 0 to the caller.
global_asm!(
    r#"
    .pushsection .bss.pvmmu_probe, "aw", @nobits
    .balign 8
pvmmu_probe_rsp:
    .zero 8
    .popsection

    .pushsection .text.pvmmu_probe, "ax", @progbits
    .global pvmmu_probe_store
    .global pvmmu_probe_insn
    .global pvmmu_probe_recover
pvmmu_probe_store:
    push %rbx
    push %rbp
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, pvmmu_probe_rsp(%rip)
pvmmu_probe_insn:
    mov %rsi, (%rdi)
    mov $1, %eax
    jmp 1f
pvmmu_probe_recover:
    mov pvmmu_probe_rsp(%rip), %rsp
    xor %eax, %eax
1:  pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %rbp
    pop %rbx
    ret
    .popsection
"#,
    options(att_syntax)
);

/// Copies `n` bytes from `src` to `dst` (no overlap).
///
/// # Safety
/// The C contract: `src` readable and `dst` writable for `n` bytes, not overlapping.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller's contract; `rep movsb` copies forward with DF = 0 (the ABI's state).
    unsafe {
        asm!("rep movsb", inout("rcx") n => _, inout("rdi") dst => _, inout("rsi") src => _,
             options(nostack, preserves_flags));
    }
    dst
}

/// Copies `n` bytes from `src` to `dst`; the ranges may overlap.
///
/// # Safety
/// The C contract: `src` readable and `dst` writable for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dst as usize).wrapping_sub(src as usize) >= n {
        // dst is below src or past its end: a forward copy never reads a byte it overwrote.
        // SAFETY: the caller's contract, and the forward copy is overlap-safe here.
        return unsafe { memcpy(dst, src, n) };
    }
    // SAFETY: the caller's contract; copying backward (DF = 1 from the last byte) is
    // overlap-safe when dst is above src. DF is cleared again as the ABI requires.
    unsafe {
        asm!("std", "rep movsb", "cld",
             inout("rcx") n => _, inout("rdi") dst.add(n - 1) => _, inout("rsi") src.add(n - 1) => _,
             options(nostack));
    }
    dst
}

/// Fills `n` bytes at `dst` with the low byte of `c`.
///
/// # Safety
/// The C contract: `dst` writable for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
    // SAFETY: the caller's contract; `rep stosb` stores AL forward with DF = 0.
    unsafe {
        asm!("rep stosb", inout("rcx") n => _, inout("rdi") dst => _, in("al") c as u8,
             options(nostack, preserves_flags));
    }
    dst
}

/// Compares `n` bytes: negative, zero or positive as `a` sorts before, equal to, after `b`.
///
/// # Safety
/// The C contract: both readable for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    let mut i = 0;
    while i < n {
        // SAFETY: i < n, within both ranges by the caller's contract.
        let (x, y) = unsafe { (a.add(i).read(), b.add(i).read()) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
        i += 1;
    }
    0
}

/// Compares `n` bytes for equality: zero when equal.
///
/// # Safety
/// The C contract: both readable for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: same contract as `memcmp`.
    unsafe { memcmp(a, b, n) }
}

/// Referenced by the prebuilt `core` (built with unwinding); never called with `panic = "abort"`.
#[unsafe(no_mangle)]
pub extern "C" fn rust_eh_personality() {}
