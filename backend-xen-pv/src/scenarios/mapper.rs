//! The run-time mapper on the model of Xen: the reference-model driver hal-core's tests use
//! (its `space` module, shared by path), over `XenPv<Model>`. Xen's own checks apply to every
//! entry (no writable mapping of a table, no superpages, reserved slots), the model's guest
//! TLB keeps what the CPU touched until an invalidation drops it, and the hypercall counts
//! are checked against the bound the backend documents.

#[allow(dead_code, clippy::all)]
#[path = "../../../hal-core/tests/common/space.rs"]
mod space;

use std::vec::Vec;

use hal_core::mapper::{EmptyTables, Mapper, MemblockSource, PageSize};
use hal_core::memblock::Direction;
use hal_core::{Mmu, PageTableFlags};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use super::common::{boot, Backend};
use crate::model::DomainConfig;

struct XenCpu;

impl space::Machine<Backend> for XenCpu {
    fn access(&mut self, mmu: &mut Mmu<Backend>, va: u64, write: bool) -> Result<u64, ()> {
        let m = mmu.raw().hypervisor().inner();
        if write { m.store(va) } else { m.load(va) }.map_err(|_| ())
    }
    fn table_frames(&self, mmu: &Mmu<Backend>) -> Vec<u64> {
        let m = mmu.raw().hypervisor().inner();
        (0..mmu.raw().p2m().nr_pages())
            .filter(|&p| m.frame(p).ty.is_table())
            .collect()
    }
}

/// Data frames: 4 MiB of the guest's RAM set aside (top-down, beyond the boot window);
/// table frames come from the boot window, through which the backend reads them.
fn run(budget: u64, ops: &[space::Op]) -> Result<space::Summary, std::string::String> {
    let mut g = boot(DomainConfig::mib(64));
    let data =
        g.mb.alloc_frames(1024, u64::MAX, Direction::TopDown)
            .unwrap();
    let (phys, end) = data.pfns().bytes();
    let limit = g.layout.mapped_pages() * 4096;
    let root = g.live.table();
    let r = space::drive(
        &mut g.mmu,
        root,
        &mut XenCpu,
        &mut g.mb,
        limit,
        budget,
        (phys, end - phys),
        ops,
    )?;
    g.xen().audit()?;
    let _ = data;
    Ok(r)
}

#[test]
fn mapper_on_xen_matches_the_reference_model() {
    let cases = std::env::var("PVMMU_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(256)
        / 8;
    let mut runner = TestRunner::new(Config {
        cases: cases.max(1),
        failure_persistence: None,
        ..Config::default()
    });
    let strategy = (
        prop_oneof![3 => Just(1000u64), 1 => 2u64..8],
        prop::collection::vec(space::op(), 1..40),
    );
    runner
        .run(&strategy, |(budget, ops)| {
            run(budget, &ops).map(|_| ()).map_err(TestCaseError::fail)
        })
        .unwrap();
}

/// Hypercalls of a batch of 4 KiB mappings with one flush: one per 512 entries, the last
/// carrying the invalidation (a multicall), plus what the new tables cost.
#[test]
fn a_batch_costs_one_hypercall_per_512_entries_plus_tables() {
    let mut g = boot(DomainConfig::mib(64));
    let data =
        g.mb.alloc_frames(2048, u64::MAX, Direction::TopDown)
            .unwrap();
    let (phys, _) = data.pfns().bytes();
    let limit = g.layout.mapped_pages() * 4096;
    let root = g.live.table();
    let src = MemblockSource::new(&mut g.mb, limit);
    let mut m: Mapper<_> = Mapper::new(root, g.mmu.caps(), src, EmptyTables::Free);
    let va = space::WINDOW;
    // Tables first (3: L3, L2, L1 for the first 2 MiB, then a second L1).
    // SAFETY: the guest's own data frames, the test's window.
    let f = unsafe {
        m.map(
            &mut g.mmu,
            root,
            va,
            phys,
            4096,
            PageTableFlags::WRITABLE,
            PageSize::Auto,
        )
    }
    .unwrap();
    m.flush(&mut g.mmu, f).unwrap();
    // SAFETY: as above.
    let f = unsafe {
        m.map(
            &mut g.mmu,
            root,
            va + (2 << 20),
            phys + 4096,
            4096,
            PageTableFlags::WRITABLE,
            PageSize::Auto,
        )
    }
    .unwrap();
    m.flush(&mut g.mmu, f).unwrap();
    g.mmu.raw_mut().reset_counters();
    // 1,023 more leaves in the two existing L1s, then unmap all of them: 2,046 entries.
    // SAFETY: as above.
    let f = unsafe {
        m.map(
            &mut g.mmu,
            root,
            va + 4096,
            phys + 8192,
            511 * 4096,
            PageTableFlags::WRITABLE,
            PageSize::Auto,
        )
    }
    .unwrap();
    // SAFETY: as above.
    let f = f.join(
        unsafe {
            m.map(
                &mut g.mmu,
                root,
                va + (2 << 20) + 4096,
                phys + 600 * 4096,
                511 * 4096,
                PageTableFlags::WRITABLE,
                PageSize::Auto,
            )
        }
        .unwrap(),
    );
    m.flush(&mut g.mmu, f).unwrap();
    let t = g.mmu.raw().counters().total();
    // 1,022 entries: one full mmu_update, one multicall carrying the rest (no invalidation).
    assert_eq!(t.hypercalls, 2, "{t:?}");
    // A protect of one page: one update_va_mapping with UVMF_INVLPG.
    g.mmu.raw_mut().reset_counters();
    g.mmu.raw().hypervisor().inner().store(va + 4096).unwrap();
    // SAFETY: as above.
    let f =
        unsafe { m.protect(&mut g.mmu, root, va + 4096, 4096, PageTableFlags::empty()) }.unwrap();
    m.flush(&mut g.mmu, f).unwrap();
    let t = g.mmu.raw().counters().total();
    assert_eq!((t.hypercalls, t.update_va_mapping), (1, 1), "{t:?}");
    assert!(
        g.mmu.raw().hypervisor().inner().store(va + 4096).is_err(),
        "the read-only page is still writable in the TLB"
    );
    // Teardown: everything back but the level-3 table in its root slot, which stays.
    // SAFETY: as above.
    let td = unsafe { m.teardown(&mut g.mmu, root) }.unwrap();
    assert_eq!(td.tables_kept, 1);
    assert_eq!(td.tables_freed_total + td.tables_kept, td.tables_allocated);
    assert_eq!(td.tables_allocated, 4);
    g.xen().audit().unwrap();
    let _ = data;
}

/// Table frames in the domain, as Xen sees them.
fn xen_tables(g: &super::common::Guest) -> usize {
    let m = g.xen();
    (0..g.mmu.raw().p2m().nr_pages())
        .filter(|&p| m.frame(p).is_table())
        .count()
}

/// A map of 512 frames that Xen refuses at entry `pos` (frame `pos` pinned as an L1 behind
/// hal-core's back, so its writable leaf is -EBUSY): whether the refusal comes out of `map`
/// (the backend's queue submitted part way: 0, 1, 255, 510) or out of the flush (511), nothing
/// is mapped in the range afterwards (the model's walk says so,
/// not the mapper), the teardown gives back every table but the level-3 one in the window's
/// root slot, which stays (the model's table count and the frame source's free bytes are what
/// they were before, plus and minus that table), and Xen's audit passes.
#[test]
fn a_refused_map_loses_nothing() {
    use hal_core::RawMmu;
    for pos in [0u64, 1, 255, 510, 511] {
        let mut g = boot(DomainConfig::mib(64));
        let data =
            g.mb.alloc_frames(512, u64::MAX, Direction::TopDown)
                .unwrap();
        let (phys, end) = data.pfns().bytes();
        let x = hal_core::Pfn::new((phys >> 12) + pos).unwrap();
        // SAFETY: deliberately wrong: a data frame (unmapped, all zeros) made a page table
        // behind hal-core's back.
        unsafe { g.mmu.raw_mut().pin(x, hal_core::TableLevel::L1) }.unwrap();
        let limit = g.layout.mapped_pages() * 4096;
        let root = g.live.table();
        let free0 = g.mb.free_bytes();
        let tables0 = xen_tables(&g);
        let va = space::WINDOW;
        let (from_map, td) = {
            let src = MemblockSource::new(&mut g.mb, limit);
            let mut m: Mapper<_, 8> = Mapper::new(root, g.mmu.caps(), src, EmptyTables::Free);
            // SAFETY: the guest's own data frames, the test's window.
            let res = unsafe {
                m.map(
                    &mut g.mmu,
                    root,
                    va,
                    phys,
                    end - phys,
                    PageTableFlags::WRITABLE,
                    PageSize::Size4K,
                )
            };
            let from_map = res.is_err();
            let res = res.and_then(|f| m.flush(&mut g.mmu, f));
            let e = res.expect_err("a writable leaf for a pinned table is refused");
            let mapped: Vec<u64> = (0..512u64)
                .filter(|k| {
                    let model = g.mmu.raw().hypervisor().inner();
                    model.load(va + k * 4096).is_ok()
                })
                .collect();
            assert!(
                mapped.is_empty(),
                "pos {pos} (refused by map: {from_map}): {e}, but {} pages stay mapped: {:?}..",
                mapped.len(),
                &mapped[..mapped.len().min(4)]
            );
            // SAFETY: everything this mapper mapped is the test's.
            let td = unsafe { m.teardown(&mut g.mmu, root) }.unwrap();
            (from_map, td)
        };
        for k in 0..512u64 {
            assert!(
                g.xen().load(va + k * 4096).is_err(),
                "pos {pos} (refused by map: {from_map}): page {k} mapped after the teardown"
            );
        }
        // The level-3 table the map made in the window's root slot (empty before) stays;
        // nothing else is left.
        let kept = td.tables_kept;
        assert_eq!(kept, 1, "pos {pos}: the level-3 table stays ({td:?})");
        assert_eq!(
            xen_tables(&g),
            tables0 + 1,
            "pos {pos} (refused by map: {from_map}): tables left behind ({td:?})"
        );
        assert_eq!(
            g.mb.free_bytes(),
            free0 - 4096,
            "pos {pos} (refused by map: {from_map}): frames lost ({td:?})"
        );
        assert_eq!(
            td.tables_freed_total + kept,
            td.tables_allocated,
            "pos {pos}"
        );
        // SAFETY: pinned above as an L1, hooked nowhere, not the root.
        unsafe { g.mmu.raw_mut().unpin(x, hal_core::TableLevel::L1) }.unwrap();
        g.xen().audit().unwrap();
        let _ = data;
    }
}
