//! The whole `pgt_buf` lifecycle on random machines, checked against independent oracles:
//! memblock → pgt_buf of exactly count + 1 + headroom frames → `PgtBuf::new` → new root
//! (`inherit_root`) → `direct_map::build` (`Target::New`) → `new_table` → pin → `switch_root`
//! → windows → `finish`.

mod common;

use common::gen::{self, run_prop};
use common::oracle::{self, Expect};
use common::sim::{FState, Sim, KERNEL_SLOT};
use common::{alloc_buf, ro_set, world};
use hal_core::direct_map::{self, count_tables, DirectMapSpec, PageSize, Target};
use hal_core::memblock::Direction;
use hal_core::memmap::MemRegion;
use hal_core::{
    Caps, FreshTable, PageSizes, PageTableFlags, PfnRange, PgtBuf, RawMmu, TableBuilder, TableLevel,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

#[derive(Clone, Debug)]
struct Case {
    caps: Caps,
    sizes: PageSizes,
    base: u64,
    global: bool,
    nx: bool,
    headroom: u64,
    dir: Direction,
    map: Vec<MemRegion>,
    samples: Vec<u64>,
}

fn case() -> impl Strategy<Value = Case> {
    (gen::any_caps(), gen::spec_sizes()).prop_flat_map(|(caps, sizes)| {
        (
            Just(caps),
            Just(sizes),
            gen::base(),
            any::<bool>(),
            any::<bool>(),
            0u64..40,
            gen::direction(),
            gen::lifecycle_map(gen::ram_budget(&caps, sizes)),
            prop::collection::vec(any::<u64>(), 16),
        )
            .prop_map(
                |(caps, sizes, base, global, nx, headroom, dir, map, samples)| Case {
                    caps,
                    sizes,
                    base,
                    global,
                    nx,
                    headroom,
                    dir,
                    map,
                    samples,
                },
            )
    })
}

macro_rules! check {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(TestCaseError::fail(format!($($fmt)+)));
        }
    };
}

/// Leaf flags the direct map must carry for an expected leaf.
fn want_flags(flags: PageTableFlags, size: PageSize, ro: bool) -> PageTableFlags {
    let mut f = flags;
    if ro {
        f.remove(PageTableFlags::WRITABLE);
    }
    if size != PageSize::Size4K {
        f.insert(PageTableFlags::HUGE_PAGE);
    }
    f
}

/// Compares the leaves found by walking with the expected runs; `final_ro` decides the
/// writable bit now (after `finish`), the expectation's `ro` decided the page size.
fn compare_leaves(
    tree: &oracle::Tree,
    expect: &[Expect],
    base: u64,
    flags: PageTableFlags,
    final_ro: &[PfnRange],
) -> Result<(), TestCaseError> {
    check!(tree.errors.is_empty(), "walk errors: {:?}", tree.errors);
    let mut leaves = tree.leaves.iter();
    for run in expect {
        for k in 0..run.pages {
            let pfn = run.pfn + k * run.size.frames();
            let va = base.wrapping_add(pfn << 12);
            let Some(got) = leaves.next() else {
                return Err(TestCaseError::fail(format!("no leaf for pfn {pfn:#x}")));
            };
            check!(
                got.va == va && got.pfn == pfn && got.size == run.size,
                "leaf {got:x?}, expected pfn {pfn:#x} ({:?}) at {va:#x}",
                run.size
            );
            let want = want_flags(flags, run.size, oracle::in_set(final_ro, pfn));
            check!(
                got.flags == want,
                "leaf {got:x?}: flags {:?}, expected {want:?}",
                got.flags
            );
        }
    }
    check!(leaves.next().is_none(), "more leaves than expected");
    Ok(())
}

fn lifecycle(c: Case) -> Result<(), TestCaseError> {
    let Some(mut w) = world(&c.map, c.caps) else {
        return Err(TestCaseError::reject("no RAM for the boot tables"));
    };
    let initial = w.mb.snapshot();
    let ranges = w.ranges.clone();
    let spec = DirectMapSpec {
        base: c.base,
        page_sizes: c.sizes,
    };
    let mut flags = PageTableFlags::PRESENT | PageTableFlags::WRITABLE;
    if c.global {
        flags |= PageTableFlags::GLOBAL;
    }
    if c.nx && c.caps.nx {
        flags |= PageTableFlags::NO_EXECUTE;
    }

    // pgt_buf: exactly count + root + headroom.
    let Some((size, count, headroom)) =
        alloc_buf(&mut w, &ranges, &spec, c.headroom, true, c.dir, &[])
    else {
        return Err(TestCaseError::reject("no room for pgt_buf"));
    };
    let mut buf = PgtBuf::new(&mut w.mmu, &mut w.mb, size, u64::MAX, c.dir)
        .map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
    let buf_range = buf.range();
    check!(
        buf_range.len() == count.total() + 1 + headroom,
        "buffer of {} frames for {} tables",
        buf_range.len(),
        count.total()
    );
    let before_build = w.mb.snapshot();
    check!(
        buf.capacity() == buf_range.len() && buf.used() == 0,
        "fresh buffer"
    );

    // The new root keeps the kernel's slot, never Xen's.
    let slots = oracle::slots(&ranges, c.base);
    // Half the cases stage the root in memory (TableBuilder), half stream it in place
    // (FreshTable); the headroom is random, so its parity picks.
    let frame = buf.alloc().expect("room for the root");
    let mut staged = None;
    let mut fresh = None;
    let mut root_before = 0;
    let target = if c.headroom % 2 == 0 {
        let staged = staged.insert(TableBuilder::new(frame));
        let copied = w
            .mmu
            .inherit_root(&w.live, staged, (slots.start, slots.end))
            .map_err(|e| TestCaseError::fail(format!("inherit_root: {e:?}")))?;
        check!(copied == 1, "inherit_root copied {copied} slots");
        let kernel = staged.entry(KERNEL_SLOT).unwrap();
        check!(kernel.is_present(), "kernel slot inherited");
        check!(
            !staged.entry(common::sim::XEN_SLOT).unwrap().is_present(),
            "Xen's slot not inherited"
        );
        Target::New(staged)
    } else {
        let mut t = FreshTable::new(frame);
        // Slots are streamed in ascending order: those below the direct map now, the kernel's
        // (511, above it) after the build.
        let copied = w
            .mmu
            .inherit_root_fresh(&w.live, &mut t, (0, slots.start))
            .map_err(|e| TestCaseError::fail(format!("inherit_root: {e:?}")))?;
        check!(
            copied == 0,
            "inherit_root copied {copied} slots below the map"
        );
        root_before = t.next_slot();
        Target::Fresh(fresh.insert(t))
    };

    // Build.
    let entries_before = w.mmu.raw().counts.entries_written;
    // SAFETY: the direct map's slots are empty in the new root; the frames are the
    // simulated machine's RAM.
    let built =
        unsafe { direct_map::build(&mut w.mmu, &mut buf, target, &ranges, &[], &spec, flags) }
            .map_err(|e| TestCaseError::fail(format!("build: {e:?}")))?;
    check!(
        built.made == count,
        "made {:?}, counted {count:?}",
        built.made
    );
    check!(built.reused == 0, "reused {} in a new root", built.reused);
    check!(
        buf.used() == count.total() + 1,
        "used {} for {count:?} + root",
        buf.used()
    );
    // Streamed: every slot of every new table written exactly once, nothing staged twice.
    // (A streamed root's slots up to the last table written count too.)
    let root_written = u64::from(fresh.as_ref().map_or(0, |t| t.next_slot() - root_before));
    let counts = &w.mmu.raw().counts;
    check!(
        counts.entries_written - entries_before == 512 * count.total() + root_written,
        "{} entries written for {} tables",
        counts.entries_written - entries_before,
        count.total()
    );
    check!(
        counts.fresh_rewrites == 0,
        "{} slots written twice",
        counts.fresh_rewrites
    );

    // The oracle: page sizes from the read-only set at build time.
    let build_ro = ro_set(&c.caps, w.boot, buf_range, &[]);
    let expect = oracle::expected_leaves(&ranges, &build_ro, c.sizes & c.caps.page_sizes);
    let (pages, ro_pages) = oracle::page_counts(&expect);
    check!(
        built.pages == pages,
        "pages {:?}, expected {pages:?}",
        built.pages
    );
    check!(
        built.read_only_frames == ro_pages,
        "{} read-only frames, expected {ro_pages}",
        built.read_only_frames
    );
    let keys = oracle::table_keys(&expect, c.base);
    check!(
        [count.l1, count.l2, count.l3]
            == [keys[0].len(), keys[1].len(), keys[2].len()].map(|n| n as u64),
        "count_tables {count:?} vs tables the leaves need {:?}",
        keys.iter().map(|k| k.len()).collect::<Vec<_>>()
    );

    // Root, pin, switch, windows.
    built
        .pending
        .flush(&mut w.mmu)
        .map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
    let root = match (staged, fresh) {
        (Some(staged), _) => w
            .mmu
            .new_table(staged)
            .map_err(|e| TestCaseError::fail(format!("new root: {:?}", e.error)))?,
        (None, Some(mut t)) => {
            let copied = w
                .mmu
                .inherit_root_fresh(&w.live, &mut t, (slots.end, 512))
                .map_err(|e| TestCaseError::fail(format!("inherit_root: {e:?}")))?;
            check!(copied == 1, "inherit_root copied {copied} slots");
            w.mmu
                .finish_table(t)
                .map_err(|e| TestCaseError::fail(format!("new root: {:?}", e.error)))?
        }
        (None, None) => unreachable!("one root or the other"),
    };
    let kernel = w.mmu.entry(root.as_table(), KERNEL_SLOT).unwrap();
    check!(kernel.is_present(), "kernel slot inherited");
    check!(
        !w.mmu
            .entry(root.as_table(), common::sim::XEN_SLOT)
            .unwrap()
            .is_present(),
        "Xen's slot not inherited"
    );
    let root = w
        .mmu
        .pin(root)
        .map_err(|e| TestCaseError::fail(format!("pin: {:?}", e.error)))?;
    // SAFETY: the root inherited the kernel's slot.
    let previous = unsafe { w.mmu.switch_root(&mut w.live, root) }
        .map_err(|e| TestCaseError::fail(format!("{:?}", e.error)))?;
    check!(
        matches!(previous, hal_core::PreviousRoot::Boot(p) if p == w.boot.start()),
        "the boot root was live before: {previous:?}"
    );
    let root = &w.live;
    for r in &ranges {
        // SAFETY: the new root maps `r` at the base.
        unsafe {
            w.mmu
                .raw_mut()
                .add_window(c.base.wrapping_add(r.start().addr()), *r)
        }
        .map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
    }
    check!(w.mmu.raw().queued() == 0, "everything flushed");

    // The hook.
    let fin = buf
        .finish(&mut w.mmu, &mut w.mb)
        .map_err(|e| TestCaseError::fail(format!("finish: {e:?}")))?;
    let used = fin.used;
    check!(
        used.start() == buf_range.start() && used.len() == count.total() + 1,
        "used {used:?}"
    );
    check!(
        fin.released.start().as_u64() == used.end() && fin.released.end() == buf_range.end(),
        "released {:?} of {buf_range:?}",
        fin.released
    );
    check!(
        fin.released.len() == headroom,
        "tail of {} frames",
        fin.released.len()
    );

    // Every leaf, against the oracle (the tail is writable again, tables stay read-only).
    let sim: &Sim = w.mmu.raw();
    check!(
        sim.violations.is_empty(),
        "violations: {:?}",
        sim.violations
    );
    check!(sim.xen_agrees().is_ok(), "Xen: {:?}", sim.xen_agrees());
    check!(sim.root() == root.pfn().as_u64(), "switched");
    let final_ro = ro_set(&c.caps, w.boot, used, &[]);
    let tree = oracle::walk(sim, root.pfn().as_u64(), slots.clone());
    compare_leaves(&tree, &expect, c.base, flags, &final_ro)?;

    // Tables: each used frame (but the root) reached exactly once, at the right level.
    let mut reached: Vec<u64> = tree.tables.iter().map(|t| t.0).collect();
    reached.sort_unstable();
    let want: Vec<u64> = (used.start().as_u64() + 1..used.end()).collect();
    check!(
        reached == want,
        "tables reached {reached:x?}, buffer used {used:?}"
    );
    for &(t, level) in &tree.tables {
        check!(
            sim.state_of(t)
                == Some(FState::Table {
                    level,
                    pinned: false
                }),
            "table {t:#x} state {:?}",
            sim.state_of(t)
        );
    }
    check!(
        sim.state_of(root.pfn().as_u64())
            == Some(FState::Table {
                level: TableLevel::L4,
                pinned: true
            }),
        "root pinned"
    );
    // The rest of the root: the kernel slot, nothing else.
    for i in 0..512u16 {
        let e = sim.peek(root.pfn().as_u64(), i).unwrap();
        if slots.contains(&i) {
            continue;
        }
        let want = if i == KERNEL_SLOT { kernel.bits() } else { 0 };
        check!(e == want, "root slot {i} = {e:#x}");
    }

    // Every tail frame: plain memory again in the sim (released), free in memblock.
    for p in fin.released.iter() {
        check!(
            sim.state_of(p.as_u64()).is_none(),
            "tail {p:?} still {:?}",
            sim.state_of(p.as_u64())
        );
    }
    let protected = sim
        .states()
        .iter()
        .filter(|(_, s)| **s == FState::Protected)
        .count();
    check!(protected == 0, "{protected} frames left protected");
    let free: Vec<(u64, u64)> = w.mb.free_ranges().map(|r| (r.start(), r.end())).collect();
    let (ts, te) = fin.released.bytes();
    check!(
        fin.released.is_empty() || oracle::inside(&free, ts, te),
        "tail not free in memblock"
    );
    let (us, ue) = used.bytes();
    check!(
        w.mb.reserved()
            .iter()
            .any(|r| r.start() <= us && ue <= r.end()),
        "used part reserved"
    );
    // memblock: nothing lost. Memory unchanged; free = before − used.
    check!(w.mb.memory() == initial.memory(), "memory changed");
    check!(
        w.mb.free_bytes() + used.len() * 4096 == before_build.free_bytes() + buf_range.len() * 4096,
        "free bytes {} after, {} before the buffer",
        w.mb.free_bytes(),
        before_build.free_bytes() + buf_range.len() * 4096
    );
    check!(
        w.mb.free_bytes() + used.len() * 4096 == initial.free_bytes(),
        "free bytes {} after, {} at boot",
        w.mb.free_bytes(),
        initial.free_bytes()
    );
    let expect_mb = initial.with_reserved(us, ue).unwrap();
    check!(
        w.mb.reserved() == expect_mb.reserved(),
        "reserved {:x?}",
        w.mb.reserved()
    );
    check!(
        w.mmu.raw().counts.get(common::sim::Op::Protect) == 1
            && w.mmu.raw().counts.frames_protected == buf_range.len()
            && w.mmu.raw().counts.frames_released == headroom,
        "one protect of the buffer, release of the tail: {:?}",
        w.mmu.raw().counts
    );

    // Translations through hal-core's walker: range edges, random points, holes.
    let mut probes: Vec<u64> = Vec::new();
    for r in &ranges {
        let (s, e) = (r.start().as_u64(), r.end());
        probes.extend([s, e - 1, s + (e - s) / 2, e]);
        if s > 0 {
            probes.push(s - 1);
        }
    }
    let total: u64 = ranges.iter().map(|r| r.len()).sum();
    for &x in &c.samples {
        let mut k = x % total;
        for r in &ranges {
            if k < r.len() {
                probes.push(r.start().as_u64() + k);
                break;
            }
            k -= r.len();
        }
    }
    for pfn in probes {
        let in_ram = ranges
            .iter()
            .any(|r| r.contains(hal_core::Pfn::new(pfn).unwrap()));
        let va = c.base.wrapping_add(pfn << 12) + (pfn * 8 % 4096);
        let t = w
            .mmu
            .translate(w.live.table(), va)
            .map_err(|e| TestCaseError::fail(format!("translate: {e:?}")))?;
        match t {
            Some(t) => {
                check!(in_ram, "{va:#x} mapped but pfn {pfn:#x} is no RAM");
                check!(
                    t.pfn.as_u64() == pfn,
                    "{va:#x} -> {:?}, expected {pfn:#x}",
                    t.pfn
                );
                let i = expect.partition_point(|e| e.pfn <= pfn) - 1;
                let e = expect[i];
                check!(
                    e.pfn <= pfn && pfn < e.end(),
                    "oracle has no page for {pfn:#x}"
                );
                check!(
                    t.level == e.size.level(),
                    "{va:#x}: {:?} page, expected {:?}",
                    t.level,
                    e.size
                );
                let ro = oracle::in_set(&final_ro, pfn);
                check!(
                    t.leaf.flags().contains(PageTableFlags::WRITABLE) != ro,
                    "{va:#x} writable? {:?}",
                    t.leaf.flags()
                );
            }
            None => check!(!in_ram, "{va:#x} (pfn {pfn:#x}) not mapped"),
        }
    }
    let _ = root;
    Ok(())
}

#[test]
fn pgt_buf_lifecycle_new_root() {
    run_prop("pgt_buf_lifecycle_new_root", case(), lifecycle);
}

/// The count does not depend on where the tables go: for any ranges, `count_tables` equals the
/// number of distinct tables the oracle's leaves need (a property of the planner alone, run
/// over far larger machines than the builder could be).
#[test]
fn count_tables_matches_oracle() {
    let strat = (gen::any_caps(), gen::spec_sizes()).prop_flat_map(|(caps, sizes)| {
        let budget = if (caps.page_sizes & sizes).contains(PageSizes::SIZE_2M) {
            1 << 42
        } else {
            4 << 30
        };
        (
            Just(caps),
            Just(sizes),
            gen::base(),
            gen::lifecycle_map(budget),
            prop::collection::vec((0u64..1 << 26, 1u64..64), 0..4),
        )
    });
    run_prop(
        "count_tables_matches_oracle",
        strat,
        |(caps, sizes, base, map, ro)| {
            // SAFETY: the map is simulated memory; this memblock alone hands it out.
            let Ok((mb, _)) = (unsafe { hal_core::memblock::Memblock::<64>::from_firmware(&map) })
            else {
                return Err(TestCaseError::reject("no RAM"));
            };
            let ranges = oracle::pfn_ranges(&mb);
            let ro: Vec<PfnRange> = oracle::merge(
                ro.iter()
                    .map(|&(s, n)| PfnRange::new(hal_core::Pfn::new(s).unwrap(), s + n).unwrap())
                    .collect(),
            );
            let ro = if caps.tables_read_only {
                ro
            } else {
                Vec::new()
            };
            let spec = DirectMapSpec {
                base,
                page_sizes: sizes,
            };
            let effective = sizes & caps.page_sizes;
            let count = count_tables(&ranges, &ro, &spec, &caps)
                .map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
            let expect = oracle::expected_leaves(&ranges, &ro, effective);
            let keys = oracle::table_keys(&expect, base);
            check!(
                [count.l1, count.l2, count.l3]
                    == [keys[0].len(), keys[1].len(), keys[2].len()].map(|n| n as u64),
                "count {count:?}, oracle {:?}",
                keys.iter().map(|k| k.len()).collect::<Vec<_>>()
            );
            // And the planner's runs tile the ranges exactly as the oracle's pages do.
            let mut planned: Vec<Expect> = Vec::new();
            for run in direct_map::Runs::new(&ranges, &ro, &spec, &caps).unwrap() {
                check!(run.pages > 0, "empty run {run:?}");
                check!(
                    !run.read_only || run.size == PageSize::Size4K,
                    "read-only large run {run:?}"
                );
                let first = Expect {
                    pfn: run.pfn,
                    pages: 1,
                    size: run.size,
                    ro: run.read_only,
                };
                oracle::push_page(&mut planned, first.pfn, first.size, first.ro);
                planned.last_mut().unwrap().pages += run.pages - 1;
            }
            check!(
                planned == expect,
                "planner {planned:x?}\noracle {expect:x?}"
            );
            Ok(())
        },
    );
}
