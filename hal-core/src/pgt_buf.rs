//! [`PgtBuf`]: the buffer page tables are taken from, `[start, end, top)`.
//!
//! # The hook, as a type
//! Linux had a runtime hook, `x86_init.mapping.pagetable_reserve(start, end)`, called once the
//! direct map was built, whose meaning lived in a commit message: *[start, end) of the page-table
//! buffer are page tables now and stay reserved; the rest up to top is no page table and must be
//! made writable again (on Xen PV) before anyone else may use it*. Here that is
//! [`PgtBuf::finish`], and it consumes the buffer:
//!
//! - [`PgtBuf::new`] allocates the buffer's frames from a memblock and makes every one of
//!   them page-table-ready through the backend (Xen PV: read-only everywhere) before any
//!   table is built; the buffer remembers which memblock it came from;
//! - [`PgtBuf::alloc`] hands out [`PgtReserved`] frames from `start` upward; `end` moves up;
//! - [`PgtBuf::finish`] releases the tail `[end, top)` through the backend in batches
//!   (Xen PV: writable again everywhere) and gives it back, as free memory, to the memblock
//!   the buffer came from (any other is refused). `[start, end)` stays reserved in memblock:
//!   those frames are tables now.
//!
//! A tail frame cannot reach anyone as memory before `finish`: the buffer holds it as
//! `PgtReserved`, and there is no conversion from `PgtReserved` to `Free`.

use crate::addr::{Pfn, PfnRange};
use crate::backend::RawMmu;
use crate::error::Failed;
use crate::frame::Frame;
use crate::memblock::{Direction, Memblock, MemblockError, MemblockId};
use crate::mmu::Mmu;
use crate::range::FrameRange;
use crate::state::{Free, PgtReserved};
use crate::unsettled::Unsettled;

/// The page-table buffer. Not `Copy`, not `Clone`; [`finish`](PgtBuf::finish) consumes it.
#[derive(Debug)]
#[must_use = "a PgtBuf must be finished, or its tail stays read-only and reserved"]
pub struct PgtBuf {
    /// Frames not handed out yet, `[end, top)`.
    rest: FrameRange<PgtReserved>,
    start: Pfn,
    top: u64,
    owner: MemblockId,
}

/// The buffer has no frame left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Exhausted {
    /// Frames the buffer had in all.
    pub capacity: u64,
}

/// Why [`PgtBuf::finish`] could not complete. The tail is in the error, in the state its type
/// says; the used part `[start, end)` stays reserved as tables either way.
#[derive(Debug)]
pub enum FinishError<E> {
    /// The memblock given is not the one the buffer came from: nothing was done, the buffer
    /// comes back.
    WrongMemblock(PgtBuf),
    /// The backend could not make the tail writable: it is [`Unsettled`].
    Release(Failed<Unsettled, E>),
    /// memblock could not take the tail back: it is `Free` and yours.
    Memblock(Failed<FrameRange<Free>, MemblockError>),
}

/// Why [`PgtBuf::new`] failed.
#[derive(Debug)]
pub enum NewError<E> {
    /// memblock had no room: nothing changed.
    Memblock(MemblockError),
    /// The backend could not make the frames page-table-ready: they are [`Unsettled`]
    /// (still reserved in memblock).
    Protect(Failed<Unsettled, E>),
}

/// What [`PgtBuf::finish`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Finished {
    /// `[start, end)`: the frames that became page tables; they stay reserved.
    pub used: PfnRange,
    /// `[end, top)`: released, writable, free in memblock.
    pub released: PfnRange,
}

impl PgtBuf {
    /// Allocates `count` contiguous frames below `limit` from `memblock` and makes them
    /// page-table-ready through the backend: the buffer. It belongs to `memblock`:
    /// [`finish`](Self::finish) gives the tail back to it and refuses any other.
    ///
    /// On a backend failure the frames come back [`Unsettled`] (some may be read-only
    /// already): [`Mmu::settle`] them before using them as memory.
    pub fn new<B: RawMmu, const N: usize>(
        mmu: &mut Mmu<B>,
        memblock: &mut Memblock<N>,
        count: u64,
        limit: u64,
        dir: Direction,
    ) -> Result<Self, NewError<B::Error>> {
        let frames = memblock
            .alloc_frames(count, limit, dir)
            .map_err(NewError::Memblock)?;
        let start = frames.pfns().start();
        let top = frames.pfns().end();
        let rest = mmu.protect(frames).map_err(NewError::Protect)?;
        Ok(Self {
            rest,
            start,
            top,
            owner: memblock.id(),
        })
    }

    /// The memblock the buffer came from.
    pub fn owner(&self) -> MemblockId {
        self.owner
    }

    /// Hands out the next frame, from `start` upward.
    #[inline]
    pub fn alloc(&mut self) -> Result<Frame<PgtReserved>, Exhausted> {
        let capacity = self.capacity();
        self.rest.pop_front().ok_or(Exhausted { capacity })
    }

    /// Takes back the frame handed out last (for a builder that has to give up), so that it
    /// is part of the tail again. Any other frame is refused and returned.
    pub fn unalloc(&mut self, frame: Frame<PgtReserved>) -> Result<(), Frame<PgtReserved>> {
        if self.used() == 0 || frame.pfn().as_u64() + 1 != self.end() {
            return Err(frame);
        }
        let rest = core::mem::replace(&mut self.rest, FrameRange::empty(self.start));
        // `join` of a one-frame run and the run right after it.
        match FrameRange::from_frame(frame).join(rest) {
            Ok(joined) => {
                self.rest = joined;
                Ok(())
            }
            Err(_) => unreachable!("adjacent by the check above"),
        }
    }

    /// `start`.
    pub fn start(&self) -> Pfn {
        self.start
    }

    /// `end`: the first frame not handed out (as a number: it may equal `MAX_PFN`).
    pub fn end(&self) -> u64 {
        self.top - self.rest.len()
    }

    /// `top`: one past the buffer.
    pub fn top(&self) -> u64 {
        self.top
    }

    /// The whole buffer `[start, top)`.
    pub fn range(&self) -> PfnRange {
        match PfnRange::new(self.start, self.top) {
            Some(r) => r,
            None => unreachable!("start <= top <= MAX_PFN by construction"),
        }
    }

    /// `[start, end)`: the frames handed out.
    pub fn used_range(&self) -> PfnRange {
        match PfnRange::new(self.start, self.end()) {
            Some(r) => r,
            None => unreachable!("start <= end <= top"),
        }
    }

    /// Frames handed out.
    pub fn used(&self) -> u64 {
        self.end() - self.start.as_u64()
    }

    /// Frames left.
    pub fn remaining(&self) -> u64 {
        self.rest.len()
    }

    /// Frames in all.
    pub fn capacity(&self) -> u64 {
        self.top() - self.start.as_u64()
    }

    /// The `pagetable_reserve` hook: `[start, end)` stays reserved as page tables; the tail
    /// `[end, top)` is released through the backend (batched; Xen PV: writable again
    /// everywhere) and returned to memblock as free memory. Consumes the buffer.
    ///
    /// `memblock` must be the one the buffer came from ([`owner`](Self::owner)); another is
    /// refused before anything is done.
    pub fn finish<B: RawMmu, const N: usize>(
        self,
        mmu: &mut Mmu<B>,
        memblock: &mut Memblock<N>,
    ) -> Result<Finished, FinishError<B::Error>> {
        if memblock.id() != self.owner {
            return Err(FinishError::WrongMemblock(self));
        }
        let used = self.used_range();
        let tail = self.rest;
        let released = tail.pfns();
        let tail = mmu.release(tail).map_err(FinishError::Release)?;
        memblock
            .free_frames(tail.into_free())
            .map_err(FinishError::Memblock)?;
        Ok(Finished { used, released })
    }
}

impl core::fmt::Display for Exhausted {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "pgt_buf is exhausted: all {} frames handed out",
            self.capacity
        )
    }
}

impl core::error::Error for Exhausted {}

impl<E: core::fmt::Display> core::fmt::Display for FinishError<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::WrongMemblock(_) => {
                f.write_str("finish was given a memblock the buffer did not come from")
            }
            Self::Release(e) => write!(
                f,
                "the backend could not make the tail writable: {}",
                e.error
            ),
            Self::Memblock(e) => write!(f, "memblock could not take the tail back: {}", e.error),
        }
    }
}

/// The [`Display`](core::fmt::Display) wording, written by defmt.
#[cfg(feature = "defmt")]
impl<E: defmt::Format> defmt::Format for FinishError<E> {
    fn format(&self, f: defmt::Formatter<'_>) {
        match self {
            Self::WrongMemblock(_) => defmt::write!(
                f,
                "finish was given a memblock the buffer did not come from"
            ),
            Self::Release(e) => defmt::write!(
                f,
                "the backend could not make the tail writable: {}",
                e.error
            ),
            Self::Memblock(e) => {
                defmt::write!(f, "memblock could not take the tail back: {}", e.error)
            }
        }
    }
}

impl<E: core::error::Error + 'static> core::error::Error for FinishError<E> {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::WrongMemblock(_) => None,
            Self::Release(e) => Some(&e.error),
            Self::Memblock(e) => Some(&e.error),
        }
    }
}

impl<E: core::fmt::Display> core::fmt::Display for NewError<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Memblock(e) => write!(f, "memblock has no room for the buffer: {e}"),
            Self::Protect(e) => write!(
                f,
                "the backend could not make the buffer page-table-ready: {}",
                e.error
            ),
        }
    }
}

/// The [`Display`](core::fmt::Display) wording, written by defmt.
#[cfg(feature = "defmt")]
impl<E: defmt::Format> defmt::Format for NewError<E> {
    fn format(&self, f: defmt::Formatter<'_>) {
        match self {
            Self::Memblock(e) => defmt::write!(f, "memblock has no room for the buffer: {}", e),
            Self::Protect(e) => defmt::write!(
                f,
                "the backend could not make the buffer page-table-ready: {}",
                e.error
            ),
        }
    }
}

impl<E: core::error::Error + 'static> core::error::Error for NewError<E> {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Memblock(e) => Some(e),
            Self::Protect(e) => Some(&e.error),
        }
    }
}
