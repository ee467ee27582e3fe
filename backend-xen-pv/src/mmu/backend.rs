//! [`XenPv`]: hal-core's [`RawMmu`] on a 64-bit Xen PV guest.

use hal_core::backend::{Caps, EntryRun, PageSizes, RawMmu};
use hal_core::{Mfn as HalMfn, Pfn, PfnRange, Pte, TableLevel};
use heapless::Vec;

use crate::hypercall::abi::{mmu, mmuext};
use crate::hypercall::{Counted, MmuUpdate, MmuextOp, Slot};
use crate::p2m::P2m;
use crate::start_info::{BootstrapLayout, StartInfo};

use super::counters::{Counters, Phase};
use super::error::{
    Call, Capacity, Cause, Op, Refusal, RefusedEntry, Rollback, Unsupported, XenPvError,
};
use super::platform::PvPlatform;
use super::queue::{Calls, Outcome, BATCH};
use super::records::{Pinned, RangeSet, MAX_PROTECTED};
use super::scratch::Scratch;
use super::storage::Storage;
use hal_core::Window;

/// Windows the backend can hold.
pub const MAX_WINDOWS: usize = 8;

pub(crate) const P: u64 = 1 << 0;
pub(crate) const RW: u64 = 1 << 1;
pub(crate) const PSE: u64 = 1 << 7;
pub(crate) const ADDR: u64 = 0x000f_ffff_ffff_f000;
/// Xen's L4 slots.
const XEN_SLOTS: core::ops::Range<u16> = 256..272;
/// Xen's part of the address space, `[start, end)`.
const XEN_AREA: (u64, u64) = (0xFFFF_8000_0000_0000, 0xFFFF_8800_0000_0000);

/// How [`release`](RawMmu::release) makes mappings writable again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ReleaseStrategy {
    /// `mmu_update` batches of 512 entries, up to
    /// [`RELEASE_BATCHES`](super::RELEASE_BATCHES) of them in one `multicall`: releasing `K`
    /// frames mapped `m` times costs at most `ceil(m * K / (512 * RELEASE_BATCHES)) + 1`
    /// hypercalls.
    Batched,
    /// One `update_va_mapping` per mapping reachable through a window, as Linux did in 2011
    /// for the `pgt_buf` tail (`make_lowmem_page_readwrite` per page); mappings no window
    /// reaches go in batches. For measurements.
    PerPage,
}

/// How [`protect`](RawMmu::protect) and [`fill_fresh`](RawMmu::fill_fresh) work together.
/// [`StoreThenProtect`](Self::StoreThenProtect) is the default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum FillStrategy {
    /// `protect` remaps the frames read-only at once; every entry of a fresh table is an
    /// `mmu_update` request (512 to a hypercall), which Xen applies as a plain write.
    Queue,
    /// `protect` is queued, like every other write: the frames stay writable until the next
    /// operation that could make one of them a table or that needs Xen to see them (`write`,
    /// `pin`, `unpin`, `retire`, `switch_root`, `release`, `flush`, `flush_tlb`,
    /// `retarget_page`, `set_scratch`, a `protect` that cannot be held back), which first
    /// makes them read-only in one batch (counted under the phase the first held-back
    /// `protect` was called in). Until then `fill_fresh` fills their fresh tables by plain
    /// stores, table by table: through a window that maps the table (the initial mapping at
    /// boot), else through one of the backend's scratch pages pointed at it
    /// ([`XenPv::set_scratch`]: one `update_va_mapping` per table). It queues a table's
    /// entries as `mmu_update`s only where it must: when the platform cannot store
    /// ([`PvPlatform::can_store`]: the host model by default), when neither a window nor a
    /// scratch page reaches the table, or for a frame whose protection could not be held back
    /// ([`MAX_DEFERRED`] ranges); the other tables' protection stays held back. A fresh
    /// tree then costs Xen what it must do anyway: one read-only batch and the validation at
    /// the pin, plus one `update_va_mapping` per table outside the windows, instead of an
    /// `mmu_update` entry per table entry.
    StoreThenProtect,
}

/// Protections [`FillStrategy::StoreThenProtect`] holds back at most (beyond them `protect`
/// applies at once).
pub const MAX_DEFERRED: usize = 8;

/// Where the domain builder left things: the bootstrap tables and the initial mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Bootstrap {
    /// The bootstrap L4, the current root (`start_info.pt_base`).
    pub root: Pfn,
    /// The bootstrap page-table frames (`pt_base`, `nr_pt_frames`).
    pub tables: PfnRange,
    /// The domain builder's initial mapping (`va = virt_base + pfn * 4096`).
    pub initial_mapping: Window,
}

impl Bootstrap {
    /// From a validated `start_info` and the layout derived from it. `None` if `pt_base` is not
    /// in the initial mapping.
    pub fn from_start_info(si: &StartInfo<'_>, layout: &BootstrapLayout) -> Option<Self> {
        let root = Pfn::new(layout.va_to_pfn(si.pt_base())?)?;
        let tables = PfnRange::new(root, root.as_u64().checked_add(si.nr_pt_frames())?)?;
        let pfns = PfnRange::new(Pfn::new(0)?, layout.mapped_pages())?;
        Some(Self {
            root,
            tables,
            initial_mapping: Window {
                va: layout.virt_base,
                pfns,
            },
        })
    }
}

/// The Xen PV MMU backend.
///
/// It owns the guest's page tables: every change goes through it (`mmu_update`, `mmuext_op`,
/// `update_va_mapping`), P2M-translated, batched 512 entries to a hypercall. It remembers the
/// read-only mappings it made (or wrote) for protected frames, as runs, so that `release`
/// finds them again without walking anything.
///
/// The value itself is small (about 1.5 KiB); its large buffers are in a [`Storage`] it
/// borrows.
///
/// Every hypercall it makes goes through the [`Counted`] it borrows, which does the
/// counting; the backend keeps no count of its own.
pub struct XenPv<'a, H: PvPlatform> {
    pub(super) hv: &'a Counted<H>,
    pub(super) p2m: P2m<'a>,
    /// The lowest and highest machine frame of the domain.
    pub(super) mfn_span: (u64, u64),
    pub(super) root: Pfn,
    pub(super) boot_tables: [PfnRange; 1],
    pub(super) windows: Vec<Window, MAX_WINDOWS>,
    pub(super) st: &'a mut Storage,
    pub(super) protected: RangeSet<MAX_PROTECTED>,
    pub(super) pinned: Pinned,
    pub(super) strategy: ReleaseStrategy,
    pub(super) fill: FillStrategy,
    /// Protections held back by [`FillStrategy::StoreThenProtect`], not applied yet.
    pub(super) deferred: Vec<PfnRange, MAX_DEFERRED>,
    /// Where hypercalls were counted when the first of them was held back: their
    /// hypercalls count there.
    pub(super) deferred_slot: Slot,
    /// The backend's scratch pages ([`XenPv::set_scratch`]).
    pub(super) scratch: Scratch,
    pub(super) phase: Phase,
}

pub(super) fn err(op: Op, cause: Cause) -> XenPvError {
    XenPvError::new(op, cause)
}

pub(super) fn refused(
    op: Op,
    out: &Outcome,
    at: u32,
    errno: crate::XenErrno,
    call: Call,
) -> XenPvError {
    err(
        op,
        Cause::Refused(Refusal {
            errno,
            call,
            submitted: out.submitted,
            applied: out.applied,
            failed_at: at,
            rollback: Rollback::NotNeeded,
            entry: None,
        }),
    )
}

impl<'a, H: PvPlatform> XenPv<'a, H> {
    /// The backend of a guest whose P2M is `p2m`, booted as `boot` says; the initial mapping
    /// is its first window; its queue and remembered mappings live in `storage` (emptied
    /// here; a board takes [`Storage::take_static`]). Release strategy
    /// [`ReleaseStrategy::Batched`], phase [`Phase::Other`]. Its hypercalls go through `hv`
    /// and are counted there, on top of whatever `hv` counted before (a board's own calls).
    ///
    /// # Safety
    /// `boot` is true: `root` is the current root, the initial mapping exists in it. `p2m` is
    /// this domain's P2M ([`P2m::from_start_info`]; [`P2m::new`] checks only its form): every
    /// frame is translated through it, and a list naming other machine frames would make the
    /// wrong mappings read-only, leaving a `PgtReserved` frame writable. From now on the
    /// backend is the only one to change page tables, pin, unpin or switch roots.
    pub unsafe fn new(
        hv: &'a Counted<H>,
        p2m: P2m<'a>,
        boot: &Bootstrap,
        storage: &'a mut Storage,
    ) -> Result<Self, XenPvError> {
        let op = Op::New;
        let n = p2m.nr_pages();
        if boot.tables.end() > n {
            // The first bootstrap table frame the P2M has no entry for.
            return Err(err(
                op,
                Cause::P2m(crate::P2mError::PfnOutOfRange {
                    pfn: boot.tables.start().as_u64().max(n),
                    nr_pages: n,
                }),
            ));
        }
        if !boot.tables.contains(boot.root) {
            return Err(err(
                op,
                Cause::RootOutsideTables {
                    root: boot.root.as_u64(),
                },
            ));
        }
        storage.reset();
        let mfn_span = p2m
            .entries()
            .iter()
            .fold((u64::MAX, 0), |(lo, hi), &m| (lo.min(m), hi.max(m)));
        let mut s = Self {
            hv,
            p2m,
            mfn_span,
            root: boot.root,
            boot_tables: [boot.tables],
            windows: Vec::new(),
            st: storage,
            protected: RangeSet::new(),
            pinned: Pinned::new(),
            strategy: ReleaseStrategy::Batched,
            fill: FillStrategy::StoreThenProtect,
            deferred: Vec::new(),
            deferred_slot: Slot::Phase(Phase::Other),
            scratch: Scratch::default(),
            phase: Phase::Other,
        };
        s.count_here();
        // SAFETY: the caller guarantees the initial mapping exists in the current root.
        unsafe { s.add_window(boot.initial_mapping.va, boot.initial_mapping.pfns) }?;
        Ok(s)
    }

    /// Starts counting hypercalls under `phase`.
    pub fn set_phase(&mut self, phase: Phase) {
        self.phase = phase;
        self.count_here();
    }

    /// The phase hypercalls are counted under.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Hypercalls so far, per phase, as the [`Counted`] every call goes through saw them
    /// (a board's own calls through the same wrapper included).
    pub fn counters(&self) -> Counters {
        self.hv.counters()
    }

    /// Zeroes the counters.
    pub fn reset_counters(&mut self) {
        self.hv.reset();
    }

    /// Chooses how `release` works.
    pub fn set_release_strategy(&mut self, strategy: ReleaseStrategy) {
        self.strategy = strategy;
        self.count_here();
    }

    /// How `release` works.
    pub fn release_strategy(&self) -> ReleaseStrategy {
        self.strategy
    }

    /// Chooses how `protect` and `fill_fresh` work ([`FillStrategy::StoreThenProtect`] by
    /// default). A change applies the protections held back first.
    pub fn set_fill_strategy(&mut self, fill: FillStrategy) -> Result<(), XenPvError> {
        self.apply_deferred()?;
        self.fill = fill;
        Ok(())
    }

    /// How `protect` and `fill_fresh` work.
    pub fn fill_strategy(&self) -> FillStrategy {
        self.fill
    }

    /// Protections held back ([`FillStrategy::StoreThenProtect`]) and not applied yet.
    pub fn deferred(&self) -> &[PfnRange] {
        &self.deferred
    }

    /// Applies the protections held back: the scratch pages point at their own frames again,
    /// then every writable mapping of the held-back frames becomes read-only (batched), then
    /// one local TLB flush; counted under the phase the first of them was held back in.
    pub(super) fn apply_deferred(&mut self) -> Result<(), XenPvError> {
        if self.scratch.moved() {
            self.restore_scratch()?;
        }
        if self.deferred.is_empty() {
            return Ok(());
        }
        // Entries queued meanwhile (tables no store reached) go first, where they were made.
        self.submit()?;
        self.hv.count_under(self.deferred_slot);
        let mut result = Ok(());
        while let Some(r) = self.deferred.pop() {
            if let Err(e) = self.protect_now(r) {
                // Not (wholly) applied: keep it held back, so that the next operation that
                // needs the frames read-only tries again.
                let _ = self.deferred.push(r);
                result = Err(e);
                break;
            }
        }
        self.count_here();
        result
    }

    /// Whether `table`'s protection is held back.
    fn is_deferred(&self, table: u64) -> bool {
        self.deferred
            .iter()
            .any(|r| r.start().as_u64() <= table && table < r.end())
    }

    /// The hypercall layer (the real one, or the model), counted.
    pub fn hypervisor(&self) -> &'a Counted<H> {
        self.hv
    }

    /// The P2M.
    pub fn p2m(&self) -> &P2m<'a> {
        &self.p2m
    }

    /// The windows the backend reads through.
    pub fn windows(&self) -> &[Window] {
        &self.windows
    }

    /// `mmu_update` requests queued and not submitted yet.
    pub fn queued(&self) -> usize {
        self.st.queue.len()
    }

    /// Runs of read-only mappings remembered for release.
    pub fn read_only_runs(&self) -> usize {
        self.st.records.len()
    }

    /// Frames remembered as mapped read-only by the backend, counted per mapping.
    pub fn read_only_mappings(&self) -> u64 {
        (0..self.st.records.len())
            .filter_map(|i| self.st.records.get(i))
            .map(|r| r.len)
            .sum()
    }

    /// Tables this backend pinned (pfns).
    pub fn pinned(&self) -> &[u64] {
        self.pinned.as_slice()
    }

    pub(super) fn mfn(&self, pfn: u64, op: Op) -> Result<u64, XenPvError> {
        self.p2m
            .pfn_to_mfn(pfn)
            .map(|m| m.0)
            .map_err(|e| err(op, Cause::P2m(e)))
    }

    pub(super) fn calls(&self) -> Calls<'a, Counted<H>> {
        Calls { hv: self.hv }
    }

    /// Tells the wrapper where hypercalls are counted now: under the phase, or with the
    /// per-page releases.
    fn count_here(&self) {
        self.hv.count_under(match self.strategy {
            ReleaseStrategy::PerPage => Slot::PerPageRelease,
            ReleaseStrategy::Batched => Slot::Phase(self.phase),
        });
    }

    /// Submits the queued requests as they are (one `mmu_update`, or one multicall).
    pub(super) fn submit_queue(&mut self) -> Outcome {
        let mut calls = self.calls();
        // SAFETY: every queued request was built by an `unsafe` RawMmu method of this backend
        // under its caller's contract (protect: read-only entries; write: the caller's
        // entries; release and rollback: mappings of frames the caller owns).
        unsafe { calls.updates(self.st.queue.reqs()) }
    }

    /// Queues one request; submits the queue when it holds `limit` entries.
    pub(super) fn push(&mut self, req: MmuUpdate, op: Op) -> Result<(), XenPvError> {
        self.st.queue.push(req, op);
        if self.st.queue.len() >= BATCH {
            self.submit()
        } else {
            Ok(())
        }
    }

    /// Submits the queue (protect and write entries). On a refusal the queue is empty, the
    /// applied entries stay applied, and the remembered read-only mappings of entries that
    /// were not applied are forgotten (they do not exist).
    pub(super) fn submit(&mut self) -> Result<(), XenPvError> {
        if self.st.queue.is_empty() {
            return Ok(());
        }
        let n = self.st.queue.len();
        let out = self.submit_queue();
        let result = match out.failure {
            None => Ok(()),
            Some((at, errno, call)) => {
                self.st.queue.note_dropped();
                let op = self.st.queue.origin(at as usize);
                let req = self.st.queue.reqs().get(at as usize).copied();
                for i in at as usize..n {
                    let ptr = self.st.queue.reqs()[i].ptr & !7;
                    self.forget_ptes(ptr, ptr + 8);
                }
                Err(self.naming(refused(op, &out, at, errno, call), req))
            }
        };
        self.st.queue.clear();
        result
    }

    /// `e` with the refused request `req` named in its refusal (guest frame numbers).
    pub(super) fn naming(&self, mut e: XenPvError, req: Option<MmuUpdate>) -> XenPvError {
        if let (Cause::Refused(r), Some(req)) = (&mut e.cause, req) {
            // SAFETY: reading the M2P has no effect; an unknown frame gives u64::MAX.
            let pfn = |mfn: u64| unsafe { self.hv.mfn_to_pfn(mfn) };
            let (ptr, val) = (req.ptr & !7, req.val);
            r.entry = Some(RefusedEntry {
                table: pfn(ptr >> 12),
                index: ((ptr & 0xfff) >> 3) as u16,
                frame: (val & 1 != 0).then(|| pfn((val & 0x000f_ffff_ffff_f000) >> 12)),
            });
        }
        e
    }

    /// Forgets remembered mappings held by entries `[lo, hi)`. A run that would split with no
    /// room for its second part loses that part too: its entries past `hi`, in the same
    /// table (no run crosses a page of entries). Returns whether that happened. Only where
    /// those entries are no mappings either may it happen:
    /// - `write` and `protect` check for room first, and `retire` forgets a whole table,
    ///   which splits nothing: for them it never happens;
    /// - `fill_fresh` forgets entries of a table that is not live, whose every slot is
    ///   written again before it is (`fill_fresh`'s contract): the part past `hi` is stale;
    /// - after a refused submission, the dropped entries are forgotten in the order they were
    ///   queued, and a run's entries were added in the order of their addresses, each queued
    ///   as it was added (a stored entry never continues a run while the queue holds
    ///   entries): the first dropped entry of a run is the one that may split it, and every
    ///   entry after it in the run was queued after it, so was dropped too.
    pub(super) fn forget_ptes(&mut self, lo: u64, hi: u64) -> bool {
        self.st.records.remove_ptes(lo, hi)
    }

    pub(super) fn check_window(va: u64, pfns: PfnRange) -> Result<(), XenPvError> {
        let bad = || err(Op::AddWindow, Cause::Unsupported(Unsupported::Window(va)));
        let len = pfns.len().checked_mul(4096).ok_or_else(bad)?;
        let end = va.checked_add(len).ok_or_else(bad)?;
        let canonical = |a: u64| matches!(a >> 47, 0 | 0x1ffff);
        if va % 4096 != 0
            || !canonical(va)
            || (len > 0 && !canonical(end - 1))
            || (len > 0 && (va >> 47) != ((end - 1) >> 47))
            || (va < XEN_AREA.1 && XEN_AREA.0 < end)
        {
            return Err(bad());
        }
        Ok(())
    }
}

/// The machine value of `e`: the same bits with the pfn replaced by its mfn.
fn translate(e: Pte, mfn: u64) -> u64 {
    (e.bits() & !ADDR) | (mfn << 12)
}

// SAFETY: `protect` makes every writable L1 entry mapping the frames through any window
// read-only (and flushes), at once or, with `FillStrategy::StoreThenProtect`, before the next
// operation that could make a frame a table or hand Xen anything (every such method applies
// the held-back protections first, and only `fill_fresh` writes the frames meanwhile, by
// plain stores into fresh tables nothing else reads: a queued operation, as the trait allows),
// and `write` writes every writable leaf for a protected frame or a bootstrap table read-only;
// both remember exactly the entries they downgraded, so `release` makes exactly those writable
// again (a leaf the caller wrote read-only stays so); Xen's type system refuses any writable
// mapping of a frame while it is a page table. `write` queues exactly the entries
// given, P2M-translated, in order, and every queued entry has been submitted once `flush`
// returns `Ok`; a refused submission applies the entries before the refused one and drops the
// rest of the queue (counted in `discarded`), so what takes effect is a prefix. `caps` is a
// constant.
unsafe impl<H: PvPlatform> RawMmu for XenPv<'_, H> {
    type Error = XenPvError;

    fn caps(&self) -> Caps {
        Caps {
            page_sizes: PageSizes::SIZE_4K,
            tables_read_only: true,
            reserved_root_slots: (XEN_SLOTS.start, XEN_SLOTS.end),
            nx: true,
        }
    }

    fn name(&self) -> &'static str {
        "xen-pv"
    }

    fn machine_frame(&self, pfn: Pfn) -> Result<HalMfn, XenPvError> {
        self.mfn(pfn.as_u64(), Op::Translate).map(HalMfn)
    }

    fn current_root(&self) -> Pfn {
        self.root
    }

    fn foreign_tables(&self) -> &[PfnRange] {
        &self.boot_tables
    }

    unsafe fn protect(&mut self, frames: PfnRange) -> Result<(), XenPvError> {
        if self.fill == FillStrategy::StoreThenProtect && !frames.is_empty() {
            self.protected
                .insert(frames)
                .map_err(|_| err(Op::Protect, Cause::Capacity(Capacity::Protected)))?;
            if self.deferred.is_empty() {
                self.deferred_slot = self.hv.slot();
            }
            if self.deferred.push(frames).is_ok() {
                return Ok(());
            }
        }
        self.apply_deferred()?;
        self.protect_now(frames)
    }

    unsafe fn write(
        &mut self,
        table: Pfn,
        level: TableLevel,
        first: u16,
        entries: &[Pte],
    ) -> Result<(), XenPvError> {
        self.apply_deferred()?;
        let op = Op::Write;
        let end = usize::from(first) + entries.len();
        if end > 512 {
            return Err(err(op, Cause::Unsupported(Unsupported::Index(end as u64))));
        }
        let base = (self.mfn(table.as_u64(), op)? << 12) + 8 * u64::from(first);
        // Check everything before queuing anything.
        let mut runs = 0;
        let mut prev: Option<(u64, u64)> = None;
        for (slot, e) in (first..).zip(entries) {
            let bits = e.bits();
            if bits & P == 0 {
                if bits != 0 {
                    return Err(err(
                        op,
                        Cause::Unsupported(Unsupported::NonZeroNotPresent(slot)),
                    ));
                }
                prev = None;
                continue;
            }
            if level == TableLevel::L4 && XEN_SLOTS.contains(&slot) {
                return Err(err(op, Cause::Unsupported(Unsupported::XenSlot(slot))));
            }
            if matches!(level, TableLevel::L2 | TableLevel::L3) && bits & PSE != 0 {
                return Err(err(op, Cause::Unsupported(Unsupported::LargePage(slot))));
            }
            let pfn = e.pfn().as_u64();
            self.mfn(pfn, op)?;
            if self.downgraded(level, e) && self.protected.contains(pfn) {
                let flags = bits & !ADDR & !RW;
                if prev != Some((pfn.wrapping_sub(1), flags)) {
                    runs += 1;
                }
                prev = Some((pfn, flags));
            } else {
                prev = None;
            }
        }
        let hi = base + 8 * entries.len() as u64;
        if self.st.records.room() < runs + self.st.records.splits_for_ptes(base, hi) {
            return Err(err(op, Cause::Capacity(Capacity::ReadOnlyRuns)));
        }
        let cut = self.forget_ptes(base, hi);
        debug_assert!(!cut, "room checked above");
        for (ptr, e) in (base..).step_by(8).zip(entries) {
            let mut val = if e.is_present() {
                translate(*e, self.mfn(e.pfn().as_u64(), op)?)
            } else {
                0
            };
            if self.downgraded(level, e) {
                val &= !RW;
                if self.protected.contains(e.pfn().as_u64()) {
                    self.st
                        .records
                        .add(e.pfn().as_u64(), ptr, val & !ADDR)
                        .map_err(|_| err(op, Cause::Capacity(Capacity::ReadOnlyRuns)))?;
                }
            }
            self.push(
                MmuUpdate {
                    ptr: ptr | mmu::NORMAL_PT_UPDATE,
                    val,
                },
                op,
            )?;
        }
        Ok(())
    }

    unsafe fn fill_fresh(
        &mut self,
        table: Pfn,
        level: TableLevel,
        first: u16,
        run: &EntryRun,
    ) -> Result<(), XenPvError> {
        let op = Op::Write;
        let end = usize::from(first) + usize::from(run.count);
        if end > 512 {
            return Err(err(op, Cause::Unsupported(Unsupported::Index(end as u64))));
        }
        if run.count == 0 {
            return Ok(());
        }
        let e = run.first;
        // Check the run before queuing anything: one entry says it for all.
        if !e.is_present() {
            if e.bits() != 0 {
                return Err(err(
                    op,
                    Cause::Unsupported(Unsupported::NonZeroNotPresent(first)),
                ));
            }
        } else {
            let last = first + run.count - 1;
            if level == TableLevel::L4 && first < XEN_SLOTS.end && XEN_SLOTS.start <= last {
                let at = first.max(XEN_SLOTS.start);
                return Err(err(op, Cause::Unsupported(Unsupported::XenSlot(at))));
            }
            if matches!(level, TableLevel::L2 | TableLevel::L3) && e.bits() & PSE != 0 {
                return Err(err(op, Cause::Unsupported(Unsupported::LargePage(first))));
            }
            let last_pfn = run.entry(run.count - 1).pfn().as_u64();
            self.mfn(last_pfn, op)?;
            self.mfn(e.pfn().as_u64(), op)?;
        }
        let base = (self.mfn(table.as_u64(), op)? << 12) + 8 * u64::from(first);
        let hi = base + 8 * u64::from(run.count);
        // Held back (StoreThenProtect): plain stores through a writable window, else through a
        // scratch page pointed at the table; without either (or without stores) the entries
        // are queued: Xen applies them as plain writes to a frame that is no table yet, so
        // the other tables' protection stays held back.
        let store_at = if self.hv.can_store() && self.is_deferred(table.as_u64()) {
            match self.window_va(table.as_u64()) {
                Some(va) => Some(va),
                // SAFETY: the table is fresh (`fill_fresh`'s contract) and its protection is
                // held back, so it is no table yet.
                None => unsafe { self.scratch_va(table.as_u64(), level) }?,
            }
        } else {
            None
        };
        // A fresh frame holds no remembered mapping, unless it held entries once (forget
        // them: stale, whatever a split leaves out); the run's downgraded leaves add at most
        // one run of records per read-only range they cross (checked as they come).
        self.forget_ptes(base, hi);
        // Stored entries do not continue a run that may hold queued ones (see `forget_ptes`).
        let mut alone = store_at.is_some() && !self.st.queue.is_empty();
        let flags = e.bits() & !ADDR;
        // Whether some entry of the run may be downgraded: a writable leaf run that reaches a
        // read-only frame (one range check for the run, then one per entry only if so).
        let downgrade = level == TableLevel::L1 && e.is_present() && flags & RW != 0 && {
            let first_pfn = e.pfn().as_u64();
            let last_pfn = run.entry(run.count - 1).pfn().as_u64();
            self.read_only_in(first_pfn, last_pfn + 1)
        };
        if let Some(va) = store_at {
            if !downgrade && (run.step == 1 || !e.is_present()) {
                // Nothing to remember: the entries straight from the P2M into the frame.
                let dst = va + 8 * u64::from(first);
                let count = usize::from(run.count);
                if e.is_present() {
                    let lo = e.pfn().as_u64() as usize;
                    let mfns = self.p2m.entries().get(lo..lo + count).ok_or(err(
                        op,
                        Cause::P2m(crate::P2mError::PfnOutOfRange {
                            pfn: (lo + count - 1) as u64,
                            nr_pages: self.p2m.nr_pages(),
                        }),
                    ))?;
                    for (slot, &m) in (dst..).step_by(8).zip(mfns) {
                        // SAFETY: as for every store below: the frame's protection is held
                        // back, so the window maps it writable still, and it is a fresh table
                        // nothing else reads or writes (`fill_fresh`'s contract).
                        unsafe { self.hv.write_u64(slot, flags | (m << 12)) };
                    }
                } else {
                    for slot in (dst..).step_by(8).take(count) {
                        // SAFETY: as above.
                        unsafe { self.hv.write_u64(slot, 0) };
                    }
                }
                return Ok(());
            }
        }
        let mut ptr = base;
        for i in 0..run.count {
            let val = if e.is_present() {
                let pfn = e.pfn().as_u64() + u64::from(i) * run.step;
                let mfn = self.mfn(pfn, op)?;
                if downgrade && self.read_only_frame(pfn) {
                    if self.protected.contains(pfn) {
                        let rec = &mut self.st.records;
                        let added = if alone {
                            rec.add_run(pfn, ptr, flags & !RW)
                        } else {
                            rec.add(pfn, ptr, flags & !RW)
                        };
                        alone = false;
                        if added.is_err() {
                            // This call's records only: the runs in `[base, hi)`, and the
                            // last one's part there; nothing to split.
                            let cut = self.forget_ptes(base, hi);
                            debug_assert!(!cut, "nothing to split");
                            return Err(err(op, Cause::Capacity(Capacity::ReadOnlyRuns)));
                        }
                    }
                    (flags & !RW) | (mfn << 12)
                } else {
                    flags | (mfn << 12)
                }
            } else {
                0
            };
            match store_at {
                // SAFETY: the frame's protection is held back, so the window maps it writable
                // still; it is a fresh table of the caller's that nothing else reads or
                // writes (`fill_fresh`'s contract), so the store is the entry's plain write.
                Some(va) => unsafe { self.hv.write_u64(va + (ptr - (base & !0xfff)), val) },
                None => self.push(
                    MmuUpdate {
                        ptr: ptr | mmu::NORMAL_PT_UPDATE,
                        val,
                    },
                    op,
                )?,
            }
            ptr += 8;
        }
        Ok(())
    }

    unsafe fn read(
        &mut self,
        table: Pfn,
        level: TableLevel,
        index: u16,
    ) -> Result<Pte, XenPvError> {
        let op = Op::Read;
        if index >= 512 {
            return Err(err(
                op,
                Cause::Unsupported(Unsupported::Index(u64::from(index))),
            ));
        }
        if level == TableLevel::L4 && XEN_SLOTS.contains(&index) {
            return Err(err(op, Cause::Unsupported(Unsupported::XenSlot(index))));
        }
        // SAFETY: `read`'s contract is `read_machine`'s.
        let raw = unsafe { self.read_machine(table.as_u64(), index, op) }?;
        if raw & P == 0 {
            return Ok(Pte::from_bits(raw));
        }
        let pfn = self.pfn_of((raw & ADDR) >> 12, op)?;
        Ok(Pte::from_bits((raw & !ADDR) | (pfn << 12)))
    }

    unsafe fn pin(&mut self, table: Pfn, level: TableLevel) -> Result<(), XenPvError> {
        self.apply_deferred()?;
        let op = Op::Pin;
        if self.pinned.is_full() {
            return Err(err(op, Cause::Capacity(Capacity::Pinned)));
        }
        self.submit()?;
        let mfn = self.mfn(table.as_u64(), op)?;
        let cmd = mmuext::PIN_L1_TABLE + u32::from(level.as_u8() - 1);
        let ops = [MmuextOp {
            cmd,
            arg1: mfn,
            arg2: 0,
        }];
        // SAFETY: the caller guarantees `table` is a complete, protected level-`level` table.
        let out = unsafe { self.calls().ext(&ops) };
        if let Some((at, errno, call)) = out.failure {
            return Err(refused(op, &out, at, errno, call));
        }
        let _ = self.pinned.insert(table.as_u64());
        Ok(())
    }

    unsafe fn unpin(&mut self, table: Pfn, _level: TableLevel) -> Result<(), XenPvError> {
        self.apply_deferred()?;
        let op = Op::Unpin;
        if table == self.root {
            return Err(err(op, Cause::Unsupported(Unsupported::CurrentRoot)));
        }
        self.submit()?;
        let mfn = self.mfn(table.as_u64(), op)?;
        // SAFETY: the caller guarantees the table was pinned, is hooked nowhere and is not
        // the root.
        unsafe { self.unpin_mfn(table.as_u64(), mfn, op) }
    }

    unsafe fn retire(&mut self, table: Pfn, _level: TableLevel) -> Result<(), XenPvError> {
        self.apply_deferred()?;
        let op = Op::Retire;
        let t = table.as_u64();
        if table == self.root {
            return Err(err(op, Cause::Unsupported(Unsupported::CurrentRoot)));
        }
        self.submit()?;
        let mfn = self.mfn(t, op)?;
        if self.pinned.contains(t) {
            // SAFETY: the caller guarantees the table is hooked nowhere and not the root.
            unsafe { self.unpin_mfn(t, mfn, op) }?;
        }
        // Its entries are no mappings any more (a whole table: no run to split).
        let cut = self.forget_ptes(mfn << 12, (mfn + 1) << 12);
        debug_assert!(!cut, "no run crosses a page of entries");
        let range =
            PfnRange::new(table, t + 1).unwrap_or_else(|| unreachable!(/* below MAX_PFN */));
        self.release_range(range, op)
    }

    unsafe fn switch_root(&mut self, root: Pfn) -> Result<(), XenPvError> {
        self.apply_deferred()?;
        let op = Op::SwitchRoot;
        self.submit()?;
        let r = root.as_u64();
        let mfn = self.mfn(r, op)?;
        let pin = !self.pinned.contains(r);
        if pin && self.pinned.is_full() {
            return Err(err(op, Cause::Capacity(Capacity::Pinned)));
        }
        let ops = [
            MmuextOp {
                cmd: mmuext::PIN_L4_TABLE,
                arg1: mfn,
                arg2: 0,
            },
            MmuextOp {
                cmd: mmuext::NEW_BASEPTR,
                arg1: mfn,
                arg2: 0,
            },
        ];
        let ops = if pin { &ops[..] } else { &ops[1..] };
        // SAFETY: the caller guarantees `root` is a complete level-4 table that maps the
        // running kernel; pinning it first keeps it a table while it is the root.
        let out = unsafe { self.calls().ext(ops) };
        if pin && out.applied >= 1 {
            let _ = self.pinned.insert(r);
        }
        if let Some((at, errno, call)) = out.failure {
            return Err(refused(op, &out, at, errno, call));
        }
        self.root = root;
        Ok(())
    }

    unsafe fn release(&mut self, frames: PfnRange) -> Result<(), XenPvError> {
        self.apply_deferred()?;
        self.release_range(frames, Op::Release)
    }

    unsafe fn add_window(&mut self, va: u64, pfns: PfnRange) -> Result<(), XenPvError> {
        Self::check_window(va, pfns)?;
        if pfns.is_empty() {
            return Ok(());
        }
        self.windows
            .push(Window { va, pfns })
            .map_err(|_| err(Op::AddWindow, Cause::Capacity(Capacity::Windows)))
    }

    fn flush(&mut self) -> Result<(), XenPvError> {
        self.apply_deferred()?;
        self.submit()
    }

    fn discarded(&self) -> u64 {
        self.st.queue.dropped()
    }

    const MAY_DISCARD: bool = true;

    fn set_phase(&mut self, phase: Phase) {
        XenPv::set_phase(self, phase);
    }

    unsafe fn flush_tlb(&mut self, tlb: &hal_core::TlbBatch) -> Result<(), XenPvError> {
        self.apply_deferred()?;
        self.flush_with_tlb(tlb)
    }
}

impl<H: PvPlatform> XenPv<'_, H> {
    /// `protect`, applied now: every writable L1 entry mapping a frame of `frames` through a
    /// window becomes read-only (batched), then one local TLB flush if any changed.
    pub(super) fn protect_now(&mut self, frames: PfnRange) -> Result<(), XenPvError> {
        let op = Op::Protect;
        let (lo, hi) = (frames.start().as_u64(), frames.end());
        self.protected
            .insert(frames)
            .map_err(|_| err(op, Cause::Capacity(Capacity::Protected)))?;
        let windows = self.windows.clone();
        let mut changed = false;
        for w in &windows {
            let Some((s, e)) = w.overlap(lo, hi) else {
                continue;
            };
            let mut cache: Option<(u64, Option<u64>)> = None;
            for pfn in s..e {
                let va = w
                    .va_of(pfn)
                    .unwrap_or_else(|| unreachable!(/* in the window */));
                let key = va >> 21;
                let l1 = match cache {
                    Some((k, l1)) if k == key => l1,
                    _ => {
                        let l1 = self.l1_table(va, op)?;
                        cache = Some((key, l1));
                        l1
                    }
                };
                let Some(l1) = l1 else { continue };
                let idx = TableLevel::L1.index_of(va);
                // SAFETY: `l1` is the L1 table that maps `va` in the current root (`l1_table`).
                let raw = unsafe { self.read_machine(l1, idx, op) }?;
                if raw & P == 0 || raw & RW == 0 || (raw & ADDR) >> 12 != self.mfn(pfn, op)? {
                    continue;
                }
                let ptr = (self.mfn(l1, op)? << 12) + 8 * u64::from(idx);
                let ro = raw & !RW;
                if self.st.records.room() < 2 {
                    self.submit()?;
                    return Err(err(op, Cause::Capacity(Capacity::ReadOnlyRuns)));
                }
                let cut = self.forget_ptes(ptr, ptr + 8);
                debug_assert!(!cut, "room checked above");
                self.st
                    .records
                    .add(pfn, ptr, ro & !ADDR)
                    .map_err(|_| err(op, Cause::Capacity(Capacity::ReadOnlyRuns)))?;
                self.push(
                    MmuUpdate {
                        ptr: ptr | mmu::NORMAL_PT_UPDATE,
                        val: ro,
                    },
                    op,
                )?;
                changed = true;
            }
        }
        self.submit()?;
        if changed {
            // Xen flushes stale entries itself when the frame's type changes, but until then a
            // writable TLB entry could outlive the read-only PTE; `protect` promises no
            // writable mapping from now on, so drop them here (one hypercall).
            let flush = [MmuextOp {
                cmd: mmuext::TLB_FLUSH_LOCAL,
                arg1: 0,
                arg2: 0,
            }];
            // SAFETY: a local TLB flush changes no mapping.
            let out = unsafe { self.calls().ext(&flush) };
            if let Some((at, errno, call)) = out.failure {
                return Err(refused(op, &out, at, errno, call));
            }
        }
        Ok(())
    }

    /// Points the 4 KiB page at `va` at frame `pfn`, present, writable only if `writable`:
    /// one `update_va_mapping` through the current root with a local `INVLPG`, counted in the
    /// current phase. A kernel uses it for a second, temporary mapping of a frame (Mini-OS's
    /// way with shared_info), and to put the page's own frame back afterwards.
    ///
    /// Xen refuses (typed error, nothing changed) when no L1 entry maps `va`, when `va` is
    /// mapped by a large page, and a writable mapping of a page-table frame.
    ///
    /// # Safety
    /// The page at `va` belongs to the caller: nothing else relies on what it maps (no
    /// reference points into it) until the caller points it back. With `writable`, the
    /// caller owns `pfn` as memory (no table, nobody else's).
    pub unsafe fn retarget_page(
        &mut self,
        va: u64,
        pfn: Pfn,
        writable: bool,
    ) -> Result<(), XenPvError> {
        use crate::hypercall::abi::uvmf;
        self.apply_deferred()?;
        let op = Op::Retarget;
        let mfn = self.mfn(pfn.as_u64(), op)?;
        let pte = (mfn << 12) | 1 | (u64::from(writable) << 1);
        // SAFETY: the caller owns the page at `va`; Xen checks the new entry (a writable
        // mapping of a table is refused) and the caller owns `pfn` if it is writable.
        let out = unsafe { self.calls().va(va, pte, uvmf::INVLPG | uvmf::LOCAL) };
        match out.failure {
            None => Ok(()),
            Some((at, errno, call)) => Err(refused(op, &out, at, errno, call)),
        }
    }

    /// `MMUEXT_UNPIN_TABLE` for `pfn` (machine frame `mfn`), and forgets the pin.
    ///
    /// # Safety
    /// The table is hooked nowhere and not the root.
    unsafe fn unpin_mfn(&mut self, pfn: u64, mfn: u64, op: Op) -> Result<(), XenPvError> {
        let ops = [MmuextOp {
            cmd: mmuext::UNPIN_TABLE,
            arg1: mfn,
            arg2: 0,
        }];
        // SAFETY: the caller's promise: the table is hooked nowhere and not the root.
        let out = unsafe { self.calls().ext(&ops) };
        if let Some((at, errno, call)) = out.failure {
            return Err(refused(op, &out, at, errno, call));
        }
        self.pinned.remove(pfn);
        Ok(())
    }

    /// Whether `write` downgrades entry `e` of a level-`level` table: a *writable* leaf for a
    /// read-only frame ([`read_only_frame`](Self::read_only_frame)). It is written read-only
    /// and, for a protected frame, remembered, so that `release` makes it writable again (the
    /// domain builder's tables stay tables: nothing releases them). A leaf the caller wrote
    /// read-only is written as given, not remembered, and stays read-only.
    fn downgraded(&self, level: TableLevel, e: &Pte) -> bool {
        level == TableLevel::L1
            && e.is_present()
            && e.bits() & RW != 0
            && self.read_only_frame(e.pfn().as_u64())
    }

    /// Whether frame `pfn` may have no writable mapping: protected (and not released since),
    /// or one of the domain builder's tables.
    fn read_only_frame(&self, pfn: u64) -> bool {
        self.protected.contains(pfn)
            || self
                .boot_tables
                .iter()
                .any(|r| r.start().as_u64() <= pfn && pfn < r.end())
    }

    /// Whether some frame of `[lo, hi)` is a read-only frame.
    fn read_only_in(&self, lo: u64, hi: u64) -> bool {
        self.protected.overlaps(lo, hi)
            || self
                .boot_tables
                .iter()
                .any(|r| r.start().as_u64() < hi && lo < r.end())
    }
}
