//! The native board's IDT gates (Intel SDM vol. 3, 6.14.1), encoded by hand: the 32 exception
//! vectors only, each gate written in a loop by [`super::cpu`] (the `x86_64` crate's
//! 256-vector table took 4 KiB of `.bss` and about 2 KiB of code, one store sequence per named
//! field). Pure data, so the host tests check it against the crate's encoding.

/// The CPU exceptions routed to a stub: every vector below 32 that the architecture defines
/// (9, 15, 22-27 and 31 are reserved and stay not present).
pub const ROUTED: u32 = !((1 << 9) | (1 << 15) | (0b11_1111 << 22) | (1 << 31));
/// The exceptions taken on IST1: NMI, `#DF` and `#MC` (a fault on a broken stack is still
/// reported).
pub const ON_IST1: u32 = (1 << 2) | (1 << 8) | (1 << 18);

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
}

#[cfg(test)]
mod tests {
    use x86_64::instructions::segmentation::{Segment, CS};
    use x86_64::structures::idt::InterruptDescriptorTable;
    use x86_64::VirtAddr;

    use super::*;

    /// The gates against the `x86_64` crate's encoding of the same handler, with and without
    /// an IST stack (its `set_stack_index(0)` is IST1), through the code selector it reads.
    #[test]
    fn gates_encode_as_the_x86_64_crates() {
        let addr = 0xffff_8000_1234_5678u64;
        let mut idt = InterruptDescriptorTable::new();
        // SAFETY: the table is only encoded and read back, never loaded.
        unsafe {
            idt.divide_error.set_handler_addr(VirtAddr::new(addr));
            idt.double_fault
                .set_handler_addr(VirtAddr::new(addr))
                .set_stack_index(0);
        }
        // SAFETY: the crate's table is `repr(C)`, 256 gates of 16 bytes.
        let theirs: [[u64; 2]; 256] = unsafe { core::mem::transmute_copy(&idt) };
        let cs = CS::get_reg().0;
        assert_eq!(Gate::interrupt(addr, cs, 0).0, theirs[0]);
        assert_eq!(Gate::interrupt(addr, cs, 1).0, theirs[8]);
        let present = 1 << 47;
        assert_eq!(
            theirs[9][0] & present,
            0,
            "a reserved vector is not present there either"
        );
    }
}
