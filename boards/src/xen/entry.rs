//! The Xen PV board's assembly, all of it: the ELF notes Xen's domain builder reads, the
//! hypercall page, the entry point and the exception stubs.
//!
//! - Notes (`.note.Xen`, name "Xen"): GUEST_OS "pvmmu", XEN_VERSION "xen-3.0", LOADER
//!   "generic", ENTRY, HYPERCALL_PAGE. VIRT_BASE and PADDR_OFFSET are left out, so both are 0:
//!   Xen maps the image at its link addresses and the initial mapping starts at virtual 0
//!   (pfn n at `n * 4096`). FEATURES is left out: for a 64-bit PV dom0 it changes nothing we
//!   use (it does not enable any `vm_assist`).
//! - Entry: Xen starts the guest in long mode, kernel mode (ring 3), `rsi` = start_info,
//!   `rsp` = end of its one-page boot stack, event upcalls masked. `.bss` needs no clearing:
//!   Xen's ELF loader zeroes every PT_LOAD's `p_memsz - p_filesz` tail (libelf
//!   `elf_load_image`). The stub paints the boot stack in `.bss` (32 KiB in release
//!   builds, [`crate::common::stack`]),
//!   moves to it and calls the Rust entry that `boards::entry!` defines
//!   (`__pvmmu_xen_main(start_info, boot_rsp)`).
//! - Exceptions: Xen delivers them on the current stack with the frame
//!   `rcx, r11, [error code], rip, cs, rflags, rsp, ss` (lowest address first). Each stub
//!   calls `__pvmmu_xen_trap(vector, error_code or !0, &frame.rip)`, which reports and exits.
//!   The stubs also emit the trap table (`struct trap_info[]`, 0-terminated) for
//!   `HYPERVISOR_set_trap_table`.
//! - A probing store (`__pvmmu_xen_probe_store(addr, value) -> u32`, see [`super::probe`]):
//!   it saves the stack pointer and callee-saved registers, stores at `__pvmmu_xen_probe_insn`
//!   and returns 0. A `#PF` at that instruction makes the trap handler call
//!   `__pvmmu_xen_probe_resume(code)`, which restores them and returns `code` from the probe
//!   instead (the exception frame is dropped; event upcalls stay masked, as they are at boot).

use backend_xen_pv::hypercall::TrapInfo;

// The stack the entry code switches to: the native board's boot stack when the image carries
// both boards (only one of them ever runs), a stack of its own otherwise. Either has a page
// below it, `__pvmmu_stack_guard`, that `boot` unmaps (see `guard`).

/// Bytes of the board's own stack (as the native board's `BOOT_STACK_SIZE`).
#[cfg(not(feature = "native"))]
pub const STACK_SIZE: usize = if cfg!(debug_assertions) { 256 } else { 32 } * 1024;

#[cfg(feature = "native")]
core::arch::global_asm!(".set __pvmmu_xen_stack_top, pvh_stack_top");

#[cfg(not(feature = "native"))]
core::arch::global_asm!(
    r#"
    .pushsection .bss.xen_stack, "aw", @nobits
    .balign 4096
    .globl __pvmmu_stack_guard
__pvmmu_stack_guard:
    .skip 4096
    .globl __pvmmu_stack_bottom
    .globl __pvmmu_stack_top
__pvmmu_xen_stack_bottom:
__pvmmu_stack_bottom:
    .skip {stack_size}
__pvmmu_xen_stack_top:
__pvmmu_stack_top:
    .popsection
    "#,
    stack_size = const STACK_SIZE,
);
/// Vectors with a stub in the trap table (2 NMI, 8 #DF, 18 #MC are not delivered this way).
pub const TRAP_VECTORS: usize = 18;

core::arch::global_asm!(
    r#"
    .macro XEN_NOTE_BEGIN type
    .pushsection .note.Xen, "a", @note
    .balign 4
    .long 4, 2f - 1f, \type
    .asciz "Xen"
    .balign 4
1:
    .endm
    .macro XEN_NOTE_END
2:  .balign 4
    .popsection
    .endm
    .macro XEN_NOTE_STR type, value
    XEN_NOTE_BEGIN \type
    .asciz "\value"
    XEN_NOTE_END
    .endm
    .macro XEN_NOTE_ADDR type, symbol
    XEN_NOTE_BEGIN \type
    .quad \symbol
    XEN_NOTE_END
    .endm

    XEN_NOTE_STR 6, pvmmu
    XEN_NOTE_STR 5, xen-3.0
    XEN_NOTE_STR 8, generic
    XEN_NOTE_ADDR 1, __pvmmu_xen_entry
    XEN_NOTE_ADDR 2, __pvmmu_xen_hypercall_page

    .pushsection .xen_hypercall_page, "awx", @nobits
    .balign 4096
    .globl __pvmmu_xen_hypercall_page
__pvmmu_xen_hypercall_page:
    .skip 4096
    .popsection

    .pushsection .text.xen_entry, "ax", @progbits
    .globl __pvmmu_xen_entry
__pvmmu_xen_entry:
    cld
    mov r8, rsi
    mov r9, rsp
    /* paint the stack (see common::stack) before its first use */
    lea rdi, [rip + __pvmmu_stack_bottom]
    lea rcx, [rip + __pvmmu_xen_stack_top]
    sub rcx, rdi
    shr rcx, 2
    mov eax, {paint}
    rep stosd
    mov rdi, r8
    mov rsi, r9
    lea rsp, [rip + __pvmmu_xen_stack_top]
    xor ebp, ebp
    call __pvmmu_xen_main
    ud2
    .popsection

    .pushsection .text.xen_probe, "ax", @progbits
    .globl __pvmmu_xen_probe_store
__pvmmu_xen_probe_store:
    lea rax, [rip + __pvmmu_xen_probe_ctx]
    mov [rax], rsp
    mov [rax + 8], rbx
    mov [rax + 16], rbp
    mov [rax + 24], r12
    mov [rax + 32], r13
    mov [rax + 40], r14
    mov [rax + 48], r15
    .globl __pvmmu_xen_probe_insn
__pvmmu_xen_probe_insn:
    mov [rdi], rsi
    xor eax, eax
    ret
    .globl __pvmmu_xen_probe_resume
__pvmmu_xen_probe_resume:
    lea rax, [rip + __pvmmu_xen_probe_ctx]
    mov rsp, [rax]
    mov rbx, [rax + 8]
    mov rbp, [rax + 16]
    mov r12, [rax + 24]
    mov r13, [rax + 32]
    mov r14, [rax + 40]
    mov r15, [rax + 48]
    mov eax, edi
    ret
    .popsection
    .pushsection .bss.xen_probe, "aw", @nobits
    .balign 8
__pvmmu_xen_probe_ctx:
    .skip 56
    .popsection

    .pushsection .rodata.xen_trap_table, "a", @progbits
    .balign 16
    .globl __pvmmu_xen_trap_table
__pvmmu_xen_trap_table:
    .popsection

    .macro XEN_TRAP vec, has_ec
    .pushsection .text.xen_traps, "ax", @progbits
__pvmmu_xen_trap_\vec:
    .if \has_ec
    mov esi, [rsp + 16]
    lea rdx, [rsp + 24]
    .else
    mov rsi, -1
    lea rdx, [rsp + 16]
    .endif
    mov edi, \vec
    and rsp, -16
    call __pvmmu_xen_trap
    ud2
    .popsection
    .pushsection .rodata.xen_trap_table, "a", @progbits
    .byte \vec, {trap_flags}
    .short {kernel_cs}
    .long 0
    .quad __pvmmu_xen_trap_\vec
    .popsection
    .endm

    XEN_TRAP 0, 0
    XEN_TRAP 1, 0
    XEN_TRAP 3, 0
    XEN_TRAP 4, 0
    XEN_TRAP 5, 0
    XEN_TRAP 6, 0
    XEN_TRAP 7, 0
    XEN_TRAP 9, 0
    XEN_TRAP 10, 1
    XEN_TRAP 11, 1
    XEN_TRAP 12, 1
    XEN_TRAP 13, 1
    XEN_TRAP 14, 1
    XEN_TRAP 16, 0
    XEN_TRAP 17, 1
    XEN_TRAP 19, 0
    XEN_TRAP 20, 0
    XEN_TRAP 21, 1

    .pushsection .rodata.xen_trap_table, "a", @progbits
    .quad 0, 0
    .popsection
    "#,
    trap_flags = const TrapInfo::MASK_EVENTS,
    kernel_cs = const backend_xen_pv::hypercall::abi::FLAT_KERNEL_CS,
    paint = const crate::common::stack::PAINT,
);

unsafe extern "C" {
    /// Stores `value` at `addr`: 0, or the code the trap handler resumed with.
    pub fn __pvmmu_xen_probe_store(addr: u64, value: u64) -> u32;
    /// The probing store instruction.
    static __pvmmu_xen_probe_insn: u8;
    /// Abandons the current exception and returns `code` from the probe that faulted.
    pub fn __pvmmu_xen_probe_resume(code: u32) -> !;
    static __pvmmu_xen_hypercall_page: u8;
    static __pvmmu_xen_trap_table: [TrapInfo; TRAP_VECTORS + 1];
}

/// The address of the probing store instruction.
pub fn probe_insn() -> u64 {
    &raw const __pvmmu_xen_probe_insn as u64
}

/// The hypercall page (the address the HYPERCALL_PAGE note names).
pub const HYPERCALL_PAGE: *const u8 = &raw const __pvmmu_xen_hypercall_page;

/// The trap table the stubs emitted, terminator included.
pub fn trap_table() -> &'static [TrapInfo] {
    // SAFETY: the asm above emits exactly TRAP_VECTORS entries plus the terminator, 16-byte
    // aligned, in read-only data that nothing writes.
    unsafe { &__pvmmu_xen_trap_table }
}
