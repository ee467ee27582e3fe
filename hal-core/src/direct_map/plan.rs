//! Splitting physical ranges into page runs, and the exact table count.

use crate::addr::{PfnRange, MAX_PFN};
use crate::backend::{Caps, PageSizes};
use crate::level::TableLevel;

/// A leaf page size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum PageSize {
    /// 4 KiB, an L1 entry.
    Size4K,
    /// 2 MiB, an L2 entry with PS.
    Size2M,
    /// 1 GiB, an L3 entry with PS.
    Size1G,
}

impl PageSize {
    /// Frames in one page.
    pub const fn frames(self) -> u64 {
        match self {
            Self::Size4K => 1,
            Self::Size2M => 512,
            Self::Size1G => 512 * 512,
        }
    }

    /// The level whose entries map pages of this size.
    pub const fn level(self) -> TableLevel {
        match self {
            Self::Size4K => TableLevel::L1,
            Self::Size2M => TableLevel::L2,
            Self::Size1G => TableLevel::L3,
        }
    }
}

/// Where and how to map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DirectMapSpec {
    /// Virtual address of physical address 0 (Linux: 0xffff888000000000). 1 GiB-aligned.
    pub base: u64,
    /// Leaf page sizes to use (intersected with the backend's).
    pub page_sizes: PageSizes,
}

/// The direct map's base address Linux uses on x86-64 (L4 slot 273).
pub const LINUX_PAGE_OFFSET: u64 = 0xffff_8880_0000_0000;

/// A run of equally sized, equally protected pages mapping consecutive frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Run {
    /// First frame.
    pub pfn: u64,
    /// Number of pages.
    pub pages: u64,
    /// Their size.
    pub size: PageSize,
    /// Mapped read-only (the frames are page tables, or reserved for them, on a backend that
    /// forbids writable mappings of those).
    pub read_only: bool,
}

/// Why a set of ranges cannot be mapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum PlanError {
    /// The base is not 1 GiB-aligned, or not canonical.
    BadBase(u64),
    /// Range `index` starts before the previous one ends (ranges must be sorted and disjoint).
    Unsorted {
        /// Position of the range.
        index: usize,
    },
    /// Mapping a frame this high would leave the canonical half of the base, or hit a slot
    /// the backend reserves (Xen's L4 slots 256–271).
    OutOfVirtualSpace {
        /// The first frame that does not fit.
        pfn: u64,
    },
}

/// Iterator over the runs of a set of ranges. Deterministic: [`count_tables`] and
/// [`build`](super::build()) walk the same runs.
#[derive(Clone)]
pub struct Runs<'a> {
    ranges: &'a [PfnRange],
    read_only: &'a [PfnRange],
    sizes: PageSizes,
    idx: usize,
    pos: u64,
}

impl<'a> Runs<'a> {
    /// The runs for `ranges` (sorted, disjoint) with the frames in `read_only` (sorted,
    /// disjoint) mapped read-only and never inside a large page.
    #[inline]
    pub fn new(
        ranges: &'a [PfnRange],
        read_only: &'a [PfnRange],
        spec: &DirectMapSpec,
        caps: &Caps,
    ) -> Result<Self, PlanError> {
        check_ranges(ranges, spec, caps)?;
        Ok(Self {
            ranges,
            read_only,
            sizes: spec.page_sizes & caps.page_sizes,
            idx: 0,
            pos: ranges.first().map_or(0, |r| r.start().as_u64()),
        })
    }

    /// The first read-only range that ends after `p`.
    #[inline]
    fn ro_after(&self, p: u64) -> Option<PfnRange> {
        let i = self.read_only.partition_point(|r| r.end() <= p);
        self.read_only.get(i).copied()
    }
}

impl Iterator for Runs<'_> {
    type Item = Run;

    #[inline]
    fn next(&mut self) -> Option<Run> {
        let mut range = *self.ranges.get(self.idx)?;
        while self.pos >= range.end() {
            self.idx += 1;
            range = *self.ranges.get(self.idx)?;
            self.pos = range.start().as_u64();
        }
        let p = self.pos.max(range.start().as_u64());
        let e = range.end();
        let ro = self.ro_after(p);
        let in_ro = ro.is_some_and(|r| r.start().as_u64() <= p);
        // Where the protection changes.
        let prot_edge = match ro {
            Some(r) if in_ro => r.end(),
            Some(r) => r.start().as_u64(),
            None => MAX_PFN,
        };
        if !in_ro {
            for (size, flag) in [
                (PageSize::Size1G, PageSizes::SIZE_1G),
                (PageSize::Size2M, PageSizes::SIZE_2M),
            ] {
                let n = size.frames();
                if self.sizes.contains(flag) && p % n == 0 && p + n <= e.min(prot_edge) {
                    let pages = (e.min(prot_edge) - p) / n;
                    // A 2 MiB run stops where a 1 GiB page could start.
                    let pages =
                        if size == PageSize::Size2M && self.sizes.contains(PageSizes::SIZE_1G) {
                            let next_1g =
                                (p / PageSize::Size1G.frames() + 1) * PageSize::Size1G.frames();
                            pages.min((next_1g - p) / n)
                        } else {
                            pages
                        };
                    self.pos = p + pages * n;
                    return Some(Run {
                        pfn: p,
                        pages,
                        size,
                        read_only: false,
                    });
                }
            }
        }
        // 4 KiB pages up to the next place a large page could start, or the protection edge.
        let smallest_large = if self.sizes.contains(PageSizes::SIZE_2M) {
            Some(PageSize::Size2M.frames())
        } else if self.sizes.contains(PageSizes::SIZE_1G) {
            Some(PageSize::Size1G.frames())
        } else {
            None
        };
        let mut stop = e.min(prot_edge);
        if let Some(n) = smallest_large {
            stop = stop.min((p / n + 1) * n);
        }
        self.pos = stop;
        Some(Run {
            pfn: p,
            pages: stop - p,
            size: PageSize::Size4K,
            read_only: in_ro,
        })
    }
}

#[inline]
fn check_ranges(ranges: &[PfnRange], spec: &DirectMapSpec, caps: &Caps) -> Result<(), PlanError> {
    let gib = PageSize::Size1G.frames() << 12;
    let canonical = |va: u64| {
        let top = va >> 47;
        top == 0 || top == 0x1ffff
    };
    if spec.base % gib != 0 || !canonical(spec.base) {
        return Err(PlanError::BadBase(spec.base));
    }
    let mut prev_end = 0;
    for (index, r) in ranges.iter().enumerate() {
        if r.is_empty() {
            continue;
        }
        if r.start().as_u64() < prev_end {
            return Err(PlanError::Unsorted { index });
        }
        prev_end = r.end();
        // Last byte of the range must stay in the base's half and out of reserved slots.
        let last = r.end() - 1;
        let va_last = (last << 12).checked_add(spec.base);
        let fits = va_last.is_some_and(|v| canonical(v) && (v >> 47) == (spec.base >> 47));
        if !fits {
            return Err(PlanError::OutOfVirtualSpace { pfn: last });
        }
        let (lo, hi) = caps.reserved_root_slots;
        let first_slot = TableLevel::L4.index_of(spec.base + (r.start().as_u64() << 12));
        let last_slot = TableLevel::L4.index_of(va_last.unwrap_or(0));
        if first_slot < hi && lo <= last_slot && lo < hi {
            let bad = if first_slot >= lo {
                r.start().as_u64()
            } else {
                // Slot `lo`'s address, sign-extended like the base (upper-half slots).
                let slot_va = u64::from(lo) << 39;
                let slot_va = if slot_va & (1 << 47) != 0 {
                    slot_va | 0xffff_0000_0000_0000
                } else {
                    slot_va
                };
                (slot_va - spec.base) >> 12
            };
            return Err(PlanError::OutOfVirtualSpace { pfn: bad });
        }
    }
    Ok(())
}

/// Table frames a direct map needs, per level.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TableCount {
    /// Level-3 tables (one per 512 GiB slot of the root touched).
    pub l3: u64,
    /// Level-2 tables (one per 1 GiB touched by 2 MiB or 4 KiB pages).
    pub l2: u64,
    /// Level-1 tables (one per 2 MiB touched by 4 KiB pages).
    pub l1: u64,
}

impl TableCount {
    /// All levels together.
    pub const fn total(&self) -> u64 {
        self.l3 + self.l2 + self.l1
    }
}

/// Counts, exactly, the tables below the root that mapping `ranges` at `spec.base` needs when
/// none of them exists yet (a root whose slots for the range are empty). The root itself is
/// not counted.
#[inline]
pub fn count_tables(
    ranges: &[PfnRange],
    read_only: &[PfnRange],
    spec: &DirectMapSpec,
    caps: &Caps,
) -> Result<TableCount, PlanError> {
    Ok(count_runs(
        Runs::new(ranges, read_only, spec, caps)?,
        spec.base,
    ))
}

/// [`count_tables`] over runs already made (and their ranges checked).
#[inline]
pub(crate) fn count_runs(runs: impl IntoIterator<Item = Run>, base: u64) -> TableCount {
    let mut count = [0u64; 3];
    // The last table counted at each level (L1, L2, L3), as its key: the address shifted by
    // the span of the entry one level up that points at it. `u64::MAX` is no key (a key is
    // at most 2^43 - 1).
    let mut last = [u64::MAX; 3];
    for run in runs {
        let first_va = base.wrapping_add(run.pfn << 12);
        let last_va = first_va.wrapping_add((run.pages * run.size.frames() - 1) << 12);
        // Every table level from L3 down to the run's level is needed for every slot the run
        // touches; tables are reached in ascending order, so a run needs the keys from its
        // first address's to its last's, less the first if the run before counted it.
        for lvl in run.size.level() as usize - 1..3 {
            let shift = 12 + 9 * (lvl as u32 + 1);
            let (lo, hi) = (first_va >> shift, last_va >> shift);
            count[lvl] += hi - lo + 1 - u64::from(last[lvl] == lo);
            last[lvl] = hi;
        }
    }
    TableCount {
        l1: count[0],
        l2: count[1],
        l3: count[2],
    }
}

impl core::fmt::Display for PlanError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::BadBase(b) => write!(f, "base {b:#x} is not 1 GiB-aligned or not canonical"),
            Self::Unsorted { index } => write!(
                f,
                "range {index} starts before the previous one ends (ranges must be sorted and disjoint)"
            ),
            Self::OutOfVirtualSpace { pfn } => write!(
                f,
                "frame {pfn:#x} would be mapped outside the canonical half of the base or in a root slot the backend reserves"
            ),
        }
    }
}

impl core::error::Error for PlanError {}
