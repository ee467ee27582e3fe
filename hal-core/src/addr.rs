//! Frame numbers and raw frame ranges.

use core::fmt;

/// Size of a base page (and of a page-table frame), in bytes.
pub const PAGE_SIZE: u64 = 4096;
/// log2 of [`PAGE_SIZE`].
pub const PAGE_SHIFT: u32 = 12;
/// Physical address bits the architecture allows (x86-64: 52).
pub const MAX_PHYS_BITS: u32 = 52;
/// One past the largest frame number a page-table entry can hold.
pub const MAX_PFN: u64 = 1 << (MAX_PHYS_BITS - PAGE_SHIFT);

/// A (pseudo-)physical frame number: what the kernel calls a page frame.
///
/// On bare metal it is the machine frame; under Xen PV it is the guest's pseudo-physical frame,
/// translated to a machine frame ([`Mfn`]) through the P2M.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Pfn(u64);

impl Pfn {
    /// A frame number, if it is below [`MAX_PFN`].
    #[inline]
    pub const fn new(n: u64) -> Option<Self> {
        if n < MAX_PFN {
            Some(Self(n))
        } else {
            None
        }
    }

    /// The frame that contains physical address `addr`, if the address is in range.
    #[inline]
    pub const fn containing(addr: u64) -> Option<Self> {
        Self::new(addr >> PAGE_SHIFT)
    }

    /// The frame number as an integer.
    #[inline]
    pub const fn as_u64(self) -> u64 {
        self.0
    }

    /// The physical address of the frame's first byte.
    #[inline]
    pub const fn addr(self) -> u64 {
        self.0 << PAGE_SHIFT
    }

    /// The frame `n` frames further on, if still in range.
    #[inline]
    pub const fn checked_add(self, n: u64) -> Option<Self> {
        match self.0.checked_add(n) {
            Some(v) => Self::new(v),
            None => None,
        }
    }
}

impl fmt::Debug for Pfn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pfn:{:#x}", self.0)
    }
}

/// A machine frame number: what the hardware (or the hypervisor) sees.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Mfn(pub u64);

impl Mfn {
    /// The machine address of the frame's first byte.
    #[inline]
    pub const fn addr(self) -> u64 {
        self.0 << PAGE_SHIFT
    }
}

/// A half-open run of frame numbers `[start, end)`, with no ownership attached.
///
/// This is what the raw backend interface speaks; owned runs are
/// [`FrameRange`](crate::range::FrameRange).
///
/// Invariant: `start < MAX_PFN` and `start <= end <= MAX_PFN`, so [`start`](Self::start) is
/// always a valid [`Pfn`]. An empty range has a position only for ordering: an empty range
/// that would sit at `MAX_PFN` sits at `MAX_PFN - 1` instead.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PfnRange {
    start: u64,
    end: u64,
}

impl PfnRange {
    /// Sorts `ranges` by start frame, in place: an insertion sort, for the few ranges (tens)
    /// the direct map deals in. Far smaller in a kernel image than `sort_unstable`'s
    /// pattern-defeating quicksort, which every element type instantiates again.
    pub fn sort_by_start(ranges: &mut [PfnRange]) {
        for i in 1..ranges.len() {
            let mut j = i;
            while j > 0 && ranges[j - 1].start > ranges[j].start {
                ranges.swap(j - 1, j);
                j -= 1;
            }
        }
    }

    /// `[start, end)`; `None` if `end < start` or `end` is beyond [`MAX_PFN`].
    #[inline]
    pub const fn new(start: Pfn, end: u64) -> Option<Self> {
        if end < start.0 || end > MAX_PFN {
            None
        } else {
            Some(Self {
                start: start.0,
                end,
            })
        }
    }

    /// `[start, end)` from plain numbers, if `start <= end <= MAX_PFN`; an empty range at
    /// `MAX_PFN` is placed at `MAX_PFN - 1` (see the invariant).
    #[inline]
    pub const fn from_raw(start: u64, end: u64) -> Option<Self> {
        if start > end || end > MAX_PFN {
            return None;
        }
        if start == MAX_PFN {
            return Some(Self {
                start: MAX_PFN - 1,
                end: MAX_PFN - 1,
            });
        }
        Some(Self { start, end })
    }

    /// The first `n` frames and the rest (`n` is clamped to the length).
    #[inline]
    pub const fn split_at(&self, n: u64) -> (Self, Self) {
        let len = self.len();
        let n = if n < len { n } else { len };
        let mid = self.start + n;
        let left = Self {
            start: self.start,
            end: mid,
        };
        let right = match Self::from_raw(mid, self.end) {
            Some(r) => r,
            None => unreachable!(),
        };
        (left, right)
    }

    /// The empty range at `at`.
    #[inline]
    pub const fn empty(at: Pfn) -> Self {
        Self {
            start: at.0,
            end: at.0,
        }
    }

    /// The frames covering the byte range `[start, end)` completely (rounded inward), or
    /// `None` if the addresses are out of range (a first whole frame at or above
    /// [`MAX_PFN`], or an end beyond it).
    #[inline]
    pub const fn inside_bytes(start: u64, end: u64) -> Option<Self> {
        let s = match start.checked_add(PAGE_SIZE - 1) {
            Some(v) => v >> PAGE_SHIFT,
            None => return None,
        };
        let e = end >> PAGE_SHIFT;
        if e > MAX_PFN || s >= MAX_PFN {
            return None;
        }
        if e < s {
            Some(Self { start: s, end: s })
        } else {
            Some(Self { start: s, end: e })
        }
    }

    /// First frame.
    #[inline]
    pub const fn start(&self) -> Pfn {
        Pfn(self.start)
    }

    /// One past the last frame, as a number (may equal [`MAX_PFN`]).
    #[inline]
    pub const fn end(&self) -> u64 {
        self.end
    }

    /// Number of frames.
    #[inline]
    pub const fn len(&self) -> u64 {
        self.end - self.start
    }

    /// Whether the range holds no frame.
    #[inline]
    pub const fn is_empty(&self) -> bool {
        self.end == self.start
    }

    /// Whether `pfn` lies inside.
    #[inline]
    pub const fn contains(&self, pfn: Pfn) -> bool {
        pfn.0 >= self.start && pfn.0 < self.end
    }

    /// Whether the two ranges share a frame.
    #[inline]
    pub const fn overlaps(&self, other: &PfnRange) -> bool {
        self.start < other.end && other.start < self.end
    }

    /// The frames of the range, in order.
    #[inline]
    pub fn iter(&self) -> impl Iterator<Item = Pfn> + Clone {
        (self.start..self.end).map(Pfn)
    }

    /// Byte range `[start, end)` of the frames.
    #[inline]
    pub const fn bytes(&self) -> (u64, u64) {
        (self.start << PAGE_SHIFT, self.end << PAGE_SHIFT)
    }
}

impl fmt::Debug for PfnRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pfn[{:#x}..{:#x})", self.start, self.end)
    }
}
