//! [`Unsettled`]: frames whose mappings may be partly read-only and partly writable.

use core::fmt;

use crate::addr::PfnRange;
use crate::range::FrameRange;
use crate::state::PgtReserved;

/// Frames a backend operation left half done: a [`protect`](crate::mmu::Mmu::protect) or a
/// release that failed part way, or a table whose retirement failed after it was unpinned.
///
/// Some of their mappings may be read-only and some writable, so they are neither
/// page-table-ready ([`PgtReserved`] promises no writable mapping) nor memory (a read-only
/// mapping would fault the first write). The one way out is
/// [`Mmu::settle`](crate::mmu::Mmu::settle), which makes every mapping writable again and
/// turns them into [`ReleasedRW`](crate::state::ReleasedRW). None of them is a page table.
#[must_use = "dropping Unsettled frames leaks them; settle them with Mmu::settle"]
pub struct Unsettled {
    frames: FrameRange<PgtReserved>,
}

impl Unsettled {
    /// Wraps frames the backend may have changed only in part.
    pub(crate) fn new(frames: FrameRange<PgtReserved>) -> Self {
        Self { frames }
    }

    /// The frame numbers (no ownership).
    pub fn pfns(&self) -> PfnRange {
        self.frames.pfns()
    }

    /// Number of frames.
    pub fn len(&self) -> u64 {
        self.frames.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    pub(crate) fn into_inner(self) -> FrameRange<PgtReserved> {
        self.frames
    }
}

impl fmt::Debug for Unsettled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Unsettled({:?})", self.frames.pfns())
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Unsettled {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "Unsettled({})", self.frames.pfns())
    }
}
