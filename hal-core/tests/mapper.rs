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
        // L3, L2 and two L1s; after everything was unmapped, L3, L2 and one L1 again.
        assert_eq!(s.tables_allocated, 7, "{s:?}");
    }
}

#[test]
fn unmapping_frees_tables_and_single_pages_are_invalidated_one_by_one() {
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
    // 8 leaves and 3 unhooked tables (one address each, the same as the first leaf).
    assert_eq!((c.invlpgs, c.full_flushes), (8, 0), "{c:?}");
    assert_eq!(w.mmu.raw().tlb_len(), 0);
    assert_eq!(m.stats().tables_freed, 3);
    let _ = TableLevel::L1;
    drop(m);
    assert_eq!(w.mb.free_bytes(), free);
}
