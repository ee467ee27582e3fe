//! [`FrameRange<S>`]: a run of owned frames in one state, for batched transitions.

use core::fmt;
use core::marker::PhantomData;

use crate::addr::{Pfn, PfnRange};
use crate::frame::Frame;
use crate::state::{Free, ReleasedRW, State};

/// A run of contiguous frames `[start, end)`, all owned and all in state `S`.
///
/// A tail of a hundred frames is one value, released by one batched backend call. Like
/// [`Frame`], it is neither `Copy` nor `Clone`.
#[must_use = "dropping a FrameRange leaks its frames"]
pub struct FrameRange<S: State> {
    pfns: PfnRange,
    _state: PhantomData<fn() -> S>,
}

impl<S: State> FrameRange<S> {
    /// Claims the frames of `pfns` in state `S`.
    ///
    /// # Safety
    /// As [`Frame::from_pfn_unchecked`], for every frame of the run.
    pub const unsafe fn from_pfns_unchecked(pfns: PfnRange) -> Self {
        Self {
            pfns,
            _state: PhantomData,
        }
    }

    /// The empty run at `at`.
    pub const fn empty(at: Pfn) -> Self {
        Self {
            pfns: PfnRange::empty(at),
            _state: PhantomData,
        }
    }

    /// The frame numbers (no ownership).
    pub const fn pfns(&self) -> PfnRange {
        self.pfns
    }

    /// Number of frames.
    pub const fn len(&self) -> u64 {
        self.pfns.len()
    }

    /// Whether the run is empty.
    pub const fn is_empty(&self) -> bool {
        self.pfns.is_empty()
    }

    /// Splits into the first `n` frames and the rest (`n` is clamped to the length).
    pub fn split_at(self, n: u64) -> (Self, Self) {
        let (left, right) = self.pfns.split_at(n);
        self.into_parts(left, right)
    }

    /// Takes the first frame off the run.
    pub fn pop_front(&mut self) -> Option<Frame<S>> {
        if self.is_empty() {
            return None;
        }
        let first = self.pfns.start();
        let (_, rest) = self.pfns.split_at(1);
        self.pfns = rest;
        // SAFETY: the frame was owned by this range in state `S` and is removed from it.
        Some(unsafe { Frame::from_pfn_unchecked(first) })
    }

    /// Joins `other` if it starts where `self` ends; otherwise gives both back.
    pub fn join(self, other: Self) -> Result<Self, (Self, Self)> {
        if self.is_empty() {
            crate::frame::handed_over(self);
            return Ok(other);
        }
        if self.pfns.end() == other.pfns.start().as_u64() {
            let joined = PfnRange::new(self.pfns.start(), other.pfns.end())
                .unwrap_or_else(|| unreachable!(/* ordered */));
            crate::frame::handed_over(other);
            let mut s = self;
            s.pfns = joined;
            Ok(s)
        } else if other.is_empty() {
            crate::frame::handed_over(other);
            Ok(self)
        } else {
            Err((self, other))
        }
    }

    /// Turns a single frame into a one-frame run.
    pub fn from_frame(frame: Frame<S>) -> Self {
        let pfn = frame.pfn();
        crate::frame::handed_over(frame);
        Self {
            pfns: match PfnRange::new(pfn, pfn.as_u64() + 1) {
                Some(r) => r,
                // A Pfn is below MAX_PFN, so pfn + 1 <= MAX_PFN.
                None => unreachable!(),
            },
            _state: PhantomData,
        }
    }

    pub(crate) fn into_state<T: State>(self) -> FrameRange<T> {
        let pfns = self.pfns;
        crate::frame::handed_over(self);
        FrameRange {
            pfns,
            _state: PhantomData,
        }
    }

    fn into_parts(self, left: PfnRange, right: PfnRange) -> (Self, Self) {
        crate::frame::handed_over(self);
        (
            Self {
                pfns: left,
                _state: PhantomData,
            },
            Self {
                pfns: right,
                _state: PhantomData,
            },
        )
    }
}

impl<S: State> Iterator for FrameRange<S> {
    type Item = Frame<S>;
    fn next(&mut self) -> Option<Frame<S>> {
        self.pop_front()
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = usize::try_from(self.len()).unwrap_or(usize::MAX);
        (n, Some(n))
    }
}

impl FrameRange<ReleasedRW> {
    /// Released frames are ordinary memory again (pure).
    pub fn into_free(self) -> FrameRange<Free> {
        self.into_state()
    }
}

impl<S: State> fmt::Debug for FrameRange<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FrameRange<{:?}>({:?})", S::KIND, self.pfns)
    }
}

#[cfg(feature = "defmt")]
impl<S: State> defmt::Format for FrameRange<S> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "FrameRange<{}>({})", S::KIND, self.pfns)
    }
}
