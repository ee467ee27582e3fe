//! The boot stack's high-water mark, read by the host from the stopped machine at the exit
//! gate: the boards paint their whole boot stack with [`PAINT_BYTE`] before the first push
//! (`boards/src/common/stack.rs`); the bytes from the bottom that still hold it were never
//! written. The stack's bounds are the image's `__pvmmu_stack_bottom`/`__pvmmu_stack_top`
//! symbols, its pages found by walking the guest's tables from CR3 (the host's walker).

use std::fmt;

use crate::walker::{self, PhysMem};

/// The ELF symbol of the stack's lowest byte.
pub const BOTTOM_SYMBOL: &str = "__pvmmu_stack_bottom";
/// The ELF symbol just past its highest byte.
pub const TOP_SYMBOL: &str = "__pvmmu_stack_top";
/// The ELF symbol of the unmapped guard page below the stack.
pub const GUARD_SYMBOL: &str = "__pvmmu_stack_guard";
/// The byte the boards paint the stack with (`boards::common::stack::PAINT`, bytewise).
pub const PAINT_BYTE: u8 = 0xa5;

const PAGE: u64 = 4096;

/// How much of the boot stack a run used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackUse {
    /// Bytes from the top down to the lowest byte that does not hold the paint.
    pub used: u64,
    /// The stack's size.
    pub size: u64,
}

impl fmt::Display for StackUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "stack used: {} bytes of {}", self.used, self.size)
    }
}

/// Measures the stack `[bottom, top)` (virtual addresses, page-aligned) of the machine whose
/// page tables are at `root` in `mem`. A stack whose every byte was written (painted bytes
/// all gone, as after an overflow without a guard page) counts as wholly used.
pub fn measure(mem: &dyn PhysMem, root: u64, bottom: u64, top: u64) -> Result<StackUse, String> {
    if bottom % PAGE != 0 || top % PAGE != 0 || top <= bottom {
        return Err(format!(
            "the stack [{bottom:#x}, {top:#x}) is not whole pages"
        ));
    }
    let size = top - bottom;
    let mut page = vec![0u8; PAGE as usize];
    let mut va = bottom;
    while va < top {
        let leaf = walker::translate(mem, root, va)
            .map_err(|e| format!("walking to the stack page {va:#x}: {e}"))?
            .ok_or_else(|| format!("the stack page {va:#x} is not mapped under CR3"))?;
        let pa = leaf.pa + (va & (leaf.size.bytes() - 1));
        mem.read(pa, &mut page)?;
        if let Some(i) = page.iter().position(|&b| b != PAINT_BYTE) {
            let lowest = va + i as u64;
            return Ok(StackUse {
                used: top - lowest,
                size,
            });
        }
        va += PAGE;
    }
    Ok(StackUse { used: 0, size })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::walker::BufMem;

    const P: u64 = 1;
    const RW: u64 = 2;

    /// Tables at frames 0..4 of 0x10_0000 (L4, L3, L2, L1); the stack's 4 pages at frames
    /// 8..12 mapped at va 0x40_0000.. (L1 entries 0..4, out of order: 11, 10, 9, 8).
    fn machine() -> (BufMem, u64) {
        let base = 0x10_0000;
        let mut m = BufMem::new(base, 12);
        let f = |n: u64| base + n * PAGE;
        m.set(f(0), 0, f(1) | P | RW);
        m.set(f(1), 0, f(2) | P | RW);
        m.set(f(2), 2, f(3) | P | RW);
        for i in 0..4u64 {
            m.set(f(3), i as usize, f(11 - i) | P | RW);
        }
        for b in &mut m.bytes[8 * PAGE as usize..] {
            *b = PAINT_BYTE;
        }
        (m, base)
    }

    const BOTTOM: u64 = 0x40_0000;
    const TOP: u64 = BOTTOM + 4 * PAGE;

    #[test]
    fn untouched_stack_used_nothing() {
        let (m, root) = machine();
        let u = measure(&m, root, BOTTOM, TOP).unwrap();
        assert_eq!(
            u,
            StackUse {
                used: 0,
                size: 4 * PAGE
            }
        );
        assert_eq!(u.to_string(), "stack used: 0 bytes of 16384");
    }

    #[test]
    fn the_lowest_written_byte_counts_through_the_mapping() {
        let (mut m, root) = machine();
        // va BOTTOM + PAGE + 100 is in the second stack page: frame 10.
        m.bytes[(10 * PAGE + 100) as usize] = 0;
        // A write higher up (frame 8, the top page) does not lower the mark.
        m.bytes[(8 * PAGE + 5) as usize] = 0;
        let u = measure(&m, root, BOTTOM, TOP).unwrap();
        assert_eq!(u.used, TOP - (BOTTOM + PAGE + 100));
        // Everything written: wholly used.
        for b in &mut m.bytes[8 * PAGE as usize..] {
            *b = 0;
        }
        assert_eq!(measure(&m, root, BOTTOM, TOP).unwrap().used, 4 * PAGE);
    }

    #[test]
    fn an_unmapped_stack_page_is_an_error() {
        let (mut m, root) = machine();
        m.set(root + 3 * PAGE, 1, 0);
        let e = measure(&m, root, BOTTOM, TOP).unwrap_err();
        assert!(e.contains("0x401000 is not mapped"), "{e}");
        assert!(measure(&m, root, BOTTOM + 1, TOP).is_err());
    }
}
