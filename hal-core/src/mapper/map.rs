//! [`Mapper`] and mapping: ranges split into the largest pages alignment and the backend
//! allow, tables created on the way.

use typenum::U4;
use x86_64::structures::paging::PageTableFlags;

use crate::addr::Pfn;
use crate::backend::{Caps, PageSizes, RawMmu};
use crate::error::Failed;
use crate::level::{Level, TableLevel};
use crate::mmu::Mmu;
use crate::pte::Pte;
use crate::range::FrameRange;
use crate::table::TableRef;
use crate::tlb::TlbBatch;

use super::error::MapError;
use super::flush::{Flush, MapperStats};
use super::record::{OwnedTable, Record};
use super::source::FrameSource;

/// Tables waiting, unhooked, for the next flush to retire them; one more flushes early.
pub(crate) const RETIRE_CAP: usize = 64;
/// Entries written to a table in one backend call.
const RUN: usize = 64;

/// What happens to a table that unmapping leaves empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum EmptyTables {
    /// Unhooked, retired at the next flush and given back to the frame source; but a level-3
    /// table in a root slot stays, empty (see the [module docs](super)).
    Free,
    /// Kept hooked (for a range that will be mapped again); freed by
    /// [`teardown`](Mapper::teardown), but for the level-3 ones in root slots.
    Keep,
}

/// The page size of a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum PageSize {
    /// The largest that the alignment of the virtual and physical addresses, the length left
    /// and the backend allow, chosen per page.
    Auto,
    /// 4 KiB pages only.
    Size4K,
    /// 2 MiB pages only (va, phys and length 2 MiB-aligned).
    Size2M,
    /// 1 GiB pages only (va, phys and length 1 GiB-aligned).
    Size1G,
}

/// A run-time mapper over one root. `S` gives it table frames; `N` (a power of two) bounds
/// the tables it can own at once.
pub struct Mapper<S: FrameSource, const N: usize = 256> {
    pub(crate) root: Pfn,
    pub(crate) caps: Caps,
    pub(crate) source: S,
    pub(crate) record: Record<N>,
    pub(crate) retiring: heapless::Vec<OwnedTable, RETIRE_CAP>,
    pub(crate) tlb: TlbBatch,
    pub(crate) dirty: bool,
    pub(crate) policy: EmptyTables,
    pub(crate) stats: MapperStats,
    /// The virtual range `[lo, hi)` the mapper ever mapped into.
    pub(crate) extent: (u64, u64),
    /// The ranges mapped since the last submission (contiguous ones merged), which a refused
    /// [`flush`](Self::flush) unmaps again; `None` once more than [`PENDING_CAP`] were.
    pub(crate) pending: Option<heapless::Vec<(u64, u64), PENDING_CAP>>,
}

/// Separate ranges mapped between two flushes that a refused flush can still roll back.
pub(crate) const PENDING_CAP: usize = 16;

pub(crate) const LEAF_FLAGS: u64 = PageTableFlags::WRITABLE.bits()
    | PageTableFlags::USER_ACCESSIBLE.bits()
    | PageTableFlags::WRITE_THROUGH.bits()
    | PageTableFlags::NO_CACHE.bits()
    | PageTableFlags::GLOBAL.bits()
    | PageTableFlags::BIT_9.bits()
    | PageTableFlags::BIT_10.bits()
    | PageTableFlags::BIT_11.bits()
    | PageTableFlags::NO_EXECUTE.bits();

const fn size_of(level: TableLevel) -> u64 {
    level.entry_span()
}

impl<S: FrameSource, const N: usize> Mapper<S, N> {
    /// A mapper for the tree under `root`, with the backend's `caps`, taking tables from
    /// `source`.
    pub fn new(root: TableRef<'_, U4>, caps: Caps, source: S, policy: EmptyTables) -> Self {
        Self {
            root: root.pfn(),
            caps,
            source,
            record: Record::new(),
            retiring: heapless::Vec::new(),
            tlb: TlbBatch::new(),
            dirty: false,
            policy,
            stats: MapperStats::default(),
            extent: (u64::MAX, 0),
            pending: Some(heapless::Vec::new()),
        }
    }

    /// What the mapper did so far.
    pub fn stats(&self) -> MapperStats {
        self.stats
    }

    /// Tables the mapper owns now (hooked, or unhooked and waiting for the next flush).
    pub fn tables_owned(&self) -> usize {
        self.record.len() + self.retiring.len()
    }

    /// Tables the mapper created that are hooked in the tree now.
    pub fn tables_hooked(&self) -> usize {
        self.record.len()
    }

    /// Whether `pfn` is a table this mapper created and still owns.
    pub fn owns_table(&self, pfn: Pfn) -> bool {
        self.record.get(pfn).is_some() || self.retiring.iter().any(|t| t.pfn() == pfn)
    }

    /// The frame source.
    pub fn source(&self) -> &S {
        &self.source
    }

    /// The policy for tables left empty.
    pub fn set_policy(&mut self, policy: EmptyTables) {
        self.policy = policy;
    }

    /// Gives up the mapper, returning its frame source. Tables it still owns stay in the tree
    /// (leaked): [`teardown`](Self::teardown) first to get them back.
    pub fn into_source(self) -> S {
        self.source
    }

    pub(crate) fn check_root(&self, root: &TableRef<'_, U4>) -> Result<(), ()> {
        (root.pfn() == self.root).then_some(()).ok_or(())
    }

    /// Canonical, not crossing halves, no reserved root slot; `len > 0`, 4 KiB-aligned.
    /// Every condition is tested at once; when one fails,
    /// [`range_refusal`](Self::range_refusal) says which.
    #[inline(always)]
    pub(crate) fn check_range<E>(&self, va: u64, len: u64) -> Result<(), MapError<E>> {
        let last = va.wrapping_add(len.wrapping_sub(1));
        let top = va >> 47;
        let ok = ((va | len) & 0xfff == 0)
            & (len != 0)
            & (last >= va)
            & (last >> 47 == top)
            & ((top == 0) | (top == 0x1ffff));
        if !ok {
            return self.range_refusal(va, len);
        }
        let (rs, re) = self.caps.reserved_root_slots;
        let (s0, s1) = (TableLevel::L4.index_of(va), TableLevel::L4.index_of(last));
        if rs < re && s0 < re && rs <= s1 {
            return Err(MapError::ReservedSlot(s0.max(rs)));
        }
        Ok(())
    }

    /// [`check_range`](Self::check_range), one condition after the other, for the error.
    #[cold]
    #[inline(never)]
    fn range_refusal<E>(&self, va: u64, len: u64) -> Result<(), MapError<E>> {
        let unaligned = MapError::Unaligned { va, phys: 0, len };
        if va % 4096 != 0 || len % 4096 != 0 || len == 0 {
            return Err(unaligned);
        }
        let last = va.checked_add(len - 1).ok_or(MapError::NonCanonical(va))?;
        let half = |a: u64| match a >> 47 {
            0 => Some(0),
            0x1ffff => Some(1),
            _ => None,
        };
        match (half(va), half(last)) {
            (Some(a), Some(b)) if a == b => {}
            _ => return Err(MapError::NonCanonical(va)),
        }
        let (rs, re) = self.caps.reserved_root_slots;
        let (s0, s1) = (TableLevel::L4.index_of(va), TableLevel::L4.index_of(last));
        if rs < re && s0 < re && rs <= s1 {
            return Err(MapError::ReservedSlot(s0.max(rs)));
        }
        Ok(())
    }

    pub(crate) fn check_flags<E>(&self, flags: PageTableFlags) -> Result<u64, MapError<E>> {
        let bits = flags.bits() & !PageTableFlags::PRESENT.bits();
        if bits & !LEAF_FLAGS != 0 {
            return Err(MapError::FlagsRefused(bits & !LEAF_FLAGS));
        }
        if bits & PageTableFlags::NO_EXECUTE.bits() != 0 && !self.caps.nx {
            return Err(MapError::FlagsRefused(PageTableFlags::NO_EXECUTE.bits()));
        }
        Ok(bits | PageTableFlags::PRESENT.bits())
    }

    /// Whether a writable mapping of frames `[lo, hi)` would map a table the mapper or the
    /// backend knows of.
    #[inline(always)]
    pub(crate) fn known_table_in<B: RawMmu>(&self, mmu: &Mmu<B>, lo: u64, hi: u64) -> Option<u64> {
        if !self.record.may_hold(lo, hi)
            && self.retiring.is_empty()
            && mmu.raw().foreign_tables().is_empty()
        {
            return None;
        }
        self.known_table_in_slow(mmu, lo, hi)
    }

    #[inline(never)]
    fn known_table_in_slow<B: RawMmu>(&self, mmu: &Mmu<B>, lo: u64, hi: u64) -> Option<u64> {
        if let Some(p) = self.record.table_in(lo, hi) {
            return Some(p);
        }
        if let Some(t) = self
            .retiring
            .iter()
            .find(|t| (lo..hi).contains(&t.pfn().as_u64()))
        {
            return Some(t.pfn().as_u64());
        }
        mmu.raw().foreign_tables().iter().find_map(|r| {
            let s = r.start().as_u64().max(lo);
            (s < r.end().min(hi)).then_some(s)
        })
    }

    /// Maps physical `[phys, phys + len)` at `[va, va + len)` with `flags` (`PRESENT` implied,
    /// `HUGE_PAGE` is the mapper's), in pages of `size`. Refused (nothing changed) if any page
    /// of the range is mapped, a table sits where a large page would go, a writable mapping
    /// would map a table the mapper knows of, or for the reasons [`MapError`] lists. If the
    /// frame source runs dry part way, what was mapped is unmapped again (and flushed).
    ///
    /// # Safety
    /// The physical range may be mapped with these flags (it is not a page table the mapper
    /// cannot know of, mapped writable; no Rust object relies on it not being aliased
    /// writably), and the virtual range is the caller's to use.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub unsafe fn map<B: RawMmu>(
        &mut self,
        mmu: &mut Mmu<B>,
        root: TableRef<'_, U4>,
        va: u64,
        phys: u64,
        len: u64,
        flags: PageTableFlags,
        size: PageSize,
    ) -> Result<Flush, MapError<B::Error>> {
        self.check_root(&root).map_err(|()| MapError::WrongRoot)?;
        self.check_range(va, len)?;
        let unaligned = MapError::Unaligned { va, phys, len };
        if phys % 4096 != 0 {
            return Err(unaligned);
        }
        let end = phys
            .checked_add(len)
            .ok_or(MapError::PhysOutOfRange(phys))?;
        if end > crate::addr::MAX_PFN << 12 {
            return Err(MapError::PhysOutOfRange(phys));
        }
        let bits = self.check_flags(flags)?;
        let sizes = self.caps.page_sizes;
        let fixed = match size {
            PageSize::Auto => None,
            PageSize::Size4K => Some(TableLevel::L1),
            PageSize::Size2M => Some(TableLevel::L2),
            PageSize::Size1G => Some(TableLevel::L3),
        };
        if let Some(level) = fixed {
            let ok = match level {
                TableLevel::L2 => sizes.contains(PageSizes::SIZE_2M),
                TableLevel::L3 => sizes.contains(PageSizes::SIZE_1G),
                _ => true,
            };
            if !ok {
                return Err(MapError::SizeUnsupported(level));
            }
            let m = size_of(level) - 1;
            if va & m != 0 || phys & m != 0 || len & m != 0 {
                return Err(unaligned);
            }
        }
        if bits & PageTableFlags::WRITABLE.bits() != 0 {
            if let Some(p) = self.known_table_in(mmu, phys >> 12, end >> 12) {
                return Err(MapError::FrameIsTable(p));
            }
        }
        let small = match fixed {
            Some(level) => level == TableLevel::L1,
            // No large page fits: every page is a 4 KiB one.
            None => {
                !(sizes.contains(PageSizes::SIZE_2M) && len >= size_of(TableLevel::L2)
                    || sizes.contains(PageSizes::SIZE_1G) && len >= size_of(TableLevel::L3))
            }
        };
        if small {
            match self.map_cached(mmu, va, phys, len, bits) {
                Ok(true) => {
                    self.mapped(va, len);
                    return Ok(Flush::one());
                }
                Ok(false) => {}
                // Every slot of the range was read empty before the first write: whatever is
                // mapped there now is this call's.
                Err(e) => return Err(self.roll_back(mmu, va, len, e)),
            }
        }
        self.map_walking(mmu, va, phys, len, bits, fixed)
    }

    /// `map` after its checks, page by page from the root, tables created on the way; a
    /// refusal part way unmaps what the call mapped.
    #[inline(never)]
    fn map_walking<B: RawMmu>(
        &mut self,
        mmu: &mut Mmu<B>,
        va: u64,
        phys: u64,
        len: u64,
        bits: u64,
        fixed: Option<TableLevel>,
    ) -> Result<Flush, MapError<B::Error>> {
        let mut done = 0;
        while done < len {
            match self.map_step(mmu, va + done, phys + done, len - done, bits, fixed) {
                Ok(n) => done += n,
                Err((e, tried)) => {
                    // A refusal of what is there (a page mapped already, a table in the way,
                    // somebody else's table) wrote nothing at `va + done`; any other failure
                    // may have left tables made for it, or part of its run of leaves.
                    let content = matches!(
                        e,
                        MapError::Overlap(_)
                            | MapError::TablesInRange(_)
                            | MapError::ForeignTable(_)
                    );
                    let touched = if content {
                        done
                    } else {
                        done + tried.max(4096)
                    };
                    return Err(self.roll_back(mmu, va, touched, e));
                }
            }
        }
        self.mapped(va, len);
        Ok(Flush::one())
    }

    /// Notes that `map` mapped `[va, va + len)`: in the extent, and pending until the flush.
    #[inline(always)]
    fn mapped(&mut self, va: u64, len: u64) {
        self.extent = (self.extent.0.min(va), self.extent.1.max(va + len));
        if let Some(p) = &mut self.pending {
            match p.last_mut() {
                Some(last) if last.1 == va => last.1 = va + len,
                _ => {
                    if p.push((va, va + len)).is_err() {
                        self.pending = None;
                    }
                }
            }
        }
    }

    /// Undoes a `map` that failed with `error` after it may have written leaves and hooked
    /// tables in `[va, va + len)` (which held no page of anyone else's before the call):
    /// every page there is unmapped, the mapper's tables left empty unhooked and retired, and
    /// the range joins the extent, so a table that cannot be retired now is still found by
    /// [`teardown`](Self::teardown). Whether a leaf was applied is read back from the tree,
    /// not assumed: a backend that refuses part of a batch applies what came before the
    /// refused entry. Returns `error`, or, if the rollback is refused too,
    /// [`MapError::RollbackRefused`] with what is still mapped.
    #[cold]
    #[inline(never)]
    fn roll_back<B: RawMmu>(
        &mut self,
        mmu: &mut Mmu<B>,
        va: u64,
        len: u64,
        error: MapError<B::Error>,
    ) -> MapError<B::Error> {
        if len == 0 {
            return error;
        }
        self.extent = (self.extent.0.min(va), self.extent.1.max(va + len));
        // SAFETY: `[va, va + len)` holds only what this call mapped (the caller of `map` may
        // change it).
        let res = unsafe { self.unmap_raw(mmu, va, len) }
            .and_then(|()| self.prune(mmu, va, len))
            .and_then(|()| self.flush_inner(mmu));
        match res {
            Ok(()) => error,
            Err(MapError::Backend(e)) => self.still_mapped(mmu, va, len, e),
            Err(other) => other,
        }
    }

    /// [`MapError::RollbackRefused`]: the pages of `[va, va + len)` still mapped.
    pub(crate) fn still_mapped<B: RawMmu>(
        &mut self,
        mmu: &mut Mmu<B>,
        va: u64,
        len: u64,
        error: B::Error,
    ) -> MapError<B::Error> {
        let (mut lo, mut hi, mut pages) = (u64::MAX, 0, 0);
        let mut at = va;
        while at < va + len {
            // SAFETY: `self.root` is the mapper's root and a table still: `map` checked the
            // caller's `TableRef` to it (`check_root`), or, from `flush`'s rollback, ranges were
            // mapped under it since the last submission, so it holds a child table and
            // `Mmu::retire` refuses it. The walk reads it and the tables its path's entries
            // name, tables too.
            match unsafe { crate::walk::translate(mmu.raw_mut(), self.root, at) } {
                Ok(None) => {}
                // Unreadable counts as mapped: nothing says it is not.
                Ok(Some(_)) | Err(_) => {
                    lo = lo.min(at);
                    hi = at + 4096;
                    pages += 1;
                }
            }
            at += 4096;
        }
        if pages == 0 {
            lo = va;
        }
        MapError::RollbackRefused {
            va: lo,
            len: hi.saturating_sub(lo),
            pages,
            error,
        }
    }

    /// Maps 4 KiB pages `[va, va + len)` into the cached level-1 table if the range lies in
    /// it and every slot is empty; `Ok(false)`, with nothing changed, sends the caller to the
    /// general path (which also says why a slot is refused). The checks of the general path
    /// that remain for one table are made: the table is the mapper's (the cache holds only
    /// owned tables), each slot is read and must be empty.
    #[inline(always)]
    fn map_cached<B: RawMmu>(
        &mut self,
        mmu: &mut Mmu<B>,
        va: u64,
        phys: u64,
        len: u64,
        bits: u64,
    ) -> Result<bool, MapError<B::Error>> {
        const COVER: u64 = 512 * 4096;
        let base = va & !(COVER - 1);
        let Some((pfn, slot)) = self.record.cached_at(TableLevel::L1, base) else {
            return Ok(false);
        };
        if (va - base).checked_add(len).is_none_or(|end| end > COVER) {
            return Ok(false);
        }
        let first = TableLevel::L1.index_of(va);
        let n = (len / 4096) as u16;
        let raw = mmu.raw_mut();
        if n == 1 {
            let new = Pte::from_bits(phys | bits);
            // SAFETY: `pfn` is a level-1 table this mapper created, hooked in its tree (the
            // record; the cache holds only recorded tables); the entry goes only into an
            // empty slot; the caller of `map` vouches for the frame and the virtual address.
            let old = unsafe {
                raw.update(pfn, TableLevel::L1, first, |old| {
                    (!old.is_present()).then_some(new)
                })
            }
            .map_err(MapError::Backend)?;
            if old.is_present() {
                // Refused: the general path says why.
                return Ok(false);
            }
            let o = self.record.at_mut(slot);
            o.used = (o.used + 1).min(512);
            self.stats.entries_written += 1;
            self.dirty = true;
            return Ok(true);
        }
        for i in first..first + n {
            // SAFETY: `pfn` is a level-1 table this mapper created, hooked in its tree (the
            // record; the cache holds only recorded tables): a table only the backend writes.
            if unsafe { raw.read(pfn, TableLevel::L1, i) }
                .map_err(MapError::Backend)?
                .is_present()
            {
                return Ok(false);
            }
        }
        // SAFETY: `pfn` is a level-1 table this mapper created, hooked in its tree (the
        // record; the cache holds only recorded tables); the slots were read empty; the caller
        // of `map` vouches for the frames and the virtual range.
        unsafe { self.write_leaves(mmu, pfn, slot, first, n, phys, bits) }?;
        Ok(true)
    }

    /// Writes `n` leaves of 4 KiB, `phys` on, with `bits`, into slots `first..` of the level-1
    /// table `table` (record slot `slot`), in runs of [`RUN`].
    ///
    /// # Safety
    /// As for the writes of [`map_cached`](Self::map_cached): `table` is a level-1 table the
    /// mapper created, hooked in its tree; the slots are empty; the caller of `map` vouches
    /// for the frames and the virtual range.
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    unsafe fn write_leaves<B: RawMmu>(
        &mut self,
        mmu: &mut Mmu<B>,
        table: Pfn,
        slot: usize,
        first: u16,
        n: u16,
        phys: u64,
        bits: u64,
    ) -> Result<(), MapError<B::Error>> {
        let raw = mmu.raw_mut();
        let mut done = 0u16;
        while done < n {
            let k = (n - done).min(RUN as u16);
            // Not zeroed: only the first `k` are written and read.
            let mut entries = [const { core::mem::MaybeUninit::<Pte>::uninit() }; RUN];
            let at = phys + u64::from(done) * 4096;
            for (i, e) in entries.iter_mut().enumerate().take(usize::from(k)) {
                e.write(Pte::from_bits((at + i as u64 * 4096) | bits));
            }
            // SAFETY: the loop above wrote the first `k` entries; `MaybeUninit<Pte>` has
            // `Pte`'s layout.
            let entries: &[Pte] = unsafe {
                &*(&entries[..usize::from(k)] as *const [core::mem::MaybeUninit<Pte>]
                    as *const [Pte])
            };
            // SAFETY: the caller's contract.
            unsafe { raw.write(table, TableLevel::L1, first + done, entries) }
                .map_err(MapError::Backend)?;
            let o = self.record.at_mut(slot);
            o.used = (o.used + k).min(512);
            self.stats.entries_written += u64::from(k);
            self.dirty = true;
            done += k;
        }
        Ok(())
    }

    /// The leaf level for the next page at `va`/`phys` with `rest` bytes left.
    fn pick(&self, va: u64, phys: u64, rest: u64, fixed: Option<TableLevel>) -> TableLevel {
        if let Some(l) = fixed {
            return l;
        }
        let fits = |l: TableLevel| {
            let s = size_of(l);
            (va | phys) & (s - 1) == 0 && rest >= s
        };
        let sizes = self.caps.page_sizes;
        if sizes.contains(PageSizes::SIZE_1G) && fits(TableLevel::L3) {
            TableLevel::L3
        } else if sizes.contains(PageSizes::SIZE_2M) && fits(TableLevel::L2) {
            TableLevel::L2
        } else {
            TableLevel::L1
        }
    }

    /// Maps one run of leaves in one table; returns the bytes mapped.
    fn map_step<B: RawMmu>(
        &mut self,
        mmu: &mut Mmu<B>,
        va: u64,
        phys: u64,
        rest: u64,
        bits: u64,
        fixed: Option<TableLevel>,
    ) -> Result<u64, (MapError<B::Error>, u64)> {
        let leaf = self.pick(va, phys, rest, fixed);
        let (table, slot) = self.leaf_table(mmu, va, leaf).map_err(|e| (e, 0))?;
        let span = size_of(leaf);
        let first = leaf.index_of(va);
        let mut n = (512 - u64::from(first)).min(rest / span);
        if fixed.is_none()
            && leaf == TableLevel::L1
            && self.caps.page_sizes.contains(PageSizes::SIZE_2M)
        {
            // Stop where a 2 MiB page could start.
            let m = (2 << 20) - 1;
            if (va ^ phys) & m == 0 {
                let to_boundary = (((va | m) + 1) - va) / 4096;
                n = n.min(to_boundary);
            }
        }
        if leaf != TableLevel::L1 && fixed.is_none() {
            n = 1;
        }
        let n = n.min(RUN as u64) as usize;
        let huge = if leaf == TableLevel::L1 {
            0
        } else {
            PageTableFlags::HUGE_PAGE.bits()
        };
        let raw = mmu.raw_mut();
        // Not zeroed: only the first `n` are written and read.
        let mut entries = [const { core::mem::MaybeUninit::<Pte>::uninit() }; RUN];
        for (i, e) in entries.iter_mut().enumerate().take(n) {
            let slot = first + i as u16;
            // SAFETY: `table` is a level-`leaf` table this mapper created (the record), hooked
            // in its tree: a table only the backend writes.
            let old =
                unsafe { raw.read(table, leaf, slot) }.map_err(|e| (MapError::Backend(e), 0))?;
            let at = va + i as u64 * span;
            if old.is_present() {
                if leaf != TableLevel::L1 && !old.is_huge() {
                    return Err((MapError::TablesInRange(at), 0));
                }
                return Err((MapError::Overlap(at), 0));
            }
            let p = phys + i as u64 * span;
            e.write(Pte::from_bits(p | bits | huge));
        }
        // SAFETY: the loop above wrote the first `n` entries; `MaybeUninit<Pte>` has `Pte`'s
        // layout.
        let entries: &[Pte] =
            unsafe { &*(&entries[..n] as *const [core::mem::MaybeUninit<Pte>] as *const [Pte]) };
        // SAFETY: `table` is a level-`leaf` table this mapper created (the record), hooked in
        // its tree; the slots were empty; the caller of `map` vouches for the frames and the
        // virtual range.
        // Refused part way, the run may be in part applied: the caller's rollback reads it.
        unsafe { raw.write(table, leaf, first, entries) }
            .map_err(|e| (MapError::Backend(e), n as u64 * span))?;
        let o = self.record.at_mut(slot);
        o.used = (o.used + n as u16).min(512);
        self.stats.entries_written += n as u64;
        self.dirty = true;
        Ok(n as u64 * span)
    }

    /// The owned level-`leaf` table that covers `va`, and its record slot: the cached one if
    /// it covers `va`, else walked to from the root (tables created on the way) and cached.
    #[inline]
    fn leaf_table<B: RawMmu>(
        &mut self,
        mmu: &mut Mmu<B>,
        va: u64,
        leaf: TableLevel,
    ) -> Result<(Pfn, usize), MapError<B::Error>> {
        let base = va & !(size_of(leaf) * 512 - 1);
        if let Some(hit) = self.record.cached_at(leaf, base) {
            return Ok(hit);
        }
        let mut table = self.root;
        let mut level = TableLevel::L4;
        while level != leaf {
            table = self.child_or_new(mmu, table, level, va)?;
            level = level
                .child()
                .unwrap_or_else(|| unreachable!(/* above the leaf level */));
        }
        let slot = self.record.find(table).ok_or(MapError::ForeignTable(va))?;
        self.record.cache(leaf, base, table, slot);
        Ok((table, slot))
    }

    /// The table behind entry `index_of(va)` of `table` (level `level`), created and hooked if
    /// the entry is empty.
    fn child_or_new<B: RawMmu>(
        &mut self,
        mmu: &mut Mmu<B>,
        table: Pfn,
        level: TableLevel,
        va: u64,
    ) -> Result<Pfn, MapError<B::Error>> {
        let idx = level.index_of(va);
        // SAFETY: `table` is a live level-`level` table of the mapper's tree: its root (checked
        // against the caller's `TableRef` on entry), or a table a present non-leaf entry on the
        // way from it names.
        let e = unsafe { mmu.raw_mut().read(table, level, idx) }.map_err(MapError::Backend)?;
        if e.is_present() {
            if e.is_huge() && level != TableLevel::L4 {
                return Err(MapError::Overlap(va));
            }
            return Ok(e.pfn());
        }
        let child_level = level.child().unwrap_or_else(|| unreachable!(/* not L1 */));
        let child = self.new_table(mmu, child_level)?;
        let entry = [Pte::table(child)];
        // SAFETY: `table` is a live level-`level` table of the mapper's tree (the root, or a
        // table reached from it), the slot is empty, and `child` a complete, empty level
        // `level - 1` table the mapper just made: hooking hands it to the tree, the record
        // remembers it is the mapper's.
        if let Err(e) = unsafe { mmu.raw_mut().write(table, level, idx, &entry) } {
            self.record.remove(child);
            // SAFETY: the write failed: the child is hooked nowhere and ours.
            if let Some(t) = unsafe { OwnedTable::claim(child, child_level) } {
                let _ = self.retiring.push(t);
            }
            return Err(MapError::Backend(e));
        }
        self.record.adjust(table, 1);
        self.stats.entries_written += 1;
        self.dirty = true;
        Ok(child)
    }

    /// A new, empty level-`level` table from the source: `Free` → protected → table, recorded.
    fn new_table<B: RawMmu>(
        &mut self,
        mmu: &mut Mmu<B>,
        level: TableLevel,
    ) -> Result<Pfn, MapError<B::Error>> {
        if self.record.is_full() {
            return Err(MapError::RecordFull);
        }
        let frame = match self.source.alloc() {
            Some(f) => f,
            None if !self.retiring.is_empty() => {
                // Tables waiting for a flush are frames too: flush early and take one back.
                self.flush_inner(mmu)?;
                self.source.alloc().ok_or(MapError::OutOfFrames)?
            }
            None => return Err(MapError::OutOfFrames),
        };
        let mut reserved = mmu
            .protect(FrameRange::from_frame(frame))
            .map_err(MapError::Unsettled)?;
        let frame = reserved
            .pop_front()
            .unwrap_or_else(|| unreachable!(/* one frame */));
        let pfn = frame.pfn();
        let res = match level {
            TableLevel::L1 => self.fill::<B, typenum::U1>(mmu, frame),
            TableLevel::L2 => self.fill::<B, typenum::U2>(mmu, frame),
            _ => self.fill::<B, typenum::U3>(mmu, frame),
        };
        res?;
        self.record
            .insert(pfn, level)
            .unwrap_or_else(|()| unreachable!(/* room checked above */));
        self.stats.tables_allocated += 1;
        Ok(pfn)
    }

    /// Writes an empty table into `frame` (queued) and forgets the typed frame: the caller
    /// hooks it at once and records it. On failure the frame goes back to the source.
    fn fill<B: RawMmu, L: Level>(
        &mut self,
        mmu: &mut Mmu<B>,
        frame: crate::frame::Frame<crate::state::PgtReserved>,
    ) -> Result<(), MapError<B::Error>> {
        match mmu.finish_table_queued(crate::fresh::FreshTable::<L>::new(frame)) {
            Ok((table, pending)) => {
                pending.defer();
                crate::frame::handed_over(table);
                self.stats.entries_written += 512;
                Ok(())
            }
            Err(Failed { error, value }) => {
                let frame = value.into_frame();
                match mmu.release(FrameRange::from_frame(frame)) {
                    Ok(mut r) => {
                        let f = r
                            .pop_front()
                            .unwrap_or_else(|| unreachable!(/* one frame */))
                            .into_free();
                        let _ = self.source.give_back(f);
                        Err(MapError::Backend(error))
                    }
                    Err(u) => Err(MapError::Unsettled(u)),
                }
            }
        }
    }
}
