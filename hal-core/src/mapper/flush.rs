//! [`Flush`]: the obligation to submit queued updates and invalidate the TLB, and the
//! mapper's counters.

/// Queued mapper updates: they take effect (and stale translations go) when flushed with
/// [`Mapper::flush`](super::Mapper::flush). Join several and flush once: the mapper coalesces
/// the invalidations of everything queued since its last flush.
#[must_use = "queued mappings take effect, and stale translations go, only when flushed"]
#[derive(Debug, PartialEq, Eq)]
pub struct Flush {
    ops: u64,
}

impl Flush {
    /// No obligation (for flushing without a new operation).
    pub const fn none() -> Self {
        Self { ops: 0 }
    }

    pub(crate) const fn one() -> Self {
        Self { ops: 1 }
    }

    /// One obligation for both.
    pub const fn join(self, other: Flush) -> Self {
        Self {
            ops: self.ops.saturating_add(other.ops),
        }
    }

    /// Mapper operations this stands for.
    pub const fn ops(&self) -> u64 {
        self.ops
    }

    /// Leaves the updates queued for the mapper's next flush (every later flush covers them).
    pub fn defer(self) {}
}

/// What a mapper did, for reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct MapperStats {
    /// Tables taken from the frame source (and made tables).
    pub tables_allocated: u64,
    /// Tables retired and given back to the frame source.
    pub tables_freed: u64,
    /// Leaf and table entries the mapper wrote.
    pub entries_written: u64,
    /// Flushes that submitted work or invalidated something.
    pub flushes: u64,
    /// Of those, full TLB flushes.
    pub full_flushes: u64,
    /// Pages invalidated one by one.
    pub pages_invalidated: u64,
}
