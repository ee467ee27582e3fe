//! The native board's descriptor tables, built once at entry: a GDT (the `x86_64` crate's)
//! with a TSS whose IST1 stack serves `#DF`, NMI and `#MC` (so a fault on a broken stack is
//! still reported), and an IDT of the 32 exception vectors, each gate written in a loop,
//! routing every CPU exception to the stubs in [`super::boot`] (512 bytes of `.bss`, where
//! the crate's 256-vector table took 4 KiB and about 2 KiB of code, one store sequence per
//! named field).

use core::mem::size_of;
use core::sync::atomic::{AtomicBool, Ordering};

use x86_64::instructions::segmentation::{Segment, CS, DS, ES, SS};
use x86_64::instructions::tables::{lidt, load_tss};
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable};
use x86_64::structures::tss::TaskStateSegment;
use x86_64::structures::DescriptorTablePointer;
use x86_64::VirtAddr;

use super::boot;
use super::gate::Idt;
use crate::common::racy_cell::RacyCell;

/// Size of the IST1 stack.
const IST_STACK_SIZE: usize = 8 * 1024;

#[repr(C, align(16))]
struct IstStack([u8; IST_STACK_SIZE]);

static IST_STACK: RacyCell<IstStack> = RacyCell::new(IstStack([0; IST_STACK_SIZE]));
static TSS: RacyCell<TaskStateSegment> = RacyCell::new(TaskStateSegment::new());
static GDT: RacyCell<GlobalDescriptorTable> = RacyCell::new(GlobalDescriptorTable::new());
/// Written by [`init`]; all zeros (no gate present) until then, so it lands in `.bss`.
static IDT: RacyCell<Idt> = RacyCell::new(Idt::EMPTY);
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

    idt.route(&boot::exception_stubs(), code.0);
    let pointer = DescriptorTablePointer {
        limit: (size_of::<Idt>() - 1) as u16,
        base: VirtAddr::from_ptr(IDT.get()),
    };
    // SAFETY: `pointer` describes `IDT`, a static (it outlives every use by the CPU), whose
    // present gates point at the exception stubs through the code segment just loaded.
    unsafe { lidt(&pointer) };
}
