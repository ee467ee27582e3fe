//! The model refusing the seed's bug and its relatives, and the backend's typed errors:
//! (a) a tail frame written while still read-only faults; (b) a table hooked or pinned while
//! still writable is -EINVAL; (c) a writable leaf for a table is written read-only by the backend, and an entry Xen
//! refuses mid-batch is named; (d) a hypercall
//! refused mid-batch gives errno and applied count, and leaves every frame in the state its
//! type says.

use super::common;
use std::vec::Vec;

use crate::mmu::{Call, Op, Rollback};
use crate::model::{DomainConfig, Fault, PageType};
use crate::{ReleaseStrategy, XenErrno};
use common::{boot, direct_map, fill, make_buf, switch, Guest, BASE};
use hal_core::memblock::Direction;
use hal_core::pgt_buf::FinishError;
use hal_core::{
    BackendError, ErrorKind, Frame, FrameRange, Free, PageTableFlags, Pfn, PfnRange, PgtReserved,
    Pte, RawMmu, TableBuilder, TableLevel,
};
use typenum::U1;

const HEADROOM: u64 = 64;

fn pfn(n: u64) -> Pfn {
    Pfn::new(n).unwrap()
}

#[test]
fn a_tail_frame_used_before_release_faults() {
    let mut g = boot(DomainConfig::mib(64));
    let mut buf = make_buf(&mut g, HEADROOM);
    let root = fill(&mut g, &mut buf);
    switch(&mut g, root);
    let tail = PfnRange::new(pfn(buf.end()), buf.top()).unwrap();
    assert_eq!(tail.len(), HEADROOM);
    assert_eq!(buf.used_range().end(), tail.start().as_u64());
    for p in tail.iter().map(Pfn::as_u64) {
        assert_eq!(
            g.xen().store(Guest::va(p)),
            Err(Fault::ReadOnly { level: 1 })
        );
        if let Some(va) = g.layout.pfn_to_va(p) {
            assert_eq!(g.xen().store(va), Err(Fault::ReadOnly { level: 1 }));
        }
        assert_eq!(g.xen().load(Guest::va(p)), Ok(p), "readable, though");
    }
    // The seed's bug, through the escape hatch: the tail given back as memory unreleased.
    // SAFETY: deliberately false (the frames are read-only): this is the bug under test.
    let unreleased = unsafe { FrameRange::<Free>::from_pfns_unchecked(tail) };
    g.mb.free_frames(unreleased).unwrap();
    let victim = g.mb.alloc_frame(u64::MAX, Direction::BottomUp).unwrap();
    assert!(tail.contains(victim.pfn()));
    let va = Guest::va(victim.pfn().as_u64());
    assert_eq!(
        g.xen().store(va),
        Err(Fault::ReadOnly { level: 1 }),
        "the #PF"
    );
    let _ = buf;
}

/// The live direct-map L2 for the first GiB, and the direct-map L1 that maps `p`.
fn direct_map_l2(g: &mut Guest) -> hal_core::TableRef<'static, typenum::U2> {
    let l4 = TableLevel::L4.index_of(BASE);
    let l3 = g.mmu.child(g.live.table(), l4).unwrap().unwrap();
    let l2 = g.mmu.child(l3, 0).unwrap().unwrap().pfn();
    // SAFETY: a live level-2 table of the current tree, which the test does not retire.
    unsafe { hal_core::TableRef::from_pfn(l2) }
}

#[test]
fn a_table_hooked_or_pinned_while_writable_is_einval() {
    let mut g = super::common::boot_queued(DomainConfig::mib(64));
    let _ = direct_map(&mut g, HEADROOM);
    // A frame nobody protected: still mapped writable by the initial mapping.
    let f = g.mb.alloc_frame(u64::MAX, Direction::BottomUp).unwrap();
    assert!(g.layout.pfn_to_va(f.pfn().as_u64()).is_some());
    assert_eq!(g.xen().frame(f.pfn().as_u64()).writable_mappings(), 2);
    // SAFETY: deliberately false: the frame was never made read-only.
    let unprotected = unsafe { Frame::<PgtReserved>::from_pfn_unchecked(f.pfn()) };
    let _ = f;
    // Written and flushed: a plain write, it is no table yet.
    let child = g
        .mmu
        .new_table(TableBuilder::<U1>::new(unprotected))
        .unwrap();

    let failed = g.mmu.pin(child).unwrap_err();
    let (e, child) = (failed.error, failed.value);
    assert!(!g.xen().frame(child.pfn().as_u64()).pinned);
    assert_eq!(
        (e.op, e.errno(), e.kind()),
        (Op::Pin, Some(XenErrno::EINVAL), ErrorKind::Refused)
    );
    let r = e.refusal().unwrap();
    assert_eq!(
        (r.call, r.submitted, r.applied, r.failed_at),
        (Call::MmuextOp, 1, 0, 0)
    );

    let l2 = direct_map_l2(&mut g);
    let before = g.xen().raw_entry(l2.pfn().as_u64(), 100);
    let pending = g.mmu.hook(l2, 100, child).unwrap();
    let e = pending.flush(&mut g.mmu).unwrap_err();
    assert_eq!(
        (e.op, e.errno(), e.kind()),
        (Op::Write, Some(XenErrno::EINVAL), ErrorKind::Refused)
    );
    let r = e.refusal().unwrap();
    assert_eq!((r.call, r.submitted, r.applied), (Call::MmuUpdate, 1, 0));
    assert_eq!(
        g.xen().raw_entry(l2.pfn().as_u64(), 100),
        before,
        "nothing hooked"
    );
    assert_eq!(
        g.mmu.raw().queued(),
        0,
        "the queue is empty after a refusal"
    );
    g.xen().audit().unwrap();

    // The same, done right: protected first, then the hook validates it.
    let f = g.mb.alloc_frames(1, u64::MAX, Direction::BottomUp).unwrap();
    let p = f.pfns().start().as_u64();
    let mut protected = g.mmu.protect(f).unwrap();
    assert_eq!(g.xen().frame(p).writable_mappings(), 0);
    let frame = protected.next().unwrap();
    let child = g.mmu.new_table(TableBuilder::<U1>::new(frame)).unwrap();
    g.mmu
        .hook(l2, 101, child)
        .unwrap()
        .flush(&mut g.mmu)
        .unwrap();
    assert_eq!(g.xen().frame(p).ty, PageType::L1);
    assert!(g.xen().frame(p).is_table());
    g.xen().audit().unwrap();
}

/// A table frame, the direct-map L1 that maps it, its slot there, and the three entries
/// around that slot.
fn table_leaf(g: &mut Guest, fin: &hal_core::pgt_buf::Finished) -> (u64, Pfn, u16, Vec<Pte>) {
    let t = fin.used.start().as_u64() + 2;
    assert!(g.xen().frame(t).is_table());
    let l2 = direct_map_l2(g);
    let l1 = g.mmu.child(l2, (t >> 9) as u16).unwrap().unwrap();
    let s = (t & 511) as u16;
    assert!(s > 0 && s < 511);
    let old: Vec<Pte> = (s - 1..=s + 1)
        .map(|i| g.mmu.entry(l1, i).unwrap())
        .collect();
    let l1 = l1.pfn();
    assert_eq!(old[1].pfn().as_u64(), t);
    assert!(!old[1].flags().contains(PageTableFlags::WRITABLE));
    (t, l1, s, old)
}

#[test]
fn a_writable_leaf_for_a_table_is_written_read_only() {
    let mut g = boot(DomainConfig::mib(64));
    let fin = direct_map(&mut g, HEADROOM);
    let (t, l1, s, old) = table_leaf(&mut g, &fin);
    let remembered = g.mmu.raw().read_only_mappings();
    // The three frames are tables (the buffer's first ones).
    assert!((t - 1..=t + 1).all(|p| fin.used.contains(pfn(p))));
    let asked: Vec<Pte> = old
        .iter()
        .map(|e| Pte::new(e.pfn(), e.flags() | PageTableFlags::WRITABLE))
        .collect();
    // SAFETY: rewrites the direct map's leaves with the same frames, asking for writable
    // mappings of tables, which the backend must write read-only.
    unsafe { g.mmu.raw_mut().write(l1, TableLevel::L1, s - 1, &asked) }.unwrap();
    g.mmu.raw_mut().flush().unwrap();
    for (i, p) in (s - 1..=s + 1).zip(t - 1..=t + 1) {
        // (Xen adjusts what it stores, GLOBAL for an entry carrying USER: compare frame, RW.)
        // SAFETY: `l1` is a live L1 of the direct map (`table_leaf`), a table.
        let now = unsafe { g.mmu.raw_mut().read(l1, TableLevel::L1, i) }.unwrap();
        assert_eq!(now.pfn().as_u64(), p);
        assert!(
            !now.flags().contains(PageTableFlags::WRITABLE),
            "downgraded: {now:?}"
        );
    }
    assert_eq!(
        g.xen().store(Guest::va(t)),
        Err(Fault::ReadOnly { level: 1 })
    );
    assert_eq!(
        g.mmu.raw().read_only_mappings(),
        remembered,
        "the same mapping remembered once"
    );
    assert!(g.xen().frame(t).is_table());
    g.xen().audit().unwrap();
}

#[test]
fn an_entry_xen_refuses_mid_batch_is_named_and_the_rest_dropped() {
    // A domain without cache attributes (a domU): PCD in an L1 entry is -EINVAL.
    let mut g = boot(DomainConfig {
        cache_attrs: false,
        ..DomainConfig::mib(64)
    });
    let fin = direct_map(&mut g, HEADROOM);
    let (t, l1, s, old) = table_leaf(&mut g, &fin);
    let bad = Pte::new(pfn(t), old[1].flags() | PageTableFlags::NO_CACHE);
    // SAFETY: deliberately wrong: an entry Xen must refuse; the others are as they were.
    unsafe {
        g.mmu
            .raw_mut()
            .write(l1, TableLevel::L1, s - 1, &[old[0], bad, old[2]])
    }
    .unwrap();
    assert_eq!(g.mmu.raw().queued(), 3);
    let e = g.mmu.raw_mut().flush().unwrap_err();
    assert_eq!(
        (e.op, e.errno(), e.kind()),
        (Op::Write, Some(XenErrno::EINVAL), ErrorKind::Refused)
    );
    let r = e.refusal().unwrap();
    assert_eq!(
        (r.call, r.submitted, r.applied, r.failed_at),
        (Call::MmuUpdate, 3, 1, 1)
    );
    assert_eq!(r.rollback, Rollback::NotNeeded);
    assert_eq!(
        r.entry,
        Some(crate::mmu::RefusedEntry {
            table: l1.as_u64(),
            index: s,
            frame: Some(t)
        }),
        "the refused entry, named"
    );
    assert_eq!(g.mmu.raw().queued(), 0, "the third entry was dropped");
    // SAFETY: `l1` is a live L1 of the direct map (`table_leaf`), a table.
    let now = unsafe { g.mmu.raw_mut().read(l1, TableLevel::L1, s) }.unwrap();
    assert_eq!(now, old[1], "unchanged");
    assert_eq!(
        g.xen().store(Guest::va(t)),
        Err(Fault::ReadOnly { level: 1 })
    );
    assert!(g.xen().frame(t).is_table());
    g.xen().audit().unwrap();
}

#[test]
fn a_release_refused_mid_batch_rolls_back_to_read_only() {
    for strategy in [ReleaseStrategy::Batched, ReleaseStrategy::PerPage] {
        let mut g = boot(DomainConfig::mib(64));
        g.mmu.raw_mut().set_release_strategy(strategy);
        let mut buf = make_buf(&mut g, HEADROOM);
        let root = fill(&mut g, &mut buf);
        switch(&mut g, root);
        let tail = PfnRange::new(pfn(buf.end()), buf.top()).unwrap();
        let bad = tail.start().as_u64() + 10;
        // SAFETY: deliberately wrong: a tail frame made a page table behind hal-core's back
        // (it is read-only everywhere and all zeros, so Xen accepts the pin).
        unsafe { g.mmu.raw_mut().pin(pfn(bad), TableLevel::L1) }.unwrap();

        let Err(FinishError::Release(failed)) = buf.finish(&mut g.mmu, &mut g.mb) else {
            panic!("finish must fail");
        };
        let e = failed.error;
        assert_eq!(
            (e.op, e.errno(), e.kind()),
            (Op::Release, Some(XenErrno::EBUSY), ErrorKind::Busy)
        );
        let r = e.refusal().unwrap();
        let call = match strategy {
            ReleaseStrategy::Batched => Call::MmuUpdate,
            ReleaseStrategy::PerPage => Call::UpdateVaMapping,
        };
        assert_eq!(r.call, call);
        assert!(r.applied > 0 && r.applied == r.failed_at, "{r:?}");
        assert_eq!(
            r.entry.and_then(|e| e.frame),
            Some(bad),
            "the refused frame, named"
        );
        assert_eq!(r.rollback, Rollback::Done);
        // The tail comes back Unsettled, but the backend rolled back: every tail frame is
        // still read-only everywhere, as PgtReserved said before the release.
        assert_eq!(failed.value.pfns(), tail);
        assert_eq!(failed.value.len(), HEADROOM);
        for p in tail.iter().map(Pfn::as_u64) {
            assert_eq!(g.xen().frame(p).writable_mappings(), 0, "pfn {p:#x}");
            assert_eq!(
                g.xen().store(Guest::va(p)),
                Err(Fault::ReadOnly { level: 1 })
            );
        }
        assert_eq!(g.mmu.raw().queued(), 0);
        g.xen().audit().unwrap();

        // Undo the misdeed (unpin, writable again), then settling the tail completes the
        // release.
        // SAFETY: the frame was pinned above as an L1, is hooked nowhere and is not the root.
        unsafe { g.mmu.raw_mut().unpin(pfn(bad), TableLevel::L1) }.unwrap();
        assert!(!g.xen().frame(bad).pinned);
        // SAFETY: unpinned now, hooked nowhere, not the root, all zeros (no child tables).
        unsafe { g.mmu.raw_mut().retire(pfn(bad), TableLevel::L1) }.unwrap();
        let released = g.mmu.settle(failed.value).unwrap();
        assert_eq!(released.pfns(), tail);
        for p in released.pfns().iter().map(Pfn::as_u64) {
            assert_eq!(g.xen().store(Guest::va(p)), Ok(p));
        }
        g.xen().audit().unwrap();
        let _ = released.into_free();
    }
}

#[test]
fn unpin_then_retire_makes_the_frame_writable() {
    let mut g = boot(DomainConfig::mib(16));
    let _ = direct_map(&mut g, HEADROOM);
    let f = g.mb.alloc_frames(1, u64::MAX, Direction::BottomUp).unwrap();
    let p = f.pfns().start().as_u64();
    let mut reserved = g.mmu.protect(f).unwrap();
    let table = g
        .mmu
        .new_table(TableBuilder::<U1>::new(reserved.next().unwrap()))
        .unwrap();
    let pinned = g.mmu.pin(table).unwrap();
    assert!(g.xen().frame(p).pinned);
    assert!(g.mmu.raw().pinned().contains(&p));
    assert_eq!(
        g.xen().store(Guest::va(p)),
        Err(Fault::ReadOnly { level: 1 })
    );
    let table = g.mmu.unpin(pinned).unwrap();
    assert!(!g.xen().frame(p).pinned);
    assert!(g.mmu.raw().pinned().iter().all(|&q| q != p));
    assert_eq!(
        g.xen().store(Guest::va(p)),
        Err(Fault::ReadOnly { level: 1 }),
        "unpinned, but still read-only until retired"
    );
    let freed = g.mmu.retire(table).unwrap().into_free();
    assert!(!g.xen().frame(p).is_table() && !g.xen().frame(p).pinned);
    assert_eq!(g.xen().store(Guest::va(p)), Ok(p));
    assert_eq!(g.xen().store(g.layout.pfn_to_va(p).unwrap()), Ok(p));
    assert!(g.mmu.raw().pinned().iter().all(|&q| q != p));
    g.xen().audit().unwrap();
    let _ = freed;
}

#[test]
fn entries_xen_pv_cannot_take_are_refused_before_any_hypercall() {
    let mut g = boot(DomainConfig::mib(16));
    let _ = direct_map(&mut g, HEADROOM);
    let root = g.live.pfn();
    let before = g.mmu.raw().counters().total().hypercalls;
    let huge = Pte::new(pfn(0), PageTableFlags::PRESENT | PageTableFlags::HUGE_PAGE);
    let l2 = direct_map_l2(&mut g);
    // SAFETY: refused before anything is queued.
    let e = unsafe {
        g.mmu
            .raw_mut()
            .write(l2.pfn(), TableLevel::L2, 200, &[huge])
    }
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    let xen_slot = Pte::table(pfn(0));
    // SAFETY: as above.
    let e = unsafe {
        g.mmu
            .raw_mut()
            .write(root, TableLevel::L4, 256, &[xen_slot])
    }
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    let e = g.mmu.entry(g.live.table(), 256).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    let outside = Pte::new(pfn(g.ram.end()), PageTableFlags::PRESENT);
    // SAFETY: as above.
    let e = unsafe {
        g.mmu
            .raw_mut()
            .write(l2.pfn(), TableLevel::L1, 0, &[outside])
    }
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::OutOfRange);
    assert_eq!(g.mmu.raw().queued(), 0);
    assert_eq!(g.mmu.raw().counters().total().hypercalls, before);
}

/// The fuzzer's finding `typed_ops-ro-leaf-released-writable`: a caller writes a read-only
/// leaf for a frame that is protected at that moment; releasing that frame must leave the
/// caller's leaf read-only (only mappings the backend downgraded become writable), so that
/// after the frame is protected again pinning the table gives it no writable mapping.
#[test]
fn a_read_only_leaf_the_caller_wrote_stays_read_only_after_release() {
    let mut g = boot(DomainConfig::mib(16));
    let limit = g.layout.mapped_end;
    let mut frames = g.mb.alloc_frames(2, limit, Direction::BottomUp).unwrap();
    let (a, b) = (frames.next().unwrap(), frames.next().unwrap());
    let (a, b) = (FrameRange::from_frame(a), FrameRange::from_frame(b));
    let target = b.pfns().start();
    let mut a = g.mmu.protect(a).unwrap();
    let b = g.mmu.protect(b).unwrap();
    let mut l1 = TableBuilder::<U1>::new(a.next().unwrap());
    // SAFETY: the table is never hooked into a live tree; a read-only leaf may map any frame.
    unsafe { l1.set_leaf(7, Pte::new(target, PageTableFlags::PRESENT)) }.unwrap();
    let table = g.mmu.new_table(l1).unwrap();
    let leaf = |g: &mut Guest| g.mmu.entry(table.as_table(), 7).unwrap();
    assert!(!leaf(&mut g).flags().contains(PageTableFlags::WRITABLE));

    let b = g.mmu.release(b).unwrap().into_free();
    assert!(
        !leaf(&mut g).flags().contains(PageTableFlags::WRITABLE),
        "release made the caller's read-only leaf writable"
    );
    let t = target.as_u64();
    let va = g.layout.pfn_to_va(t).unwrap();
    assert_eq!(g.xen().store(va), Ok(t), "the released frame is writable");

    let b = g.mmu.protect(b).unwrap();
    let pinned = g.mmu.pin(table).unwrap();
    let f = g.xen().frame(t);
    assert_eq!(f.writable_mappings(), 0, "protected {t:#x}: {f:?}");
    assert_eq!(g.xen().store(va), Err(Fault::ReadOnly { level: 1 }));
    assert_eq!(g.xen().frame(pinned.pfn().as_u64()).ty, PageType::L1);
    g.xen().audit().unwrap();
    let _ = (pinned, b);
}

/// `protect` changes only writable mappings of the frames: frames already mapped read-only
/// (protected before, or the bootstrap tables, which the domain builder maps read-only) cost
/// no entry and no TLB flush, and stay as they are.
#[test]
fn protecting_frames_without_a_writable_mapping_changes_nothing() {
    use crate::mmu::PhaseCount;
    use hal_core::RawMmu;
    let mut g = common::boot_queued(DomainConfig::mib(64));
    let p = g.after_bootstrap(3);
    let frames =
        g.mb.alloc_frames(3, (p + 3) * 4096, Direction::TopDown)
            .unwrap();
    let range = frames.pfns();
    let _ = frames;
    let total = |g: &Guest| g.mmu.raw().counters().total();
    let before = total(&g);
    // SAFETY: frames of this test's, which nothing maps but the initial mapping.
    unsafe { g.mmu.raw_mut().protect(range) }.unwrap();
    let once = total(&g);
    let want = PhaseCount {
        hypercalls: before.hypercalls + 2,
        entries: before.entries + 3 + 1,
        mmu_update: before.mmu_update + 1,
        mmuext_op: before.mmuext_op + 1,
        ..before
    };
    assert_eq!(once, want, "three entries made read-only, one TLB flush");
    for again in [range, g.boot_tables] {
        // SAFETY: as above; the bootstrap tables are read-only already.
        unsafe { g.mmu.raw_mut().protect(again) }.unwrap();
        assert_eq!(
            total(&g),
            once,
            "protect {again:?} again: nothing to change"
        );
    }
    // Through the initial mapping (no direct map yet).
    for pfn in range.iter().chain(g.boot_tables.iter()) {
        let va = g.layout.pfn_to_va(pfn.as_u64()).unwrap();
        assert_eq!(
            g.xen().store(va),
            Err(Fault::ReadOnly { level: 1 }),
            "{pfn:?}"
        );
    }
    g.xen().audit().unwrap();
}

/// The direct map's leaves are read-only exactly for the frames that must have no writable
/// mapping (the tables, the bootstrap tables); the frames on either side of the bootstrap
/// tables and of `pgt_buf`'s used part are ordinary memory, mapped writable.
#[test]
fn only_table_frames_are_mapped_read_only_at_their_edges() {
    let mut g = boot(DomainConfig::mib(64));
    let fin = direct_map(&mut g, HEADROOM);
    let boot_tables = g.boot_tables;
    let edges = [
        boot_tables.start().as_u64() - 1,
        boot_tables.end(),
        fin.used.start().as_u64() - 1,
    ];
    for pfn in edges {
        assert!(!g.xen().frame(pfn).is_table(), "pfn {pfn:#x} is no table");
        assert_eq!(
            g.xen().store(Guest::va(pfn)),
            Ok(pfn),
            "pfn {pfn:#x} writable"
        );
    }
    for pfn in [boot_tables.start().as_u64(), boot_tables.end() - 1] {
        assert_eq!(
            g.xen().store(Guest::va(pfn)),
            Err(Fault::ReadOnly { level: 1 }),
            "bootstrap table {pfn:#x}"
        );
    }
    // One writable run across the bootstrap tables' last frame and the frame after them, in a
    // table of the caller's: only the table frame's leaf is written read-only.
    let mut buf = make_buf(&mut g, 0);
    let mut t = hal_core::FreshTable::<U1>::new(buf.alloc().unwrap());
    let last = boot_tables.end() - 1;
    let run = hal_core::EntryRun {
        first: Pte::new(
            pfn(last),
            PageTableFlags::PRESENT | PageTableFlags::WRITABLE,
        ),
        step: 1,
        count: 2,
    };
    // SAFETY: the table is never hooked; the leaves name the domain's own frames.
    unsafe { g.mmu.put_leaves(&mut t, 0, &run) }.unwrap();
    let t = g.mmu.finish_table(t).unwrap();
    let rw =
        |i: usize| g.xen().raw_entry(t.pfn().as_u64(), i) & PageTableFlags::WRITABLE.bits() != 0;
    assert!(!rw(0), "the bootstrap table's leaf is read-only");
    assert!(rw(1), "the frame after the bootstrap tables stays writable");
    let _ = (t, buf);
    g.xen().audit().unwrap();
}

#[test]
fn slots_a_refused_batch_dropped_are_written_again_before_a_fresh_table_is_finished() {
    use hal_core::{EntryRun, FreshTable};
    // A domU (Xen refuses PCD in a table's entries), fills queued (no plain stores).
    let mut g = super::common::boot_queued(DomainConfig {
        cache_attrs: false,
        ..DomainConfig::mib(64)
    });
    let _ = direct_map(&mut g, HEADROOM);
    let l2 = direct_map_l2(&mut g);
    let own = |g: &mut Guest| g.mb.alloc_frame(u64::MAX, Direction::BottomUp).unwrap();
    let (data, other) = (own(&mut g), own(&mut g));
    let rw = PageTableFlags::PRESENT | PageTableFlags::WRITABLE;
    let leaf = EntryRun::one(Pte::new(data.pfn(), rw));
    let table_frame = FrameRange::from_frame(own(&mut g));
    let mut reserved = g.mmu.protect(table_frame).unwrap();
    let frame = reserved.next().unwrap();
    let f = frame.pfn().as_u64();
    // The frame's first life: a table whose slot 7 maps `data`, retired and made
    // page-table-ready again. Slot 7 still holds that entry.
    let mut t = FreshTable::<U1>::new(frame);
    // SAFETY: `data` is the test's own frame; the table is never hooked.
    unsafe { g.mmu.put_leaves(&mut t, 7, &leaf) }.unwrap();
    let t = g.mmu.finish_table(t).unwrap();
    let free = g.mmu.retire(t).unwrap().into_free();
    let mut reserved = g.mmu.protect(FrameRange::from_frame(free)).unwrap();
    let frame = reserved.next().unwrap();
    assert_ne!(g.xen().raw_entry(f, 7), 0, "the old entry is still there");
    // A hook Xen will refuse (its child maps a frame uncached), queued first.
    let child_frame = FrameRange::from_frame(own(&mut g));
    let mut reserved = g.mmu.protect(child_frame).unwrap();
    let mut child = TableBuilder::<U1>::new(reserved.next().unwrap());
    let uncached = Pte::new(other.pfn(), rw | PageTableFlags::NO_CACHE);
    // SAFETY: `other` is the test's own frame, and may be mapped uncached.
    unsafe { child.set_leaf(0, uncached) }.unwrap();
    let child = g.mmu.new_table(child).unwrap();
    let hooked = g.mmu.hook(l2, 100, child).unwrap();
    // Second life: slots 0..10 written empty and slot 10 queued behind the hook...
    let mut t = FreshTable::<U1>::new(frame);
    // SAFETY: as above.
    unsafe { g.mmu.put_leaves(&mut t, 10, &leaf) }.unwrap();
    assert_eq!(t.next_slot(), 11);
    // ...and dropped with it: the refusal reaches the caller of the flush, not the table.
    let e = hooked.flush(&mut g.mmu).unwrap_err();
    assert_eq!(e.errno(), Some(XenErrno::EINVAL));
    assert_eq!(g.mmu.raw().queued(), 0, "the rest of the batch dropped");
    assert_eq!(g.mmu.raw().discarded(), 1);
    // Finished, the table holds no entry it was not given: every slot is written again
    // (empty: the entries put before the refusal are lost, not half kept).
    let t = g.mmu.finish_table(t).unwrap();
    for i in 0..512 {
        assert_eq!(g.xen().raw_entry(f, i), 0, "slot {i} of a finished table");
    }
    g.xen().audit().unwrap();
    let _ = (t, data, other);
}
