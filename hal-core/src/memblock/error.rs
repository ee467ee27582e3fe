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
    /// memblock refused entry `index` for another reason (its own error says which).
    Memblock {
        /// Position in the map.
        index: usize,
        /// memblock's cause.
        error: MemblockError,
    },
    /// No usable RAM at all (after trimming to whole pages and dropping what lies beyond the
    /// last addressable frame).
    NoRam,
}

impl core::fmt::Display for MemblockError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::ZeroLength => f.write_str("empty range"),
            Self::Overflow => {
                f.write_str("range ends before it starts, or runs past the address space")
            }
            Self::Unaligned { start, end } => {
                write!(f, "range [{start:#x}, {end:#x}) is not page-aligned")
            }
            Self::Overlap { start, end, with } => write!(
                f,
                "range [{start:#x}, {end:#x}) overlaps memory already added, [{:#x}, {:#x})",
                with.start(),
                with.end()
            ),
            Self::Capacity => f.write_str("more regions than memblock's fixed capacity"),
            Self::BadAlign(a) => {
                write!(
                    f,
                    "alignment {a:#x} is not a power of two of at least a page"
                )
            }
            Self::OutOfMemory { size, limit } => write!(
                f,
                "OutOfMemory: no free range of {size:#x} bytes below {limit:#x}"
            ),
            Self::NotReserved { start, end } => write!(
                f,
                "range [{start:#x}, {end:#x}) to give back is not (entirely) reserved"
            ),
        }
    }
}

impl core::error::Error for MemblockError {}

impl core::fmt::Display for MapError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::ZeroLength { index } => write!(f, "ZeroLength: map entry {index} has length zero"),
            Self::Unsorted { index } => write!(
                f,
                "Unsorted: map entry {index} starts before the previous one (the map must be sorted)"
            ),
            Self::Overlap { index } => {
                write!(f, "Overlap: map entry {index} overlaps the previous one")
            }
            Self::Overflow { index } => {
                write!(f, "map entry {index} runs past the end of the address space")
            }
            Self::TooMany { index } => write!(
                f,
                "more RAM regions than memblock's capacity: map entry {index} did not fit"
            ),
            Self::Memblock { index, error } => {
                write!(f, "map entry {index} refused by memblock: {error}")
            }
            Self::NoRam => f.write_str("no usable RAM in the map (after trimming to whole pages)"),
        }
    }
}

impl core::error::Error for MapError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Memblock { error, .. } => Some(error),
            _ => None,
        }
    }
}
