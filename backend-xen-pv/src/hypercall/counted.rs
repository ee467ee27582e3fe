//! [`Counted`]: the one door to the hypercalls. It wraps a [`RawHypercall`] and counts every
//! call made through it, per [`Phase`] (the MMU hypercalls) or apart (the rest), before the
//! call is made. The backend holds only a `&Counted` and the Xen board makes exactly one, so
//! the figures the backend reports (and the test runner checks) are what this wrapper saw, not
//! what call sites chose to add up.
//!
//! What is counted, per slot (a phase, or the per-page releases): the calls of each MMU kind
//! (`mmu_update`, `mmuext_op`, `update_va_mapping`, `multicall`) and the entries they carry
//! (the length of the request or command array; one for `update_va_mapping`; for a multicall,
//! the sum over its entries, read from each entry's hypercall number and count argument).
//! Every other hypercall (console, scheduler, trap table, I/O privilege, version, assists,
//! event channels) is counted once, whatever the slot, as "not MMU".

use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use super::abi::{nr, MmuUpdate, MmuextOp, MulticallEntry, TrapInfo};
use super::{RawHypercall, XenHypercalls};
use crate::mmu::{Counters, Phase, PhaseCount};

/// Where the MMU hypercalls are counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// Under a lifecycle phase.
    Phase(Phase),
    /// A release made one page at a time ([`ReleaseStrategy::PerPage`](crate::ReleaseStrategy)).
    PerPageRelease,
}

/// Slots: the phases, then the per-page releases.
const SLOTS: usize = Phase::ALL.len() + 1;
const PER_PAGE: usize = Phase::ALL.len();

impl Slot {
    const fn index(self) -> usize {
        match self {
            Slot::Phase(p) => p.index(),
            Slot::PerPageRelease => PER_PAGE,
        }
    }

    fn from_index(i: usize) -> Self {
        match Phase::ALL.get(i) {
            Some(&p) => Slot::Phase(p),
            None => Slot::PerPageRelease,
        }
    }
}

/// The MMU kinds, and the column of each in a slot's tally.
#[derive(Clone, Copy)]
enum Kind {
    MmuUpdate = 0,
    MmuextOp = 1,
    UpdateVaMapping = 2,
    Multicall = 3,
}
/// Columns of a slot: the four kinds, then the entries.
const ENTRIES: usize = 4;
const COLUMNS: usize = 5;

/// A [`RawHypercall`] that counts every call made through it (see the module).
///
/// The counters are atomics, so a `Counted` over a `Sync` implementation can be a `static`
/// (the Xen board's is); they wrap at 2^64.
pub struct Counted<H> {
    inner: H,
    tally: [[AtomicU64; COLUMNS]; SLOTS],
    /// Clock ticks spent under each slot ([`RawHypercall::clock`]).
    ticks: [AtomicU64; SLOTS],
    /// The clock when the current slot was entered (0: not yet read).
    since: AtomicU64,
    not_mmu: AtomicU64,
    slot: AtomicU8,
}

impl<H> Counted<H> {
    /// Counts the calls made through `inner`, under [`Phase::Other`] until told otherwise.
    pub const fn new(inner: H) -> Self {
        Self {
            inner,
            tally: [const { [const { AtomicU64::new(0) }; COLUMNS] }; SLOTS],
            ticks: [const { AtomicU64::new(0) }; SLOTS],
            since: AtomicU64::new(0),
            not_mmu: AtomicU64::new(0),
            slot: AtomicU8::new(Phase::Other.index() as u8),
        }
    }

    /// Where the MMU hypercalls are counted now.
    pub fn slot(&self) -> Slot {
        Slot::from_index(usize::from(self.slot.load(Ordering::Relaxed)))
    }

    /// What was counted so far.
    pub fn counters(&self) -> Counters {
        let mut c = Counters::default();
        for (i, t) in self.tally.iter().enumerate() {
            let get = |k: usize| t[k].load(Ordering::Relaxed);
            let count = PhaseCount {
                hypercalls: (0..ENTRIES).map(get).fold(0, u64::wrapping_add),
                entries: get(ENTRIES),
                mmu_update: get(Kind::MmuUpdate as usize),
                mmuext_op: get(Kind::MmuextOp as usize),
                update_va_mapping: get(Kind::UpdateVaMapping as usize),
                multicall: get(Kind::Multicall as usize),
                cycles: self.ticks[i].load(Ordering::Relaxed),
            };
            match Slot::from_index(i) {
                Slot::Phase(p) => c.phases[p.index()] = count,
                Slot::PerPageRelease => c.per_page_release = count,
            }
        }
        c.not_mmu = self.not_mmu.load(Ordering::Relaxed);
        c
    }

    /// Zeroes every count (the slot stays).
    pub fn reset(&self) {
        for a in self.tally.iter().flatten().chain(&self.ticks) {
            a.store(0, Ordering::Relaxed);
        }
        self.not_mmu.store(0, Ordering::Relaxed);
    }

    /// The wrapped implementation, for the model's own inspection methods in host tests.
    /// Calls made through it are not counted, which is why real guests cannot have it.
    #[cfg(any(test, feature = "model"))]
    pub fn inner(&self) -> &H {
        &self.inner
    }

    fn mmu(&self, kind: Kind, entries: u64) {
        let t = &self.tally[usize::from(self.slot.load(Ordering::Relaxed))];
        t[kind as usize].fetch_add(1, Ordering::Relaxed);
        t[ENTRIES].fetch_add(entries, Ordering::Relaxed);
    }

    fn other(&self) {
        self.not_mmu.fetch_add(1, Ordering::Relaxed);
    }
}

/// The entries a multicall carries: per entry, the count argument of `mmu_update` and
/// `mmuext_op`, one for `update_va_mapping`, none for anything else.
fn multicall_entries(entries: &[MulticallEntry]) -> u64 {
    entries
        .iter()
        .map(|e| match u32::try_from(e.op) {
            Ok(nr::MMU_UPDATE | nr::MMUEXT_OP) => e.args[1],
            Ok(nr::UPDATE_VA_MAPPING) => 1,
            _ => 0,
        })
        .fold(0, u64::wrapping_add)
}

impl<H: RawHypercall> Counted<H> {
    /// Counts the MMU hypercalls, and the clock's ticks, from now on under `slot`.
    pub fn count_under(&self, slot: Slot) {
        let now = self.inner.clock();
        let before = self.since.swap(now, Ordering::Relaxed);
        if before != 0 {
            let t = &self.ticks[usize::from(self.slot.load(Ordering::Relaxed))];
            t.fetch_add(now.wrapping_sub(before), Ordering::Relaxed);
        }
        self.slot.store(slot.index() as u8, Ordering::Relaxed);
    }
}

// SAFETY: every method counts and then makes exactly the same call on `inner`, with the same
// arguments, returning its result: the effects are `inner`'s, which meets the contract.
unsafe impl<H: RawHypercall> RawHypercall for Counted<H> {
    fn clock(&self) -> u64 {
        self.inner.clock()
    }

    unsafe fn mmu_update(&self, reqs: &[MmuUpdate], success_count: &mut u32, domid: u16) -> i64 {
        self.mmu(Kind::MmuUpdate, reqs.len() as u64);
        // SAFETY: the caller's contract, passed on.
        unsafe { self.inner.mmu_update(reqs, success_count, domid) }
    }

    unsafe fn mmuext_op(&self, ops: &[MmuextOp], success_count: &mut u32, domid: u16) -> i64 {
        self.mmu(Kind::MmuextOp, ops.len() as u64);
        // SAFETY: the caller's contract, passed on.
        unsafe { self.inner.mmuext_op(ops, success_count, domid) }
    }

    unsafe fn update_va_mapping(&self, va: u64, pte: u64, flags: u64) -> i64 {
        self.mmu(Kind::UpdateVaMapping, 1);
        // SAFETY: the caller's contract, passed on.
        unsafe { self.inner.update_va_mapping(va, pte, flags) }
    }

    unsafe fn multicall(&self, entries: &mut [MulticallEntry]) -> i64 {
        self.mmu(Kind::Multicall, multicall_entries(entries));
        // SAFETY: the caller's contract, passed on.
        unsafe { self.inner.multicall(entries) }
    }

    unsafe fn set_trap_table(&self, table: &[TrapInfo]) -> i64 {
        self.other();
        // SAFETY: the caller's contract, passed on.
        unsafe { self.inner.set_trap_table(table) }
    }

    fn console_write(&self, bytes: &[u8]) -> i64 {
        self.other();
        self.inner.console_write(bytes)
    }

    fn sched_shutdown(&self, reason: u32) -> i64 {
        self.other();
        self.inner.sched_shutdown(reason)
    }

    fn physdev_set_iopl(&self, iopl: u32) -> i64 {
        self.other();
        self.inner.physdev_set_iopl(iopl)
    }

    fn vm_assist(&self, cmd: u32, assist: u32) -> i64 {
        self.other();
        self.inner.vm_assist(cmd, assist)
    }

    fn xen_version(&self) -> i64 {
        self.other();
        self.inner.xen_version()
    }
}

// SAFETY: every method is `inner`'s, unchanged (plain loads and stores, no hypercall).
unsafe impl<H: crate::PvPlatform> crate::PvPlatform for Counted<H> {
    unsafe fn read_u64(&self, va: u64) -> u64 {
        // SAFETY: the caller's contract, passed on.
        unsafe { self.inner.read_u64(va) }
    }

    unsafe fn mfn_to_pfn(&self, mfn: u64) -> u64 {
        // SAFETY: the caller's contract, passed on.
        unsafe { self.inner.mfn_to_pfn(mfn) }
    }

    fn can_store(&self) -> bool {
        self.inner.can_store()
    }

    unsafe fn write_u64(&self, va: u64, val: u64) {
        // SAFETY: the caller's contract, passed on.
        unsafe { self.inner.write_u64(va, val) }
    }
}

/// The real guest's calls that are not on [`RawHypercall`] (the domU console's), counted as
/// not MMU.
impl Counted<XenHypercalls> {
    /// [`XenHypercalls::event_channel_send`], counted.
    pub fn event_channel_send(&self, port: u32) -> i64 {
        self.other();
        self.inner.event_channel_send(port)
    }

    /// [`XenHypercalls::sched_yield`], counted.
    pub fn sched_yield(&self) -> i64 {
        self.other();
        self.inner.sched_yield()
    }
}

#[cfg(test)]
mod tests {
    use core::cell::Cell;

    use super::*;
    use crate::hypercall::abi::{mmuext, DOMID_SELF};
    use crate::PvPlatform;

    /// Answers each call with a distinct value and counts what reached it.
    #[derive(Default)]
    struct Fake {
        reached: Cell<u32>,
    }

    impl Fake {
        fn hit(&self, ret: i64) -> i64 {
            self.reached.set(self.reached.get() + 1);
            ret
        }
    }

    // SAFETY: test double; nothing relies on its effects.
    unsafe impl RawHypercall for Fake {
        unsafe fn mmu_update(&self, reqs: &[MmuUpdate], done: &mut u32, _: u16) -> i64 {
            *done = reqs.len() as u32 - 1;
            self.hit(-1)
        }
        unsafe fn mmuext_op(&self, ops: &[MmuextOp], done: &mut u32, _: u16) -> i64 {
            *done = ops.len() as u32;
            self.hit(-2)
        }
        unsafe fn update_va_mapping(&self, va: u64, _: u64, _: u64) -> i64 {
            self.hit(va as i64)
        }
        unsafe fn multicall(&self, entries: &mut [MulticallEntry]) -> i64 {
            for e in entries.iter_mut() {
                e.result = 7;
            }
            self.hit(-4)
        }
        unsafe fn set_trap_table(&self, _: &[TrapInfo]) -> i64 {
            self.hit(-5)
        }
        fn console_write(&self, bytes: &[u8]) -> i64 {
            self.hit(bytes.len() as i64)
        }
        fn sched_shutdown(&self, reason: u32) -> i64 {
            self.hit(-10 - i64::from(reason))
        }
        fn physdev_set_iopl(&self, iopl: u32) -> i64 {
            self.hit(-20 - i64::from(iopl))
        }
        fn vm_assist(&self, cmd: u32, assist: u32) -> i64 {
            self.hit(-30 - i64::from(cmd) - i64::from(assist))
        }
        fn xen_version(&self) -> i64 {
            self.hit(0x4_0011)
        }
    }

    // SAFETY: test double: plain arithmetic, no memory.
    unsafe impl PvPlatform for Fake {
        unsafe fn read_u64(&self, va: u64) -> u64 {
            va ^ 0x55
        }
        unsafe fn mfn_to_pfn(&self, mfn: u64) -> u64 {
            mfn + 3
        }
    }

    fn entry(op: u32, count: u64) -> MulticallEntry {
        MulticallEntry {
            op: u64::from(op),
            result: 0,
            args: [0, count, 0, 0, 0, 0],
        }
    }

    #[test]
    fn every_call_is_passed_on_unchanged_and_counted_in_its_slot() {
        let c = Counted::new(Fake::default());
        assert_eq!(c.slot(), Slot::Phase(Phase::Other));
        let mut done = 0;
        // SAFETY: the fake changes no mapping (here and below).
        let ret = unsafe { c.mmu_update(&[MmuUpdate::default(); 3], &mut done, DOMID_SELF) };
        assert_eq!((ret, done), (-1, 2));
        c.count_under(Slot::Phase(Phase::Release));
        assert_eq!(c.slot(), Slot::Phase(Phase::Release));
        let flush = MmuextOp {
            cmd: mmuext::TLB_FLUSH_LOCAL,
            arg1: 0,
            arg2: 0,
        };
        // SAFETY: as above.
        let ret = unsafe { c.mmuext_op(&[flush; 2], &mut done, DOMID_SELF) };
        assert_eq!((ret, done), (-2, 2));
        // SAFETY: as above.
        assert_eq!(unsafe { c.update_va_mapping(0x5000, 0, 0) }, 0x5000);
        let mut batch = [
            entry(nr::MMU_UPDATE, 512),
            entry(nr::MMUEXT_OP, 2),
            entry(nr::UPDATE_VA_MAPPING, 99),
            entry(nr::XEN_VERSION, 40),
        ];
        // SAFETY: as above.
        assert_eq!(unsafe { c.multicall(&mut batch) }, -4);
        assert!(batch.iter().all(|e| e.result == 7));
        c.count_under(Slot::PerPageRelease);
        assert_eq!(c.slot(), Slot::PerPageRelease);
        // SAFETY: as above.
        unsafe { c.update_va_mapping(0x6000, 0, 0) };

        let n = c.counters();
        let other = PhaseCount {
            hypercalls: 1,
            entries: 3,
            mmu_update: 1,
            ..PhaseCount::default()
        };
        let release = PhaseCount {
            hypercalls: 3,
            entries: 2 + 1 + 512 + 2 + 1,
            mmuext_op: 1,
            update_va_mapping: 1,
            multicall: 1,
            ..PhaseCount::default()
        };
        let per_page = PhaseCount {
            hypercalls: 1,
            entries: 1,
            update_va_mapping: 1,
            ..PhaseCount::default()
        };
        assert_eq!(*n.get(Phase::Other), other);
        assert_eq!(*n.get(Phase::Release), release);
        assert_eq!(*n.get(Phase::FillInstall), PhaseCount::default());
        assert_eq!(*n.per_page_release(), per_page);
        assert_eq!(n.not_mmu, 0);
        assert_eq!(c.inner().reached.get(), 5);
    }

    #[test]
    fn calls_that_change_no_page_table_are_counted_apart() {
        let c = Counted::new(Fake::default());
        c.count_under(Slot::Phase(Phase::FillInstall));
        assert_eq!(c.console_write(b"abc"), 3);
        assert_eq!(c.sched_shutdown(2), -12);
        assert_eq!(c.physdev_set_iopl(1), -21);
        assert_eq!(c.vm_assist(1, 2), -33);
        assert_eq!(c.xen_version(), 0x4_0011);
        // SAFETY: the fake installs nothing.
        assert_eq!(unsafe { c.set_trap_table(&[TrapInfo::default()]) }, -5);
        let n = c.counters();
        assert_eq!(n.not_mmu, 6);
        assert_eq!(n.total(), PhaseCount::default());
        assert_eq!(c.inner().reached.get(), 6);
        // SAFETY: plain arithmetic in the fake.
        assert_eq!(unsafe { (c.read_u64(0x100), c.mfn_to_pfn(9)) }, (0x155, 12));
        assert_eq!(c.inner().reached.get(), 6, "reads are no hypercalls");
        c.reset();
        assert_eq!(c.counters(), Counters::default());
        assert_eq!(
            c.slot(),
            Slot::Phase(Phase::FillInstall),
            "reset keeps the slot"
        );
    }

    #[test]
    fn every_slot_has_its_own_tally() {
        let c = Counted::new(Fake::default());
        let slots = Phase::ALL
            .iter()
            .map(|&p| Slot::Phase(p))
            .chain([Slot::PerPageRelease]);
        for (i, slot) in slots.clone().enumerate() {
            c.count_under(slot);
            assert_eq!(c.slot(), slot);
            for _ in 0..=i {
                // SAFETY: the fake changes no mapping.
                unsafe { c.update_va_mapping(0, 0, 0) };
            }
        }
        let n = c.counters();
        for (i, p) in Phase::ALL.iter().enumerate() {
            assert_eq!(n.get(*p).update_va_mapping, i as u64 + 1, "{p:?}");
            assert_eq!(n.get(*p).hypercalls, i as u64 + 1, "{p:?}");
        }
        assert_eq!(n.per_page_release().hypercalls, Phase::ALL.len() as u64 + 1);
    }
}
