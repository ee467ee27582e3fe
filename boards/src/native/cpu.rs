//! The native board's descriptor tables, built once at entry with the `x86_64` crate: a GDT
//! with a TSS whose IST1 stack serves `#DF`, NMI and `#MC` (so a fault on a broken stack is
//! still reported), and an IDT routing every CPU exception to the stubs in [`super::boot`].

use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicBool, Ordering};

use x86_64::instructions::segmentation::{Segment, CS, DS, ES, SS};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable};
use x86_64::structures::idt::InterruptDescriptorTable;
use x86_64::structures::tss::TaskStateSegment;
use x86_64::VirtAddr;

use super::boot;
use crate::common::racy_cell::RacyCell;

/// Size of the IST1 stack.
const IST_STACK_SIZE: usize = 8 * 1024;

#[repr(C, align(16))]
struct IstStack([u8; IST_STACK_SIZE]);

static IST_STACK: RacyCell<IstStack> = RacyCell::new(IstStack([0; IST_STACK_SIZE]));
static TSS: RacyCell<TaskStateSegment> = RacyCell::new(TaskStateSegment::new());
static GDT: RacyCell<GlobalDescriptorTable> = RacyCell::new(GlobalDescriptorTable::new());
/// Written by [`init`]: uninitialised until then, so it lands in `.bss`, not in 4 KiB of the
/// loaded image (an empty IDT is not all zeros).
static IDT: RacyCell<MaybeUninit<InterruptDescriptorTable>> = RacyCell::new(MaybeUninit::uninit());
/// Set by the first [`init`]; the tables are written only then.
static DONE: AtomicBool = AtomicBool::new(false);

/// Loads the GDT (with TSS) and the IDT. Only the first call does anything.
pub fn init() {
    if DONE.swap(true, Ordering::AcqRel) {
        return;
    }
    // SAFETY: `DONE` makes this the only time these statics are borrowed; after this they are
    // only read, by the CPU.
    let (tss, gdt, idt) = unsafe { (&mut *TSS.get(), &mut *GDT.get(), &mut *IDT.get()) };
    let idt = idt.write(InterruptDescriptorTable::new());
    // One past the stack's end (`VirtAddr + u64` would bring the `Debug` of its error into
    // the image, for an addition that cannot leave the canonical range).
    let ist_top = VirtAddr::from_ptr(IST_STACK.get().wrapping_add(1));
    tss.interrupt_stack_table[0] = ist_top;

    let code = gdt.append(Descriptor::kernel_code_segment());
    let data = gdt.append(Descriptor::kernel_data_segment());
    let tss_sel = gdt.append(Descriptor::tss_segment(tss));
    gdt.load();
    // SAFETY: the selectors index the GDT just loaded: a 64-bit code segment, a data segment
    // and an available TSS.
    unsafe {
        CS::set_reg(code);
        SS::set_reg(data);
        DS::set_reg(data);
        ES::set_reg(data);
        load_tss(tss_sel);
    }

    let stub = boot::exception_stubs().map(VirtAddr::new);
    // SAFETY: each stub is an exception entry point that never returns (it reports and exits),
    // so any entry type's calling convention is satisfied; IST index 0 (IST1) is set above.
    unsafe {
        idt.divide_error.set_handler_addr(stub[0]);
        idt.debug.set_handler_addr(stub[1]);
        idt.non_maskable_interrupt
            .set_handler_addr(stub[2])
            .set_stack_index(0);
        idt.breakpoint.set_handler_addr(stub[3]);
        idt.overflow.set_handler_addr(stub[4]);
        idt.bound_range_exceeded.set_handler_addr(stub[5]);
        idt.invalid_opcode.set_handler_addr(stub[6]);
        idt.device_not_available.set_handler_addr(stub[7]);
        idt.double_fault
            .set_handler_addr(stub[8])
            .set_stack_index(0);
        idt.invalid_tss.set_handler_addr(stub[10]);
        idt.segment_not_present.set_handler_addr(stub[11]);
        idt.stack_segment_fault.set_handler_addr(stub[12]);
        idt.general_protection_fault.set_handler_addr(stub[13]);
        idt.page_fault.set_handler_addr(stub[14]);
        idt.x87_floating_point.set_handler_addr(stub[16]);
        idt.alignment_check.set_handler_addr(stub[17]);
        idt.machine_check
            .set_handler_addr(stub[18])
            .set_stack_index(0);
        idt.simd_floating_point.set_handler_addr(stub[19]);
        idt.virtualization.set_handler_addr(stub[20]);
        idt.cp_protection_exception.set_handler_addr(stub[21]);
        idt.hv_injection_exception.set_handler_addr(stub[28]);
        idt.vmm_communication_exception.set_handler_addr(stub[29]);
        idt.security_exception.set_handler_addr(stub[30]);
    }
    idt.load();
}
