//! Unmap, protect, translate, flush and teardown: the mapper's public operations besides
//! `map`.

use typenum::U4;
use x86_64::structures::paging::PageTableFlags;

use crate::backend::RawMmu;
use crate::mmu::{Mmu, RetireError};
use crate::table::TableRef;
use crate::walk::{translate, Translation};

use super::error::MapError;
use super::flush::Flush;
use super::map::Mapper;
use super::record::OwnedTable;
use super::source::FrameSource;
use super::walk::Act;

/// What [`Mapper::teardown`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Teardown {
    /// Tables given back to the frame source by the teardown.
    pub tables_freed: u64,
    /// Tables the mapper allocated over its whole life.
    pub tables_allocated: u64,
    /// Tables it freed over its whole life (`tables_allocated - tables_kept` after a
    /// teardown).
    pub tables_freed_total: u64,
    /// Level-3 tables it made in root slots, which stay there, empty, and in its record
    /// (another root may have inherited the slots: see the [module docs](super)).
    pub tables_kept: u64,
}

impl<S: FrameSource, const N: usize> Mapper<S, N> {
    /// Unmaps every page of `[va, va + len)` (holes are skipped). Refused, with nothing
    /// changed, if that would split a large page or touch a leaf in a table the mapper did not
    /// create. Tables left empty are unhooked now and retired at the flush (with
    /// [`EmptyTables::Free`](super::EmptyTables::Free)).
    ///
    /// # Safety
    /// Nothing relies on the pages of the range staying mapped (in particular no
    /// [`Mapping`](super::Mapping) covers them).
    #[inline]
    pub unsafe fn unmap<B: RawMmu>(
        &mut self,
        mmu: &mut Mmu<B>,
        root: TableRef<'_, U4>,
        va: u64,
        len: u64,
    ) -> Result<Flush, MapError<B::Error>> {
        self.check_root(&root).map_err(|()| MapError::WrongRoot)?;
        self.check_range(va, len)?;
        if !self.unmap_cached(mmu, va, len)? {
            // SAFETY: the caller's contract.
            unsafe { self.unmap_walking(mmu, va, len) }?;
        }
        Ok(Flush::one())
    }

    /// Gives every page mapped in `[va, va + len)` the leaf flags `flags` (`PRESENT`
    /// implied), keeping the frames. Refused, with nothing changed, as [`unmap`](Self::unmap)
    /// is, and for a writable mapping of a table the mapper knows of.
    ///
    /// # Safety
    /// The frames of the range may be mapped with the new flags, and nothing relies on the old
    /// ones (a `Mapping`'s frames, for one, must stay mapped as it says).
    pub unsafe fn protect<B: RawMmu>(
        &mut self,
        mmu: &mut Mmu<B>,
        root: TableRef<'_, U4>,
        va: u64,
        len: u64,
        flags: PageTableFlags,
    ) -> Result<Flush, MapError<B::Error>> {
        self.check_root(&root).map_err(|()| MapError::WrongRoot)?;
        self.check_range(va, len)?;
        let bits = self.check_flags(flags)?;
        // SAFETY: the caller's contract.
        unsafe { self.walk_range(mmu, va, len, Act::Protect(bits)) }?;
        Ok(Flush::one())
    }

    /// Where `va` leads in the mapper's tree (queued updates included).
    pub fn translate<B: RawMmu>(
        &self,
        mmu: &mut Mmu<B>,
        root: TableRef<'_, U4>,
        va: u64,
    ) -> Result<Option<Translation>, MapError<B::Error>> {
        self.check_root(&root).map_err(|()| MapError::WrongRoot)?;
        // SAFETY: `self.root` is the mapper's root, a live level-4 table (the caller's
        // `TableRef` to it was checked just above); the walk reads it and the tables its path's
        // entries name, live tables too.
        unsafe { translate(mmu.raw_mut(), self.root, va) }.map_err(MapError::Backend)
    }

    /// Submits everything queued and invalidates what it made stale, in one backend call
    /// (coalesced: single pages up to [`TLB_SINGLE_PAGE_CEILING`](crate::tlb::TLB_SINGLE_PAGE_CEILING),
    /// a full flush past it); then retires the tables unmapping left empty and gives them back
    /// to the frame source.
    pub fn flush<B: RawMmu>(
        &mut self,
        mmu: &mut Mmu<B>,
        done: Flush,
    ) -> Result<(), MapError<B::Error>> {
        let _ = done.ops();
        match self.flush_inner(mmu) {
            Err(MapError::Backend(e)) => Err(self.roll_back_pending(mmu, e)),
            r => r,
        }
    }

    /// A submission was refused part way (`error`): what came before the refused entry is
    /// applied, the rest dropped. Every range mapped since the last submission is unmapped
    /// again (its tables left empty retired), so the maps of the refused batch are undone as
    /// one; returns `error`, or [`MapError::RollbackRefused`] if that is refused too. More
    /// separate ranges than the mapper keeps (16): `error` alone, what was applied stays.
    #[cold]
    #[inline(never)]
    fn roll_back_pending<B: RawMmu>(
        &mut self,
        mmu: &mut Mmu<B>,
        error: B::Error,
    ) -> MapError<B::Error> {
        let Some(ranges) = self.pending.replace(heapless::Vec::new()) else {
            return MapError::Backend(error);
        };
        let mut res = Ok(());
        for &(lo, hi) in &ranges {
            // SAFETY: `[lo, hi)` is what `map` mapped since the last submission, the mapper's
            // own; the batch that mapped it was refused.
            res = res
                .and_then(|()| unsafe { self.unmap_raw(mmu, lo, hi - lo) })
                .and_then(|()| self.prune(mmu, lo, hi - lo));
        }
        match res.and_then(|()| self.flush_inner(mmu)) {
            Ok(()) => MapError::Backend(error),
            Err(MapError::Backend(e)) => {
                let lo = ranges.iter().map(|r| r.0).min().unwrap_or(0);
                let hi = ranges.iter().map(|r| r.1).max().unwrap_or(0);
                self.still_mapped(mmu, lo, hi - lo, e)
            }
            Err(other) => other,
        }
    }

    pub(crate) fn flush_inner<B: RawMmu>(
        &mut self,
        mmu: &mut Mmu<B>,
    ) -> Result<(), MapError<B::Error>> {
        if self.dirty || !self.tlb.is_empty() {
            // SAFETY: every present entry the mapper changed since its last flush added its
            // page to `tlb` (an unhooked table: the first address it covered), and no write of
            // the mapper's is left out; `dirty` is set by every write.
            unsafe { mmu.raw_mut().flush_tlb(&self.tlb) }.map_err(MapError::Backend)?;
            self.stats.flushes += 1;
            if self.tlb.is_all() {
                self.stats.full_flushes += 1;
            } else {
                self.stats.pages_invalidated += self.tlb.pages().len() as u64;
            }
            self.tlb.clear();
            self.dirty = false;
            self.pending = Some(heapless::Vec::new());
        }
        while let Some(t) = self.retiring.pop() {
            self.retire(mmu, t)?;
        }
        Ok(())
    }

    fn retire<B: RawMmu>(
        &mut self,
        mmu: &mut Mmu<B>,
        table: OwnedTable,
    ) -> Result<(), MapError<B::Error>> {
        macro_rules! retire {
            ($f:expr, $wrap:path) => {
                match mmu.retire($f) {
                    Ok(r) => Ok(r),
                    Err(RetireError::CurrentRoot(f))
                    | Err(RetireError::HasChild { table: f, .. }) => {
                        let _ = self.retiring.push($wrap(f));
                        Err(MapError::RecordFull)
                    }
                    Err(RetireError::Unreadable { error, table: f }) => {
                        let _ = self.retiring.push($wrap(f));
                        Err(MapError::Backend(error))
                    }
                    Err(RetireError::Backend(u)) => Err(MapError::Unsettled(u)),
                }
            };
        }
        let released = match table {
            OwnedTable::L1(f) => retire!(f, OwnedTable::L1),
            OwnedTable::L2(f) => retire!(f, OwnedTable::L2),
            OwnedTable::L3(f) => retire!(f, OwnedTable::L3),
        }?;
        self.stats.tables_freed += 1;
        match self.source.give_back(released.into_free()) {
            Ok(()) => Ok(()),
            Err(f) => {
                crate::frame::handed_over(f);
                Err(MapError::RecordFull)
            }
        }
    }

    /// Unmaps everything the mapper ever mapped, unhooks and retires every table it created,
    /// whatever the policy, and flushes: every table frame is back in the frame source but the
    /// level-3 tables in root slots, which stay hooked, empty ([`Teardown::tables_kept`]).
    ///
    /// # Safety
    /// As [`unmap`](Self::unmap), for everything the mapper mapped.
    pub unsafe fn teardown<B: RawMmu>(
        &mut self,
        mmu: &mut Mmu<B>,
        root: TableRef<'_, U4>,
    ) -> Result<Teardown, MapError<B::Error>> {
        self.check_root(&root).map_err(|()| MapError::WrongRoot)?;
        let before = self.stats.tables_freed;
        let (lo, hi) = self.extent;
        if lo < hi {
            // SAFETY: the caller's contract.
            unsafe { self.walk_range(mmu, lo, hi - lo, Act::Teardown) }?;
        }
        self.flush_inner(mmu)?;
        self.extent = (u64::MAX, 0);
        Ok(Teardown {
            tables_freed: self.stats.tables_freed - before,
            tables_allocated: self.stats.tables_allocated,
            tables_freed_total: self.stats.tables_freed,
            tables_kept: self.record.len() as u64,
        })
    }
}
