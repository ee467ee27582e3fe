//! [`Mapping`]: owned frames mapped by the mapper, the safe way in and out.

use typenum::U4;
use x86_64::structures::paging::PageTableFlags;

use crate::backend::RawMmu;
use crate::error::Failed;
use crate::mmu::Mmu;
use crate::range::FrameRange;
use crate::state::Free;
use crate::table::TableRef;

use super::error::MapError;
use super::flush::Flush;
use super::map::{Mapper, PageSize};
use super::source::FrameSource;

/// `Free` frames the mapper mapped at `va`: the mapping holds them until
/// [`Mapper::unmap_frames`] gives them back, unmapped and out of every TLB. It remembers the
/// root it was mapped under: a mapper of another root (where nothing may be mapped at `va`,
/// so that unmapping would find nothing to clear) refuses it.
#[must_use = "dropping a Mapping leaks its frames (and leaves them mapped)"]
#[derive(Debug)]
pub struct Mapping {
    va: u64,
    root: crate::addr::Pfn,
    frames: FrameRange<Free>,
}

impl Mapping {
    /// The virtual address of the first frame.
    pub fn va(&self) -> u64 {
        self.va
    }

    /// The frames (no ownership).
    pub fn pfns(&self) -> crate::addr::PfnRange {
        self.frames.pfns()
    }
}

impl<S: FrameSource, const N: usize> Mapper<S, N> {
    /// Maps owned `Free` frames at `va` (flushed before it returns, and work queued before
    /// it with it). Only `Free` frames are accepted, so no page table can be mapped this way.
    ///
    /// If the mapping is refused, the frames come back with the error once no translation to
    /// them is left. If one may be (the rollback of a refusal part way was refused too:
    /// [`MapError::RollbackRefused`], or its invalidation is still owed), they are no `Free`
    /// frames to hand back: they stay mapped and set aside (leaked), and the error's value is
    /// an empty range.
    pub fn map_frames<B: RawMmu>(
        &mut self,
        mmu: &mut Mmu<B>,
        root: TableRef<'_, U4>,
        va: u64,
        frames: FrameRange<Free>,
        flags: PageTableFlags,
    ) -> Result<Mapping, Failed<FrameRange<Free>, MapError<B::Error>>> {
        let (phys, end) = frames.pfns().bytes();
        // Work queued before is submitted first, so that an invalidation owed after a refusal
        // below is this call's.
        if let Err(error) = self.flush(mmu, Flush::none()) {
            return Err(Failed {
                error,
                value: frames,
            });
        }
        // SAFETY: the frames are ours (owned `Free` frames: memory, no page table, nobody
        // else's) and stay so while the `Mapping` holds them; the range is checked to be
        // unmapped, so nothing else is there.
        let res = unsafe { self.map(mmu, root, va, phys, end - phys, flags, PageSize::Auto) }
            .and_then(|f| self.flush(mmu, f));
        match res {
            Ok(()) => Ok(Mapping {
                va,
                root: self.root,
                frames,
            }),
            // A mapping refused for its root (`map` checks that first) mapped nothing, and the
            // mapper's root may then be no table any more: it is not walked.
            Err(error)
                if !matches!(error, MapError::WrongRoot)
                    && self.may_still_map(mmu, va, end - phys) =>
            {
                let at = frames.pfns().start();
                crate::frame::handed_over(frames);
                Err(Failed {
                    error,
                    value: FrameRange::empty(at),
                })
            }
            Err(error) => Err(Failed {
                error,
                value: frames,
            }),
        }
    }

    /// After a refused `map_frames`: whether a translation of `[va, va + len)` may be left, in
    /// the tables (a page that reads as mapped, or cannot be read) or in a TLB (an
    /// invalidation owed).
    #[cold]
    #[inline(never)]
    fn may_still_map<B: RawMmu>(&self, mmu: &mut Mmu<B>, va: u64, len: u64) -> bool {
        if self.dirty || !self.tlb.is_empty() {
            return true;
        }
        (0..len / 4096).any(|i| {
            // SAFETY: `self.root` is the mapper's root, a live level-4 table: `map_frames`
            // calls this only after `map` accepted the caller's `TableRef` to it; the walk
            // reads it and the tables its path's entries name, live tables too.
            let t = unsafe { crate::walk::translate(mmu.raw_mut(), self.root, va + i * 4096) };
            !matches!(t, Ok(None))
        })
    }

    /// Unmaps a [`Mapping`] and flushes; the frames come back only once no translation to
    /// them is left. A mapping made under another root is refused ([`MapError::WrongRoot`]) and
    /// comes back; so is one in tables this mapper did not create
    /// ([`MapError::ForeignTable`]).
    pub fn unmap_frames<B: RawMmu>(
        &mut self,
        mmu: &mut Mmu<B>,
        root: TableRef<'_, U4>,
        mapping: Mapping,
    ) -> Result<FrameRange<Free>, Failed<Mapping, MapError<B::Error>>> {
        if mapping.root != self.root {
            return Err(Failed {
                error: MapError::WrongRoot,
                value: mapping,
            });
        }
        let len = mapping.frames.len() * 4096;
        // SAFETY: the mapping was made by `map_frames` and is given up here: nothing relies
        // on it.
        let res =
            unsafe { self.unmap(mmu, root, mapping.va, len) }.and_then(|f| self.flush(mmu, f));
        match res {
            Ok(()) => Ok(mapping.frames),
            Err(error) => Err(Failed {
                error,
                value: mapping,
            }),
        }
    }
}
