//! [`Frame<S>`]: one owned 4 KiB frame in state `S`.

use core::fmt;
use core::marker::PhantomData;
use core::num::NonZeroU64;

use crate::addr::Pfn;
use crate::erased::AnyFrame;
use crate::state::{Free, ReleasedRW, State};

/// One 4 KiB page frame, owned, in state `S`.
///
/// A `Frame` is a capability: holding it means nobody else uses the frame, and `S` says what
/// may be done with it. It is one machine word (`Option<Frame<S>>` too), and neither `Copy` nor
/// `Clone`: a frame cannot be in two states at once. Transitions consume the frame.
///
/// Dropping a frame forgets it (the memory stays set aside, as with `Box::leak`); to give memory
/// back, turn it into [`Free`] and hand it to [`Memblock`](crate::memblock::Memblock).
#[must_use = "dropping a Frame leaks the page frame"]
#[repr(transparent)]
pub struct Frame<S: State> {
    /// `pfn + 1`, so that `Option<Frame>` needs no extra word.
    raw: NonZeroU64,
    _state: PhantomData<fn() -> S>,
}

impl<S: State> Frame<S> {
    /// Claims frame `pfn` in state `S`.
    ///
    /// # Safety
    /// The caller owns the frame exclusively (no other `Frame`, `FrameRange` or allocator
    /// holds it) and the frame really is in state `S` (for example, a [`PgtReserved`]
    /// frame has no writable mapping on a backend that requires it).
    ///
    /// [`PgtReserved`]: crate::state::PgtReserved
    pub const unsafe fn from_pfn_unchecked(pfn: Pfn) -> Self {
        // `Pfn` is below `MAX_PFN`, so `+ 1` neither overflows nor is zero.
        let raw = match NonZeroU64::new(pfn.as_u64() + 1) {
            Some(v) => v,
            None => unreachable!(),
        };
        Self {
            raw,
            _state: PhantomData,
        }
    }

    /// The frame number.
    pub const fn pfn(&self) -> Pfn {
        match Pfn::new(self.raw.get() - 1) {
            Some(p) => p,
            None => unreachable!(),
        }
    }

    /// Physical address of the frame's first byte.
    pub const fn addr(&self) -> u64 {
        self.pfn().addr()
    }

    /// Forgets the state, keeping it as a run-time tag.
    pub fn erase(self) -> AnyFrame {
        AnyFrame::from_typed(self)
    }

    /// The one private transition every named transition goes through.
    pub(crate) fn into_state<T: State>(self) -> Frame<T> {
        let raw = self.raw;
        crate::frame::handed_over(self);
        Frame {
            raw,
            _state: PhantomData,
        }
    }
}

impl Frame<ReleasedRW> {
    /// A released frame is ordinary memory again. Pure: the backend already made it writable.
    pub fn into_free(self) -> Frame<Free> {
        self.into_state()
    }
}

impl<S: State> fmt::Debug for Frame<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Frame<{:?}>({:?})", S::KIND, self.pfn())
    }
}

#[cfg(feature = "defmt")]
impl<S: State> defmt::Format for Frame<S> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "Frame<{}>({})", S::KIND, self.pfn())
    }
}

/// Marks a frame (or range) as handed over: its ownership moved elsewhere (into a table, into
/// another typed value, back to memblock). Frames have no destructor, so this only says so.
pub(crate) fn handed_over<T>(_value: T) {}
