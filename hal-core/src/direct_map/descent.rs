//! The direct map written into a fresh root in one descent: each table is filled in slot
//! order while the runs are in it, its children written (and finished) as the runs reach
//! them, so a table is complete before its parent's entry for it is written.
//!
//! [`build`](super::build()) takes this path for a [`Target::Fresh`](super::Target) root when
//! no frame must be read-only (bare metal): there is nothing to look up (no table exists
//! below a fresh root) and no run needs its leaves split, so the cursor's open / close
//! bookkeeping has nothing to do. The tables, their order in the buffer, the entries, the
//! counts and the errors are the cursor's; `lifecycle` in hal-core's tests builds fresh roots
//! with bare-metal caps (this descent) and with read-only caps (the cursor), and staged roots
//! (the cursor), each checked against the plan and an oracle.

use typenum::{U1, U2, U3, U4};
use x86_64::structures::paging::PageTableFlags;

use super::build::BuildError;
use super::plan::{PageSize, Run, Runs, TableCount};
use crate::addr::Pfn;
use crate::backend::{EntryRun, RawMmu};
use crate::fresh::FreshTable;
use crate::level::{Level, TableLevel};
use crate::mmu::{Mmu, Pending};
use crate::pgt_buf::PgtBuf;
use crate::pte::Pte;
use crate::state::PinnedRO;
use crate::table::LeafLevel;
use crate::Frame;

/// The descent's state: the run being mapped (advanced as its pages are written), the rest
/// of the runs, and the tallies [`Built`](super::Built) reports.
pub(super) struct Descent<'m, 'a, B: RawMmu> {
    pub(super) mmu: &'m mut Mmu<B>,
    pub(super) buf: &'m mut PgtBuf,
    pub(super) base: u64,
    pub(super) flags: PageTableFlags,
    pub(super) runs: Runs<'a>,
    pub(super) cur: Option<Run>,
    pub(super) made: TableCount,
    pub(super) pages: [u64; 3],
    pub(super) pending: Pending,
}

impl<B: RawMmu> Descent<'_, '_, B> {
    /// Writes every run into `root` (slots at or above its next slot).
    pub(super) fn root(&mut self, root: &mut FreshTable<U4>) -> Result<(), BuildError<B::Error>> {
        while let Some(run) = self.cur {
            let va = self.va(run.pfn);
            let idx = TableLevel::L4.index_of(va);
            // A slot behind the cursor of a fresh root is written already.
            if idx < root.next_slot() {
                return Err(BuildError::AlreadyMapped(va));
            }
            let mut t = FreshTable::<U3>::new(self.buf.alloc()?);
            let key = va >> TableLevel::L4.entry_shift();
            while let Some(run) = self.within(TableLevel::L4, key) {
                let va = self.va(run.pfn);
                let i = TableLevel::L3.index_of(va);
                if run.size == PageSize::Size1G {
                    self.leaves(&mut t, i, run, va)?;
                } else {
                    let mut c = FreshTable::<U2>::new(self.buf.alloc()?);
                    self.l2(&mut c, va >> TableLevel::L3.entry_shift())?;
                    let child = self.finish(c)?;
                    self.made.l2 += 1;
                    self.put(&mut t, i, child, va, TableLevel::L3)?;
                }
            }
            let child = self.finish(t)?;
            self.made.l3 += 1;
            self.put(root, idx, child, va, TableLevel::L4)?;
        }
        Ok(())
    }

    /// Fills the level-2 table of 1 GiB `key` (`va >> 30`) while the runs are in it.
    fn l2(&mut self, t: &mut FreshTable<U2>, key: u64) -> Result<(), BuildError<B::Error>> {
        while let Some(run) = self.within(TableLevel::L3, key) {
            let va = self.va(run.pfn);
            let i = TableLevel::L2.index_of(va);
            if run.size == PageSize::Size2M {
                self.leaves(t, i, run, va)?;
            } else {
                let mut c = FreshTable::<U1>::new(self.buf.alloc()?);
                let key = va >> TableLevel::L2.entry_shift();
                while let Some(run) = self.within(TableLevel::L2, key) {
                    let va = self.va(run.pfn);
                    self.leaves(&mut c, TableLevel::L1.index_of(va), run, va)?;
                }
                let child = self.finish(c)?;
                self.made.l1 += 1;
                self.put(t, i, child, va, TableLevel::L2)?;
            }
        }
        Ok(())
    }

    /// The run being mapped if it starts inside the entry `key` (`va >> shift`) of a table
    /// of `level`: inside the table that entry points at.
    #[inline]
    fn within(&self, level: TableLevel, key: u64) -> Option<Run> {
        self.cur
            .filter(|r| self.va(r.pfn) >> level.entry_shift() == key)
    }

    /// The virtual address of frame `pfn` (the plan checked it stays canonical).
    #[inline]
    fn va(&self, pfn: u64) -> u64 {
        self.base.wrapping_add(pfn << 12)
    }

    /// Streams the pages of `run` that fall in `t` (from slot `first`, at `va`) and advances
    /// the run past them.
    #[inline]
    fn leaves<L: LeafLevel>(
        &mut self,
        t: &mut FreshTable<L>,
        first: u16,
        mut run: Run,
        va: u64,
    ) -> Result<(), BuildError<B::Error>> {
        let n = run.pages.min(512 - u64::from(first));
        let mut flags = self.flags;
        if run.size != PageSize::Size4K {
            flags.insert(PageTableFlags::HUGE_PAGE);
        }
        let entries = EntryRun {
            first: Pte::new(Pfn::new(run.pfn).ok_or(BuildError::BadFlags)?, flags),
            step: run.size.frames(),
            count: n as u16,
        };
        // SAFETY: the caller of `build` vouched for the virtual range and the frames.
        unsafe { self.mmu.put_leaves(t, first, &entries) }.map_err(|e| BuildError::at(va, e))?;
        self.pages[run.size as usize] += n;
        run.pages -= n;
        run.pfn += n * run.size.frames();
        self.cur = if run.pages == 0 {
            self.runs.next()
        } else {
            Some(run)
        };
        Ok(())
    }

    /// Finishes a table made here (the slots after its last entry written empty).
    #[inline]
    fn finish<L: Level>(
        &mut self,
        t: FreshTable<L>,
    ) -> Result<Frame<PinnedRO<L>>, BuildError<B::Error>> {
        let (frame, p) = self.mmu.finish_table_queued(t).map_err(|f| {
            // The frame stays in the buffer's used part, read-only: nothing is handed out.
            let _ = f.value.into_frame();
            BuildError::Backend(f.error)
        })?;
        self.pending = core::mem::replace(&mut self.pending, Pending::none()).join(p);
        Ok(frame)
    }

    /// Writes `child` into slot `idx` of `parent` (of level `level`); `va` is an address the
    /// child covers (the error names the first address of the child's span).
    #[inline]
    fn put<L: crate::level::HasChild>(
        &mut self,
        parent: &mut FreshTable<L>,
        idx: u16,
        child: Frame<PinnedRO<crate::level::ChildOf<L>>>,
        va: u64,
        level: TableLevel,
    ) -> Result<(), BuildError<B::Error>> {
        self.mmu.put_child(parent, idx, child).map_err(|f| {
            crate::frame::handed_over(f.value);
            let span = level.entry_span();
            BuildError::at(va & !(span - 1), f.error)
        })
    }
}
