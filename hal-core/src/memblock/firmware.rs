//! Building a memblock from a firmware map, with validation.

use super::{MapError, Memblock, MemblockError};
use crate::addr::{MAX_PFN, PAGE_SHIFT, PAGE_SIZE};
use crate::memmap::{MemRegion, RegionKind};

/// What [`Memblock::from_firmware`] did with the map.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct MapReport {
    /// RAM entries taken, whole or in part: those with at least one byte in a kept page (an
    /// entry whose bytes were all trimmed or unaddressable is not counted).
    pub ram_entries: usize,
    /// Bytes of RAM taken (whole pages).
    pub ram_bytes: u64,
    /// Bytes of RAM dropped because they were partial pages at the edges of a span of
    /// touching RAM entries.
    pub trimmed_bytes: u64,
    /// Bytes of RAM (whole pages) dropped because they lie at or above
    /// [`MAX_PFN`]: no frame number, so no page-table entry, can name
    /// them.
    pub unaddressable_bytes: u64,
}

impl<const N: usize> Memblock<N> {
    /// Validates a firmware map and adds its RAM.
    ///
    /// The map must be sorted by start address, with no zero-length, overflowing (running
    /// past 2^64; ending at 2^64 exactly is fine) or overlapping entries (of any type);
    /// otherwise the index of the first bad entry is reported. RAM entries that touch (one
    /// starts where the one before it ends) are joined first, as Linux joins its e820 map:
    /// firmware and hypervisors split RAM at edges that are no page boundary. Each joined
    /// span is then trimmed *inward* to whole pages (a firmware map has RAM edges such as
    /// 0x9fc00; a partial page is not usable RAM), and RAM at or above [`MAX_PFN`] is dropped
    /// (nothing can map it). So a page is kept exactly when every byte of it is RAM in the
    /// map and it lies below [`MAX_PFN`]; the report says how much was cut. A span's region
    /// is added by the entry that completes the span's first kept page (and grown by the
    /// span's later entries, which need no room), so [`MapError::TooMany`] names that entry.
    /// On any error no memblock is returned: a bad entry after RAM was added refuses the
    /// whole map.
    ///
    /// # Safety
    /// As [`add_memory`](Memblock::add_memory) for every RAM entry: the map describes this
    /// machine's memory (or memory the caller owns), no other memblock is built over it, and
    /// what is in use is reserved before the first allocation.
    pub unsafe fn from_firmware(map: &[MemRegion]) -> Result<(Self, MapReport), MapError> {
        let mut mb = Self::new();
        // SAFETY: the caller's contract, for this new memblock.
        let report = unsafe { mb.fill_from_firmware(map) }?;
        Ok((mb, report))
    }

    /// As [`from_firmware`](Self::from_firmware), built in place in `slot` (a memblock is
    /// kilobytes: static storage, not a stack frame to be moved out of). On error `slot`
    /// holds a memblock that nobody was given (overwrite it freely).
    ///
    /// # Safety
    /// As [`from_firmware`](Self::from_firmware).
    pub unsafe fn init_from_firmware<'a>(
        slot: &'a mut core::mem::MaybeUninit<Self>,
        map: &[MemRegion],
    ) -> Result<(&'a mut Self, MapReport), MapError> {
        let mb = slot.write(Self::new());
        // SAFETY: the caller's contract, for this new memblock.
        let report = unsafe { mb.fill_from_firmware(map) }?;
        Ok((mb, report))
    }

    /// Adds the RAM of `map` to this new memblock (no memory added yet).
    ///
    /// # Safety
    /// As [`from_firmware`](Self::from_firmware).
    unsafe fn fill_from_firmware(&mut self, map: &[MemRegion]) -> Result<MapReport, MapError> {
        let mb = self;
        let mut report = MapReport::default();
        // The last byte of the previous entry: an entry may end at 2^64 exactly (its `end`
        // is no u64), so entries are compared by their last bytes.
        let mut prev_last: Option<u64> = None;
        // The span of touching RAM entries: where an entry must start to join it (0 after an
        // entry that is no RAM: no entry but the first can start at 0, and joining the empty
        // span at 0 is starting a new one), its first whole page, and its first entry not yet
        // counted as taken (they are counted when a page they are in is kept).
        let (mut join_at, mut span_first, mut untaken) = (0, 0, 0);
        for (index, e) in map.iter().enumerate() {
            if e.len == 0 {
                return Err(MapError::ZeroLength { index });
            }
            let last = e
                .start
                .checked_add(e.len - 1)
                .ok_or(MapError::Overflow { index })?;
            if let Some(p) = prev_last {
                if e.start <= p {
                    let prev_start = map[index - 1].start;
                    return Err(if e.start < prev_start {
                        MapError::Unsorted { index }
                    } else {
                        MapError::Overlap { index }
                    });
                }
            }
            prev_last = Some(last);
            if e.kind != RegionKind::Ram {
                join_at = 0;
                continue;
            }
            if e.start != join_at {
                span_first = e.start.div_ceil(PAGE_SIZE);
                untaken = index;
            }
            // 0 for an entry ending at 2^64, which no entry can follow.
            join_at = last.wrapping_add(1);
            // The span's whole pages that end in this entry, as frame numbers `[first, end)`
            // (`end` is `(last + 1) / 4096`, at most 2^52).
            let first = span_first.max(e.start >> PAGE_SHIFT);
            let end = (last >> PAGE_SHIFT) + u64::from(last % PAGE_SIZE == PAGE_SIZE - 1);
            // All the RAM bytes for now (the trimmed ones are what is left of them at the end).
            report.trimmed_bytes = report.trimmed_bytes.wrapping_add(e.len);
            if last >> PAGE_SHIFT < span_first {
                // Only in the span's partial first page: in no page that can be kept.
                untaken = index + 1;
            }
            // Pages `[first, addressable)` are kept, `[addressable, end)` are not addressable
            // (none if `end <= first`: the entry completes no page).
            let addressable = end.min(MAX_PFN).max(first);
            report.unaddressable_bytes += end.saturating_sub(addressable) << PAGE_SHIFT;
            if addressable == first {
                continue;
            }
            let (s, t) = (first << PAGE_SHIFT, addressable << PAGE_SHIFT);
            // Only `Capacity` can happen: the map is valid so far and the memblock was new.
            // SAFETY: the caller claims the map's RAM for this memblock (this fn's contract).
            unsafe { mb.add_memory(s, t) }.map_err(|error| match error {
                MemblockError::Capacity => MapError::TooMany { index },
                error => MapError::Memblock { index, error },
            })?;
            report.ram_entries += index + 1 - untaken;
            untaken = index + 1;
            report.ram_bytes += t - s;
        }
        if report.ram_bytes == 0 {
            return Err(MapError::NoRam);
        }
        // Modulo 2^64: the RAM bytes sum to at most 2^64 (as 0 then), and all of them are
        // whole pages if so, so the trimmed bytes are below 2^64.
        report.trimmed_bytes = report
            .trimmed_bytes
            .wrapping_sub(report.ram_bytes)
            .wrapping_sub(report.unaddressable_bytes);
        Ok(report)
    }
}
