//! A physical byte range and the sorted-set operations on fixed-capacity vectors of them.

use heapless::Vec;

use super::MemblockError;
use crate::addr::PAGE_SIZE;

/// A physical byte range `[start, end)`, non-empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Region {
    start: u64,
    end: u64,
}

impl Region {
    /// `[start, end)`: empty or reversed ranges are refused.
    pub fn new(start: u64, end: u64) -> Result<Self, MemblockError> {
        if end == start {
            return Err(MemblockError::ZeroLength);
        }
        if end < start {
            return Err(MemblockError::Overflow);
        }
        Ok(Self { start, end })
    }

    /// Start address.
    pub const fn start(&self) -> u64 {
        self.start
    }

    /// One past the last byte.
    pub const fn end(&self) -> u64 {
        self.end
    }

    /// Bytes.
    pub const fn len(&self) -> u64 {
        self.end - self.start
    }

    /// Never: a region is non-empty by construction.
    pub const fn is_empty(&self) -> bool {
        false
    }

    /// Whether they share a byte.
    pub const fn overlaps(&self, o: &Region) -> bool {
        self.start < o.end && o.start < self.end
    }

    /// Whether they share a byte or touch.
    const fn touches(&self, o: &Region) -> bool {
        self.start <= o.end && o.start <= self.end
    }

    pub(crate) const fn is_page_aligned(&self) -> bool {
        self.start % PAGE_SIZE == 0 && self.end % PAGE_SIZE == 0
    }

    /// Rounded out to whole pages; `Overflow` if the end would pass the address space.
    pub(crate) fn round_out(self) -> Result<Self, MemblockError> {
        let start = self.start & !(PAGE_SIZE - 1);
        let end = self
            .end
            .div_ceil(PAGE_SIZE)
            .checked_mul(PAGE_SIZE)
            .ok_or(MemblockError::Overflow)?;
        Ok(Self { start, end })
    }

    pub(crate) fn contains(&self, o: &Region) -> bool {
        self.start <= o.start && o.end <= self.end
    }
}

/// Inserts `r` into `set` (sorted, disjoint, adjacent regions merged) in place, merging it
/// with every region it overlaps or touches. On error (`set` full and `r` touching nothing)
/// `set` is unchanged. In place: a `Vec<Region, N>` is kilobytes, not to be built on the
/// stack and copied back per call.
pub(crate) fn insert_merged<const N: usize>(
    set: &mut Vec<Region, N>,
    r: Region,
) -> Result<(), MemblockError> {
    // The regions touching `r` are one run `[first, last)`: the set is sorted and no two of
    // its regions touch, so any region between two that touch `r` lies inside `r`'s span.
    let first = set.iter().position(|x| x.touches(&r) || x.start > r.end);
    let Some(first) = first else {
        return set.push(r).map_err(|_| MemblockError::Capacity);
    };
    let last = first + set[first..].iter().take_while(|x| x.touches(&r)).count();
    if last == first {
        return set.insert(first, r).map_err(|_| MemblockError::Capacity);
    }
    set[first] = Region {
        start: r.start.min(set[first].start),
        end: r.end.max(set[last - 1].end),
    };
    for _ in first + 1..last {
        set.remove(first + 1);
    }
    Ok(())
}

/// Removes `r`, which must lie inside one region of `set`, from `set` in place. On error
/// nothing changed.
pub(crate) fn remove<const N: usize>(
    set: &mut Vec<Region, N>,
    r: Region,
) -> Result<(), MemblockError> {
    let Some(k) = set.iter().position(|x| x.contains(&r)) else {
        return Err(MemblockError::NotReserved {
            start: r.start,
            end: r.end,
        });
    };
    let x = set[k];
    match (x.start < r.start, r.end < x.end) {
        (true, true) => {
            let right = Region {
                start: r.end,
                end: x.end,
            };
            set.insert(k + 1, right)
                .map_err(|_| MemblockError::Capacity)?;
            set[k].end = r.start;
        }
        (true, false) => set[k].end = r.start,
        (false, true) => set[k].start = r.end,
        (false, false) => {
            set.remove(k);
        }
    }
    Ok(())
}
