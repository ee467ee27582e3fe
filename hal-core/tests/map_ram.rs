//! `direct_map::map_ram`, the lifecycle in one call, on random machines: the map it leaves
//! live is walked in the sim's memory and compared with the oracle's leaves for where the
//! buffer actually landed; the buffer is exactly the tables + root + headroom (the fixed
//! point); the tail is free in memblock and the used part reserved; the windows cover RAM.
//! Then its refusals: each leaves memblock and the live root as they were.

mod common;

use common::gen::{self, run_prop_part};
use common::oracle;
use common::sim::{caps, FState, Sim, KERNEL_SLOT};
use common::{ro_set, world};
use hal_core::direct_map::{map_ram, PageSize, RootChoice, Setup, SetupError};
use hal_core::memblock::Direction;
use hal_core::memmap::{MemRegion, RegionKind};
use hal_core::{Caps, PageSizes, PageTableFlags, PfnRange, PreviousRoot, TableLevel};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

macro_rules! check {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(TestCaseError::fail(format!($($fmt)+)));
        }
    };
}

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

#[derive(Clone, Debug)]
struct Case {
    caps: Caps,
    sizes: PageSizes,
    base: u64,
    headroom: u64,
    dir: Direction,
    extend: bool,
    map: Vec<MemRegion>,
}

fn case() -> impl Strategy<Value = Case> {
    (gen::any_caps(), gen::spec_sizes()).prop_flat_map(|(caps, sizes)| {
        (
            Just(caps),
            Just(sizes),
            gen::base(),
            0u64..40,
            gen::direction(),
            any::<bool>(),
            gen::lifecycle_map(gen::ram_budget(&caps, sizes)),
        )
            .prop_map(|(caps, sizes, base, headroom, dir, extend, map)| Case {
                caps,
                sizes,
                base,
                headroom,
                dir,
                extend,
                map,
            })
    })
}

fn setup(c: &Case) -> Setup {
    Setup::at(c.base)
        .page_sizes(c.sizes)
        .headroom(c.headroom)
        .direction(c.dir)
        .root(if c.extend {
            RootChoice::ExtendLive
        } else {
            RootChoice::New
        })
}

fn one_call(c: Case) -> Result<(), TestCaseError> {
    let Some(mut w) = world(&c.map, c.caps) else {
        return Err(TestCaseError::reject("no RAM for the boot tables"));
    };
    let boot_root = w.live.pfn();
    let ranges = w.ranges.clone();
    let s = setup(&c);
    let map = match map_ram(&mut w.mmu, &mut w.live, &mut w.mb, &s) {
        Ok(m) => m,
        Err(SetupError::Memblock { .. }) => return Err(TestCaseError::reject("no room")),
        Err(e) => return Err(TestCaseError::fail(format!("map_ram: {e}"))),
    };
    let f = map.figures;
    let fin = map.buffer;
    let root = u64::from(!c.extend);

    // The buffer: exactly tables + root + headroom, and the tables are what the oracle needs
    // for a buffer where this one landed.
    let buf = PfnRange::new(fin.used.start(), fin.released.end()).unwrap();
    check!(
        fin.used.end() == fin.released.start().as_u64(),
        "used {:?} and released {:?} are not one buffer",
        fin.used,
        fin.released
    );
    let build_ro = ro_set(&c.caps, w.boot, buf, &[]);
    let expect = oracle::expected_leaves(&ranges, &build_ro, c.sizes & c.caps.page_sizes);
    let keys = oracle::table_keys(&expect, c.base);
    let tables: u64 = keys.iter().map(|k| k.len() as u64).sum();
    check!(
        f.computed == tables,
        "computed {} vs the oracle's {tables}",
        f.computed
    );
    check!(
        f.tables_used == tables + root && fin.used.len() == f.tables_used,
        "used {} frames ({:?}) for {tables} tables + {root} root",
        f.tables_used,
        fin.used
    );
    check!(
        f.tail_released == c.headroom && fin.released.len() == c.headroom,
        "tail of {} frames for headroom {}",
        f.tail_released,
        c.headroom
    );
    check!(
        f.sizing_rounds >= 1,
        "sizing took {} rounds",
        f.sizing_rounds
    );
    let (pages, _) = oracle::page_counts(&expect);
    check!(f.pages == pages, "pages {:?}, expected {pages:?}", f.pages);
    let ram: u64 = ranges.iter().map(|r| r.len() * 4096).sum();
    check!(f.ram_bytes == ram, "ram_bytes {} vs {ram}", f.ram_bytes);

    // The live root: a new one (the boot root handed back), or the boot root extended.
    let sim: &Sim = w.mmu.raw();
    check!(
        sim.violations.is_empty(),
        "violations: {:?}",
        sim.violations
    );
    check!(sim.xen_agrees().is_ok(), "Xen: {:?}", sim.xen_agrees());
    check!(sim.queued() == 0, "everything flushed");
    check!(map.root == w.live.pfn(), "DirectMap::root is the live root");
    check!(
        sim.root() == w.live.pfn().as_u64(),
        "the sim runs on the live root"
    );
    if c.extend {
        check!(w.live.pfn() == boot_root, "extending kept the boot root");
        check!(map.previous.is_none(), "no previous root when extending");
    } else {
        check!(
            matches!(map.previous, Some(PreviousRoot::Boot(p)) if p == boot_root),
            "previous root {:?}",
            map.previous
        );
        check!(
            w.live.pfn() == fin.used.start(),
            "the root is the buffer's first frame"
        );
        check!(
            sim.state_of(w.live.pfn().as_u64())
                == Some(FState::Table {
                    level: TableLevel::L4,
                    pinned: true
                }),
            "new root pinned"
        );
        check!(
            sim.peek(w.live.pfn().as_u64(), KERNEL_SLOT)
                == sim.peek(boot_root.as_u64(), KERNEL_SLOT),
            "the kernel's slot inherited"
        );
    }

    // Every leaf, walked in the sim's memory: frame, size, protection (the tail writable
    // again, the tables and the backend's own tables read-only).
    let slots = oracle::slots(&ranges, c.base);
    let tree = oracle::walk(sim, w.live.pfn().as_u64(), slots.clone());
    check!(tree.errors.is_empty(), "walk errors: {:?}", tree.errors);
    let final_ro = ro_set(&c.caps, w.boot, fin.used, &[]);
    let mut leaves = tree.leaves.iter();
    for run in &expect {
        for k in 0..run.pages {
            let pfn = run.pfn + k * run.size.frames();
            let va = c.base.wrapping_add(pfn << 12);
            let Some(got) = leaves.next() else {
                return Err(TestCaseError::fail(format!("no leaf for pfn {pfn:#x}")));
            };
            let mut want = PageTableFlags::PRESENT | PageTableFlags::WRITABLE;
            if oracle::in_set(&final_ro, pfn) {
                want.remove(PageTableFlags::WRITABLE);
            }
            if run.size != PageSize::Size4K {
                want.insert(PageTableFlags::HUGE_PAGE);
            }
            check!(
                got.va == va && got.pfn == pfn && got.size == run.size && got.flags == want,
                "leaf {got:x?}, expected pfn {pfn:#x} {:?} {want:?} at {va:#x}",
                run.size
            );
        }
    }
    check!(leaves.next().is_none(), "more leaves than expected");
    let mut reached: Vec<u64> = tree.tables.iter().map(|t| t.0).collect();
    reached.sort_unstable();
    let want: Vec<u64> = (fin.used.start().as_u64() + root..fin.used.end()).collect();
    check!(
        reached == want,
        "tables reached {reached:x?}, used {:?}",
        fin.used
    );

    // Windows: one per RAM range at its direct-map address, after the boot ones.
    let windows: Vec<(u64, PfnRange)> = sim
        .windows()
        .iter()
        .rev()
        .take(ranges.len())
        .rev()
        .copied()
        .collect();
    let want: Vec<(u64, PfnRange)> = ranges
        .iter()
        .map(|r| (c.base.wrapping_add(r.start().addr()), *r))
        .collect();
    check!(windows == want, "windows {windows:x?}, expected {want:x?}");
    check!(
        map.ranges.as_slice() == ranges.as_slice(),
        "DirectMap::ranges"
    );
    for r in &ranges {
        check!(
            map.va(r.start()) == Some(c.base.wrapping_add(r.start().addr())),
            "va()"
        );
    }

    // memblock: the tail is free (it can be allocated exactly), the used part is not.
    if !fin.released.is_empty() {
        let tail = w.mb.alloc_exact(fin.released);
        check!(tail.is_ok(), "tail not free: {:?}", tail.err());
        w.mb.free_frames(tail.unwrap()).unwrap();
    }
    check!(
        w.mb.alloc_exact(fin.used).is_err(),
        "used part free in memblock"
    );
    Ok(())
}

#[test]
fn one_call_maps_all_ram_exactly() {
    // A quarter of the cases: each is a whole lifecycle, and `lifecycle.rs` covers the steps
    // beneath the call with the full count.
    run_prop_part("one_call_maps_all_ram_exactly", 4, case(), one_call);
}

fn ram(regions: &[(u64, u64)]) -> Vec<MemRegion> {
    regions
        .iter()
        .map(|&(start, len)| MemRegion {
            start,
            len,
            kind: RegionKind::Ram,
        })
        .collect()
}

/// A made-up backend with large pages and read-only tables: where the buffer lands splits a
/// large page, so the count depends on the placement and the sizing needs a second round.
#[test]
fn sizing_reaches_the_fixed_point_when_the_buffer_splits_a_large_page() {
    let map = ram(&[(0, 4 * GIB)]);
    let mut w = world(&map, caps::HYBRID).unwrap();
    // From the top: the buffer lands inside a 1 GiB page, which becomes 2 MiB pages and one
    // 2 MiB page of 4 KiB pages: two more tables than without it.
    let s = Setup::linux().headroom(64).direction(Direction::TopDown);
    let m = map_ram(&mut w.mmu, &mut w.live, &mut w.mb, &s).unwrap();
    let f = m.figures;
    assert!(f.sizing_rounds >= 2, "{f:?}");
    assert_eq!(f.tables_used, f.computed + 1, "{f:?}");
    assert_eq!(f.tail_released, 64, "{f:?}");
    assert_eq!(f.tables_made, f.computed, "{f:?}");
    assert!(w.mmu.raw().violations.is_empty());
    w.mmu.raw().xen_agrees().unwrap();
}

fn refused(map: &[MemRegion], caps: Caps, s: Setup, twice: bool) -> String {
    let mut w = world(map, caps).unwrap();
    if twice {
        map_ram(
            &mut w.mmu,
            &mut w.live,
            &mut w.mb,
            &Setup::linux().root(RootChoice::ExtendLive),
        )
        .unwrap();
    }
    let before = w.mb.snapshot();
    let root = w.live.pfn();
    let writes = w.mmu.raw().counts.get(common::sim::Op::Write);
    let e = map_ram(&mut w.mmu, &mut w.live, &mut w.mb, &s).unwrap_err();
    assert_eq!(
        w.mb.snapshot(),
        before,
        "memblock changed by a refused map_ram ({e})"
    );
    assert_eq!(
        w.live.pfn(),
        root,
        "live root changed by a refused map_ram ({e})"
    );
    assert_eq!(
        w.mmu.raw().counts.get(common::sim::Op::Write),
        writes,
        "tables written ({e})"
    );
    format!("{e}")
}

#[test]
fn refusals_change_nothing_and_say_why() {
    let map = ram(&[(0, 64 * MIB)]);
    let user = Setup::linux().flags(PageTableFlags::PRESENT | PageTableFlags::USER_ACCESSIBLE);
    assert!(refused(&map, caps::NATIVE, user, false).contains("leaf flags"));
    let nx = Setup::linux().flags(PageTableFlags::PRESENT | PageTableFlags::NO_EXECUTE);
    assert!(refused(&map, caps::HYBRID, nx, false).contains("leaf flags"));
    let again = refused(&map, caps::NATIVE, Setup::linux(), true);
    assert!(again.contains("root slot 273"), "{again}");
    let far = Setup::linux().limit(4096 * 4);
    let oom = refused(&map, caps::NATIVE, far, false);
    assert!(
        oom.starts_with("pgt_buf: ") && oom.contains("do not fit"),
        "{oom}"
    );
    let unaligned = Setup::at(0xffff_8880_0000_1000);
    assert!(refused(&map, caps::NATIVE, unaligned, false).contains("cannot be planned"));
}
