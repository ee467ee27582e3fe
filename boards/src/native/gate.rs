//! The native board's IDT gates (Intel SDM vol. 3, 6.14.1), encoded by hand: the 32 exception
//! vectors only, each gate written in a loop by [`super::cpu`] (the `x86_64` crate's
//! 256-vector table took 4 KiB of `.bss` and about 2 KiB of code, one store sequence per named
//! field). Pure data, so the host tests check it against the crate's encoding.

/// The CPU exceptions routed to a stub: every vector below 32 that the architecture defines
/// (9, 15, 22-27 and 31 are reserved and stay not present).
const ROUTED: u32 = !((1 << 9) | (1 << 15) | (0b11_1111 << 22) | (1 << 31));
/// The exceptions taken on IST1: NMI, `#DF` and `#MC` (a fault on a broken stack is still
/// reported).
const ON_IST1: u32 = (1 << 2) | (1 << 8) | (1 << 18);

/// One 64-bit IDT gate (Intel SDM vol. 3, 6.14.1), as two quadwords.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct Gate(pub [u64; 2]);

impl Gate {
    /// A present ring-0 64-bit interrupt gate (type 0xE: interrupts stay off in the
    /// handler) to `offset` through code selector `selector`, on IST stack `ist` (0: none).
    pub const fn interrupt(offset: u64, selector: u16, ist: u64) -> Self {
        let low = (offset & 0xffff)
            | ((selector as u64) << 16)
            | (ist << 32)
            | (0x8e << 40)
            | (((offset >> 16) & 0xffff) << 48);
        Self([low, offset >> 32])
    }
}

/// The IDT: the 32 exception vectors only. Interrupts stay masked on this board; a vector
/// beyond the table's limit would raise `#GP`, which is routed and reported.
#[repr(C, align(16))]
pub struct Idt(pub [Gate; 32]);

impl Idt {
    /// No gate present.
    pub const EMPTY: Self = Self([Gate([0; 2]); 32]);

    /// Routes every architecturally defined exception to its stub (`stubs[vector]`) through
    /// code selector `selector`, NMI, `#DF` and `#MC` on IST1.
    pub fn route(&mut self, stubs: &[u64; 32], selector: u16) {
        for (vector, gate) in self.0.iter_mut().enumerate() {
            if ROUTED & (1 << vector) != 0 {
                let ist = if ON_IST1 & (1 << vector) != 0 { 1 } else { 0 };
                *gate = Gate::interrupt(stubs[vector], selector, ist);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use x86_64::instructions::segmentation::{Segment, CS};
    use x86_64::structures::idt::InterruptDescriptorTable;
    use x86_64::VirtAddr;

    use super::*;

    /// The table against the `x86_64` crate's, built field by field the way the board built
    /// it before (its `set_stack_index(0)` is IST1), through the code selector it reads: the
    /// same gates where it has one, and not present where it has none.
    #[test]
    fn routes_as_the_x86_64_crates_table() {
        let stubs: [u64; 32] =
            core::array::from_fn(|v| 0xffff_8000_1234_0000 + 0x10_0010 * v as u64);
        let s = stubs.map(VirtAddr::new);
        let mut idt = InterruptDescriptorTable::new();
        // SAFETY: the table is only encoded and read back, never loaded.
        unsafe {
            idt.divide_error.set_handler_addr(s[0]);
            idt.debug.set_handler_addr(s[1]);
            idt.non_maskable_interrupt
                .set_handler_addr(s[2])
                .set_stack_index(0);
            idt.breakpoint.set_handler_addr(s[3]);
            idt.overflow.set_handler_addr(s[4]);
            idt.bound_range_exceeded.set_handler_addr(s[5]);
            idt.invalid_opcode.set_handler_addr(s[6]);
            idt.device_not_available.set_handler_addr(s[7]);
            idt.double_fault.set_handler_addr(s[8]).set_stack_index(0);
            idt.invalid_tss.set_handler_addr(s[10]);
            idt.segment_not_present.set_handler_addr(s[11]);
            idt.stack_segment_fault.set_handler_addr(s[12]);
            idt.general_protection_fault.set_handler_addr(s[13]);
            idt.page_fault.set_handler_addr(s[14]);
            idt.x87_floating_point.set_handler_addr(s[16]);
            idt.alignment_check.set_handler_addr(s[17]);
            idt.machine_check.set_handler_addr(s[18]).set_stack_index(0);
            idt.simd_floating_point.set_handler_addr(s[19]);
            idt.virtualization.set_handler_addr(s[20]);
            idt.cp_protection_exception.set_handler_addr(s[21]);
            idt.hv_injection_exception.set_handler_addr(s[28]);
            idt.vmm_communication_exception.set_handler_addr(s[29]);
            idt.security_exception.set_handler_addr(s[30]);
        }
        // SAFETY: the crate's table is `repr(C)`, 256 gates of 16 bytes.
        let theirs: [[u64; 2]; 256] = unsafe { core::mem::transmute_copy(&idt) };
        let mut ours = Idt::EMPTY;
        ours.route(&stubs, CS::get_reg().0);
        let present = 1 << 47;
        for (v, (gate, theirs)) in ours.0.iter().zip(&theirs).enumerate() {
            if theirs[0] & present != 0 {
                assert_eq!(gate.0, *theirs, "vector {v}");
            } else {
                assert_eq!(gate.0[0] & present, 0, "vector {v} is present");
            }
        }
    }
}
