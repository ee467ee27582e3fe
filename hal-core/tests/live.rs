//! `Target::Live`: the direct map built into a live root in two steps (two disjoint halves of
//! RAM, two buffers). The second build reuses the tables the first made where the halves share
//! them, makes exactly the missing ones (never more than the count for an empty root), and on
//! a backend with read-only tables keeps every table frame read-only in the map.

mod common;

use common::gen::{self, run_prop};
use common::oracle::{self, Expect};
use common::sim::{caps, FState};
use common::{new_buf, world};
use hal_core::direct_map::{self, DirectMapSpec, PageSize, Target};
use hal_core::memblock::Direction;
use hal_core::memmap::MemRegion;
use hal_core::{Caps, PageSizes, PageTableFlags, Pfn, PfnRange, RawMmu, TableBuilder};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

macro_rules! check {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(TestCaseError::fail(format!($($fmt)+)));
        }
    };
}

fn fail(what: &str, e: impl std::fmt::Debug) -> TestCaseError {
    TestCaseError::fail(format!("{what}: {e:?}"))
}

#[derive(Clone, Debug)]
struct Case {
    caps: Caps,
    sizes: PageSizes,
    base: u64,
    split: u64,
    headroom: [u64; 3],
    dir: [Direction; 3],
    map: Vec<MemRegion>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop_oneof![Just(caps::NATIVE), Just(caps::NATIVE_2M), Just(caps::XEN)],
        gen::spec_sizes(),
    )
        .prop_flat_map(|(caps, sizes)| {
            (
                Just(caps),
                Just(sizes),
                gen::base(),
                0u64..=1000,
                [0u64..8, 1u64..8, 1u64..8],
                [gen::direction(), gen::direction(), gen::direction()],
                gen::lifecycle_map(gen::ram_budget(&caps, sizes)),
            )
                .prop_map(|(caps, sizes, base, split, headroom, dir, map)| Case {
                    caps,
                    sizes,
                    base,
                    split,
                    headroom,
                    dir,
                    map,
                })
        })
}

/// The part of `ranges` below (`below`) or at and above `split`.
fn cut(ranges: &[PfnRange], split: u64, below: bool) -> Vec<PfnRange> {
    ranges
        .iter()
        .filter_map(|r| {
            let (s, e) = (r.start().as_u64(), r.end());
            let (s, e) = if below {
                (s, e.min(split))
            } else {
                (s.max(split), e)
            };
            (s < e).then(|| PfnRange::new(Pfn::new(s).unwrap(), e).unwrap())
        })
        .collect()
}

fn live(c: Case) -> Result<(), TestCaseError> {
    let Some(mut w) = world(&c.map, c.caps) else {
        return Err(TestCaseError::reject("no RAM"));
    };
    let initial = w.mb.snapshot();
    let ranges = w.ranges.clone();
    let spec = DirectMapSpec {
        base: c.base,
        page_sizes: c.sizes,
    };
    let flags = PageTableFlags::PRESENT | PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE;
    let slots = oracle::slots(&ranges, c.base);
    let sizes = c.sizes & c.caps.page_sizes;

    // A new root, made live with no direct map yet.
    let (mut buf0, _, _) = new_buf(&mut w, &[], &spec, c.headroom[0], true, c.dir[0], &[])
        .ok_or_else(|| TestCaseError::reject("no room"))?;
    let mut rb = TableBuilder::new(buf0.alloc().map_err(|e| fail("alloc", e))?);
    w.mmu
        .inherit_root(&w.live, &mut rb, (slots.start, slots.end))
        .map_err(|e| fail("inherit", e))?;
    let root = w.mmu.new_table(rb).map_err(|e| fail("root", e.error))?;
    let root = w.mmu.pin(root).map_err(|e| fail("pin", e.error))?;
    // SAFETY: the root inherited the kernel's slot.
    let _boot =
        unsafe { w.mmu.switch_root(&mut w.live, root) }.map_err(|e| fail("switch", e.error))?;
    let used0 = buf0
        .finish(&mut w.mmu, &mut w.mb)
        .map_err(|e| fail("finish0", e))?
        .used;
    check!(used0.len() == 1, "root only");

    // Two builds into the live root.
    let first = ranges.first().unwrap().start().as_u64();
    let last = ranges.last().unwrap().end();
    let split = first + (last - first) / 1000 * c.split;
    let halves = [cut(&ranges, split, true), cut(&ranges, split, false)];
    let mut used = vec![used0];
    let mut made = Vec::new();
    let mut expect: Vec<Vec<Expect>> = Vec::new();
    for (i, half) in halves.iter().enumerate() {
        let extra = used.clone();
        let (mut buf, count, _) = new_buf(
            &mut w,
            half,
            &spec,
            c.headroom[i + 1],
            false,
            c.dir[i + 1],
            &extra,
        )
        .ok_or_else(|| TestCaseError::reject("no room"))?;
        // SAFETY: the halves are disjoint RAM, mapped nowhere else under the root.
        let built = unsafe {
            direct_map::build(
                &mut w.mmu,
                &mut buf,
                Target::Live(w.live.table()),
                half,
                &extra,
                &spec,
                flags,
            )
        }
        .map_err(|e| fail("build", e))?;
        built
            .pending
            .flush(&mut w.mmu)
            .map_err(|e| fail("flush", e))?;
        check!(
            built.made.total() <= count.total(),
            "build {i}: made {:?} > count {count:?}",
            built.made
        );
        check!(buf.used() == built.made.total(), "build {i}: buffer use");
        for r in half {
            // SAFETY: the root maps `r` at the base now.
            unsafe {
                w.mmu
                    .raw_mut()
                    .add_window(c.base.wrapping_add(r.start().addr()), *r)
            }
            .map_err(|e| fail("window", e))?;
        }
        let fin = buf
            .finish(&mut w.mmu, &mut w.mb)
            .map_err(|e| fail("finish", e))?;
        used.push(fin.used);
        made.push((built.made, built.reused, count));
        expect.push(oracle::expected_leaves(half, &[], sizes));
    }

    // Reuse, exactly: the second build made the tables the first had not, reused the others.
    let keys: Vec<[Vec<u64>; 3]> = expect
        .iter()
        .map(|e| oracle::table_keys(e, c.base))
        .collect();
    let (m1, r1, c1) = made[0];
    check!(
        m1 == c1 && r1 == 0,
        "first build: made {m1:?} reused {r1}, count {c1:?}"
    );
    let (m2, r2, _) = made[1];
    let mut shared = 0;
    for (level, got) in [m2.l1, m2.l2, m2.l3].into_iter().enumerate() {
        let new = keys[1][level]
            .iter()
            .filter(|k| keys[0][level].binary_search(k).is_err())
            .count() as u64;
        shared += keys[1][level].len() as u64 - new;
        check!(
            got == new,
            "second build, level {}: made {got}, {new} missing",
            level + 1
        );
    }
    check!(r2 == shared, "second build reused {r2}, {shared} shared");

    // The final map: every leaf, every table once, tables (and boot tables) read-only.
    let sim = w.mmu.raw();
    check!(sim.violations.is_empty(), "violations {:?}", sim.violations);
    check!(sim.xen_agrees().is_ok(), "Xen: {:?}", sim.xen_agrees());
    let all: Vec<Expect> = expect.concat();
    let final_ro = if c.caps.tables_read_only {
        let mut v = used.clone();
        v.push(w.boot);
        oracle::merge(v)
    } else {
        Vec::new()
    };
    let tree = oracle::walk(sim, w.live.pfn().as_u64(), slots);
    check!(tree.errors.is_empty(), "walk: {:?}", tree.errors);
    let mut leaves = tree.leaves.iter();
    for run in &all {
        for k in 0..run.pages {
            let pfn = run.pfn + k * run.size.frames();
            let got = leaves.next().ok_or_else(|| fail("missing leaf", pfn))?;
            let mut want = flags;
            if oracle::in_set(&final_ro, pfn) {
                want.remove(PageTableFlags::WRITABLE);
            }
            if run.size != PageSize::Size4K {
                want.insert(PageTableFlags::HUGE_PAGE);
            }
            check!(
                got.pfn == pfn && got.size == run.size && got.flags == want,
                "leaf {got:x?}, expected {pfn:#x} {:?} {want:?}",
                run.size
            );
        }
    }
    check!(leaves.next().is_none(), "extra leaves");
    let mut reached: Vec<u64> = tree.tables.iter().map(|t| t.0).collect();
    reached.sort_unstable();
    let mut want: Vec<u64> = used[1..]
        .iter()
        .flat_map(|r| r.iter().map(|p| p.as_u64()))
        .collect();
    want.sort_unstable();
    check!(
        reached == want,
        "tables reached {reached:x?}, made {want:x?}"
    );
    let left: Vec<_> = sim
        .states()
        .iter()
        .filter(|(p, s)| {
            **s == FState::Protected
                || !used
                    .iter()
                    .chain([&w.boot])
                    .any(|r| r.contains(Pfn::new(**p).unwrap()))
        })
        .collect();
    check!(left.is_empty(), "frames neither table nor memory: {left:?}");

    // memblock: only the tables stay reserved.
    let tables: u64 = used.iter().map(|r| r.len()).sum();
    check!(
        w.mb.free_bytes() + tables * 4096 == initial.free_bytes(),
        "free {} + tables {} != {}",
        w.mb.free_bytes(),
        tables,
        initial.free_bytes()
    );
    let _ = root;
    Ok(())
}

#[test]
fn live_root_built_twice() {
    run_prop("live_root_built_twice", case(), live);
}
