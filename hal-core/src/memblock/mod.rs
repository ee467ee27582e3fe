//! `memblock`: the early allocator. Two sets of page-aligned physical ranges with fixed
//! capacity, *memory* (RAM the kernel may use) and *reserved* (parts of it, or anything else,
//! already taken); what is memory and not reserved is free.
//!
//! Every operation either succeeds completely or changes nothing and says why.

mod error;
mod firmware;
mod free;
mod region;

pub use error::{MapError, MemblockError};
pub use firmware::MapReport;
pub use free::FreeRanges;
pub use region::Region;

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

/// The early allocator, with room for `N` memory and `N` reserved regions.
#[derive(Clone, Debug)]
pub struct Memblock<const N: usize> {
    memory: Vec<Region, N>,
    reserved: Vec<Region, N>,
}

impl<const N: usize> Default for Memblock<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Memblock<N> {
    /// Empty: no memory, nothing reserved.
    pub const fn new() -> Self {
        Self {
            memory: Vec::new(),
            reserved: Vec::new(),
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
    /// merged with adjacent regions.
    pub fn add_memory(&mut self, start: u64, end: u64) -> Result<(), MemblockError> {
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
        let merged = region::insert_merged(&self.memory, r)?;
        self.memory = merged;
        Ok(())
    }

    /// Reserves `[start, end)`, rounded out to whole pages. Overlapping or adjacent
    /// reservations merge (reserving twice is not an error, as in Linux). Reservations
    /// outside memory are kept: they stop a later `add_memory` from handing the range out.
    pub fn reserve(&mut self, start: u64, end: u64) -> Result<(), MemblockError> {
        let r = Region::new(start, end)?.round_out()?;
        let merged = region::insert_merged(&self.reserved, r)?;
        self.reserved = merged;
        Ok(())
    }

    /// Un-reserves `[start, end)`, which must lie inside one reserved region.
    pub fn unreserve(&mut self, start: u64, end: u64) -> Result<(), MemblockError> {
        let r = Region::new(start, end)?;
        if !r.is_page_aligned() {
            return Err(MemblockError::Unaligned { start, end });
        }
        let new = region::remove(&self.reserved, r)?;
        self.reserved = new;
        Ok(())
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
        Ok(r.pop_front().expect("one frame"))
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
        match self.unreserve(s, e) {
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
                    v.pop_front().expect("one frame")
                },
            })
    }
}
