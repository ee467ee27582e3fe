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

/// `set ∪ {r}`, merged, as a new vector (the old one is untouched on error).
pub(crate) fn insert_merged<const N: usize>(
    set: &Vec<Region, N>,
    r: Region,
) -> Result<Vec<Region, N>, MemblockError> {
    let mut out: Vec<Region, N> = Vec::new();
    let mut cur = r;
    let mut placed = false;
    for &x in set {
        if x.touches(&cur) {
            cur = Region {
                start: cur.start.min(x.start),
                end: cur.end.max(x.end),
            };
        } else if x.end < cur.start {
            out.push(x).map_err(|_| MemblockError::Capacity)?;
        } else {
            if !placed {
                out.push(cur).map_err(|_| MemblockError::Capacity)?;
                placed = true;
            }
            out.push(x).map_err(|_| MemblockError::Capacity)?;
        }
    }
    if !placed {
        out.push(cur).map_err(|_| MemblockError::Capacity)?;
    }
    Ok(out)
}

/// `set ∖ r`, where `r` lies inside one region of `set`.
pub(crate) fn remove<const N: usize>(
    set: &Vec<Region, N>,
    r: Region,
) -> Result<Vec<Region, N>, MemblockError> {
    if !set.iter().any(|x| x.contains(&r)) {
        return Err(MemblockError::NotReserved {
            start: r.start,
            end: r.end,
        });
    }
    let mut out: Vec<Region, N> = Vec::new();
    for &x in set {
        if x.contains(&r) {
            if x.start < r.start {
                out.push(Region {
                    start: x.start,
                    end: r.start,
                })
                .map_err(|_| MemblockError::Capacity)?;
            }
            if r.end < x.end {
                out.push(Region {
                    start: r.end,
                    end: x.end,
                })
                .map_err(|_| MemblockError::Capacity)?;
            }
        } else {
            out.push(x).map_err(|_| MemblockError::Capacity)?;
        }
    }
    Ok(out)
}
