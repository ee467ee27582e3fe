//! [`FreshTable<L>`]: a table written in place, entry runs streamed once into their final
//! place, before it exists for the platform.
//!
//! A [`TableBuilder`](crate::TableBuilder) stages 512 entries in memory (4 KiB) and writes them
//! when the table is made; a `FreshTable` is 16 bytes: the frame and how far it is filled.
//! Slots are written in ascending order, each once: a run goes to the backend at once
//! ([`RawMmu::fill_fresh`]: plain stores on bare metal, the `mmu_update` queue on Xen PV), the
//! slots skipped before it are written empty then, and [`Mmu::finish_table`] writes the slots
//! after the last run empty and hands out the complete table as `Frame<PinnedRO<L>>`. Nothing
//! is zeroed that is written afterwards, nothing read back.
//!
//! Until it is finished the frame is `PgtReserved` inside: it cannot be hooked or pinned, so it
//! is not live, which is what [`RawMmu::fill_fresh`] needs.
//!
//! A slot counts as written only while nothing can have dropped it. A queuing backend drops
//! queued entries when a submission is refused part way (Xen PV: every entry after the
//! refused one), whichever call submitted them. So [`Mmu::finish_table`] of a table whose
//! slots the backend may have dropped since its first slot was written
//! ([`RawMmu::discarded`] moved) *starts over*: it writes every slot again, empty. Entries
//! and children put before are then lost (the children leaked), never left half written in
//! a table that counts as complete. A backend that applies every write at once
//! ([`RawMmu::MAY_DISCARD`] `false`: bare metal) drops nothing, and the check is left out.

use core::marker::PhantomData;

use typenum::U4;

use crate::addr::Pfn;
use crate::backend::{EntryRun, RawMmu};
use crate::error::Failed;
use crate::frame::Frame;
use crate::level::{ChildOf, HasChild, Level, TableLevel};
use crate::mmu::{Mmu, Pending, WriteError};
use crate::pte::Pte;
use crate::root::LiveRoot;
use crate::state::{PgtReserved, PinnedRO};
use crate::table::{EntryError, LeafLevel, ENTRIES};

/// A level-`L` table being written in place: a `PgtReserved` frame and the first slot not
/// written yet. Slots below it hold their final entries (queued, on a queuing backend).
#[must_use = "dropping a FreshTable leaks its frame and the children written into it"]
pub struct FreshTable<L: Level> {
    frame: Frame<PgtReserved>,
    next: u16,
    /// The low 32 bits of the backend's [`discarded`](RawMmu::discarded) count when the
    /// first slot was written (kept only where [`RawMmu::MAY_DISCARD`]).
    epoch: u32,
    _level: PhantomData<L>,
}

impl<L: Level> core::fmt::Debug for FreshTable<L> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "FreshTable<L{}>({:?}, {} slots written)",
            L::LEVEL.as_u8(),
            self.frame.pfn(),
            self.next
        )
    }
}

impl<L: Level> FreshTable<L> {
    /// A table in `frame`, nothing written yet.
    pub fn new(frame: Frame<PgtReserved>) -> Self {
        Self {
            frame,
            next: 0,
            epoch: 0,
            _level: PhantomData,
        }
    }

    /// The frame the table lives in.
    pub fn pfn(&self) -> Pfn {
        self.frame.pfn()
    }

    /// The first slot not written yet: the next run must start here or above.
    pub fn next_slot(&self) -> u16 {
        self.next
    }

    /// Gives up: the frame comes back (its contents unspecified). Children written so far stay
    /// set aside (leaked); call it only on a table without children.
    pub fn into_frame(self) -> Frame<PgtReserved> {
        self.frame
    }
}

impl<B: RawMmu> Mmu<B> {
    /// Streams `run` into `table` from slot `first`, after writing the slots skipped since the
    /// last run empty. Refused before anything is written if `first` is below
    /// [`next_slot`](FreshTable::next_slot) (`Occupied`), the run passes slot 511
    /// (`IndexOutOfRange`), or an entry is not a present leaf of this level (`NotPresent`,
    /// `BadLeaf`: level-2 and -3 leaves have `HUGE_PAGE`, level-1 leaves not; frame numbers
    /// must stay in range).
    ///
    /// # Safety
    /// Once the table is live, the virtual pages these slots cover map the run's frames: the
    /// caller promises those pages are not otherwise in use and the frames may be mapped with
    /// these flags.
    #[inline]
    pub unsafe fn put_leaves<L: LeafLevel>(
        &mut self,
        table: &mut FreshTable<L>,
        first: u16,
        run: &EntryRun,
    ) -> Result<(), WriteError<B::Error>> {
        let e = run.first;
        if !e.is_present() {
            return Err(WriteError::Entry(EntryError::NotPresent(first)));
        }
        if e.is_huge() != (L::LEVEL != TableLevel::L1) || !run.frames_in_range() {
            return Err(WriteError::Entry(EntryError::BadLeaf(first)));
        }
        // SAFETY: the caller's promise for the leaves.
        unsafe { self.stream(table, first, run) }
    }

    /// Writes `child` into slot `index` of `table` (after the skipped slots, empty); the table
    /// owns the child from then on. The child comes back if the slot is behind
    /// [`next_slot`](FreshTable::next_slot) or past the end, or the backend refuses.
    #[inline]
    pub fn put_child<L: HasChild>(
        &mut self,
        table: &mut FreshTable<L>,
        index: u16,
        child: Frame<PinnedRO<ChildOf<L>>>,
    ) -> Result<(), Failed<Frame<PinnedRO<ChildOf<L>>>, WriteError<B::Error>>> {
        let run = EntryRun::one(Pte::table(child.pfn()));
        // SAFETY: an entry pointing at a complete level L-1 table we own and hand over.
        match unsafe { self.stream(table, index, &run) } {
            Ok(()) => {
                crate::frame::handed_over(child);
                Ok(())
            }
            Err(error) => Err(Failed {
                error,
                value: child,
            }),
        }
    }

    /// Writes an entry verbatim into slot `index` (after the skipped slots, empty).
    ///
    /// # Safety
    /// The entry is one the platform already accepts at this level in a live table of the
    /// caller's (the referenced table or page stays valid for as long as this table is used).
    pub unsafe fn put_raw<L: Level>(
        &mut self,
        table: &mut FreshTable<L>,
        index: u16,
        pte: Pte,
    ) -> Result<(), WriteError<B::Error>> {
        // SAFETY: the caller's promise.
        unsafe { self.stream(table, index, &EntryRun::one(pte)) }
    }

    /// Copies the live root's present entries of slots `[start, end)` into `root`, except the
    /// backend's reserved slots: the streaming [`inherit_root`](Mmu::inherit_root). Slots are
    /// written in ascending order, so inherit the slots below the direct map before building
    /// it and those above after. Refused (`Occupied`) if `start` is below the root's
    /// [`next_slot`](FreshTable::next_slot). Returns how many were copied.
    pub fn inherit_root_fresh(
        &mut self,
        from: &LiveRoot,
        root: &mut FreshTable<U4>,
        (start, end): (u16, u16),
    ) -> Result<u16, WriteError<B::Error>> {
        if start < root.next {
            return Err(WriteError::Entry(EntryError::Occupied(start)));
        }
        let live = from.pfn();
        let reserved = self.caps().reserved_root_slots;
        let mut copied = 0;
        for i in start..end.min(ENTRIES as u16) {
            if i >= reserved.0 && i < reserved.1 {
                continue;
            }
            // SAFETY: `live` is the level-4 table the `LiveRoot` owns (its boot tables, or a
            // root hal-core built and pinned): a table only the backend writes.
            let e = unsafe { self.raw_mut().read(live, TableLevel::L4, i) }
                .map_err(WriteError::Backend)?;
            if e.is_present() {
                // SAFETY: the entry is live in the current root, which the platform accepted;
                // the tables it points at stay: a table in a root slot is never freed (the
                // boot tables are never retired, and the mapper keeps its level-3 tables).
                unsafe { self.put_raw(root, i, e) }?;
                copied += 1;
            }
        }
        Ok(copied)
    }

    /// `PgtReserved` → `PinnedRO<L>`: writes the slots after the last run empty and flushes,
    /// so that on `Ok` the frame is a complete level-`L` table (owned by the caller, hooked
    /// nowhere yet). If the backend may have dropped slots queued for it since its first slot
    /// was written, every slot is written again, empty (see the [module docs](self)). On
    /// failure the table comes back unfinished (its contents unspecified): finishing it again
    /// writes every slot again if the refusal may have dropped some.
    pub fn finish_table<L: Level>(
        &mut self,
        table: FreshTable<L>,
    ) -> Result<Frame<PinnedRO<L>>, Failed<FreshTable<L>, B::Error>> {
        let epoch = table.epoch;
        let (frame, pending) = self.finish_table_queued(table)?;
        match pending.flush(self) {
            Ok(()) => Ok(frame),
            // The writes were queued; the frame is the table's, which failed: hand it back
            // unfinished (not PinnedRO), every slot counted as written. Finishing it again
            // writes them all again if the refused flush may have dropped some (a queuing
            // backend's `discarded` moved since the first slot), and nothing otherwise.
            Err(error) => Err(Failed {
                error,
                value: FreshTable {
                    frame: frame.into_state(),
                    next: ENTRIES as u16,
                    epoch,
                    _level: PhantomData,
                },
            }),
        }
    }

    /// As [`finish_table`](Self::finish_table), without the flush: for builders that hand the
    /// table to a parent at once and flush the whole tree before it is used.
    #[inline]
    pub(crate) fn finish_table_queued<L: Level>(
        &mut self,
        mut table: FreshTable<L>,
    ) -> Result<(Frame<PinnedRO<L>>, Pending), Failed<FreshTable<L>, B::Error>> {
        if B::MAY_DISCARD {
            // A submission refused since the first slot was written may have dropped some of
            // the slots queued: none of them counts as written.
            Self::restart_if_dropped(&mut table.next, table.epoch, self.raw());
        }
        let rest = ENTRIES as u16 - table.next;
        if rest > 0 {
            let pfn = table.pfn();
            // SAFETY: the frame is PgtReserved (protected, ours, not live: it was never made a
            // table); empty entries map nothing.
            let res = unsafe {
                self.raw_mut()
                    .fill_fresh(pfn, L::LEVEL, table.next, &EntryRun::empty(rest))
            };
            if let Err(error) = res {
                return Err(Failed {
                    error,
                    value: table,
                });
            }
            table.next = ENTRIES as u16;
        }
        Ok((table.frame.into_state(), Pending::one()))
    }

    /// Writes the skipped slots empty, then `run`, at `first`; advances the table.
    ///
    /// # Safety
    /// The entries are ones the caller may put into a level-`L` table (leaves it vouches for,
    /// or level L-1 tables it hands over).
    #[inline]
    unsafe fn stream<L: Level>(
        &mut self,
        table: &mut FreshTable<L>,
        first: u16,
        run: &EntryRun,
    ) -> Result<(), WriteError<B::Error>> {
        if first < table.next {
            return Err(WriteError::Entry(EntryError::Occupied(first)));
        }
        let end = usize::from(first) + usize::from(run.count);
        if end > ENTRIES {
            let at = u16::try_from(end).unwrap_or(u16::MAX);
            return Err(WriteError::Entry(EntryError::IndexOutOfRange(at)));
        }
        let pfn = table.pfn();
        let raw = self.raw_mut();
        if B::MAY_DISCARD && table.next == 0 {
            table.epoch = raw.discarded() as u32;
        }
        if first > table.next {
            let gap = EntryRun::empty(first - table.next);
            // SAFETY: the frame is PgtReserved inside the FreshTable: protected, ours, never
            // hooked or pinned (only a PinnedRO frame can be), so not live; empty entries
            // map nothing.
            unsafe { raw.fill_fresh(pfn, L::LEVEL, table.next, &gap) }
                .map_err(WriteError::Backend)?;
            table.next = first;
        }
        // SAFETY: as above for the frame; the entries are the caller's promise.
        unsafe { raw.fill_fresh(pfn, L::LEVEL, first, run) }.map_err(WriteError::Backend)?;
        table.next = end as u16;
        Ok(())
    }

    /// A table whose first slot was written at `epoch` of the backend's
    /// [`discarded`](RawMmu::discarded) count starts over if the count moved since.
    #[inline(never)]
    fn restart_if_dropped(next: &mut u16, epoch: u32, raw: &B) {
        if *next > 0 && raw.discarded() as u32 != epoch {
            *next = 0;
        }
    }
}
