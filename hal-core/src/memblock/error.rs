//! memblock's errors.

use super::Region;
use crate::error::{BackendError, ErrorKind};

/// Why a memblock operation was refused. Nothing changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum MemblockError {
    /// An empty range.
    ZeroLength,
    /// `end < start`, or arithmetic past the address space.
    Overflow,
    /// Memory ranges must be page-aligned.
    Unaligned {
        /// Start of the offending range.
        start: u64,
        /// End of the offending range.
        end: u64,
    },
    /// The range overlaps memory already added.
    Overlap {
        /// Start of the offending range.
        start: u64,
        /// End of the offending range.
        end: u64,
        /// The region it overlaps.
        with: Region,
    },
    /// More regions than the fixed capacity.
    Capacity,
    /// Alignment not a power of two of at least a page.
    BadAlign(u64),
    /// No free range of `size` bytes below `limit`.
    OutOfMemory {
        /// Bytes asked for.
        size: u64,
        /// Upper address limit.
        limit: u64,
    },
    /// The range to give back is not (entirely) reserved.
    NotReserved {
        /// Start.
        start: u64,
        /// End.
        end: u64,
    },
}

impl BackendError for MemblockError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Capacity | Self::OutOfMemory { .. } => ErrorKind::Capacity,
            _ => ErrorKind::OutOfRange,
        }
    }
}

/// Why a firmware memory map was refused. The memblock is not created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum MapError {
    /// Entry `index` has length zero.
    ZeroLength {
        /// Position in the map.
        index: usize,
    },
    /// Entry `index` starts before the previous one (the map must be sorted).
    Unsorted {
        /// Position in the map.
        index: usize,
    },
    /// Entry `index` overlaps the previous one.
    Overlap {
        /// Position in the map.
        index: usize,
    },
    /// Entry `index` runs past the end of the address space.
    Overflow {
        /// Position in the map.
        index: usize,
    },
    /// More RAM regions than memblock's capacity; entry `index` did not fit.
    TooMany {
        /// Position in the map.
        index: usize,
    },
    /// No usable RAM at all (after trimming to whole pages).
    NoRam,
}
