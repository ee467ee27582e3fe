//! The erased form: a frame whose state is a run-time tag, for storing frames of mixed states
//! in one collection (for example a `heapless::Vec<AnyFrame, N>`), with checked conversion back.

use crate::addr::Pfn;
use crate::frame::Frame;
use crate::state::{State, StateKind};

/// A frame with its state kept at run time. Only a typed [`Frame`] can become one, so the tag
/// is always true; [`AnyFrame::into_typed`] checks it on the way back.
#[must_use = "dropping an AnyFrame leaks the page frame"]
#[derive(Debug)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct AnyFrame {
    pfn: Pfn,
    kind: StateKind,
}

impl AnyFrame {
    pub(crate) fn from_typed<S: State>(frame: Frame<S>) -> Self {
        let pfn = frame.pfn();
        crate::frame::handed_over(frame);
        Self { pfn, kind: S::KIND }
    }

    /// The frame number.
    pub fn pfn(&self) -> Pfn {
        self.pfn
    }

    /// The state the frame is in.
    pub fn kind(&self) -> StateKind {
        self.kind
    }

    /// Back to the typed form, if the frame is in state `S`; otherwise `self` comes back.
    pub fn into_typed<S: State>(self) -> Result<Frame<S>, AnyFrame> {
        if self.kind == S::KIND {
            // SAFETY: an AnyFrame is made only from a typed frame in state `kind`, which we
            // just compared with `S`; ownership moves from `self` to the new frame.
            Ok(unsafe { Frame::from_pfn_unchecked(self.pfn) })
        } else {
            Err(self)
        }
    }
}
