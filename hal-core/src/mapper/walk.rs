//! Walking a virtual range of the mapper's tree (hal-core's walker, [`walk::visit`], with the
//! mapper's visitor): unmap, change protection, tear down; tables left empty are unhooked and
//! queued for retirement.

use core::mem::MaybeUninit;

use x86_64::structures::paging::PageTableFlags;

use crate::addr::Pfn;
use crate::backend::RawMmu;
use crate::level::TableLevel;
use crate::mmu::Mmu;
use crate::pte::Pte;
use crate::walk::{self, InTable, Slot, Step, Visitor};

use super::error::MapError;
use super::map::{EmptyTables, Mapper};
use super::record::OwnedTable;
use super::source::FrameSource;

/// What a walk does to the leaves it meets.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Act {
    /// Clear them.
    Unmap,
    /// Give them these leaf bits (PRESENT included, HUGE_PAGE kept as it is).
    Protect(u64),
    /// Clear them and unhook every owned table, whatever the policy.
    Teardown,
    /// Leave them; unhook every owned table that is empty, whatever the policy (the tables a
    /// refused `map` made on its way).
    Prune,
}

const RUN: usize = 64;
/// What a level-1 table covers.
const COVER: u64 = 512 * 4096;

/// A run of slots of one table to write: the table, its level, the first slot, the entries
/// written so far and the entries (not zeroed: only the first `n` are ever read).
struct Run {
    table: Pfn,
    level: TableLevel,
    first: u16,
    n: usize,
    entries: [MaybeUninit<Pte>; RUN],
}

/// One pass over `lo..=last` doing `act`, as a visitor of hal-core's walker
/// ([`walk::visit`]). Per level (index 0: the L1), of the table open there: whether the mapper
/// owns it, and how many of its leaves this pass cleared. The run belongs to the deepest open
/// table: it is written out before the walk goes down and when a table is left.
struct RangeWalk<'a, S: FrameSource, const N: usize, B: RawMmu> {
    m: &'a mut Mapper<S, N>,
    mmu: &'a mut Mmu<B>,
    lo: u64,
    last: u64,
    act: Act,
    check: bool,
    owned: [bool; 4],
    removed: [i32; 4],
    run: Run,
}

/// The index of `level` in the per-level arrays.
#[inline(always)]
fn at(level: TableLevel) -> usize {
    usize::from(level.as_u8() - 1)
}

impl<S: FrameSource, const N: usize, B: RawMmu> RangeWalk<'_, S, N, B> {
    /// A protect that makes pages writable (the one act with a check inside the mapper's own
    /// level-1 tables).
    #[inline(always)]
    fn writable_protect(&self) -> bool {
        matches!(self.act, Act::Protect(bits) if bits & PageTableFlags::WRITABLE.bits() != 0)
    }

    fn write_run(&mut self) -> Result<(), MapError<B::Error>> {
        let run = &mut self.run;
        let n = run.n;
        run.n = 0;
        // SAFETY: the first `n` entries were written (`run.n` counts the writes), and
        // `MaybeUninit<Pte>` has `Pte`'s layout.
        let entries: &[Pte] =
            unsafe { &*(&run.entries[..n] as *const [MaybeUninit<Pte>] as *const [Pte]) };
        // SAFETY: `run.table` is a level-`run.level` table the mapper created (its leaves were
        // checked against the record by `entry`); the entries are the leaves it held, cleared
        // or with the protection the caller of the public operation asked for, mapping the
        // same frames.
        unsafe {
            self.mmu
                .raw_mut()
                .write(run.table, run.level, run.first, entries)
        }
        .map_err(MapError::Backend)?;
        self.m.stats.entries_written += n as u64;
        self.m.dirty = true;
        Ok(())
    }
}

impl<S: FrameSource, const N: usize, B: RawMmu> Visitor for RangeWalk<'_, S, N, B> {
    type Table = Pfn;
    type Error = MapError<B::Error>;

    #[inline(always)]
    fn read(&mut self, table: Pfn, level: TableLevel, index: u16) -> Result<Pte, Self::Error> {
        // SAFETY: a `RangeWalk` is made only by `range_walk`, whose visit starts at the
        // mapper's root (a live level-4 table: every public operation checks the caller's
        // `TableRef` to it) and reads only tables that present non-leaf entries on the way
        // name (`walk::visit`), which are live tables too: tables only the backend writes.
        unsafe { self.mmu.raw_mut().read(table, level, index) }.map_err(MapError::Backend)
    }

    #[inline(always)]
    fn child(&mut self, _: &Slot<Pfn>, entry: Pte) -> Result<Pfn, Self::Error> {
        Ok(entry.pfn())
    }

    #[inline(always)]
    fn enter(&mut self, t: &InTable<Pfn>) -> Result<(), Self::Error> {
        self.owned[at(t.level)] = self.m.record.find(t.table).is_some();
        self.removed[at(t.level)] = 0;
        Ok(())
    }

    #[inline]
    fn entry(&mut self, slot: &Slot<Pfn>, e: Pte, leaf: bool) -> Result<Step, Self::Error> {
        let (level, idx, start) = (slot.level, slot.index, slot.va);
        if leaf {
            if self.act == Act::Prune {
                // Nothing to do with leaves.
                return Ok(Step::Next);
            }
            if !self.owned[at(level)] {
                return Err(MapError::ForeignTable(start));
            }
            if start < self.lo || slot.last() > self.last {
                return Err(MapError::SplitsLargePage(start));
            }
            let new = match self.act {
                Act::Unmap | Act::Teardown | Act::Prune => Pte::EMPTY,
                Act::Protect(bits) => {
                    let huge = e.bits() & PageTableFlags::HUGE_PAGE.bits();
                    Pte::new(e.pfn(), PageTableFlags::from_bits_retain(bits | huge))
                }
            };
            if self.check {
                if self.writable_protect() {
                    let p = e.pfn().as_u64();
                    let pages = level.entry_span() / 4096;
                    if let Some(t) = self.m.known_table_in(self.mmu, p, p + pages) {
                        return Err(MapError::FrameIsTable(t));
                    }
                }
            } else if new != e {
                self.m.tlb.add(start);
                let r = &self.run;
                if r.n > 0 && (r.table != slot.table || r.first + r.n as u16 != idx || r.n == RUN) {
                    self.write_run()?;
                }
                let r = &mut self.run;
                if r.n == 0 {
                    (r.table, r.level, r.first) = (slot.table, level, idx);
                }
                r.entries[r.n].write(new);
                r.n += 1;
                if !new.is_present() {
                    self.removed[at(level)] += 1;
                }
            }
            return Ok(Step::Next);
        }
        if self.run.n > 0 {
            self.write_run()?;
        }
        let child = e.pfn();
        if level == TableLevel::L2 && self.m.record.find(child).is_some() {
            if self.check && !self.writable_protect() {
                // In a table of its own the mapper's 4 KiB leaves can fail no check of an
                // unmap (no foreign table, no large page to split): only a writable protect
                // has one.
                return Ok(Step::Next);
            }
            if !self.check && matches!(self.act, Act::Unmap | Act::Teardown) {
                let (lo, last) = (self.lo.max(start), self.last.min(slot.last()));
                self.m.clear_leaves(self.mmu, child, lo, last)?;
                self.m
                    .maybe_unhook(self.mmu, slot.table, level, idx, start, child, self.act)?;
                return Ok(Step::Next);
            }
        }
        Ok(Step::Descend)
    }

    #[inline]
    fn leave(
        &mut self,
        t: &InTable<Pfn>,
        above: Option<(&Slot<Pfn>, Pte)>,
    ) -> Result<(), Self::Error> {
        if self.run.n > 0 {
            self.write_run()?;
        }
        let removed = self.removed[at(t.level)];
        if removed > 0 {
            self.m.record.adjust(t.table, -removed);
        }
        if self.check {
            return Ok(());
        }
        if self.owned[at(t.level)] && t.level == TableLevel::L1 {
            // No removal can happen below a level-1 table: its slot is current.
            if let Some(slot) = self.m.record.find(t.table) {
                self.m
                    .record
                    .cache(TableLevel::L1, t.lo & !(COVER - 1), t.table, slot);
            }
        }
        if let Some((s, _)) = above {
            self.m
                .maybe_unhook(self.mmu, s.table, s.level, s.index, s.va, t.table, self.act)?;
        }
        Ok(())
    }
}

impl<S: FrameSource, const N: usize> Mapper<S, N> {
    /// Checks, then applies, `act` to `[va, va + len)`.
    ///
    /// # Safety
    /// The caller may unmap (or change) every page of the range.
    pub(crate) unsafe fn walk_range<B: RawMmu>(
        &mut self,
        mmu: &mut Mmu<B>,
        va: u64,
        len: u64,
        act: Act,
    ) -> Result<(), MapError<B::Error>> {
        self.range_walk(mmu, va, len, act, true)?;
        self.range_walk(mmu, va, len, act, false)
    }

    /// One pass of hal-core's walker over `[va, va + len)` doing `act` (`check`: the check
    /// pass, which changes nothing).
    fn range_walk<B: RawMmu>(
        &mut self,
        mmu: &mut Mmu<B>,
        va: u64,
        len: u64,
        act: Act,
        check: bool,
    ) -> Result<(), MapError<B::Error>> {
        if len == 0 {
            return Ok(());
        }
        let root = self.root;
        let last = va.saturating_add(len - 1);
        let mut w = RangeWalk {
            m: self,
            mmu,
            lo: va,
            last,
            act,
            check,
            owned: [false; 4],
            removed: [0; 4],
            run: Run {
                table: root,
                level: TableLevel::L1,
                first: 0,
                n: 0,
                entries: [const { MaybeUninit::uninit() }; RUN],
            },
        };
        walk::visit(root, va..=last, &mut w)
    }

    /// Unhooks the empty tables the mapper owns under `[va, va + len)`; leaves stay.
    pub(crate) fn prune<B: RawMmu>(
        &mut self,
        mmu: &mut Mmu<B>,
        va: u64,
        len: u64,
    ) -> Result<(), MapError<B::Error>> {
        self.range_walk(mmu, va, len, Act::Prune, false)
    }

    /// [`unmap_raw`](Self::unmap_raw), out of line (the slow path of `unmap`).
    ///
    /// # Safety
    /// As [`walk_range`](Self::walk_range).
    #[inline(never)]
    pub(crate) unsafe fn unmap_walking<B: RawMmu>(
        &mut self,
        mmu: &mut Mmu<B>,
        va: u64,
        len: u64,
    ) -> Result<(), MapError<B::Error>> {
        // SAFETY: the caller's contract.
        unsafe { self.walk_range(mmu, va, len, Act::Unmap) }
    }

    /// Unmaps `[va, va + len)` without the checks of the public entry points.
    ///
    /// # Safety
    /// As [`walk_range`](Self::walk_range).
    pub(crate) unsafe fn unmap_raw<B: RawMmu>(
        &mut self,
        mmu: &mut Mmu<B>,
        va: u64,
        len: u64,
    ) -> Result<(), MapError<B::Error>> {
        // SAFETY: the caller's contract.
        unsafe { self.walk_range(mmu, va, len, Act::Unmap) }
    }

    /// Unmaps `[va, va + len)` inside the cached level-1 table, if the range lies in it and
    /// the table keeps a present entry (or the policy keeps empty tables); `Ok(false)`, with
    /// nothing changed, sends the caller to the walk from the root. What the walk would check
    /// cannot fail here: the table is the mapper's, its leaves are 4 KiB pages.
    #[inline(always)]
    pub(crate) fn unmap_cached<B: RawMmu>(
        &mut self,
        mmu: &mut Mmu<B>,
        va: u64,
        len: u64,
    ) -> Result<bool, MapError<B::Error>> {
        let Some((pfn, slot)) = self.record.cached_at(TableLevel::L1, va & !(COVER - 1)) else {
            return Ok(false);
        };
        if len != 4096 {
            return self.unmap_cached_run(mmu, pfn, slot, va, len);
        }
        let first = TableLevel::L1.index_of(va);
        let raw = mmu.raw_mut();
        // One page: one read, at most one write.
        let o = self.record.at_mut(slot);
        // The table would be empty after clearing a present entry.
        let last = o.used <= 1 && self.policy == EmptyTables::Free;
        // SAFETY: `pfn` is a level-1 table the mapper created and that is hooked in its tree
        // (the record, and the cache's validity); only a present leaf is cleared, which maps
        // nothing.
        let e = unsafe {
            raw.update(pfn, TableLevel::L1, first, |e| {
                (e.is_present() && !last).then_some(Pte::EMPTY)
            })
        }
        .map_err(MapError::Backend)?;
        if !e.is_present() {
            // A hole; the walk unhooks the table if it is empty already.
            return Ok(!(o.used == 0 && self.policy == EmptyTables::Free));
        }
        if last {
            // Not cleared: the table empties, the walk unhooks it (and its parents).
            return Ok(false);
        }
        o.used -= 1;
        self.stats.entries_written += 1;
        self.dirty = true;
        self.tlb.add(va);
        Ok(true)
    }

    /// [`unmap_cached`](Self::unmap_cached) for more than one page.
    #[inline(never)]
    fn unmap_cached_run<B: RawMmu>(
        &mut self,
        mmu: &mut Mmu<B>,
        pfn: Pfn,
        slot: usize,
        va: u64,
        len: u64,
    ) -> Result<bool, MapError<B::Error>> {
        let base = va & !(COVER - 1);
        let inside = (va - base).checked_add(len).is_some_and(|end| end <= COVER);
        if !inside {
            return Ok(false);
        }
        let first = TableLevel::L1.index_of(va);
        let n = (len / 4096) as u16;
        let raw = mmu.raw_mut();
        // Which slots hold a page, one bit each.
        let mut map = [0u64; 8];
        let mut present = 0u16;
        for i in first..first + n {
            // SAFETY: `pfn` is a level-1 table the mapper created and that is hooked in its
            // tree (the record, and the cache's validity): a table only the backend writes.
            if unsafe { raw.read(pfn, TableLevel::L1, i) }
                .map_err(MapError::Backend)?
                .is_present()
            {
                map[usize::from(i / 64)] |= 1 << (i % 64);
                present += 1;
            }
        }
        let used = self.record.at_mut(slot).used;
        if present >= used && self.policy == EmptyTables::Free {
            // The table empties: the walk unhooks it (and its parents).
            return Ok(false);
        }
        if present == 0 {
            return Ok(true);
        }
        for i in first..first + n {
            if map[usize::from(i / 64)] & (1 << (i % 64)) == 0 {
                continue;
            }
            let raw = mmu.raw_mut();
            // SAFETY: `pfn` is a level-1 table the mapper created and that is hooked in its
            // tree (the record, and the cache's validity); clearing a leaf maps nothing.
            unsafe { raw.write(pfn, TableLevel::L1, i, &[Pte::EMPTY]) }
                .map_err(MapError::Backend)?;
            let o = self.record.at_mut(slot);
            o.used = o.used.saturating_sub(1);
            self.stats.entries_written += 1;
            self.dirty = true;
            self.tlb.add(base + u64::from(i) * 4096);
        }
        Ok(true)
    }

    /// Clears the 4 KiB leaves of `lo..=last` (inside the span of the level-1 table `table`,
    /// the mapper's own): one backend call per slot, a write only where a page was.
    fn clear_leaves<B: RawMmu>(
        &mut self,
        mmu: &mut Mmu<B>,
        table: Pfn,
        lo: u64,
        last: u64,
    ) -> Result<(), MapError<B::Error>> {
        let first = TableLevel::L1.index_of(lo);
        let last = TableLevel::L1.index_of(last);
        let base = lo & !(COVER - 1);
        let raw = mmu.raw_mut();
        let mut removed = 0u16;
        let mut failed = None;
        for idx in first..=last {
            // SAFETY: `table` is a level-1 table the mapper created (the record), hooked in its
            // tree; only present leaves are cleared, which maps nothing.
            let r = unsafe {
                raw.update(table, TableLevel::L1, idx, |e| {
                    e.is_present().then_some(Pte::EMPTY)
                })
            };
            match r {
                Ok(e) if e.is_present() => {
                    removed += 1;
                    self.tlb.add(base + u64::from(idx) * 4096);
                }
                Ok(_) => {}
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if removed > 0 {
            self.stats.entries_written += u64::from(removed);
            self.dirty = true;
            self.record.adjust(table, -i32::from(removed));
        }
        if let Some(slot) = self.record.find(table) {
            self.record.cache(TableLevel::L1, base, table, slot);
        }
        failed.map_or(Ok(()), |e| Err(MapError::Backend(e)))
    }

    /// Counts the present entries of the owned table `pfn` (level `level`) and records the
    /// count.
    #[cold]
    fn recount<B: RawMmu>(
        &mut self,
        mmu: &mut Mmu<B>,
        pfn: Pfn,
        level: TableLevel,
    ) -> Result<u16, MapError<B::Error>> {
        let mut used = 0u16;
        for i in 0..512u16 {
            // SAFETY: `pfn` is a level-`level` table the mapper owns (its record; the callers
            // pass a child the record holds), hooked in its tree: a table only the backend
            // writes.
            let e = unsafe { mmu.raw_mut().read(pfn, level, i) }.map_err(MapError::Backend)?;
            used += u16::from(e.is_present());
        }
        if let Some(slot) = self.record.find(pfn) {
            self.record.at_mut(slot).used = used;
        }
        Ok(used)
    }

    /// Unhooks `child` (behind slot `idx` of `table`) if it is the mapper's and empty, and the
    /// policy (or a teardown) says so; it is retired at the next flush.
    #[allow(clippy::too_many_arguments)]
    fn maybe_unhook<B: RawMmu>(
        &mut self,
        mmu: &mut Mmu<B>,
        table: Pfn,
        level: TableLevel,
        idx: u16,
        start: u64,
        child: Pfn,
        act: Act,
    ) -> Result<(), MapError<B::Error>> {
        let Some(o) = self.record.get(child) else {
            return Ok(());
        };
        // A table in a root slot stays, empty, whatever the policy: another root may have
        // inherited the slot (`inherit_root` is safe), and would name a freed frame.
        if level == TableLevel::L4 {
            return Ok(());
        }
        let forced = matches!(act, Act::Teardown | Act::Prune);
        if self.policy == EmptyTables::Keep && !forced {
            return Ok(());
        }
        let mut used = o.used;
        if used != 0 && forced {
            // A teardown or a rollback has cleared the range: a count left means a batch the
            // backend refused part way (leaves counted it dropped). The table says what it
            // holds.
            used = self.recount(mmu, child, o.level)?;
        }
        if used != 0 {
            return Ok(());
        }
        // The record counts this mapper's entries only, and another mapper of the same root
        // may have hooked a table of its own under one of this mapper's (mappers create tables
        // under tables they do not own): a table above level 1 says itself whether it is
        // empty. Unhooked with such a child, it would unmap the other mapper's pages behind
        // its back, their translations left in the TLB.
        if o.level != TableLevel::L1 && self.recount(mmu, child, o.level)? != 0 {
            return Ok(());
        }
        if self.retiring.is_full() {
            self.flush_inner(mmu)?;
        }
        // SAFETY: `table` is a live table of the tree; the entry pointed at `child`, a table
        // the mapper created (the record) and that maps nothing any more: clearing the entry
        // unmaps nothing anyone relies on.
        unsafe { mmu.raw_mut().write(table, level, idx, &[Pte::EMPTY]) }
            .map_err(MapError::Backend)?;
        self.stats.entries_written += 1;
        self.dirty = true;
        self.tlb.add(start);
        self.record.remove(child);
        self.record.adjust(table, -1);
        // SAFETY: the mapper created `child` as a level-`o.level` table and has just taken it
        // out of the tree: nobody else owns it.
        if let Some(t) = unsafe { OwnedTable::claim(child, o.level) } {
            if let Err(t) = self.retiring.push(t) {
                crate::frame::handed_over(t);
                return Err(MapError::RecordFull);
            }
        }
        Ok(())
    }
}
