//! Page-table entries in the kernel's (pseudo-physical) terms.

use x86_64::structures::paging::PageTableFlags;

use crate::addr::{Pfn, PAGE_SHIFT};

const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// A page-table entry as the kernel means it: a frame number ([`Pfn`]) and flags.
///
/// Backends translate it to what the hardware sees (native: unchanged; Xen PV: the frame goes
/// through the P2M to a machine frame). A non-present entry is all zeros.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(transparent)]
pub struct Pte(u64);

impl Pte {
    /// The non-present, all-zero entry.
    pub const EMPTY: Pte = Pte(0);

    /// An entry pointing at `pfn` with `flags`.
    #[inline]
    pub fn new(pfn: Pfn, flags: PageTableFlags) -> Self {
        Self((pfn.as_u64() << PAGE_SHIFT) | (flags.bits() & !ADDR_MASK))
    }

    /// An entry of a level-2..4 table pointing at child table `child`: present and writable
    /// (write protection is decided at the leaves).
    #[inline]
    pub fn table(child: Pfn) -> Self {
        Self::new(child, PageTableFlags::PRESENT | PageTableFlags::WRITABLE)
    }

    /// From the raw bits.
    #[inline]
    pub const fn from_bits(bits: u64) -> Self {
        Self(bits)
    }

    /// The raw bits.
    #[inline]
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// The frame the entry points at.
    #[inline]
    pub fn pfn(self) -> Pfn {
        Pfn::new((self.0 & ADDR_MASK) >> PAGE_SHIFT)
            .unwrap_or_else(|| unreachable!(/* masked to 40 bits */))
    }

    /// The flags.
    #[inline]
    pub fn flags(self) -> PageTableFlags {
        PageTableFlags::from_bits_truncate(self.0 & !ADDR_MASK)
    }

    /// Whether the present bit is set.
    #[inline]
    pub fn is_present(self) -> bool {
        self.flags().contains(PageTableFlags::PRESENT)
    }

    /// Whether this (level 2 or 3) entry maps a large page.
    #[inline]
    pub fn is_huge(self) -> bool {
        self.flags().contains(PageTableFlags::HUGE_PAGE)
    }
}
