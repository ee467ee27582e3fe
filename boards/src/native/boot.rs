//! The PVH entry: all of the native board's assembly, and the linker symbols it needs.
//!
//! Protocol (Xen's `arch/x86/hvm/start_info.h`, QEMU's `-kernel` for an ELF with a
//! `XEN_ELFNOTE_PHYS32_ENTRY` note): 32-bit protected mode, paging off, flat segments,
//! `EBX` = physical address of `struct hvm_start_info`. The stub:
//! 1. zeroes `.bss` (boot page tables and stack live there);
//! 2. identity-maps `[0, 4 GiB)` with 2 MiB pages (PML4 -> 1 PDPT -> 4 PDs), writable,
//!    so later code can write page-table frames anywhere below 4 GiB; the one 2 MiB region
//!    that holds the boot stack's guard page (inside the image's `.bss`) is mapped with
//!    4 KiB pages instead, all but the guard page, so a stack overflow faults (and ends as a
//!    reported double fault on the IST stack) instead of overwriting the page tables;
//! 3. enables PAE, OSFXSR | OSXMMEXCPT (SSE: the prebuilt `core` uses xmm registers),
//!    EFER.LME (and NXE when the CPU has NX), then CR0.PG | WP | NE | MP with EM clear;
//! 4. loads a 3-entry GDT and far-jumps to 64-bit code, which sets the data segments and the
//!    boot stack and calls `__pvmmu_native_entry(start_info_paddr)` (defined by `entry!`).
//!
//! Also here: the 32 exception stubs (push a dummy error code where the CPU pushes none, push
//! the vector, save the GPRs, call [`super::fault::exception_entry`] with the frame).

use core::arch::global_asm;

/// Size of the boot stack in `.bss` (also the Xen board's, in an image carrying both). The
/// release boots use at most about 20 KiB of it (the suite fails one over 24 KiB, measured by
/// the host at the exit gate); debug builds' frames are several times larger.
pub const BOOT_STACK_SIZE: usize = if cfg!(debug_assertions) { 256 } else { 32 } * 1024;

global_asm!(
    r#"
    .section .note.Xen, "a", @note
    .balign 4
    .long 4                          /* namesz: "Xen\0" */
    .long 4                          /* descsz */
    .long 18                         /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .balign 4
    .long pvh_start32
    .balign 4

    .section .text.boot, "ax", @progbits
    .code32
    .global pvh_start32
    .type pvh_start32, @function
pvh_start32:
    cli
    cld
    mov %ebx, %esi                   /* hvm_start_info, kept in esi */

    mov $__bss_start, %edi           /* zero .bss */
    mov $__bss_end, %ecx
    sub %edi, %ecx
    xor %eax, %eax
    rep stosb

    mov $pvh_stack, %edi             /* paint the boot stack (see common::stack) */
    mov $pvh_stack_top, %ecx
    sub %edi, %ecx
    shr $2, %ecx
    mov ${paint}, %eax
    rep stosl

    mov $pvh_stack_top, %esp

    mov $pvh_pdpt, %eax              /* PML4[0] -> PDPT */
    or $0x3, %eax
    mov %eax, pvh_pml4
    mov $pvh_pd, %eax                /* PDPT[0..4] -> PD0..PD3 */
    or $0x3, %eax
    xor %ecx, %ecx
1:  mov %eax, pvh_pdpt(,%ecx,8)
    add $0x1000, %eax
    inc %ecx
    cmp $4, %ecx
    jb 1b
    xor %ecx, %ecx                   /* PD entry i -> 2 MiB page i: present, writable, PS */
2:  mov %ecx, %eax
    shl $21, %eax
    or $0x83, %eax
    mov %eax, pvh_pd(,%ecx,8)
    inc %ecx
    cmp $2048, %ecx
    jb 2b

    mov $pvh_stack_guard, %ebx       /* 4 KiB pages for the 2 MiB region of the guard page */
    mov %ebx, %edx
    and $~0x1fffff, %edx             /* edx = the region's base */
    xor %ecx, %ecx
6:  mov %ecx, %eax
    shl $12, %eax
    add %edx, %eax
    or $0x3, %eax
    mov %eax, pvh_pt(,%ecx,8)
    inc %ecx
    cmp $512, %ecx
    jb 6b
    mov %ebx, %ecx                   /* the guard page itself: not present */
    sub %edx, %ecx
    shr $12, %ecx
    movl $0, pvh_pt(,%ecx,8)
    shr $21, %edx                    /* PD entry of the region -> that table */
    mov $pvh_pt, %eax
    or $0x3, %eax
    mov %eax, pvh_pd(,%edx,8)

    mov %cr4, %eax                   /* PAE | OSFXSR | OSXMMEXCPT */
    or $0x620, %eax
    mov %eax, %cr4
    mov $pvh_pml4, %eax
    mov %eax, %cr3

    xor %edi, %edi                   /* edi = CPUID 0x80000001.EDX, or 0 */
    mov $0x80000000, %eax
    cpuid
    cmp $0x80000001, %eax
    jb 3f
    mov $0x80000001, %eax
    cpuid
    mov %edx, %edi
3:  mov $0xc0000080, %ecx            /* EFER.LME, EFER.NXE if NX (EDX bit 20) */
    rdmsr
    or $0x100, %eax
    bt $20, %edi
    jnc 4f
    or $0x800, %eax
4:  wrmsr

    mov %cr0, %eax                   /* PG | WP | NE | MP | PE, EM clear */
    and $~0x4, %eax
    or $0x80010023, %eax
    mov %eax, %cr0

    lgdt pvh_gdt_ptr
    ljmp $0x08, $pvh_start64

    .code64
pvh_start64:
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    xor %eax, %eax
    mov %eax, %fs
    mov %eax, %gs
    mov $pvh_stack_top, %rsp
    mov %esi, %edi                   /* zero-extended: arg 0 = start_info paddr */
    xor %ebp, %ebp
    call __pvmmu_native_entry
5:  hlt
    jmp 5b

    .section .rodata.pvh_gdt, "a"
    .balign 16
pvh_gdt:
    .quad 0
    .quad 0x00af9a000000ffff         /* 0x08: 64-bit code */
    .quad 0x00cf92000000ffff         /* 0x10: data */
pvh_gdt_end:
pvh_gdt_ptr:
    .word pvh_gdt_end - pvh_gdt - 1
    .long pvh_gdt

    .section .bss.pvh_boot, "aw", @nobits
    .balign 4096
    .global pvh_pml4
pvh_pml4:
    .skip 4096
pvh_pdpt:
    .skip 4096
    .global pvh_pd
pvh_pd:
    .skip 4 * 4096
    .global pvh_pt
pvh_pt:
    .skip 4096
    .global pvh_stack_guard
    .global __pvmmu_stack_guard
pvh_stack_guard:
__pvmmu_stack_guard:
    .skip 4096
    .global pvh_stack
    .global __pvmmu_stack_bottom
pvh_stack:
__pvmmu_stack_bottom:
    .skip {stack_size}
    .global pvh_stack_top
    .global __pvmmu_stack_top
pvh_stack_top:
__pvmmu_stack_top:

    .text
    .macro PVH_EXC_NOERR n
    .balign 16
pvh_exc_\n:
    push $0
    push $\n
    jmp pvh_exc_common
    .endm
    .macro PVH_EXC_ERR n
    .balign 16
pvh_exc_\n:
    push $\n
    jmp pvh_exc_common
    .endm
    .irp n, 0,1,2,3,4,5,6,7,9,15,16,18,19,20,22,23,24,25,26,27,28,31
    PVH_EXC_NOERR \n
    .endr
    .irp n, 8,10,11,12,13,14,17,21,29,30
    PVH_EXC_ERR \n
    .endr

pvh_exc_common:
    push %rax
    push %rbx
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %rbp
    push %r8
    push %r9
    push %r10
    push %r11
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, %rdi                   /* &ExceptionFrame */
    and $-16, %rsp
    call {handler}
    ud2

    .section .rodata.pvh_exc_table, "a"
    .balign 8
    .global pvh_exc_table
pvh_exc_table:
    .irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .quad pvh_exc_\n
    .endr
"#,
    stack_size = const BOOT_STACK_SIZE,
    paint = const crate::common::stack::PAINT,
    handler = sym super::fault::exception_entry,
    options(att_syntax)
);

unsafe extern "C" {
    static pvh_start32: u8;
    static pvh_stack_guard: u8;
    static pvh_stack: u8;
    static pvh_stack_top: u8;
    static pvh_pml4: u8;
    static pvh_exc_table: [u64; 32];
    static __image_start: u8;
    static __image_end: u8;
}

/// Physical (= virtual) address of the 32-bit PVH entry.
pub fn entry_address() -> u64 {
    (&raw const pvh_start32) as u64
}

/// `[start, end)` of the loaded image including `.bss` (page-aligned by the link script).
pub fn image_range() -> (u64, u64) {
    (
        (&raw const __image_start) as u64,
        (&raw const __image_end) as u64,
    )
}

/// `[bottom, top)` of the boot stack.
pub fn boot_stack() -> (u64, u64) {
    (
        (&raw const pvh_stack) as u64,
        (&raw const pvh_stack_top) as u64,
    )
}

/// `[start, end)` of the unmapped guard page below the boot stack.
pub fn stack_guard() -> (u64, u64) {
    let start = (&raw const pvh_stack_guard) as u64;
    (start, start + 4096)
}

/// Physical address of the boot PML4 (the identity map of the first 4 GiB).
pub fn boot_pml4() -> u64 {
    (&raw const pvh_pml4) as u64
}

/// Addresses of the exception stubs for vectors 0..32.
pub fn exception_stubs() -> [u64; 32] {
    // SAFETY: `pvh_exc_table` is read-only data emitted above: 32 stub addresses.
    unsafe { pvh_exc_table }
}
