//! [`Window`]: a linear mapping through which a backend reaches frames
//! (see [`RawMmu::add_window`](crate::RawMmu::add_window)).

use crate::addr::{Pfn, PfnRange, PAGE_SIZE};

/// Frames `pfns` mapped contiguously from virtual address `va`: frame `pfns.start() + i` at
/// `va + i * 4096`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Window {
    /// Virtual address of the first frame.
    pub va: u64,
    /// The frames.
    pub pfns: PfnRange,
}

impl Window {
    /// The virtual address of frame number `pfn` in this window, if it is in it.
    #[inline]
    pub fn va_of(&self, pfn: u64) -> Option<u64> {
        let start = self.pfns.start().as_u64();
        (start <= pfn && pfn < self.pfns.end()).then(|| self.va + (pfn - start) * PAGE_SIZE)
    }

    /// The virtual address of `pfn` in this window, if it is in it.
    #[inline]
    pub fn address_of(&self, pfn: Pfn) -> Option<u64> {
        self.va_of(pfn.as_u64())
    }

    /// The frame numbers of `[lo, hi)` this window maps, as `(start, end)`.
    #[inline]
    pub fn overlap(&self, lo: u64, hi: u64) -> Option<(u64, u64)> {
        let s = self.pfns.start().as_u64().max(lo);
        let e = self.pfns.end().min(hi);
        (s < e).then_some((s, e))
    }
}
