//! The whole direct-map build of `XenPv<Model>` (hal-core's PgtBuf + direct_map::build + pin +
//! switch + finish) for several memory sizes, checked against the model of Xen's rules; and the
//! hypercall budgets.

use super::common;

use crate::mmu::Op;
use crate::mmu::PhaseCount;
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
        let fin = direct_map(&mut g, HEADROOM);
        let c = g.mmu.raw().counters();
        let fill = c.get(Phase::FillInstall);
        // Every table (the root included) is written whole: 512 entries each.
        let tables = common::needed(&g) + 1;
        assert_eq!(fill.entries, tables * 512);
        assert!(fill.hypercalls <= fill.entries.div_ceil(512), "{fill:?}");
        assert_eq!(fill.hypercalls, tables, "one mmu_update per table");
        let mk = c.get(Phase::MakeReadOnly);
        // The buffer's frames the initial mapping maps (writable, before anything else maps
        // them): each one entry made read-only, in batches of 512, then one local TLB flush.
        let e = (fin.used.start().as_u64()..fin.released.end())
            .filter(|&p| g.layout.pfn_to_va(p).is_some())
            .count() as u64;
        assert!(
            e > 0,
            "the initial mapping covers part of pgt_buf at {mib} MiB"
        );
        let want = PhaseCount {
            hypercalls: e.div_ceil(512) + 1,
            entries: e + 1,
            mmu_update: e.div_ceil(512),
            mmuext_op: 1,
            ..PhaseCount::default()
        };
        assert_eq!(*mk, want, "make read-only at {mib} MiB");
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

/// What [`release_costs`] measured.
struct Costs {
    /// Tail frames.
    k: u64,
    /// Their mappings in the live tables, the model's count (`m·K`).
    mk: u64,
    /// The fewest and the most mappings of one tail frame.
    m: (u32, u32),
    /// `finish`'s release (batched).
    batched: PhaseCount,
    /// The same frames protected again and released one hypercall per mapping.
    per_page: PhaseCount,
}

/// Builds with `headroom`, then measures a release of the tail: the tail released by `finish`
/// (batched), then protected again and released the seed's way.
fn release_costs(mib: u64, headroom: u64) -> Costs {
    let mut g = boot(DomainConfig::mib(mib));
    let fin = direct_map(&mut g, headroom);
    let batched = *g.mmu.raw().counters().get(Phase::Release);
    let (mk, lo, hi) = common::tail_mappings(&g, fin.released);
    let tail = g.mb.alloc_exact(fin.released).unwrap();
    let k = tail.len();
    let before = g.mmu.raw().counters();
    let released = XenPv::compare_release(&mut g.mmu, tail).unwrap();
    let after = g.mmu.raw().counters();
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
    assert_eq!(common::tail_mappings(&g, released.pfns()).0, mk);
    g.xen().audit().unwrap();
    let _ = released;
    Costs {
        k,
        mk,
        m: (lo, hi),
        batched,
        per_page,
    }
}

/// The documented budget (`ReleaseStrategy::Batched`, the `mmu` module's table): releasing `K`
/// frames mapped `m` times each costs at most `ceil(m·K/1024) + 1` hypercalls, carrying one
/// entry per mapping; `m·K` is the model's count of the tail's mappings.
#[test]
fn release_costs_at_most_ceil_mk_over_1024_plus_one() {
    // (MiB, headroom, the fewest and most mappings of a tail frame). A small tail lies inside
    // the initial mapping (m = 2), a large one runs past its end; at 2 GiB the P2M pushes the
    // whole buffer past it (m = 1: the direct map's mapping only).
    let cases = [
        (64, 64, (2, 2)),
        (64, 700, (1, 2)),
        (512, 64, (2, 2)),
        (512, 1500, (1, 2)),
        (512, 3000, (1, 2)),
        (2048, 64, (1, 1)),
        (2048, 3000, (1, 1)),
    ];
    for (mib, headroom, m) in cases {
        let c = release_costs(mib, headroom);
        assert_eq!(c.k, headroom, "{mib}M: the tail is the headroom");
        assert_eq!(c.m, m, "{mib}M K={}: mappings per frame", c.k);
        if m.0 == m.1 {
            assert_eq!(c.mk, u64::from(m.0) * c.k);
        }
        assert_eq!(c.batched.entries, c.mk, "{mib}M: one entry per mapping");
        let budget = c.mk.div_ceil(1024) + 1;
        assert!(
            c.batched.hypercalls <= budget,
            "{mib}M K={} m*K={}: {} hypercalls, budget {budget}",
            c.k,
            c.mk,
            c.batched.hypercalls
        );
        assert_eq!(
            (c.per_page.hypercalls, c.per_page.entries),
            (c.mk, c.mk),
            "{mib}M: the seed's way, one hypercall per mapping"
        );
    }
}

/// `retarget_page`, the board's second mapping of a frame: a page of the initial mapping
/// pointed at a frame beyond it read-only, a writable mapping of a table refused with nothing
/// changed, then the page pointed back at its own frame.
#[test]
fn retarget_page_maps_another_frame_and_back() {
    use hal_core::{BackendError, ErrorKind, Pfn};
    let mut g = boot(DomainConfig::mib(64));
    let fin = direct_map(&mut g, HEADROOM);
    let own = fin.released.start();
    let page = g.layout.pfn_to_va(own.as_u64()).unwrap();
    let beyond = Pfn::new(g.ram.end() - 1).unwrap();
    assert!(g.layout.pfn_to_va(beyond.as_u64()).is_none());
    let before = g.mmu.raw().counters().total().update_va_mapping;
    // SAFETY: a released tail frame's page of the initial mapping, which nothing here uses.
    unsafe { g.mmu.raw_mut().retarget_page(page, beyond, false) }.unwrap();
    assert_eq!(g.xen().load(page), Ok(beyond.as_u64()));
    assert_eq!(g.xen().store(page), Err(Fault::ReadOnly { level: 1 }));
    // SAFETY: as above; Xen refuses the writable mapping of a table.
    let e = unsafe { g.mmu.raw_mut().retarget_page(page, fin.used.start(), true) }.unwrap_err();
    assert_eq!(e.op, Op::Retarget);
    assert!(
        matches!(e.kind(), ErrorKind::Busy | ErrorKind::Refused),
        "{e:?}"
    );
    assert_eq!(g.xen().load(page), Ok(beyond.as_u64()));
    // No L1 maps an address of an L4 slot nothing uses: refused.
    // SAFETY: nothing is mapped there.
    let e = unsafe { g.mmu.raw_mut().retarget_page(1 << 46, own, false) }.unwrap_err();
    assert_eq!(e.op, Op::Retarget);
    // SAFETY: as above; the frame is the page's own, released, ours.
    unsafe { g.mmu.raw_mut().retarget_page(page, own, true) }.unwrap();
    assert_eq!(g.xen().store(page), Ok(own.as_u64()));
    assert_eq!(
        g.mmu.raw().counters().total().update_va_mapping - before,
        4,
        "one update_va_mapping each, refused ones too"
    );
    g.xen().audit().unwrap();
}

/// The caller's read-only ranges may cover `pgt_buf` (a caller naming every table frame it
/// knows of): the buffer's frames stay the backend's, protected while they may become tables
/// and writable again when the tail is released. Real Xen's rule decides: a store through the
/// direct map into every released frame succeeds; the frame named beyond the buffer stays
/// read-only for good.
#[test]
fn a_callers_read_only_range_over_the_buffer_leaves_the_tail_to_the_release() {
    use hal_core::{Pfn, PfnRange};
    let mut g = boot(DomainConfig::mib(64));
    let mut buf = common::make_buf(&mut g, HEADROOM);
    let b = buf.range();
    let extra = [PfnRange::new(b.start(), b.end() + 1).unwrap()];
    let root = common::fill_with(&mut g, &mut buf, &extra);
    common::switch(&mut g, root);
    let fin = common::finish(&mut g, buf);
    g.xen().audit().unwrap();
    assert_eq!(fin.released.len(), HEADROOM);
    for p in fin.released.iter().map(Pfn::as_u64) {
        assert_eq!(
            g.xen().store(Guest::va(p)),
            Ok(p),
            "released frame {p:#x} writable again"
        );
    }
    assert_eq!(
        g.xen().store(Guest::va(b.end())),
        Err(Fault::ReadOnly { level: 1 }),
        "the caller's frame after the buffer stays read-only"
    );
}
