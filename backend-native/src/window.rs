//! Linear windows: ranges of frames mapped contiguously at a virtual address, through which the
//! backend stores into table frames.

use hal_core::{Pfn, PfnRange};

/// `pfns` are mapped contiguously from virtual address `va`, writable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Window {
    /// Virtual address of the first frame.
    pub va: u64,
    /// The frames mapped.
    pub pfns: PfnRange,
}

impl Window {
    /// The address of `pfn` through this window, if it covers it.
    pub fn address_of(&self, pfn: Pfn) -> Option<u64> {
        self.pfns
            .contains(pfn)
            .then(|| self.va + (pfn.as_u64() - self.pfns.start().as_u64()) * hal_core::PAGE_SIZE)
    }
}
