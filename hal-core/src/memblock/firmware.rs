//! Building a memblock from a firmware map, with validation.

use super::{MapError, Memblock, MemblockError};
use crate::addr::PAGE_SIZE;
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
}

impl<const N: usize> Memblock<N> {
    /// Validates a firmware map and adds its RAM.
    ///
    /// The map must be sorted by start address, with no zero-length, overflowing or
    /// overlapping entries (of any type); otherwise the index of the first bad entry is
    /// reported. RAM entries are trimmed *inward* to whole pages (firmware maps have RAM edges
    /// such as 0x9fc00; a partial page is not usable RAM): the report says how much was cut.
    ///
    /// # Safety
    /// As [`add_memory`](Memblock::add_memory) for every RAM entry: the map describes this
    /// machine's memory (or memory the caller owns), no other memblock is built over it, and
    /// what is in use is reserved before the first allocation.
    pub unsafe fn from_firmware(map: &[MemRegion]) -> Result<(Self, MapReport), MapError> {
        let mut mb = Self::new();
        let mut report = MapReport::default();
        let mut prev_end: Option<u64> = None;
        for (index, e) in map.iter().enumerate() {
            if e.len == 0 {
                return Err(MapError::ZeroLength { index });
            }
            let end = e
                .start
                .checked_add(e.len)
                .ok_or(MapError::Overflow { index })?;
            if let Some(p) = prev_end {
                if e.start < p {
                    let prev_start = map[index - 1].start;
                    return Err(if e.start < prev_start {
                        MapError::Unsorted { index }
                    } else {
                        MapError::Overlap { index }
                    });
                }
            }
            prev_end = Some(end);
            if e.kind != RegionKind::Ram {
                continue;
            }
            let s = e.start.div_ceil(PAGE_SIZE) * PAGE_SIZE;
            let t = end & !(PAGE_SIZE - 1);
            if t <= s {
                report.trimmed_bytes += e.len;
                continue;
            }
            report.trimmed_bytes += e.len - (t - s);
            // SAFETY: the caller claims the map's RAM for this memblock (this fn's contract).
            match unsafe { mb.add_memory(s, t) } {
                Ok(()) => {}
                Err(MemblockError::Capacity) => return Err(MapError::TooMany { index }),
                Err(_) => return Err(MapError::Overlap { index }),
            }
            report.ram_entries += 1;
            report.ram_bytes += t - s;
        }
        if report.ram_bytes == 0 {
            return Err(MapError::NoRam);
        }
        Ok((mb, report))
    }
}
