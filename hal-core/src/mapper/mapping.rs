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
use super::map::{Mapper, PageSize};
use super::source::FrameSource;

/// `Free` frames the mapper mapped at `va`: the mapping holds them until
/// [`Mapper::unmap_frames`] gives them back, unmapped and out of every TLB.
#[must_use = "dropping a Mapping leaks its frames (and leaves them mapped)"]
#[derive(Debug)]
pub struct Mapping {
    va: u64,
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
    /// Maps owned `Free` frames at `va` (flushed before it returns). Only `Free` frames are
    /// accepted, so no page table can be mapped this way; the frames come back with the error
    /// if the mapping is refused.
    pub fn map_frames<B: RawMmu>(
        &mut self,
        mmu: &mut Mmu<B>,
        root: TableRef<'_, U4>,
        va: u64,
        frames: FrameRange<Free>,
        flags: PageTableFlags,
    ) -> Result<Mapping, Failed<FrameRange<Free>, MapError<B::Error>>> {
        let (phys, end) = frames.pfns().bytes();
        // SAFETY: the frames are ours (owned `Free` frames: memory, no page table, nobody
        // else's) and stay so while the `Mapping` holds them; the range is checked to be
        // unmapped, so nothing else is there.
        let res = unsafe { self.map(mmu, root, va, phys, end - phys, flags, PageSize::Auto) }
            .and_then(|f| self.flush(mmu, f));
        match res {
            Ok(()) => Ok(Mapping { va, frames }),
            Err(error) => Err(Failed {
                error,
                value: frames,
            }),
        }
    }

    /// Unmaps a [`Mapping`] and flushes; the frames come back only once no translation to
    /// them is left.
    pub fn unmap_frames<B: RawMmu>(
        &mut self,
        mmu: &mut Mmu<B>,
        root: TableRef<'_, U4>,
        mapping: Mapping,
    ) -> Result<FrameRange<Free>, Failed<Mapping, MapError<B::Error>>> {
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
