//! Fault injection: a backend that refuses. Every failure is a typed error carrying the
//! backend's cause, the frames come back in the state their type says, and memblock stays
//! consistent: nothing is lost, nothing is handed out as memory while read-only.

mod common;

use common::sim::{caps, FState, Op, SimError};
use common::{world, World};
use hal_core::direct_map::plan::LINUX_PAGE_OFFSET;
use hal_core::direct_map::{self, count_tables, BuildError, DirectMapSpec, Target};
use hal_core::memblock::{Direction, Region};
use hal_core::memmap::{MemRegion, RegionKind};
use hal_core::mmu::{RetireError, SwitchError, WriteError};
use hal_core::pgt_buf::{FinishError, NewError};
use hal_core::table::EntryError;
use hal_core::{
    AnyFrame, BackendError, Caps, ChildOf, ErrorKind, Frame, FrameRange, Free, PageSizes,
    PageTableFlags, PgtBuf, PgtReserved, Pinned, PinnedRO, PreviousRoot, Pte, RawMmu, ReleasedRW,
    Root, StateKind, TableBuilder, TableLevel, Unsettled,
};

type L4 = Root;
type L3 = ChildOf<L4>;
type L2 = ChildOf<L3>;
type L1 = ChildOf<L2>;

const MIB: u64 = 1 << 20;
const FLAGS: PageTableFlags = PageTableFlags::PRESENT.union(PageTableFlags::WRITABLE);

fn small(caps: Caps) -> World {
    let map = [MemRegion {
        start: 0,
        len: 64 * MIB,
        kind: RegionKind::Ram,
    }];
    world(&map, caps).unwrap()
}

type Snapshot = (Vec<Region>, Vec<Region>);

fn snap(w: &World) -> Snapshot {
    (w.mb.memory().to_vec(), w.mb.reserved().to_vec())
}

fn spec() -> DirectMapSpec {
    DirectMapSpec {
        base: LINUX_PAGE_OFFSET,
        page_sizes: PageSizes::all(),
    }
}

/// A buffer of exactly count + 1 + `headroom` frames (bottom-up, right after the boot tables).
fn buffer(w: &mut World, headroom: u64) -> (PgtBuf, u64) {
    let c = w.mmu.caps();
    let ro = if c.tables_read_only {
        vec![w.boot]
    } else {
        vec![]
    };
    let count = count_tables(&w.ranges, &ro, &spec(), &c).unwrap().total();
    let buf = PgtBuf::new(
        &mut w.mmu,
        &mut w.mb,
        count + 1 + headroom,
        u64::MAX,
        Direction::BottomUp,
    )
    .unwrap();
    (buf, count)
}

/// Builds the direct map under a new root, pins and switches to it, registers the windows.
/// The new root is `w.live` afterwards.
fn built(w: &mut World, buf: &mut PgtBuf) {
    let mut root = TableBuilder::new(buf.alloc().unwrap());
    w.mmu.inherit_root(&w.live, &mut root, (273, 274)).unwrap();
    let ranges = w.ranges.clone();
    // SAFETY: the direct map's slot is empty in the new root.
    let b = unsafe {
        direct_map::build(
            &mut w.mmu,
            buf,
            Target::New(&mut root),
            &ranges,
            &[],
            &spec(),
            FLAGS,
        )
    }
    .unwrap();
    b.pending.flush(&mut w.mmu).unwrap();
    let root = w.mmu.new_table(root).unwrap();
    let root = w.mmu.pin(root).unwrap();
    // SAFETY: the root inherited the kernel's slot.
    let _boot = unsafe { w.mmu.switch_root(&mut w.live, root) }.unwrap();
    for r in &ranges {
        // SAFETY: mapped at the base by the new root.
        unsafe {
            w.mmu
                .raw_mut()
                .add_window(LINUX_PAGE_OFFSET + r.start().addr(), *r)
        }
        .unwrap();
    }
}

#[test]
fn protect_refused_frames_come_back_unsettled() {
    for c in [caps::NATIVE, caps::XEN] {
        let mut w = small(c);
        let before = snap(&w);
        w.mmu.raw_mut().fail(Op::Protect, 1, ErrorKind::Busy, 3);
        let NewError::Protect(f) =
            PgtBuf::new(&mut w.mmu, &mut w.mb, 8, u64::MAX, Direction::TopDown).unwrap_err()
        else {
            panic!("not a protect failure")
        };
        assert_eq!(f.kind(), ErrorKind::Busy);
        assert_eq!(
            (f.error.op, f.error.kind, f.error.applied),
            (Op::Protect, ErrorKind::Busy, 3)
        );
        // The frames come back Unsettled: some may be read-only already, some not, so they
        // are neither page-table-ready nor memory.
        let value: Unsettled = f.value;
        let pfns = value.pfns();
        assert_eq!(pfns.len(), 8);
        let protected: Vec<u64> = w.mmu.raw().states().keys().copied().collect();
        assert!(pfns.iter().take(3).all(|p| protected.contains(&p.as_u64())));
        // Only settling makes them memory again; then memblock takes them back.
        let released: FrameRange<ReleasedRW> = w.mmu.settle(value).unwrap();
        assert!(pfns
            .iter()
            .all(|p| w.mmu.raw().state_of(p.as_u64()).is_none()));
        w.mb.free_frames(released.into_free()).unwrap();
        assert_eq!(snap(&w), before);
        assert!(w.mmu.raw().violations.is_empty());
    }
}

#[test]
fn release_refused_then_retried() {
    let mut w = small(caps::XEN);
    let frames = w.mb.alloc_frames(4, u64::MAX, Direction::TopDown).unwrap();
    let pfns = frames.pfns();
    let reserved = w.mmu.protect(frames).unwrap();
    w.mmu.raw_mut().fail(Op::Release, 1, ErrorKind::Refused, 1);
    let f = w.mmu.release(reserved).unwrap_err();
    assert_eq!(f.error.kind, ErrorKind::Refused);
    let again: Unsettled = f.value;
    assert_eq!(again.pfns(), pfns);
    // The flush after a successful release can fail too: still Unsettled.
    w.mmu.raw_mut().fail(Op::Flush, 1, ErrorKind::Other, 0);
    let f = w.mmu.settle(again).unwrap_err();
    assert_eq!((f.error.op, f.error.kind), (Op::Flush, ErrorKind::Other));
    let free = w.mmu.settle(f.value).unwrap().into_free();
    w.mb.free_frames(free).unwrap();
    assert!(w.mmu.raw().violations.is_empty());
}

#[test]
fn finish_with_release_refused() {
    let mut w = small(caps::XEN);
    let (mut buf, count) = buffer(&mut w, 10);
    let whole = buf.range();
    built(&mut w, &mut buf);
    assert_eq!(buf.used(), count + 1);
    let before = snap(&w);
    w.mmu.raw_mut().fail(Op::Release, 1, ErrorKind::Refused, 4);
    let err = buf.finish(&mut w.mmu, &mut w.mb).unwrap_err();
    let FinishError::Release(f) = err else {
        panic!("{err:?}")
    };
    assert_eq!(f.error.op, Op::Release);
    let tail: Unsettled = f.value;
    assert_eq!(tail.pfns().end(), whole.end());
    assert_eq!(tail.len(), 10);
    // memblock untouched: the whole buffer is still reserved.
    assert_eq!(snap(&w), before);
    // No tail frame is plain memory but the four the backend got to; none is handed out.
    let plain = tail
        .pfns()
        .iter()
        .filter(|p| w.mmu.raw().state_of(p.as_u64()).is_none())
        .count();
    assert_eq!(plain, 4);
    // Retry: released, then memblock takes them.
    let tail = w.mmu.settle(tail).unwrap().into_free();
    let tail_pfns = tail.pfns();
    w.mb.free_frames(tail).unwrap();
    let free: Vec<_> = w.mb.free_ranges().collect();
    let (s, e) = tail_pfns.bytes();
    assert!(free.iter().any(|r| r.start() <= s && e <= r.end()));
    assert!(w.mmu.raw().violations.is_empty());
}

#[test]
fn finish_with_memblock_full() {
    let mut w = small(caps::XEN);
    let (mut buf, _) = buffer(&mut w, 6);
    let top = buf.range().end();
    // A frame right after the buffer keeps its reservation merged past the tail, so giving
    // the tail back splits a region.
    let guard = w.mb.alloc_frame(u64::MAX, Direction::BottomUp).unwrap();
    assert_eq!(guard.pfn().as_u64(), top);
    built(&mut w, &mut buf);
    // Fill the reserved set (reservations outside memory are allowed).
    let mut i = 0;
    while w.mb.reserved().len() < common::N {
        let a = (1 << 40) + i * 0x10000;
        w.mb.reserve(a, a + 0x1000).unwrap();
        i += 1;
    }
    let before = snap(&w);
    let err = buf.finish(&mut w.mmu, &mut w.mb).unwrap_err();
    let FinishError::Memblock(f) = err else {
        panic!("{err:?}")
    };
    assert_eq!(f.error, hal_core::memblock::MemblockError::Capacity);
    assert_eq!(f.error.kind(), ErrorKind::Capacity);
    // The tail was released: it is Free, ours, writable in the direct map.
    let tail: FrameRange<Free> = f.value;
    assert_eq!(tail.len(), 6);
    assert_eq!(snap(&w), before);
    for p in tail.pfns().iter() {
        assert!(w.mmu.raw().state_of(p.as_u64()).is_none());
        let t = w
            .mmu
            .translate(w.live.table(), LINUX_PAGE_OFFSET + p.addr())
            .unwrap()
            .unwrap();
        assert!(t.leaf.flags().contains(PageTableFlags::WRITABLE), "{p:?}");
    }
    // Room again: memblock takes the tail.
    // SAFETY: the test's own reservation outside memory; nobody holds frames of it.
    unsafe { w.mb.unreserve(1 << 40, (1 << 40) + 0x1000) }.unwrap();
    w.mb.free_frames(tail).unwrap();
    w.mb.free_frame(guard).unwrap();
    assert!(w.mmu.raw().violations.is_empty());
}

#[test]
fn build_with_writes_refused() {
    for (c, nth) in [(caps::XEN, 1), (caps::XEN, 7), (caps::NATIVE, 2)] {
        let mut w = small(c);
        let (mut buf, count) = buffer(&mut w, 5);
        let whole = buf.range();
        let mut root = TableBuilder::new(buf.alloc().unwrap());
        w.mmu.inherit_root(&w.live, &mut root, (273, 274)).unwrap();
        w.mmu.raw_mut().fail(Op::Write, nth, ErrorKind::Refused, 0);
        let ranges = w.ranges.clone();
        // SAFETY: the direct map's slot is empty in the new root.
        let err = unsafe {
            direct_map::build(
                &mut w.mmu,
                &mut buf,
                Target::New(&mut root),
                &ranges,
                &[],
                &spec(),
                FLAGS,
            )
        }
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Refused);
        let BuildError::Backend(SimError { op: Op::Write, .. }) = err else {
            panic!("{err:?}")
        };
        assert!(buf.used() <= count + 1);
        // The tables made so far stay in the used part: read-only, never memory.
        let used_end = buf.end();
        let before = snap(&w);
        let fin = buf.finish(&mut w.mmu, &mut w.mb).unwrap();
        assert_eq!(fin.used.end(), used_end);
        assert_eq!(fin.released.end(), whole.end());
        for p in fin.used.iter() {
            assert!(
                w.mmu.raw().state_of(p.as_u64()).is_some(),
                "{p:?} in the used part is plain memory"
            );
        }
        for p in fin.released.iter() {
            assert!(w.mmu.raw().state_of(p.as_u64()).is_none());
        }
        // memblock: exactly the tail came back.
        assert_eq!(
            w.mb.free_bytes(),
            before_free(&before) + fin.released.len() * 4096
        );
        assert!(w.mmu.raw().violations.is_empty());
        let _ = root;
    }
}

fn before_free(s: &Snapshot) -> u64 {
    let mut mb = hal_core::memblock::Memblock::<{ common::N }>::new();
    for r in &s.0 {
        // SAFETY: a scratch memblock over the same test memory; it hands nothing out.
        unsafe { mb.add_memory(r.start(), r.end()) }.unwrap();
    }
    for r in &s.1 {
        mb.reserve(r.start(), r.end()).unwrap();
    }
    mb.free_bytes()
}

#[test]
fn new_table_refused_builder_comes_back() {
    let mut w = small(caps::XEN);
    let (mut buf, _) = buffer(&mut w, 4);
    let mut t = TableBuilder::<L1>::new(buf.alloc().unwrap());
    let data = w.ranges[0].end() - 1;
    // SAFETY: a test table, never hooked.
    unsafe { t.set_leaf(7, Pte::new(hal_core::Pfn::new(data).unwrap(), FLAGS)) }.unwrap();
    let pfn = t.pfn();
    w.mmu.raw_mut().fail(Op::Write, 1, ErrorKind::Other, 0);
    let f = w.mmu.new_table(t).unwrap_err();
    assert_eq!(f.error.op, Op::Write);
    let t: TableBuilder<L1> = f.value;
    assert_eq!(t.pfn(), pfn);
    assert_eq!(t.entry(7).unwrap().pfn().as_u64(), data);
    assert_eq!(w.mmu.raw().state_of(pfn.as_u64()), Some(FState::Protected));
    // A refused flush after the write gives the builder back as well: `Ok` means written.
    w.mmu.raw_mut().fail(Op::Flush, 1, ErrorKind::Other, 0);
    let f = w.mmu.new_table(t).unwrap_err();
    assert_eq!(f.error.op, Op::Flush);
    let t: TableBuilder<L1> = f.value;
    let table = w.mmu.new_table(t).unwrap();
    assert_eq!(w.mmu.raw().queued(), 0, "Ok from new_table means written");
    let _: &Frame<PinnedRO<L1>> = &table;
    assert_eq!(
        w.mmu.raw().state_of(pfn.as_u64()),
        Some(FState::Table {
            level: TableLevel::L1,
            pinned: false
        })
    );
    // Retire it: writable again, then memory.
    let free: Frame<Free> = w.mmu.retire(table).unwrap().into_free();
    assert_eq!(w.mmu.raw().state_of(pfn.as_u64()), None);
    let _ = (free, buf);
}

#[test]
fn pin_and_switch_refused() {
    let mut w = small(caps::XEN);
    let (mut buf, _) = buffer(&mut w, 4);
    let mut root = TableBuilder::<L4>::new(buf.alloc().unwrap());
    w.mmu.inherit_root(&w.live, &mut root, (273, 274)).unwrap();
    let root = w.mmu.new_table(root).unwrap();
    let boot = w.mmu.raw().root();
    w.mmu.raw_mut().fail(Op::Pin, 1, ErrorKind::Refused, 0);
    let f = w.mmu.pin(root).unwrap_err();
    assert_eq!(f.error.op, Op::Pin);
    // The table comes back unpinned; pin it for real.
    let root: Frame<PinnedRO<L4>> = f.value;
    let root: Pinned<L4> = w.mmu.pin(root).unwrap();
    w.mmu.raw_mut().fail(Op::SwitchRoot, 1, ErrorKind::Busy, 0);
    // SAFETY: the root inherited the kernel's slot.
    let f = unsafe { w.mmu.switch_root(&mut w.live, root) }.unwrap_err();
    assert!(matches!(
        f.error,
        SwitchError::Backend(SimError {
            kind: ErrorKind::Busy,
            ..
        })
    ));
    assert_eq!(w.mmu.raw().root(), boot, "still on the boot root");
    assert_eq!(
        w.live.pfn().as_u64(),
        boot,
        "the handle still names the boot root"
    );
    let root: Pinned<L4> = f.value;
    let root_pfn = root.pfn();
    // SAFETY: as above.
    let previous = unsafe { w.mmu.switch_root(&mut w.live, root) }.unwrap();
    assert!(matches!(previous, PreviousRoot::Boot(p) if p.as_u64() == boot));
    assert_eq!(w.mmu.raw().root(), root_pfn.as_u64());
    assert_eq!(w.live.pfn(), root_pfn);
    assert!(!w.live.is_boot_root());
    // A second root, switched to: the first comes back, pinned, and can be unpinned and
    // retired (it is no longer live).
    let mut second = TableBuilder::<L4>::new(buf.alloc().unwrap());
    w.mmu
        .inherit_root(&w.live, &mut second, (273, 274))
        .unwrap();
    let second = w.mmu.new_table(second).unwrap();
    let second = w.mmu.pin(second).unwrap();
    // SAFETY: the second root inherited the first's slots.
    let previous = unsafe { w.mmu.switch_root(&mut w.live, second) }.unwrap();
    let PreviousRoot::Owned(first) = previous else {
        panic!("{previous:?}")
    };
    assert_eq!(first.pfn(), root_pfn);
    let first = w.mmu.unpin(first).unwrap();
    // It still points at the kernel's tables (inherited): refused, nothing changed.
    let e = w.mmu.retire(first).unwrap_err();
    let RetireError::HasChild { index, table } = e else {
        panic!("{e:?}")
    };
    assert_eq!(index, common::sim::KERNEL_SLOT);
    assert_eq!(
        w.mmu.raw().state_of(table.pfn().as_u64()),
        Some(FState::Table {
            level: TableLevel::L4,
            pinned: false
        })
    );
    assert!(w.mmu.raw().violations.is_empty());
    let _ = (table, buf);
}

#[test]
fn hook_refused_child_comes_back() {
    let mut w = small(caps::XEN);
    let (mut buf, _) = buffer(&mut w, 8);
    built(&mut w, &mut buf);
    let root = w.live.table();
    let l3 = w
        .mmu
        .new_table(TableBuilder::<L3>::new(buf.alloc().unwrap()))
        .unwrap();
    let l3_pfn = l3.pfn();
    // Slot 273 holds the direct map: occupied.
    let f = w.mmu.hook(root, 273, l3).unwrap_err();
    assert!(matches!(
        f.error,
        WriteError::Entry(EntryError::Occupied(273))
    ));
    // Slot 512 does not exist.
    let f = w.mmu.hook(root, 512, f.value).unwrap_err();
    assert!(matches!(
        f.error,
        WriteError::Entry(EntryError::IndexOutOfRange(512))
    ));
    // The backend refuses.
    w.mmu.raw_mut().fail(Op::Write, 1, ErrorKind::Refused, 0);
    let f = w.mmu.hook(root, 300, f.value).unwrap_err();
    assert!(matches!(
        f.error,
        WriteError::Backend(SimError {
            op: Op::Write,
            kind: ErrorKind::Refused,
            ..
        })
    ));
    let l3: Frame<PinnedRO<L3>> = f.value;
    assert_eq!(l3.pfn(), l3_pfn);
    // Hooked at last; the tree owns it. Unhook gives it back, retire makes it memory.
    w.mmu.hook(root, 300, l3).unwrap().defer();
    let child = w.mmu.child(root, 300).unwrap().unwrap();
    assert_eq!(child.pfn(), l3_pfn);
    // SAFETY: no TableRef into the child is used afterwards.
    let (l3, p) = unsafe { w.mmu.unhook(root, 300) }.unwrap().unwrap();
    p.flush(&mut w.mmu).unwrap();
    w.mmu.raw_mut().fail(Op::Retire, 1, ErrorKind::Busy, 0);
    let e = w.mmu.retire(l3).unwrap_err();
    let RetireError::Backend(f) = e else {
        panic!("{e:?}")
    };
    assert_eq!(f.error.op, Op::Retire);
    // Part way: no table any more, maybe partly writable: Unsettled, settled by a release.
    let unsettled: Unsettled = f.value;
    assert_eq!(unsettled.pfns().start(), l3_pfn);
    let mut settled = w.mmu.settle(unsettled).unwrap();
    let released: Frame<ReleasedRW> = settled.next().unwrap();
    assert_eq!(released.pfn(), l3_pfn);
    // Writable again in the direct map.
    let t = w
        .mmu
        .translate(root, LINUX_PAGE_OFFSET + l3_pfn.addr())
        .unwrap()
        .unwrap();
    assert!(t.leaf.flags().contains(PageTableFlags::WRITABLE));
    assert!(w.mmu.raw().violations.is_empty());
    let _ = (released, buf);
}

#[test]
fn sim_writes_a_writable_leaf_of_a_table_read_only() {
    // A backend with read-only tables downgrades a writable 4 KiB leaf for a table frame
    // (RawMmu::write); the sim does as the Xen PV backend does.
    let mut w = small(caps::XEN);
    let (mut buf, _) = buffer(&mut w, 8);
    built(&mut w, &mut buf);
    let root = w.live.table();
    let l1_pfn = {
        let l3 = w.mmu.child(root, 273).unwrap().unwrap();
        let l2 = w.mmu.child(l3, 0).unwrap().unwrap();
        w.mmu.child(l2, 0).unwrap().unwrap().pfn()
    };
    // A fresh L1 at slot 511 of the kernel's L2 (empty), mapping the direct map's L1 frame.
    let l1 = w
        .mmu
        .new_table(TableBuilder::<L1>::new(buf.alloc().unwrap()))
        .unwrap();
    let l1_ref = l1.as_table();
    let before = w.mmu.raw().counts.downgraded;
    // SAFETY: the slots are empty and the page is not in use.
    unsafe { w.mmu.map_leaves(l1_ref, 0, &[Pte::new(l1_pfn, FLAGS)]) }
        .unwrap()
        .defer();
    assert_eq!(w.mmu.raw().counts.downgraded, before + 1);
    let got = w.mmu.raw().peek(l1.pfn().as_u64(), 0).unwrap();
    assert_eq!(
        Pte::from_bits(got),
        Pte::new(l1_pfn, FLAGS - PageTableFlags::WRITABLE),
        "stored read-only"
    );
    assert!(w.mmu.raw().violations.is_empty());
    // Read-only is written as given.
    // SAFETY: as above.
    unsafe {
        w.mmu
            .map_leaves(l1_ref, 1, &[Pte::new(l1_pfn, PageTableFlags::PRESENT)])
    }
    .unwrap()
    .defer();
    assert_eq!(w.mmu.raw().counts.downgraded, before + 1);
    let _ = (l1, root, buf);
}

#[test]
fn erased_frames_convert_back_checked() {
    let mut w = small(caps::NATIVE);
    let f = w.mb.alloc_frame(u64::MAX, Direction::TopDown).unwrap();
    let pfn = f.pfn();
    let any: AnyFrame = f.erase();
    assert_eq!((any.pfn(), any.kind()), (pfn, StateKind::Free));
    let any = any.into_typed::<PgtReserved>().unwrap_err();
    let any = any.into_typed::<ReleasedRW>().unwrap_err();
    let any = any.into_typed::<PinnedRO<L1>>().unwrap_err();
    let f: Frame<Free> = any.into_typed().unwrap();
    w.mb.free_frame(f).unwrap();
    // A table's level is part of its tag.
    let (mut buf, _) = buffer(&mut w, 2);
    let t = w
        .mmu
        .new_table(TableBuilder::<L2>::new(buf.alloc().unwrap()))
        .unwrap();
    let any = t.erase();
    assert_eq!(any.kind(), StateKind::PinnedRO(TableLevel::L2));
    let any = any.into_typed::<PinnedRO<L1>>().unwrap_err();
    let t: Frame<PinnedRO<L2>> = any.into_typed().unwrap();
    let _ = (t, buf);
}

/// A fresh table on a backend that applies every write when it is made (the sim drops
/// nothing: `MAY_DISCARD` is false): a refused run leaves the slots before it written and
/// counted, and a refused flush in `finish_table` gives the table back with every slot
/// counted, so finishing it again writes nothing more. Either way the table that comes out is
/// complete. (On Xen PV, where a refused batch drops queued slots, the table starts over:
/// backend-xen-pv's `slots_a_refused_batch_dropped_are_written_again_before_a_fresh_table_is_finished`.)
#[test]
fn a_fresh_table_refused_where_nothing_is_dropped_keeps_its_slots() {
    use hal_core::backend::EntryRun;
    use hal_core::FreshTable;
    for c in [caps::NATIVE, caps::XEN] {
        let mut w = small(c);
        let (mut buf, _) = buffer(&mut w, 4);
        let data = hal_core::Pfn::new(w.ranges[0].end() - 1).unwrap();
        let leaf = EntryRun::one(Pte::new(data, FLAGS));
        let mut t = FreshTable::<L1>::new(buf.alloc().unwrap());
        // SAFETY: a test table, never hooked.
        unsafe { w.mmu.put_leaves(&mut t, 3, &leaf) }.unwrap();
        assert_eq!(t.next_slot(), 4);
        // The gap 4..10 is written, the run at 10 refused: the gap counts, the run does not.
        w.mmu.raw_mut().fail(Op::Write, 2, ErrorKind::Other, 0);
        // SAFETY: as above.
        let e = unsafe { w.mmu.put_leaves(&mut t, 10, &leaf) }.unwrap_err();
        assert!(matches!(
            e,
            WriteError::Backend(SimError { op: Op::Write, .. })
        ));
        assert_eq!(
            t.next_slot(),
            10,
            "{c:?}: the slots before the refused run stand"
        );
        // SAFETY: as above.
        unsafe { w.mmu.put_leaves(&mut t, 10, &leaf) }.unwrap();
        // A refused flush in finish_table: every slot was written and stays counted.
        w.mmu.raw_mut().fail(Op::Flush, 1, ErrorKind::Other, 0);
        let f = w.mmu.finish_table(t).unwrap_err();
        assert_eq!(f.error.op, Op::Flush);
        let t: FreshTable<L1> = f.value;
        assert_eq!(t.next_slot(), 512, "{c:?}: every slot written");
        let before = w.mmu.raw().counts.entries_written;
        let table = w.mmu.finish_table(t).unwrap();
        assert_eq!(
            w.mmu.raw().counts.entries_written,
            before,
            "{c:?}: nothing to write again"
        );
        assert_eq!(w.mmu.entry(table.as_table(), 3).unwrap(), leaf.first);
        assert_eq!(w.mmu.entry(table.as_table(), 10).unwrap(), leaf.first);
        // Complete (the sim refuses to pin a fresh table not written in full), and lost
        // nothing: retired, it is memory again.
        let table = w.mmu.pin(table).unwrap();
        let table = w.mmu.unpin(table).unwrap();
        let free: Frame<Free> = w.mmu.retire(table).unwrap().into_free();
        assert!(
            w.mmu.raw().violations.is_empty(),
            "{:?}",
            w.mmu.raw().violations
        );
        let _ = (free, buf);
    }
}

/// A queuing backend over the sim: fresh-table writes wait in a queue until a submission (a
/// flush, or any other operation), and a refused submission drops the whole queue, as Xen
/// PV's `mmu_update` drops every entry after a refused one (`MAY_DISCARD`).
struct Dropping {
    sim: common::sim::Sim,
    queue: Vec<(hal_core::Pfn, TableLevel, u16, hal_core::EntryRun)>,
    dropped: u64,
}

impl Dropping {
    /// Applies the queue, or drops it if the sim refuses the submission.
    fn submit(&mut self) -> Result<(), SimError> {
        let queue = core::mem::take(&mut self.queue);
        if let Err(e) = self.sim.flush() {
            self.dropped += 1;
            return Err(e);
        }
        for (table, level, first, run) in queue {
            // SAFETY: queued by `fill_fresh`, whose caller promised what the sim's needs.
            if let Err(e) = unsafe { self.sim.fill_fresh(table, level, first, &run) } {
                self.dropped += 1;
                return Err(e);
            }
        }
        Ok(())
    }
}

// SAFETY: every operation is the sim's, after the queued writes it needs are applied; the
// queued writes are the sim's `fill_fresh`, applied in order or dropped (and counted).
unsafe impl RawMmu for Dropping {
    type Error = SimError;
    const MAY_DISCARD: bool = true;
    fn discarded(&self) -> u64 {
        self.dropped
    }
    fn caps(&self) -> Caps {
        self.sim.caps()
    }
    fn name(&self) -> &'static str {
        "dropping sim"
    }
    fn machine_frame(&self, pfn: hal_core::Pfn) -> Result<hal_core::Mfn, SimError> {
        self.sim.machine_frame(pfn)
    }
    fn current_root(&self) -> hal_core::Pfn {
        self.sim.current_root()
    }
    fn foreign_tables(&self) -> &[hal_core::PfnRange] {
        self.sim.foreign_tables()
    }
    unsafe fn protect(&mut self, frames: hal_core::PfnRange) -> Result<(), SimError> {
        self.submit()?;
        // SAFETY: the caller's promise.
        unsafe { self.sim.protect(frames) }
    }
    unsafe fn write(
        &mut self,
        table: hal_core::Pfn,
        level: TableLevel,
        first: u16,
        entries: &[Pte],
    ) -> Result<(), SimError> {
        self.submit()?;
        // SAFETY: the caller's promise.
        unsafe { self.sim.write(table, level, first, entries) }
    }
    unsafe fn fill_fresh(
        &mut self,
        table: hal_core::Pfn,
        level: TableLevel,
        first: u16,
        run: &hal_core::EntryRun,
    ) -> Result<(), SimError> {
        self.queue.push((table, level, first, *run));
        Ok(())
    }
    unsafe fn read(
        &mut self,
        table: hal_core::Pfn,
        level: TableLevel,
        index: u16,
    ) -> Result<Pte, SimError> {
        self.submit()?;
        // SAFETY: the caller's contract, passed on.
        unsafe { self.sim.read(table, level, index) }
    }
    unsafe fn pin(&mut self, table: hal_core::Pfn, level: TableLevel) -> Result<(), SimError> {
        self.submit()?;
        // SAFETY: the caller's promise.
        unsafe { self.sim.pin(table, level) }
    }
    unsafe fn unpin(&mut self, table: hal_core::Pfn, level: TableLevel) -> Result<(), SimError> {
        self.submit()?;
        // SAFETY: the caller's promise.
        unsafe { self.sim.unpin(table, level) }
    }
    unsafe fn retire(&mut self, table: hal_core::Pfn, level: TableLevel) -> Result<(), SimError> {
        self.submit()?;
        // SAFETY: the caller's promise.
        unsafe { self.sim.retire(table, level) }
    }
    unsafe fn switch_root(&mut self, root: hal_core::Pfn) -> Result<(), SimError> {
        self.submit()?;
        // SAFETY: the caller's promise.
        unsafe { self.sim.switch_root(root) }
    }
    unsafe fn release(&mut self, frames: hal_core::PfnRange) -> Result<(), SimError> {
        self.submit()?;
        // SAFETY: the caller's promise.
        unsafe { self.sim.release(frames) }
    }
    unsafe fn add_window(&mut self, va: u64, pfns: hal_core::PfnRange) -> Result<(), SimError> {
        self.submit()?;
        // SAFETY: the caller's promise.
        unsafe { self.sim.add_window(va, pfns) }
    }
    fn flush(&mut self) -> Result<(), SimError> {
        self.submit()
    }
    unsafe fn flush_tlb(&mut self, tlb: &hal_core::TlbBatch) -> Result<(), SimError> {
        self.submit()?;
        // SAFETY: the caller's promise.
        unsafe { self.sim.flush_tlb(tlb) }
    }
}

/// The sim of `small(c)` behind [`Dropping`], with a buffer of 8 frames.
fn dropping(c: Caps) -> (hal_core::Mmu<Dropping>, PgtBuf) {
    let World { mut mb, mmu, .. } = small(c);
    let mut mmu = hal_core::Mmu::new(Dropping {
        sim: mmu.into_raw(),
        queue: Vec::new(),
        dropped: 0,
    });
    let buf = PgtBuf::new(&mut mmu, &mut mb, 8, u64::MAX, Direction::BottomUp).unwrap();
    (mmu, buf)
}

/// The 600 frames from 1024 on, 4 KiB pages, at Linux's base.
const DROPPING_RAM: (u64, u64) = (1024, 1624);

/// Builds `DROPPING_RAM` under `target`, then flushes what the build queued: whether a
/// refusal was reported (by either).
fn build_dropping(mmu: &mut hal_core::Mmu<Dropping>, buf: &mut PgtBuf, target: Target) -> bool {
    let ranges =
        [
            hal_core::PfnRange::new(hal_core::Pfn::new(DROPPING_RAM.0).unwrap(), DROPPING_RAM.1)
                .unwrap(),
        ];
    let spec = DirectMapSpec {
        base: LINUX_PAGE_OFFSET,
        page_sizes: PageSizes::SIZE_4K,
    };
    // SAFETY: the root's slots are empty; the frames are the sim's RAM.
    let built = unsafe { direct_map::build(mmu, buf, target, &ranges, &[], &spec, FLAGS) };
    match built {
        Ok(b) => b.pending.flush(mmu).is_err(),
        Err(BuildError::Backend(_)) => true,
        Err(e) => panic!("{e:?}"),
    }
}

/// Walks the tree under `root` in the sim's memory (the tests' own walker, `oracle::walk`):
/// every table an entry names was written, every leaf maps the frame its address names (the
/// direct map at slot 273), no other root slot is used. Returns the leaves.
fn leaves_under(sim: &common::sim::Sim, root: u64) -> u64 {
    for s in (0..512u16).filter(|&s| s != 273) {
        assert_eq!(sim.peek(root, s), Some(0), "root slot {s}");
    }
    let tree = common::oracle::walk(sim, root, 273..274);
    assert!(tree.errors.is_empty(), "{:?}", tree.errors);
    for l in &tree.leaves {
        // The direct map: the page at `base + pfn * 4 KiB` maps `pfn`.
        assert_eq!(l.va, LINUX_PAGE_OFFSET + l.pfn * 4096, "leaf {l:?}");
    }
    tree.leaves.len() as u64
}

/// On each caps, with and without a refused first submission: `build` makes a root in its
/// own way, builds `DROPPING_RAM` into it (`build_dropping`), makes it a table and pins it
/// (the sim refuses to pin a fresh table not written in full), and returns it. The refusal
/// is reported, one submission dropped, and the root maps every page or none.
fn each_dropping_case(
    build: impl Fn(&mut hal_core::Mmu<Dropping>, &mut PgtBuf) -> (bool, Pinned<L4>),
) {
    for c in [caps::NATIVE, caps::XEN] {
        for refuse in [true, false] {
            let (mut mmu, mut buf) = dropping(c);
            if refuse {
                mmu.raw_mut().sim.fail(Op::Flush, 1, ErrorKind::Other, 0);
            }
            let (refused, root) = build(&mut mmu, &mut buf);
            assert_eq!(refused, refuse, "{c:?}: the refusal, reported");
            assert_eq!(mmu.raw().dropped, u64::from(refuse));
            let expect = if refuse { 0 } else { 600 };
            assert_eq!(
                leaves_under(&mmu.raw().sim, root.pfn().as_u64()),
                expect,
                "{c:?}, refused: {refuse}: leaves under the root"
            );
            let _ = (root, buf);
        }
    }
}

/// A build into a root staged in a `TableBuilder` (`Target::New`) on a backend that drops
/// queued writes when a submission is refused: a subtree goes into the builder only once its
/// writes are applied. Here the first submission is refused: the build reports it and the
/// staged root stays empty. (Had the subtree gone in with its writes queued, the caller's own
/// flush would have dropped them, and safe `new_table` would have made a root over a level-3
/// table that was never written.) Without a refusal, the same build is complete.
#[test]
fn a_staged_root_takes_a_subtree_only_once_its_writes_are_applied() {
    each_dropping_case(|mmu, buf| {
        let mut root = TableBuilder::new(buf.alloc().unwrap());
        let refused = build_dropping(mmu, buf, Target::New(&mut root));
        // The caller makes the root whatever happened (safe).
        let root = mmu.new_table(root).unwrap();
        (refused, mmu.pin(root).unwrap())
    });
}

/// The same on a root streamed in place (`Target::Fresh`): everything the build queued is
/// dropped by the caller's refused flush, so finishing the root starts it over (every slot
/// written again, empty: the subtree is lost, never half there). Without a refusal the build
/// is complete.
#[test]
fn a_fresh_root_whose_subtree_a_refusal_dropped_is_finished_empty() {
    each_dropping_case(|mmu, buf| {
        let mut root = hal_core::FreshTable::new(buf.alloc().unwrap());
        let refused = build_dropping(mmu, buf, Target::Fresh(&mut root));
        let root = mmu.finish_table(root).unwrap();
        (refused, mmu.pin(root).unwrap())
    });
}
