//! [`MapError`]: why the mapper refused, with the backend's cause where there is one.

use core::fmt;

use crate::error::{BackendError, ErrorKind, Failed};
use crate::level::TableLevel;
use crate::unsettled::Unsettled;

/// Why a mapper operation was refused or failed. A refusal changed nothing; a failure part way
/// through a `map` was rolled back (what was mapped is unmapped again and flushed).
#[derive(Debug)]
#[non_exhaustive]
pub enum MapError<E> {
    /// The root given is not the one the mapper was made for.
    WrongRoot,
    /// An address or length is not aligned to the page size asked for (or to 4 KiB), or the
    /// length is zero.
    Unaligned {
        /// Virtual address.
        va: u64,
        /// Physical address.
        phys: u64,
        /// Length in bytes.
        len: u64,
    },
    /// The range is not canonical (or crosses the hole between the halves).
    NonCanonical(u64),
    /// The range touches a root slot the backend reserves (Xen PV: 256..272).
    ReservedSlot(u16),
    /// The physical range goes beyond what an entry can hold.
    PhysOutOfRange(u64),
    /// The page size asked for is not one the backend maps (Xen PV: 4 KiB only).
    SizeUnsupported(TableLevel),
    /// Flags the backend does not accept (NX without NX support, or flags that are no leaf
    /// flags: `HUGE_PAGE` is the mapper's to set).
    FlagsRefused(u64),
    /// A page of the range is mapped already.
    Overlap(u64),
    /// A large page was asked for where a table already is.
    TablesInRange(u64),
    /// A writable mapping of a frame that is a page table (one of the mapper's own, or one the
    /// backend reports).
    FrameIsTable(u64),
    /// The operation would write a leaf into a table the mapper did not create.
    ForeignTable(u64),
    /// Unmapping or changing part of a large page (the mapper does not split them).
    SplitsLargePage(u64),
    /// The frame source has no frame left.
    OutOfFrames,
    /// The record of owned tables (or of tables waiting to be retired) is full.
    RecordFull,
    /// The backend refused.
    Backend(E),
    /// A frame's protection failed part way: it is [`Unsettled`] and comes back to the caller.
    Unsettled(Failed<Unsettled, E>),
    /// A `map` failed part way and the backend refused its rollback too: `pages` pages of
    /// `[va, va + len)` (the first and the last of them bound it) are still mapped; `error`
    /// is the rollback's refusal. The range stays the mapper's: a later
    /// [`unmap`](super::Mapper::unmap) or [`teardown`](super::Mapper::teardown) clears it.
    RollbackRefused {
        /// The first page still mapped.
        va: u64,
        /// From `va` to the end of the last page still mapped (0: none is).
        len: u64,
        /// Pages still mapped.
        pages: u64,
        /// The backend's refusal of the rollback.
        error: E,
    },
}

impl<E: BackendError> MapError<E> {
    /// The kind, for generic code.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Backend(e) => e.kind(),
            Self::Unsettled(f) => f.error.kind(),
            Self::RollbackRefused { error, .. } => error.kind(),
            Self::OutOfFrames | Self::RecordFull => ErrorKind::Capacity,
            Self::SizeUnsupported(_) | Self::FlagsRefused(_) | Self::ReservedSlot(_) => {
                ErrorKind::Unsupported
            }
            Self::NonCanonical(_) | Self::PhysOutOfRange(_) => ErrorKind::OutOfRange,
            Self::FrameIsTable(_) => ErrorKind::Busy,
            _ => ErrorKind::Refused,
        }
    }
}

impl<E: fmt::Debug> fmt::Display for MapError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WrongRoot => write!(f, "not the mapper's root"),
            Self::Unaligned { va, phys, len } => {
                write!(f, "unaligned: va {va:#x} phys {phys:#x} len {len:#x}")
            }
            Self::NonCanonical(va) => write!(f, "non-canonical range at {va:#x}"),
            Self::ReservedSlot(s) => write!(f, "root slot {s} is reserved by the backend"),
            Self::PhysOutOfRange(p) => write!(f, "physical address {p:#x} out of range"),
            Self::SizeUnsupported(l) => write!(f, "no level-{} leaves here", l.as_u8()),
            Self::FlagsRefused(b) => write!(f, "flags {b:#x} refused"),
            Self::Overlap(va) => write!(f, "{va:#x} is mapped already"),
            Self::TablesInRange(va) => {
                write!(f, "a table is where a large page at {va:#x} would go")
            }
            Self::FrameIsTable(p) => write!(f, "frame {p:#x} is a page table"),
            Self::ForeignTable(va) => {
                write!(f, "{va:#x} lies in a table the mapper did not create")
            }
            Self::SplitsLargePage(va) => write!(f, "would split the large page at {va:#x}"),
            Self::OutOfFrames => write!(f, "the frame source is empty"),
            Self::RecordFull => write!(f, "the record of owned tables is full"),
            Self::Backend(e) => write!(f, "backend: {e:?}"),
            Self::Unsettled(e) => write!(f, "protect failed part way: {:?}", e.error),
            Self::RollbackRefused {
                va,
                len,
                pages,
                error,
            } => write!(
                f,
                "map failed and its rollback was refused ({error:?}): {pages} pages still mapped in {va:#x}..{:#x}",
                va + len
            ),
        }
    }
}

impl<E: fmt::Debug> core::error::Error for MapError<E> {}

/// The [`Display`](fmt::Display) wording, written by defmt; the backend's error as its own
/// `defmt::Format` says.
#[cfg(feature = "defmt")]
impl<E: defmt::Format> defmt::Format for MapError<E> {
    fn format(&self, f: defmt::Formatter<'_>) {
        match self {
            Self::WrongRoot => defmt::write!(f, "not the mapper's root"),
            Self::Unaligned { va, phys, len } => defmt::write!(
                f,
                "unaligned: va {=u64:#x} phys {=u64:#x} len {=u64:#x}",
                va,
                phys,
                len
            ),
            Self::NonCanonical(va) => defmt::write!(f, "non-canonical range at {=u64:#x}", va),
            Self::ReservedSlot(s) => {
                defmt::write!(f, "root slot {=u16} is reserved by the backend", s)
            }
            Self::PhysOutOfRange(p) => {
                defmt::write!(f, "physical address {=u64:#x} out of range", p)
            }
            Self::SizeUnsupported(l) => defmt::write!(f, "no level-{=u8} leaves here", l.as_u8()),
            Self::FlagsRefused(b) => defmt::write!(f, "flags {=u64:#x} refused", b),
            Self::Overlap(va) => defmt::write!(f, "{=u64:#x} is mapped already", va),
            Self::TablesInRange(va) => {
                defmt::write!(f, "a table is where a large page at {=u64:#x} would go", va)
            }
            Self::FrameIsTable(p) => defmt::write!(f, "frame {=u64:#x} is a page table", p),
            Self::ForeignTable(va) => {
                defmt::write!(f, "{=u64:#x} lies in a table the mapper did not create", va)
            }
            Self::SplitsLargePage(va) => {
                defmt::write!(f, "would split the large page at {=u64:#x}", va)
            }
            Self::OutOfFrames => defmt::write!(f, "the frame source is empty"),
            Self::RecordFull => defmt::write!(f, "the record of owned tables is full"),
            Self::Backend(e) => defmt::write!(f, "backend: {}", e),
            Self::Unsettled(e) => defmt::write!(f, "protect failed part way: {}", e.error),
            Self::RollbackRefused {
                va,
                len,
                pages,
                error,
            } => defmt::write!(
                f,
                "map failed and its rollback was refused ({}): {=u64} pages still mapped in {=u64:#x}..{=u64:#x}",
                error,
                pages,
                va,
                va.wrapping_add(*len)
            ),
        }
    }
}
