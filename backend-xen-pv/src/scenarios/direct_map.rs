//! The whole direct-map build of `XenPv<Model>` (hal-core's PgtBuf + direct_map::build + pin +
//! switch + finish) for several memory sizes, checked against the model of Xen's rules; and the
//! hypercall budgets.

use super::common;

use crate::model::{DomainConfig, Fault, PageType};
use crate::{Phase, ReleaseStrategy, XenPv};
use common::{boot, direct_map, Guest};
use hal_core::Report;

const HEADROOM: u64 = 64;

fn check_guest(mib: u64, extra_pages: u64) {
    let mut cfg = DomainConfig::mib(mib);
    cfg.nr_pages += extra_pages;
    let mut g = boot(cfg);
    let needed = common::needed(&g);
    let fin = direct_map(&mut g, HEADROOM);
    let xen = g.xen();
    xen.audit().unwrap();
    assert_eq!(xen.current_root(), g.live.pfn().as_u64());
    assert!(
        fin.used.contains(g.live.pfn()),
        "the new root is one of the buffer's tables"
    );
    assert_eq!(
        fin.used.len(),
        needed + 1,
        "exactly the computed tables + the root"
    );
    assert_eq!(fin.released.len(), HEADROOM);
    assert_eq!(xen.stats().nonzero_not_present, 0);

    // Every frame is mapped at its place; tables read-only, everything else writable.
    let tables = |p: u64| {
        fin.used.contains(hal_core::Pfn::new(p).unwrap())
            || g.boot_tables.contains(hal_core::Pfn::new(p).unwrap())
    };
    for pfn in 0..g.ram.end() {
        let va = Guest::va(pfn);
        assert_eq!(xen.load(va), Ok(pfn), "pfn {pfn:#x} mapped at its place");
        let is_table = xen.frame(pfn).is_table();
        assert_eq!(is_table, tables(pfn), "pfn {pfn:#x}");
        if is_table {
            assert_eq!(xen.store(va), Err(Fault::ReadOnly { level: 1 }));
        } else {
            assert_eq!(xen.store(va), Ok(pfn), "pfn {pfn:#x} writable");
        }
    }
    // The tail: writable through every mapping, ordinary memory for Xen.
    for pfn in fin.released.iter().map(|p| p.as_u64()) {
        let f = xen.frame(pfn);
        assert!(matches!(f.ty, PageType::Writable | PageType::None));
        assert_eq!(xen.store(Guest::va(pfn)), Ok(pfn));
        if let Some(va) = g.layout.pfn_to_va(pfn) {
            assert_eq!(xen.store(va), Ok(pfn), "and through the initial mapping");
        }
    }
    // The kernel still runs: its image is mapped where it was.
    assert_eq!(xen.store(0x1000), Ok(1));
    // Still remembered: the mappings of the tables (for retire), at most two per table (the
    // initial mapping, the direct map).
    let remembered = g.mmu.raw().read_only_mappings();
    assert!(remembered >= fin.used.len() && remembered <= 2 * fin.used.len());
    assert_eq!(g.mmu.raw().queued(), 0);
}

#[test]
fn direct_map_16m() {
    check_guest(16, 0);
}

#[test]
fn direct_map_64m() {
    check_guest(64, 0);
}

#[test]
fn direct_map_odd_size() {
    // Not a multiple of 2 MiB: a partial last L1.
    check_guest(100, 123);
}

#[test]
fn direct_map_512m() {
    check_guest(512, 0);
}

#[test]
fn direct_map_1g_and_a_bit() {
    // Crosses a 1 GiB boundary: two L2 tables.
    check_guest(1024, 4096 + 7);
}

#[test]
fn fill_and_install_costs_one_hypercall_per_512_entries() {
    for mib in [16, 64, 512] {
        let mut g = boot(DomainConfig::mib(mib));
        let _ = direct_map(&mut g, HEADROOM);
        let c = g.mmu.raw().counters();
        let fill = c.get(Phase::FillInstall);
        // Every table (the root included) is written whole: 512 entries each.
        let tables = common::needed(&g) + 1;
        assert_eq!(fill.entries, tables * 512);
        assert!(fill.hypercalls <= fill.entries.div_ceil(512), "{fill:?}");
        assert_eq!(fill.hypercalls, tables, "one mmu_update per table");
        let mk = c.get(Phase::MakeReadOnly);
        // The read-only batches, then one local TLB flush.
        assert!(mk.hypercalls <= mk.entries.div_ceil(512) + 1, "{mk:?}");
        let sw = c.get(Phase::Switch);
        assert_eq!(
            (sw.hypercalls, sw.mmuext_op),
            (2, 2),
            "pin, then new baseptr"
        );
        // The model counted the same hypercalls.
        assert_eq!(g.xen().stats().hypercalls, c.total().hypercalls);
    }
}

/// Builds with `headroom`, then measures a release of the tail with `strategy`: the tail
/// released by `finish` (batched), then protected again and released with `strategy`.
fn release_costs(mib: u64, headroom: u64) -> (u64, u64, u64, u64) {
    let mut g = boot(DomainConfig::mib(mib));
    let fin = direct_map(&mut g, headroom);
    let batched = *g.mmu.raw().counters().get(Phase::Release);
    let tail = g.mb.alloc_exact(fin.released).unwrap();
    let k = tail.len();
    let before = *g.mmu.raw().counters();
    let released = XenPv::compare_release(&mut g.mmu, tail).unwrap();
    let after = *g.mmu.raw().counters();
    let per_page = *after.per_page_release();
    // The phases and the strategy are as they were; the re-protect counted as other.
    assert_eq!(g.mmu.raw().release_strategy(), ReleaseStrategy::Batched);
    assert_eq!(after.get(Phase::Release), before.get(Phase::Release));
    assert_eq!(
        after.get(Phase::MakeReadOnly),
        before.get(Phase::MakeReadOnly)
    );
    assert!(after.get(Phase::Other).hypercalls > before.get(Phase::Other).hypercalls);
    for pfn in released.pfns().iter() {
        assert_eq!(g.xen().store(Guest::va(pfn.as_u64())), Ok(pfn.as_u64()));
    }
    g.xen().audit().unwrap();
    let _ = released;
    (k, batched.hypercalls, per_page.hypercalls, per_page.entries)
}

#[test]
fn release_costs_at_most_ceil_k_over_512_plus_one() {
    for (mib, headroom) in [(64, 64), (64, 700), (512, 64), (512, 1500), (512, 3000)] {
        let (k, batched, per_page, per_page_entries) = release_costs(mib, headroom);
        assert!(
            batched <= k.div_ceil(512) + 1,
            "{mib}M K={k}: {batched} hypercalls"
        );
        assert!(per_page >= k, "the seed's way: at least one per page");
        assert_eq!(per_page, per_page_entries, "one entry per hypercall");
    }
}
