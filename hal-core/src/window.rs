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
    ///
    /// Computed modulo 2^64, without a check: a window is a mapping that exists
    /// ([`RawMmu::add_window`](crate::RawMmu::add_window)'s contract; the Xen PV backend
    /// refuses one that wraps), so its frames end at or below 2^64. For a value whose frames
    /// would run past that (the fields are public) the address wraps; nothing panics.
    #[inline]
    pub fn va_of(&self, pfn: u64) -> Option<u64> {
        // `pfn - start`, wrapped for a `pfn` below `start`: then far above the length.
        let i = pfn.wrapping_sub(self.pfns.start().as_u64());
        // Only an `i` below the length (below 2^40) is used: `i * 4096` is below 2^52.
        let va = self.va.wrapping_add(i.wrapping_mul(PAGE_SIZE));
        (i < self.pfns.len()).then_some(va)
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
