//! Building a memblock from a firmware map, with validation.

use super::{MapError, Memblock, MemblockError};
use crate::addr::{MAX_PFN, PAGE_SHIFT, PAGE_SIZE};
use crate::memmap::{MemRegion, RegionKind};

/// What [`Memblock::from_firmware`] did with the map.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct MapReport {
    /// RAM entries taken.
    pub ram_entries: usize,
    /// Bytes of RAM taken (whole pages).
    pub ram_bytes: u64,
    /// Bytes of RAM dropped because they were partial pages at an entry's edges.
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
    /// otherwise the index of the first bad entry is reported. RAM entries are trimmed
    /// *inward* to whole pages (firmware maps have RAM edges such as 0x9fc00; a partial page
    /// is not usable RAM), and RAM at or above [`MAX_PFN`] is dropped (nothing can map it):
    /// the report says how much of each was cut.
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
                continue;
            }
            // Whole pages inside the entry, as frame numbers `[first, end)`: neither overflows
            // (`end` is `(last + 1) / 4096`, at most 2^52).
            let first = e.start.div_ceil(PAGE_SIZE);
            let end = (last >> PAGE_SHIFT) + u64::from(last % PAGE_SIZE == PAGE_SIZE - 1);
            if first >= end {
                report.trimmed_bytes += e.len;
                continue;
            }
            // At most `e.len`, which is below 2^64: the pages lie inside the entry.
            let whole = (end - first) << PAGE_SHIFT;
            report.trimmed_bytes += e.len - whole;
            let addressable = end.min(MAX_PFN);
            if addressable <= first {
                report.unaddressable_bytes += whole;
                continue;
            }
            report.unaddressable_bytes += (end - addressable) << PAGE_SHIFT;
            let (s, t) = (first << PAGE_SHIFT, addressable << PAGE_SHIFT);
            // SAFETY: the caller claims the map's RAM for this memblock (this fn's contract).
            match unsafe { mb.add_memory(s, t) } {
                Ok(()) => {}
                Err(MemblockError::Capacity) => return Err(MapError::TooMany { index }),
                Err(MemblockError::Overlap { .. }) => return Err(MapError::Overlap { index }),
                Err(MemblockError::Overflow) => return Err(MapError::Overflow { index }),
                Err(error) => return Err(MapError::Memblock { index, error }),
            }
            report.ram_entries += 1;
            report.ram_bytes += t - s;
        }
        if report.ram_bytes == 0 {
            return Err(MapError::NoRam);
        }
        Ok(report)
    }
}
