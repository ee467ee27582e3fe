//! The backend's own bookkeeping, operation by operation on the model: which entries `write`
//! remembers for release and which it forgets (overwritten, or not applied by a refused
//! submission), the runs it keeps, the windows `add_window` refuses, and the phase the
//! hal-core trait sets. Each result is compared with what the test wrote and what the model
//! says, not with the backend's own report.

use super::common::{boot, direct_map};
use crate::mmu::{Cause, Op, Unsupported};
use crate::model::{DomainConfig, PageType};
use crate::Phase;
use hal_core::{PageTableFlags, Pfn, PfnRange, Pte, RawMmu, TableLevel};

fn pfn(n: u64) -> Pfn {
    Pfn::new(n).unwrap()
}

fn range(lo: u64, hi: u64) -> PfnRange {
    PfnRange::new(pfn(lo), hi).unwrap()
}

/// A free frame of the initial mapping, `n` frames past the bootstrap elements.
fn spare(g: &super::common::Guest, n: u64) -> u64 {
    g.after_bootstrap(n + 1) + n
}

fn ro(p: u64) -> Pte {
    Pte::new(pfn(p), PageTableFlags::PRESENT)
}

fn rw(p: u64) -> Pte {
    Pte::new(pfn(p), PageTableFlags::PRESENT | PageTableFlags::WRITABLE)
}

#[test]
fn write_remembers_exactly_the_leaves_it_downgraded_and_forgets_overwritten_ones() {
    let mut g = super::common::boot_queued(DomainConfig::mib(16));
    let d = spare(&g, 8);
    let (t, t2, u) = (d + 10, d + 12, d + 20);
    let raw = g.mmu.raw_mut();
    assert_eq!((raw.read_only_runs(), raw.read_only_mappings()), (0, 0));
    // SAFETY: model frames no one else uses; none is a table or mapped by Rust.
    unsafe { raw.protect(range(d, d + 4)) }.unwrap();
    // The four initial-mapping entries, one run.
    assert_eq!((raw.read_only_runs(), raw.read_only_mappings()), (1, 4));
    // SAFETY: as above.
    unsafe { raw.protect(range(t, t + 1)) }.unwrap();
    assert_eq!((raw.read_only_runs(), raw.read_only_mappings()), (2, 5));
    // An L1 of writable leaves of two protected frames (the backend downgrades them), a
    // writable leaf of an unprotected frame, a read-only leaf of an unprotected one, a
    // read-only leaf of a protected one (the caller's, not downgraded: not remembered); and an
    // L2 entry naming a protected frame.
    // SAFETY: `t` and `t2` are the test's own frames, hooked nowhere.
    unsafe {
        raw.write(
            pfn(t),
            TableLevel::L1,
            3,
            &[rw(d), rw(d + 1), rw(u), ro(u + 1), ro(d + 3)],
        )
        .unwrap();
        raw.write(pfn(t2), TableLevel::L2, 0, &[ro(d + 2)]).unwrap();
    }
    raw.flush().unwrap();
    assert_eq!(
        raw.read_only_mappings(),
        5 + 2,
        "only the L1's downgraded leaves of d and d+1"
    );
    for (slot, writable) in [(3, 0), (4, 0), (5, 2), (6, 0), (7, 0)] {
        // SAFETY: `t` is the test's L1 table (written above), in the model's memory.
        let e = unsafe { raw.read(pfn(t), TableLevel::L1, slot) }.unwrap();
        assert_eq!(
            e.bits() & 2,
            writable,
            "slot {slot} as written or downgraded"
        );
    }
    // Overwriting a remembered entry forgets it.
    // SAFETY: as above.
    unsafe { raw.write(pfn(t), TableLevel::L1, 4, &[Pte::EMPTY]) }.unwrap();
    raw.flush().unwrap();
    assert_eq!(raw.read_only_mappings(), 5 + 1);
    // Release makes the remembered ones writable: the initial mapping's and slot 3 of `t`.
    // SAFETY: the frames are the test's and no table.
    unsafe { raw.release(range(d, d + 4)) }.unwrap();
    assert_eq!(raw.read_only_mappings(), 1, "t's own mapping is left");
    // SAFETY: `t` is the test's L1 table (written above), in the model's memory.
    let e = unsafe { raw.read(pfn(t), TableLevel::L1, 3) }.unwrap();
    assert_eq!(
        (e.pfn(), e.bits() & 2),
        (pfn(d), 2),
        "slot 3 writable again"
    );
    // SAFETY: `t` is the test's L1 table (written above), in the model's memory.
    let e = unsafe { raw.read(pfn(t), TableLevel::L1, 6) }.unwrap();
    assert_eq!(
        e.bits() & 2,
        0,
        "the unprotected frame's read-only leaf is as written"
    );
    // SAFETY: `t` is the test's L1 table (written above), in the model's memory.
    let e = unsafe { raw.read(pfn(t), TableLevel::L1, 7) }.unwrap();
    assert_eq!(
        e.bits() & 2,
        0,
        "the caller's read-only leaf of a protected frame stays read-only after release"
    );
    // SAFETY: `t` is the test's L1 table (written above), in the model's memory.
    let e = unsafe { raw.read(pfn(t), TableLevel::L1, 4) }.unwrap();
    assert_eq!(e, Pte::EMPTY);
    for p in d..d + 4 {
        assert_eq!(g.xen().frame(p).ty, PageType::Writable);
        let va = g.layout.pfn_to_va(p).unwrap();
        assert_eq!(g.xen().store(va), Ok(p), "pfn {p:#x} writable again");
    }
}

#[test]
fn a_refused_submission_forgets_the_entries_it_did_not_apply() {
    // A domain without cache attributes (a domU): PCD in an L1 entry is -EINVAL.
    let mut g = super::common::boot_queued(DomainConfig {
        cache_attrs: false,
        ..DomainConfig::mib(16)
    });
    let d = spare(&g, 8);
    let t = d + 10;
    let raw = g.mmu.raw_mut();
    // SAFETY: model frames no one else uses.
    unsafe { raw.protect(range(d, d + 2)) }.unwrap();
    assert_eq!(raw.read_only_mappings(), 2);
    // `t` an empty pinned L1, so Xen checks every entry written into it.
    // SAFETY: `t` is the test's frame, read-only once protected, zero, hooked nowhere.
    unsafe {
        raw.protect(range(t, t + 1)).unwrap();
        raw.write(pfn(t), TableLevel::L1, 0, &[Pte::EMPTY; 512])
            .unwrap();
        raw.pin(pfn(t), TableLevel::L1).unwrap();
    }
    assert_eq!(raw.read_only_mappings(), 3);
    // The middle entry is uncached (Xen refuses it), the first stays applied (downgraded).
    let bad = Pte::new(
        pfn(d + 5),
        PageTableFlags::PRESENT | PageTableFlags::NO_CACHE,
    );
    // SAFETY: `t` is the test's table; the bad entry is refused, never made.
    unsafe { raw.write(pfn(t), TableLevel::L1, 0, &[rw(d), bad, rw(d + 1)]) }.unwrap();
    let e = raw.flush().unwrap_err();
    match e.cause {
        Cause::Refused(r) => assert_eq!((r.failed_at, r.applied, r.submitted), (1, 1, 3)),
        c => panic!("{c:?}"),
    }
    assert_eq!(raw.read_only_mappings(), 4, "slot 0 kept, slot 2 forgotten");
    // SAFETY: `t` is the test's L1 table (written above), in the model's memory.
    let e = unsafe { raw.read(pfn(t), TableLevel::L1, 2) }.unwrap();
    assert_eq!(e, Pte::EMPTY);
    assert_eq!(raw.queued(), 0);
}

#[test]
fn add_window_refuses_exactly_the_windows_it_cannot_read_through() {
    let mut g = boot(DomainConfig::mib(16));
    let raw = g.mmu.raw_mut();
    let one = range(16, 17);
    let empty = range(16, 16);
    let refused = |r: Result<(), crate::XenPvError>, va: u64| {
        let e = r.unwrap_err();
        assert_eq!(e.op, Op::AddWindow);
        assert_eq!(e.cause, Cause::Unsupported(Unsupported::Window(va)));
    };
    let bad = [
        0xffff_8880_0000_0800u64, // unaligned
        0x0000_8000_0000_0000,    // not canonical
        0xffff_8000_0000_1000,    // Xen's
        0xffff_87ff_ffff_f000,    // Xen's last page
    ];
    for va in bad {
        // SAFETY: refused before anything is kept.
        refused(unsafe { raw.add_window(va, one) }, va);
    }
    // Two pages from the lower half's last: the end is not canonical.
    // SAFETY: refused, as above.
    refused(
        unsafe { raw.add_window(0x0000_7fff_ffff_f000, range(16, 18)) },
        0x0000_7fff_ffff_f000,
    );
    let n = raw.windows().len();
    // Empty windows are no windows, wherever they are (canonical, aligned).
    for va in [0, 0xffff_8000_0000_0000, 0xffff_8800_0000_0000] {
        // SAFETY: an empty window reads nothing.
        unsafe { raw.add_window(va, empty) }.unwrap();
    }
    assert_eq!(raw.windows().len(), n);
    // Right after Xen's area, and the last page of the lower half.
    // SAFETY: the backend reads through windows only to find mappings of protected frames;
    // the model has none there and the test protects nothing after this.
    unsafe {
        raw.add_window(0xffff_8800_0000_0000, one).unwrap();
        raw.add_window(0x0000_7fff_ffff_f000, one).unwrap();
    }
    assert_eq!(raw.windows().len(), n + 2);
}

#[test]
fn the_trait_sets_the_phase_the_wrapper_counts_under() {
    let mut g = super::common::boot_queued(DomainConfig::mib(16));
    let d = spare(&g, 8);
    RawMmu::set_phase(g.mmu.raw_mut(), Phase::Switch);
    assert_eq!(g.mmu.raw().phase(), Phase::Switch);
    // SAFETY: a model frame no one else uses.
    unsafe { g.mmu.raw_mut().protect(range(d, d + 1)) }.unwrap();
    let c = g.mmu.raw().counters();
    assert_eq!(
        (
            c.get(Phase::Switch).mmu_update,
            c.get(Phase::Switch).mmuext_op
        ),
        (1, 1)
    );
    assert_eq!(c.get(Phase::Other).hypercalls, 0);
}

#[test]
fn the_total_is_the_sum_of_every_phase_and_kind() {
    let mut g = boot(DomainConfig::mib(16));
    let _ = direct_map(&mut g, 8);
    let c = g.mmu.raw().counters();
    let t = c.total();
    let all = || c.phases.iter().chain([&c.per_page_release]);
    let sum = |f: fn(&crate::mmu::PhaseCount) -> u64| all().map(f).sum::<u64>();
    assert_eq!(t.hypercalls, sum(|p| p.hypercalls));
    assert_eq!(t.entries, sum(|p| p.entries));
    assert_eq!(t.mmu_update, sum(|p| p.mmu_update));
    assert_eq!(t.mmuext_op, sum(|p| p.mmuext_op));
    assert_eq!(t.update_va_mapping, sum(|p| p.update_va_mapping));
    assert_eq!(t.multicall, sum(|p| p.multicall));
    // Two phases at least made each of the kinds used, so a sum is a sum.
    assert!(
        c.phases.iter().filter(|p| p.mmuext_op > 0).count() >= 2,
        "{c:?}"
    );
    assert!(
        c.phases.iter().filter(|p| p.mmu_update > 0).count() >= 2,
        "{c:?}"
    );
    assert_eq!(
        g.xen().stats().hypercalls,
        t.hypercalls,
        "the model's own count"
    );
}

#[test]
fn a_slot_index_past_the_table_is_reported_as_it_was_given() {
    let mut g = super::common::boot_queued(DomainConfig::mib(16));
    let t = spare(&g, 2);
    let raw = g.mmu.raw_mut();
    // SAFETY: a model frame no one else uses, no table, not mapped by Rust.
    unsafe { raw.protect(range(t, t + 1)) }.unwrap();
    let before = g.xen().stats();
    let raw = g.mmu.raw_mut();
    let index = |r: Result<(), crate::XenPvError>| match r.unwrap_err() {
        crate::XenPvError {
            op: Op::Write,
            cause: Cause::Unsupported(Unsupported::Index(end)),
            ..
        } => end,
        e => panic!("{e:?}"),
    };
    // Ends past slot 511, below and above 65,536 (where a 16-bit field would wrap).
    let entries = std::vec![Pte::EMPTY; 70_000];
    for (first, len, end) in [
        (500u16, 13usize, 513u64),
        (511, 70_000, 70_511),
        (0, 65_536, 65_536),
    ] {
        // SAFETY: refused before anything is queued: the end is past the table.
        let r = unsafe { raw.write(pfn(t), TableLevel::L1, first, &entries[..len]) };
        assert_eq!(index(r), end, "write at {first}, {len} entries");
    }
    for (first, count, end) in [
        (400u16, 113u16, 513u64),
        (60_000, 10_000, 70_000),
        (u16::MAX, u16::MAX, 131_070),
    ] {
        let run = hal_core::backend::EntryRun::empty(count);
        // SAFETY: as above (and the table is fresh: protected, never hooked).
        let r = unsafe { raw.fill_fresh(pfn(t), TableLevel::L1, first, &run) };
        assert_eq!(index(r), end, "fill_fresh at {first}, {count} entries");
    }
    for slot in [512u16, u16::MAX] {
        // SAFETY: `t` is the test's L1 table (written above), in the model's memory; the
        // index is refused before any load.
        let e = unsafe { raw.read(pfn(t), TableLevel::L1, slot) }.unwrap_err();
        assert_eq!(
            e.cause,
            Cause::Unsupported(Unsupported::Index(u64::from(slot)))
        );
        assert_eq!(e.op, Op::Read);
    }
    // SAFETY: as above.
    let e = unsafe { raw.write(pfn(t), TableLevel::L1, 511, &entries) }.unwrap_err();
    assert!(std::format!("{e}").contains("slot index 70511 "), "{e}");
    assert_eq!(raw.queued(), 0, "nothing queued");
    raw.flush().unwrap();
    assert_eq!(g.xen().stats(), before, "nothing submitted");
}
