//! The run-time mapper against a reference model of the address space, on the simulated
//! backend with each backend's caps (bare metal: all page sizes; Xen PV: 4 KiB, read-only
//! tables, reserved root slots). The simulated CPU has a TLB that only `flush_tlb` empties,
//! so a missing or short invalidation shows as a stale read or write.

mod common;

use common::gen::{run_prop, MIB};
use common::sim::{caps, FState, Sim};
use common::space::{self, Machine, Op};
use common::world;
use hal_core::memmap::{MemRegion, RegionKind};
use hal_core::{Caps, Mmu, TableLevel};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

struct SimCpu;

impl Machine<Sim> for SimCpu {
    fn access(&mut self, mmu: &mut Mmu<Sim>, va: u64, write: bool) -> Result<u64, ()> {
        mmu.raw_mut().access(va, write).map_err(|_| ())
    }
    fn table_frames(&self, mmu: &Mmu<Sim>) -> Vec<u64> {
        mmu.raw()
            .states()
            .iter()
            .filter(|(_, s)| matches!(s, FState::Table { .. }))
            .map(|(p, _)| *p)
            .collect()
    }
}

fn ram() -> Vec<MemRegion> {
    vec![MemRegion {
        start: 0,
        len: 64 * MIB,
        kind: RegionKind::Ram,
    }]
}

fn run(caps: Caps, budget: u64, ops: &[Op]) -> Result<space::Summary, TestCaseError> {
    let mut w = world(&ram(), caps).expect("RAM for the boot tables");
    let root = w.live.table();
    let r = space::drive(
        &mut w.mmu,
        root,
        &mut SimCpu,
        &mut w.mb,
        64 * MIB,
        budget,
        (space::PHYS, space::PHYS_LEN),
        ops,
    )
    .map_err(TestCaseError::fail)?;
    w.mmu.raw().xen_agrees().map_err(TestCaseError::fail)?;
    if !w.mmu.raw().violations.is_empty() {
        return Err(TestCaseError::fail(format!(
            "sim violations: {:?}",
            w.mmu.raw().violations
        )));
    }
    Ok(r)
}

fn case() -> impl Strategy<Value = (Caps, u64, Vec<Op>)> {
    (
        prop_oneof![Just(caps::NATIVE), Just(caps::XEN), Just(caps::HYBRID)],
        prop_oneof![3 => Just(1000u64), 1 => 2u64..12],
        prop::collection::vec(space::op(), 1..40),
    )
}

#[test]
fn mapper_matches_the_reference_model() {
    // A quarter of the usual cases: each runs up to 40 operations with full checks.
    let cases = (common::gen::cases() / 4).max(1);
    std::env::set_var("PVMMU_PROPTEST_CASES", cases.to_string());
    run_prop(
        "mapper_matches_the_reference_model",
        case(),
        |(caps, budget, ops)| run(caps, budget, &ops).map(|_| ()),
    );
}

/// A fixed sequence that must exercise every page size, a refusal of each kind and table
/// freeing, so the property above cannot pass by generating only trivial cases.
#[test]
fn a_fixed_sequence_covers_sizes_refusals_and_freeing() {
    use space::{G1, K4, M2};
    let map = |off, units, unit, fixed| Op::Map {
        off,
        units,
        unit,
        phys: 0,
        writable: true,
        nx: false,
        fixed,
    };
    let ops = [
        map(0, 1, G1, true),
        map(G1, 3, M2, false),
        map(G1 + 3 * M2, 5, K4, false),
        map(G1 + 4 * K4, 1, K4, false), // overlap
        map(G1, 1, G1, true),           // tables where the 1 GiB page would go
        Op::Unmap { off: 0, len: M2 },  // splits the 1 GiB page
        Op::Protect {
            off: G1,
            len: 3 * M2,
            writable: false,
            nx: true,
        },
        Op::Flush,
        Op::Unmap { off: G1, len: G1 },
        Op::MapTable { n: 0, off: 2 * G1 },
        Op::Bad(0),
        Op::Bad(1),
        Op::Bad(3),
        Op::Flush,
    ];
    let s = run(caps::NATIVE, 1000, &ops).unwrap();
    assert_eq!(s.refused, 7, "{s:?}");
    // L3, L2 for the second GiB, one L1 (the 5 pages).
    assert_eq!(s.tables_allocated, 3, "{s:?}");
}

/// Page by page through one level-1 table and into the next: the mapper's cached table (map
/// and unmap of one page, and of a few, skip the walk) must give what the model says, refuse
/// overlaps there, free each table when its last page goes, and never write into a table it
/// freed (the maps after everything was unmapped need new tables).
#[test]
fn pages_one_by_one_through_the_cached_table() {
    use space::{G1, K4};
    // Pages 500..530 of the second GiB of the window: level-1 tables change at page 512.
    let map = |page: u64, units: u64, fixed: bool| Op::Map {
        off: G1 + page * K4,
        units,
        unit: K4,
        phys: page * K4,
        writable: page % 3 != 0,
        nx: false,
        fixed,
    };
    let unmap = |page: u64, pages: u64| Op::Unmap {
        off: G1 + page * K4,
        len: pages * K4,
    };
    let mut ops = Vec::new();
    for page in 500..530 {
        ops.push(map(page, 1, page % 2 == 0));
    }
    ops.push(Op::Flush);
    // In the table the last map used (the cached one), other frames: overlaps, one page and
    // three.
    let other = |op: Op| match op {
        Op::Map {
            off, units, fixed, ..
        } => Op::Map {
            off,
            units,
            unit: K4,
            phys: 0,
            writable: true,
            nx: false,
            fixed,
        },
        op => op,
    };
    ops.push(other(map(528, 1, true)));
    ops.push(other(map(524, 3, false)));
    ops.push(Op::Protect {
        off: G1 + 507 * K4,
        len: K4,
        writable: false,
        nx: false,
    });
    ops.push(unmap(503, 1));
    ops.push(unmap(503, 1)); // a hole now
    ops.push(unmap(504, 4));
    ops.push(Op::Flush);
    for page in 500..512 {
        ops.push(unmap(page, 1)); // the last one frees the first level-1 table
    }
    ops.push(Op::Flush);
    for page in 512..526 {
        ops.push(unmap(page, 1));
    }
    ops.push(unmap(526, 4)); // this frees the second, and the tables above
                             // Where the freed second table was (the cached one, had it survived):
    ops.push(map(520, 1, false));
    ops.push(map(521, 2, false));
    ops.push(Op::Flush);
    for caps in [caps::NATIVE, caps::XEN] {
        let s = run(caps, 1000, &ops).unwrap();
        assert_eq!(s.refused, 2, "{s:?}");
        // L3, L2 and two L1s; after everything was unmapped, L2 and one L1 again (the L3, in
        // a root slot, stays).
        assert_eq!(s.tables_allocated, 6, "{s:?}");
    }
}

#[test]
fn unmapping_frees_tables_but_the_root_slots_and_single_pages_are_invalidated_one_by_one() {
    let mut w = world(&ram(), caps::NATIVE).unwrap();
    let free = w.mb.free_bytes();
    let root = w.live.table();
    let src = hal_core::mapper::MemblockSource::new(&mut w.mb, 64 * MIB);
    let mut m: hal_core::mapper::Mapper<_> =
        hal_core::mapper::Mapper::new(root, caps::NATIVE, src, hal_core::mapper::EmptyTables::Free);
    let va = space::WINDOW;
    // SAFETY: simulated frames outside RAM, the test's window.
    let f = unsafe {
        m.map(
            &mut w.mmu,
            root,
            va,
            space::PHYS,
            8 * 4096,
            hal_core::PageTableFlags::WRITABLE,
            hal_core::mapper::PageSize::Auto,
        )
    }
    .unwrap();
    m.flush(&mut w.mmu, f).unwrap();
    assert_eq!(m.stats().tables_allocated, 3);
    for i in 0..8 {
        w.mmu.raw_mut().access(va + i * 4096, true).unwrap();
    }
    // SAFETY: as above.
    let f = unsafe { m.unmap(&mut w.mmu, root, va, 8 * 4096) }.unwrap();
    m.flush(&mut w.mmu, f).unwrap();
    let c = &w.mmu.raw().counts;
    // 8 leaves and 2 unhooked tables (one address each, the same as the first leaf).
    assert_eq!((c.invlpgs, c.full_flushes), (8, 0), "{c:?}");
    assert_eq!(w.mmu.raw().tlb_len(), 0);
    // The L1 and the L2 are freed; the L3 stays in its root slot, empty.
    assert_eq!(m.stats().tables_freed, 2);
    assert_eq!(m.tables_owned(), 1);
    let _ = TableLevel::L1;
    drop(m);
    assert_eq!(w.mb.free_bytes(), free - 4096);
}

/// Single frames for a mapper of its own: owned `Free` frames, nothing else (safe code).
struct Frames(Vec<hal_core::Frame<hal_core::Free>>);

impl hal_core::mapper::FrameSource for Frames {
    fn alloc(&mut self) -> Option<hal_core::Frame<hal_core::Free>> {
        self.0.pop()
    }
    fn give_back(
        &mut self,
        frame: hal_core::Frame<hal_core::Free>,
    ) -> Result<(), hal_core::Frame<hal_core::Free>> {
        self.0.push(frame);
        Ok(())
    }
}

#[test]
fn a_mapping_comes_back_only_from_the_mapper_that_made_it() {
    use hal_core::mapper::{EmptyTables, MapError, Mapper, MemblockSource};
    use hal_core::memblock::Direction;
    use hal_core::{PageTableFlags, PgtBuf, Root, TableBuilder};
    let mut w = world(&ram(), caps::NATIVE).expect("RAM for the boot tables");
    // A second level-4 table, owned and not live: safe code makes one from a buffer.
    let mut buf = PgtBuf::new(&mut w.mmu, &mut w.mb, 1, u64::MAX, Direction::TopDown).unwrap();
    let other = w
        .mmu
        .new_table(TableBuilder::<Root>::new(buf.alloc().unwrap()))
        .unwrap();
    let frames = w.mb.alloc_frames(4, u64::MAX, Direction::TopDown).unwrap();
    let pfns = frames.pfns();
    let spare = w.mb.alloc_frames(8, u64::MAX, Direction::TopDown).unwrap();
    let caps = w.mmu.caps();
    let mut elsewhere: Mapper<Frames, 16> = Mapper::new(
        other.as_table(),
        caps,
        Frames(spare.collect()),
        EmptyTables::Free,
    );
    let mut beside: Mapper<Frames, 16> =
        Mapper::new(w.live.table(), caps, Frames(Vec::new()), EmptyTables::Free);
    let mut m: Mapper<_, 16> = Mapper::new(
        w.live.table(),
        caps,
        MemblockSource::new(&mut w.mb, u64::MAX),
        EmptyTables::Free,
    );
    let va = 0x4000_0000_0000;
    let flags = PageTableFlags::WRITABLE;
    let mapped = m
        .map_frames(&mut w.mmu, w.live.table(), va, frames, flags)
        .unwrap();
    let at = |m: &Mapper<_, 16>, mmu: &mut Mmu<Sim>, live| {
        m.translate(mmu, live, va).unwrap().map(|t| t.pfn)
    };
    assert_eq!(at(&m, &mut w.mmu, w.live.table()), Some(pfns.start()));
    // A mapper of another root, where nothing is mapped at `va`, would find nothing to unmap:
    // refused, and the mapping comes back, still mapped.
    let f = elsewhere
        .unmap_frames(&mut w.mmu, other.as_table(), mapped)
        .unwrap_err();
    assert!(matches!(f.error, MapError::WrongRoot), "{:?}", f.error);
    let mapped = f.value;
    assert_eq!(mapped.pfns(), pfns);
    assert_eq!(at(&m, &mut w.mmu, w.live.table()), Some(pfns.start()));
    // A second mapper of the same root: the leaves are in the first one's tables.
    let f = beside
        .unmap_frames(&mut w.mmu, w.live.table(), mapped)
        .unwrap_err();
    assert!(
        matches!(f.error, MapError::ForeignTable(_)),
        "{:?}",
        f.error
    );
    let mapped = f.value;
    assert_eq!(at(&m, &mut w.mmu, w.live.table()), Some(pfns.start()));
    // The mapper that made it takes it back: unmapped, and only then the frames.
    let back = m.unmap_frames(&mut w.mmu, w.live.table(), mapped).unwrap();
    assert_eq!(back.pfns(), pfns);
    assert_eq!(at(&m, &mut w.mmu, w.live.table()), None);
    assert!(
        w.mmu.raw().violations.is_empty(),
        "{:?}",
        w.mmu.raw().violations
    );
    let _ = (back, buf, other, elsewhere, beside);
}

/// A mapper outlives the `TableRef` it was made with: its root can be retired, and be memory
/// again, while it lives. Every operation checks the caller's root first; a refused
/// `map_frames` must then give the frames back without walking the old root (no read of a
/// frame that is no table any more).
#[test]
fn a_mapper_whose_root_was_retired_reads_nothing_of_it() {
    use hal_core::mapper::{EmptyTables, MapError, Mapper};
    use hal_core::memblock::Direction;
    use hal_core::{PageTableFlags, PgtBuf, Root, TableBuilder};
    for c in [caps::NATIVE, caps::XEN] {
        let mut w = world(&ram(), c).expect("RAM for the boot tables");
        let mut buf = PgtBuf::new(&mut w.mmu, &mut w.mb, 1, u64::MAX, Direction::TopDown).unwrap();
        let other = w
            .mmu
            .new_table(TableBuilder::<Root>::new(buf.alloc().unwrap()))
            .unwrap();
        let spare = w.mb.alloc_frames(8, u64::MAX, Direction::TopDown).unwrap();
        let mut m: Mapper<Frames, 16> = Mapper::new(
            other.as_table(),
            w.mmu.caps(),
            Frames(spare.collect()),
            EmptyTables::Free,
        );
        // The root, empty, is no table any more: memory, back in memblock.
        let gone = w.mmu.retire(other).unwrap().into_free();
        w.mb.free_frame(gone).unwrap();
        let frames = w.mb.alloc_frames(4, u64::MAX, Direction::TopDown).unwrap();
        let pfns = frames.pfns();
        let f = m
            .map_frames(
                &mut w.mmu,
                w.live.table(),
                0x4000_0000_0000,
                frames,
                PageTableFlags::WRITABLE,
            )
            .unwrap_err();
        assert!(
            matches!(f.error, MapError::WrongRoot),
            "{c:?}: {:?}",
            f.error
        );
        assert_eq!(f.value.pfns(), pfns, "{c:?}: the frames come back");
        assert!(
            w.mmu.raw().violations.is_empty(),
            "{c:?}: {:?}",
            w.mmu.raw().violations
        );
        let _ = (f.value, buf, m);
    }
}

#[test]
fn frames_whose_mapping_could_not_be_rolled_back_are_not_given_back() {
    use common::sim::Op as SimOp;
    use hal_core::mapper::{EmptyTables, MapError, Mapper, MemblockSource};
    use hal_core::memblock::Direction;
    use hal_core::{ErrorKind, PageTableFlags};
    let mut w = world(&ram(), caps::NATIVE).expect("RAM for the boot tables");
    let frames = w.mb.alloc_frames(2, u64::MAX, Direction::TopDown).unwrap();
    let pfns = frames.pfns();
    let caps = w.mmu.caps();
    let mut m: Mapper<_, 16> = Mapper::new(
        w.live.table(),
        caps,
        MemblockSource::new(&mut w.mb, u64::MAX),
        EmptyTables::Keep,
    );
    // Two pages in two level-1 tables: the last slot of one, the first of the next.
    let va = 0x4000_0020_0000 - 4096;
    let flags = PageTableFlags::WRITABLE;
    // Mapped and unmapped once: the tables stay, so the next map writes only leaves, one
    // backend call per table.
    let mapped = m
        .map_frames(&mut w.mmu, w.live.table(), va, frames, flags)
        .unwrap();
    let frames = m.unmap_frames(&mut w.mmu, w.live.table(), mapped).unwrap();
    // The second table's leaf is refused, and so is the rollback of the first one's.
    w.mmu.raw_mut().fail(SimOp::Write, 2, ErrorKind::Other, 0);
    w.mmu.raw_mut().fail(SimOp::Write, 3, ErrorKind::Other, 0);
    let f = m
        .map_frames(&mut w.mmu, w.live.table(), va, frames, flags)
        .unwrap_err();
    let MapError::RollbackRefused { va: at, pages, .. } = f.error else {
        panic!("the rollback must be refused: {:?}", f.error)
    };
    assert_eq!((at, pages), (va, 1), "the first page is still mapped");
    let still = m
        .translate(&mut w.mmu, w.live.table(), va)
        .unwrap()
        .map(|t| t.pfn);
    assert_eq!(still, Some(pfns.start()));
    // A frame still mapped is no `Free` frame to hand back: the frames stay set aside.
    assert!(
        f.value.is_empty(),
        "frames given back while mapped: {:?}",
        f.value
    );
    w.mmu.raw_mut().clear_faults();
}

#[test]
fn a_mapper_leaves_a_table_another_mapper_hooked_a_table_under() {
    use hal_core::mapper::{EmptyTables, Mapper, MemblockSource};
    use hal_core::memblock::Direction;
    use hal_core::PageTableFlags;
    let mut w = world(&ram(), caps::NATIVE).expect("RAM for the boot tables");
    let (a, b) = (
        w.mb.alloc_frames(1, u64::MAX, Direction::TopDown).unwrap(),
        w.mb.alloc_frames(1, u64::MAX, Direction::TopDown).unwrap(),
    );
    let (ap, bp) = (a.pfns(), b.pfns());
    let spare = w.mb.alloc_frames(8, u64::MAX, Direction::TopDown).unwrap();
    let caps = w.mmu.caps();
    let mut second: Mapper<Frames, 16> = Mapper::new(
        w.live.table(),
        caps,
        Frames(spare.collect()),
        EmptyTables::Free,
    );
    let mut first: Mapper<_, 16> = Mapper::new(
        w.live.table(),
        caps,
        MemblockSource::new(&mut w.mb, u64::MAX),
        EmptyTables::Free,
    );
    // One root slot, two mappers: the first makes the level-3 table, the second hooks a
    // level-2 table of its own under it (1 GiB further on).
    let va = 0x4000_0000_0000;
    let flags = PageTableFlags::WRITABLE;
    let ma = first
        .map_frames(&mut w.mmu, w.live.table(), va, a, flags)
        .unwrap();
    let mb = second
        .map_frames(&mut w.mmu, w.live.table(), va + (1 << 30), b, flags)
        .unwrap();
    assert_eq!(
        w.mmu.raw_mut().access(va + (1 << 30), true),
        Ok(bp.start().as_u64())
    );
    // The first mapper's level-3 table is empty of its own entries, not of the second's:
    // it stays, and the second mapper's page with it.
    let back = first.unmap_frames(&mut w.mmu, w.live.table(), ma);
    let at = second
        .translate(&mut w.mmu, w.live.table(), va + (1 << 30))
        .unwrap()
        .map(|t| t.pfn);
    assert_eq!(
        at,
        Some(bp.start()),
        "the second mapper's page is still mapped"
    );
    let back = back.unwrap();
    assert_eq!(back.pfns(), ap);
    // And the second one's frames come back unmapped, out of the TLB.
    let back_b = second.unmap_frames(&mut w.mmu, w.live.table(), mb).unwrap();
    assert_eq!(back_b.pfns(), bp);
    assert!(w.mmu.raw_mut().access(va + (1 << 30), true).is_err());
    assert!(
        w.mmu.raw().violations.is_empty(),
        "{:?}",
        w.mmu.raw().violations
    );
    let _ = (back, back_b, first, second);
}

/// A new root inheriting the live root's slots (safe `inherit_root`) shares the tables those
/// slots point at. A mapper's table hooked into a root slot must then outlive the mapping: the
/// mapper unmapping everything, or tearing down, must not free a table another root still
/// points at. The new root sees what the mapper maps there later, through the shared table.
#[test]
fn a_root_that_inherited_a_mappers_slot_keeps_its_tables() {
    use hal_core::mapper::{EmptyTables, Mapper, MemblockSource};
    use hal_core::memblock::Direction;
    use hal_core::{PageTableFlags, Pfn, Pte, TableBuilder};
    // Every table the root `r` names is still one in the sim's records, not memory handed
    // back to memblock.
    fn tables_named(sim: &Sim, r: u64) -> Result<(), String> {
        for i in 0..512u16 {
            let e = Pte::from_bits(sim.peek(r, i).unwrap());
            if e.is_present() && !e.is_huge() {
                let s = sim.state_of(e.pfn().as_u64());
                if !matches!(s, Some(FState::Table { .. })) {
                    return Err(format!("root slot {i} names {:?}, which is {s:?}", e.pfn()));
                }
            }
        }
        Ok(())
    }
    // The frame `va` maps under the root `r` (the tests' own walker of the sim's memory).
    fn walk(sim: &Sim, r: u64, va: u64) -> Option<Pfn> {
        let tree = common::oracle::walk(sim, r, 128..129);
        assert!(tree.errors.is_empty(), "{:?}", tree.errors);
        tree.leaves
            .iter()
            .find(|l| l.va == va)
            .map(|l| Pfn::new(l.pfn).unwrap())
    }
    for c in [caps::NATIVE, caps::XEN] {
        let mut w = world(&ram(), c).expect("RAM for the boot tables");
        let a = w.mb.alloc_frames(1, u64::MAX, Direction::TopDown).unwrap();
        let b = w.mb.alloc_frames(1, u64::MAX, Direction::TopDown).unwrap();
        let bp = b.pfns().start();
        let t = w.mb.alloc_frames(1, u64::MAX, Direction::TopDown).unwrap();
        let caps = w.mmu.caps();
        let mut m: Mapper<_, 16> = Mapper::new(
            w.live.table(),
            caps,
            MemblockSource::new(&mut w.mb, u64::MAX),
            EmptyTables::Free,
        );
        // Root slot 128, empty until the mapper hooks a level-3 table there.
        let va = 0x4000_0000_0000;
        let flags = PageTableFlags::WRITABLE;
        let mapping = m
            .map_frames(&mut w.mmu, w.live.table(), va, a, flags)
            .unwrap();
        let mut staged = TableBuilder::new(w.mmu.protect(t).unwrap().next().unwrap());
        w.mmu.inherit_root(&w.live, &mut staged, (0, 0)).unwrap();
        let _a = m.unmap_frames(&mut w.mmu, w.live.table(), mapping).unwrap();
        let root = w.mmu.new_table(staged).unwrap();
        let r = root.pfn().as_u64();
        tables_named(w.mmu.raw(), r).unwrap_or_else(|e| panic!("{c:?}, after the unmap: {e}"));
        // Mapped again: the new root sees it too, through the level-3 table they share.
        let mapping = m
            .map_frames(&mut w.mmu, w.live.table(), va, b, flags)
            .unwrap();
        assert_eq!(walk(w.mmu.raw(), r, va), Some(bp), "{c:?}: shared");
        let _b = m.unmap_frames(&mut w.mmu, w.live.table(), mapping).unwrap();
        assert_eq!(walk(w.mmu.raw(), r, va), None, "{c:?}: unmapped in both");
        // SAFETY: the mapper's window is the test's.
        let td = unsafe { m.teardown(&mut w.mmu, w.live.table()) }.unwrap();
        assert_eq!(td.tables_kept, 1, "{c:?}: the level-3 table stays");
        assert_eq!(td.tables_freed_total + 1, td.tables_allocated);
        tables_named(w.mmu.raw(), r).unwrap_or_else(|e| panic!("{c:?}, after teardown: {e}"));
        let _ = root;
    }
}
