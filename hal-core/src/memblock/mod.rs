//! `memblock`: the early allocator. Two sets of page-aligned physical ranges with fixed
//! capacity, *memory* (RAM the kernel may use) and *reserved* (parts of it, or anything else,
//! already taken); what is memory and not reserved is free.
//!
//! Every operation either succeeds completely or changes nothing and says why.
//!
//! # Claims
//! memblock turns addresses into owned [`Frame`]s, so what it hands out is only as unique as
//! the memory it was given. Adding memory is therefore `unsafe`
//! ([`add_memory`](Memblock::add_memory), [`from_firmware`](Memblock::from_firmware)): the
//! caller claims the RAM for this memblock alone. A memblock is not `Clone` (a copy would hand
//! out the same frames again), and nothing safe un-reserves memory that somebody may hold:
//! frames come back only as owned [`Free`] frames ([`free_frames`](Memblock::free_frames));
//! byte-level [`unreserve`](Memblock::unreserve) is `unsafe`. Each memblock has an
//! [`id`](Memblock::id), so that a [`PgtBuf`](crate::pgt_buf::PgtBuf) returns its tail to
//! the memblock it came from and to no other.

mod error;
mod firmware;
mod free;
mod region;

pub use error::{MapError, MemblockError};
pub use firmware::MapReport;
pub use free::FreeRanges;
pub use region::Region;

use core::num::NonZeroU64;
use core::sync::atomic::{AtomicU64, Ordering};

use heapless::Vec;

use crate::addr::{Pfn, PfnRange, MAX_PFN, PAGE_SHIFT, PAGE_SIZE};
use crate::error::Failed;
use crate::frame::Frame;
use crate::range::FrameRange;
use crate::state::Free;

/// Which end of free memory an allocation takes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Direction {
    /// The highest suitable address (Linux's default).
    TopDown,
    /// The lowest suitable address.
    BottomUp,
}

/// Which memblock a value came from: unique for the life of the program.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct MemblockId(NonZeroU64);

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl MemblockId {
    fn fresh() -> Self {
        let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        // 2^64 memblocks are never made; should the counter wrap, refuse to reuse an id.
        match NonZeroU64::new(n) {
            Some(v) if n != u64::MAX => Self(v),
            _ => panic!("memblock ids exhausted"),
        }
    }
}

/// The early allocator, with room for `N` memory and `N` reserved regions.
///
/// Not `Clone`: two memblocks over the same memory would hand out the same frames.
#[derive(Debug)]
pub struct Memblock<const N: usize> {
    id: MemblockId,
    memory: Vec<Region, N>,
    reserved: Vec<Region, N>,
}

/// A copy of a memblock's regions: plain data, for comparing states (it hands out nothing).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot<const N: usize> {
    memory: Vec<Region, N>,
    reserved: Vec<Region, N>,
}

impl<const N: usize> Snapshot<N> {
    /// Memory regions.
    pub fn memory(&self) -> &[Region] {
        &self.memory
    }

    /// Reserved regions.
    pub fn reserved(&self) -> &[Region] {
        &self.reserved
    }

    /// Bytes free (memory minus reserved).
    pub fn free_bytes(&self) -> u64 {
        FreeRanges::new(&self.memory, &self.reserved)
            .map(|r| r.len())
            .sum()
    }

    /// The regions with `[start, end)` reserved as well, as
    /// [`Memblock::reserve`] would leave them (for computing an expected state).
    pub fn with_reserved(&self, start: u64, end: u64) -> Result<Self, MemblockError> {
        let r = Region::new(start, end)?.round_out()?;
        let mut reserved = self.reserved.clone();
        region::insert_merged(&mut reserved, r)?;
        Ok(Self {
            memory: self.memory.clone(),
            reserved,
        })
    }
}

impl<const N: usize> Default for Memblock<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Memblock<N> {
    /// Empty: no memory, nothing reserved. Hands out nothing until memory is added.
    pub fn new() -> Self {
        Self {
            id: MemblockId::fresh(),
            memory: Vec::new(),
            reserved: Vec::new(),
        }
    }

    /// This memblock's identity.
    pub fn id(&self) -> MemblockId {
        self.id
    }

    /// A copy of the regions, for comparison.
    pub fn snapshot(&self) -> Snapshot<N> {
        Snapshot {
            memory: self.memory.clone(),
            reserved: self.reserved.clone(),
        }
    }

    /// Memory regions, sorted, disjoint, adjacent ones merged.
    pub fn memory(&self) -> &[Region] {
        &self.memory
    }

    /// Reserved regions, sorted, disjoint, adjacent ones merged.
    pub fn reserved(&self) -> &[Region] {
        &self.reserved
    }

    /// Bytes of memory.
    pub fn memory_bytes(&self) -> u64 {
        self.memory.iter().map(Region::len).sum()
    }

    /// The free ranges (memory minus reserved), ascending.
    pub fn free_ranges(&self) -> FreeRanges<'_> {
        FreeRanges::new(&self.memory, &self.reserved)
    }

    /// Bytes free.
    pub fn free_bytes(&self) -> u64 {
        self.free_ranges().map(|r| r.len()).sum()
    }

    /// Adds RAM `[start, end)`. Page-aligned, non-empty, overlapping no memory already added;
    /// merged with adjacent regions. On error nothing changed.
    ///
    /// # Safety
    /// The range is RAM that the caller claims for this memblock alone, for its whole life: no
    /// other memblock, allocator, [`Frame`] or [`FrameRange`] covers any of it, and whatever
    /// part is in use (the kernel image, boot tables, firmware data) is
    /// [`reserve`](Self::reserve)d before the next allocation.
    pub unsafe fn add_memory(&mut self, start: u64, end: u64) -> Result<(), MemblockError> {
        let r = Region::new(start, end)?;
        if !r.is_page_aligned() {
            return Err(MemblockError::Unaligned { start, end });
        }
        if let Some(o) = self.memory.iter().find(|m| m.overlaps(&r)) {
            return Err(MemblockError::Overlap {
                start,
                end,
                with: *o,
            });
        }
        region::insert_merged(&mut self.memory, r)
    }

    /// Reserves `[start, end)`, rounded out to whole pages. Overlapping or adjacent
    /// reservations merge (reserving twice is not an error, as in Linux). Reservations
    /// outside memory are kept: they stop a later `add_memory` from handing the range out.
    pub fn reserve(&mut self, start: u64, end: u64) -> Result<(), MemblockError> {
        let r = Region::new(start, end)?.round_out()?;
        region::insert_merged(&mut self.reserved, r)
    }

    /// Un-reserves `[start, end)`, which must lie inside one reserved region. On error nothing
    /// changed.
    ///
    /// # Safety
    /// Nobody holds any frame of the range: it was reserved by [`reserve`](Self::reserve) or
    /// [`alloc`](Self::alloc) for a purpose that has ended, not allocated as frames (give those
    /// back with [`free_frames`](Self::free_frames)), nor part of a page-table buffer or a table.
    pub unsafe fn unreserve(&mut self, start: u64, end: u64) -> Result<(), MemblockError> {
        self.unreserve_range(start, end)
    }

    fn unreserve_range(&mut self, start: u64, end: u64) -> Result<(), MemblockError> {
        let r = Region::new(start, end)?;
        if !r.is_page_aligned() {
            return Err(MemblockError::Unaligned { start, end });
        }
        region::remove(&mut self.reserved, r)
    }

    /// Allocates `size` bytes (rounded up to pages) aligned to `align` (a power of two, at
    /// least a page), ending at or below `limit`, from the chosen end of free memory; the
    /// result is reserved. Returns the start address.
    pub fn alloc(
        &mut self,
        size: u64,
        align: u64,
        limit: u64,
        dir: Direction,
    ) -> Result<u64, MemblockError> {
        self.alloc_in(size, align, 0, limit, dir)
    }

    /// As [`alloc`](Self::alloc), inside `[min, limit)`.
    pub fn alloc_in(
        &mut self,
        size: u64,
        align: u64,
        min: u64,
        limit: u64,
        dir: Direction,
    ) -> Result<u64, MemblockError> {
        if size == 0 {
            return Err(MemblockError::ZeroLength);
        }
        if !align.is_power_of_two() || align < PAGE_SIZE {
            return Err(MemblockError::BadAlign(align));
        }
        let size = size
            .checked_add(PAGE_SIZE - 1)
            .ok_or(MemblockError::Overflow)?
            & !(PAGE_SIZE - 1);
        let fits = |r: Region| -> Option<u64> {
            let lo = r.start().max(min);
            let end = r.end().min(limit);
            match dir {
                Direction::TopDown => {
                    let start = end.checked_sub(size)? & !(align - 1);
                    (start >= lo).then_some(start)
                }
                Direction::BottomUp => {
                    let start = lo.checked_add(align - 1)? & !(align - 1);
                    (start.checked_add(size)? <= end).then_some(start)
                }
            }
        };
        let found = match dir {
            Direction::TopDown => self.free_ranges().filter_map(fits).last(),
            Direction::BottomUp => self.free_ranges().find_map(fits),
        };
        let start = found.ok_or(MemblockError::OutOfMemory { size, limit })?;
        self.reserve(start, start + size)?;
        Ok(start)
    }

    /// Allocates exactly the frames of `pfns`, which must all be free.
    pub fn alloc_exact(&mut self, pfns: PfnRange) -> Result<FrameRange<Free>, MemblockError> {
        if pfns.is_empty() {
            return Err(MemblockError::ZeroLength);
        }
        let (s, e) = pfns.bytes();
        let start = self.alloc_in(e - s, PAGE_SIZE, s, e, Direction::BottomUp)?;
        debug_assert_eq!(start, s);
        // SAFETY: the frames were free and are reserved now on behalf of the caller.
        Ok(unsafe { FrameRange::from_pfns_unchecked(pfns) })
    }

    /// Allocates `count` contiguous frames below `limit` as owned [`Free`] frames.
    pub fn alloc_frames(
        &mut self,
        count: u64,
        limit: u64,
        dir: Direction,
    ) -> Result<FrameRange<Free>, MemblockError> {
        let bytes = count
            .checked_mul(PAGE_SIZE)
            .ok_or(MemblockError::Overflow)?;
        // Only memory below MAX_PFN has frame numbers: never reserve what cannot be handed out.
        let limit = limit.min(MAX_PFN << PAGE_SHIFT);
        let start = self.alloc(bytes, PAGE_SIZE, limit, dir)?;
        let first = Pfn::containing(start).ok_or(MemblockError::Overflow)?;
        let pfns = PfnRange::new(first, first.as_u64() + count).ok_or(MemblockError::Overflow)?;
        // SAFETY: the range was free memory and is reserved now on behalf of the caller, who
        // is its only owner.
        Ok(unsafe { FrameRange::from_pfns_unchecked(pfns) })
    }

    /// Allocates one frame below `limit`.
    pub fn alloc_frame(
        &mut self,
        limit: u64,
        dir: Direction,
    ) -> Result<Frame<Free>, MemblockError> {
        let mut r = self.alloc_frames(1, limit, dir)?;
        Ok(r.pop_front()
            .unwrap_or_else(|| unreachable!(/* one frame */)))
    }

    /// Gives frames back: they become free memory. Only [`Free`] frames can be given back;
    /// the frames come back with the error if the reserved set cannot take the change.
    pub fn free_frames(
        &mut self,
        frames: FrameRange<Free>,
    ) -> Result<(), Failed<FrameRange<Free>, MemblockError>> {
        if frames.is_empty() {
            let _ = frames.split_at(0);
            return Ok(());
        }
        let (s, e) = frames.pfns().bytes();
        match self.unreserve_range(s, e) {
            Ok(()) => {
                crate::frame::handed_over(frames);
                Ok(())
            }
            Err(error) => Err(Failed {
                error,
                value: frames,
            }),
        }
    }

    /// Gives one frame back.
    pub fn free_frame(
        &mut self,
        frame: Frame<Free>,
    ) -> Result<(), Failed<Frame<Free>, MemblockError>> {
        self.free_frames(FrameRange::from_frame(frame))
            .map_err(|f| Failed {
                error: f.error,
                value: {
                    let mut v = f.value;
                    v.pop_front()
                        .unwrap_or_else(|| unreachable!(/* one frame */))
                },
            })
    }
}
