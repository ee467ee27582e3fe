//! The default fill strategy with stores (`FillStrategy::StoreThenProtect` on a model that
//! lets the backend store): fresh tables the initial mapping covers are stored through it,
//! the others through the backend's scratch pages, or queued without them; the tree is the
//! queued build's, entry for entry, and Xen's rules hold at every step (the model's stores
//! walk the current tables: a store into a frame no writable mapping reaches panics).

use super::common::{boot, Guest};

use crate::model::{DomainConfig, Fault, PageType};
use crate::Phase;
use hal_core::direct_map::{map_ram, Setup};
use hal_core::pgt_buf::Finished;
use hal_core::{Pfn, PfnRange};

const HEADROOM: u64 = 64;
/// Scratch pages the tests give the backend: one per level.
const SCRATCH: u64 = 4;

/// How a run's tables are written.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Run {
    /// Every entry queued (the model does not store).
    Queued,
    /// Stores through the initial mapping only.
    Stores,
    /// Stores, and the scratch pages for tables beyond the initial mapping.
    Scratch,
}

/// Boots `mib` MiB, sets [`SCRATCH`] frames of the initial mapping aside (in every run, so
/// that `pgt_buf` lies at the same frames), and maps all RAM.
fn run(mib: u64, how: Run) -> (Guest, Finished) {
    let mut g = boot(DomainConfig::mib(mib));
    let p = g.after_bootstrap(SCRATCH);
    g.mb.reserve(p * 4096, (p + SCRATCH) * 4096).unwrap();
    g.xen().set_stores(how != Run::Queued);
    if how == Run::Scratch {
        let va = g.layout.pfn_to_va(p).unwrap();
        let own = PfnRange::new(Pfn::new(p).unwrap(), p + SCRATCH).unwrap();
        // SAFETY: frames of the initial mapping set aside above, which nothing else uses.
        unsafe { g.mmu.raw_mut().set_scratch(va, own) }.unwrap();
    }
    let setup = Setup::linux().headroom(HEADROOM);
    let dm = map_ram(&mut g.mmu, &mut g.live, &mut g.mb, &setup).unwrap();
    g.xen().audit().unwrap();
    (g, dm.buffer)
}

/// The used tables that the initial mapping does not cover, and their levels.
fn outside(g: &Guest, fin: &Finished) -> (u64, u64) {
    let mut levels = [false; 4];
    let mut n = 0;
    for p in fin.used.iter().map(|p| p.as_u64()) {
        if g.layout.pfn_to_va(p).is_some() {
            continue;
        }
        n += 1;
        let l = match g.xen().frame(p).ty {
            PageType::L1 => 0,
            PageType::L2 => 1,
            PageType::L3 => 2,
            PageType::L4 => 3,
            t => panic!("used frame {p:#x} is no table: {t:?}"),
        };
        levels[l] = true;
    }
    (n, levels.iter().filter(|&&l| l).count() as u64)
}

fn same_tree(a: &Guest, fa: &Finished, b: &Guest, fb: &Finished) {
    assert_eq!(fa.used, fb.used, "the same frames");
    assert_eq!(fa.released, fb.released);
    for p in fa.used.iter().map(|p| p.as_u64()) {
        assert_eq!(a.xen().frame(p).ty, b.xen().frame(p).ty, "pfn {p:#x}");
        for i in 0..512 {
            assert_eq!(
                a.xen().raw_entry(p, i),
                b.xen().raw_entry(p, i),
                "table {p:#x} entry {i}"
            );
        }
    }
    for pfn in 0..a.ram.end() {
        let va = Guest::va(pfn);
        assert_eq!(
            a.xen().load(va),
            Ok(pfn),
            "pfn {pfn:#x} mapped at its place"
        );
        if a.xen().frame(pfn).is_table() {
            assert_eq!(a.xen().store(va), Err(Fault::ReadOnly { level: 1 }));
        } else {
            assert_eq!(a.xen().store(va), Ok(pfn), "pfn {pfn:#x} writable");
        }
    }
}

/// At 64 MiB the initial mapping covers the whole buffer, at 2 GiB none of it (the P2M pushes
/// it past the end), at 1 GiB and a bit part of it.
/// At 64 MiB the initial mapping covers the whole buffer, at 2 and 3 GiB only part of it.
#[test]
fn stores_build_the_queued_tree_with_one_hypercall_per_table_outside_the_initial_mapping() {
    for mib in [64, 2048, 3072] {
        let (q, fq) = run(mib, Run::Queued);
        let (s, fs) = run(mib, Run::Stores);
        let (x, fx) = run(mib, Run::Scratch);
        same_tree(&s, &fs, &q, &fq);
        same_tree(&x, &fx, &q, &fq);
        let tables = fq.used.len();
        let (out, levels) = outside(&q, &fq);
        let fill = |g: &Guest| *g.mmu.raw().counters().get(Phase::FillInstall);
        let mro = |g: &Guest| *g.mmu.raw().counters().get(Phase::MakeReadOnly);
        // Make read-only is the same batch, whenever it is applied.
        assert_eq!(mro(&s), mro(&q), "{mib}M: make read-only");
        assert_eq!(mro(&x), mro(&q), "{mib}M: make read-only");
        let switch = |f: &crate::mmu::PhaseCount| (f.hypercalls, f.entries);
        // Queued: every table's 512 entries.
        let f = fill(&q);
        assert_eq!(f.entries, tables * 512, "{mib}M: {f:?}");
        assert!(f.mmu_update <= tables + 1, "{mib}M: {f:?}");
        assert_eq!(q.xen().stored(), 0);
        // Stores alone: the tables outside the initial mapping are queued, the others stored.
        let f = fill(&s);
        assert_eq!(f.entries, out * 512, "{mib}M: {f:?}");
        assert!(f.mmu_update <= out + 1, "{mib}M: {f:?}");
        assert_eq!(f.hypercalls, f.mmu_update, "{mib}M: {f:?}");
        assert_eq!(s.xen().stored(), (tables - out) * 512, "{mib}M");
        // With scratch pages: every table stored; one update_va_mapping per table outside the
        // initial mapping, one per scratch page moved to put it back.
        let f = fill(&x);
        assert_eq!(
            (switch(&f), f.update_va_mapping, f.mmu_update),
            ((out + levels, out + levels), out + levels, 0),
            "{mib}M: {out} tables outside, {levels} levels"
        );
        assert_eq!(x.xen().stored(), tables * 512, "{mib}M");
        assert_eq!(x.mmu.raw().scratch().1 as u64, SCRATCH);
        if mib == 64 {
            assert_eq!(out, 0, "the initial mapping covers the buffer at 64M");
        } else {
            assert!(out > 0 && levels > 0, "{mib}M: tables outside");
        }
        // The model counted what the wrapper counted.
        for g in [&q, &s, &x] {
            let c = g.mmu.raw().counters();
            assert_eq!(g.xen().stats().hypercalls, c.total().hypercalls);
            assert_eq!(g.mmu.raw().queued(), 0);
        }
        // The scratch pages map their own frames again, writable.
        let (va, n) = x.mmu.raw().scratch();
        let own = x.layout.va_to_pfn(va).unwrap();
        for i in 0..n as u64 {
            assert_eq!(x.xen().store(va + 4096 * i), Ok(own + i));
        }
    }
}

/// Scratch pages that are not a writable mapping of their own frames are refused, nothing
/// changed.
#[test]
fn set_scratch_refuses_pages_that_do_not_map_their_own_frames_writable() {
    use crate::mmu::{Cause, Op, Unsupported};
    let mut g = boot(DomainConfig::mib(64));
    let p = g.after_bootstrap(2);
    let va = g.layout.pfn_to_va(p).unwrap();
    let own = |lo: u64| PfnRange::new(Pfn::new(lo).unwrap(), lo + 2).unwrap();
    let cases = [
        (va, own(p + 1), va),       // the frames of other pages
        (va + 8, own(p), va + 8),   // not page aligned
        (1 << 46, own(p), 1 << 46), // nothing mapped there
        (
            g.layout.pfn_to_va(g.boot_tables.start().as_u64()).unwrap(),
            own(g.boot_tables.start().as_u64()),
            g.layout.pfn_to_va(g.boot_tables.start().as_u64()).unwrap(),
        ), // read-only: the bootstrap tables
    ];
    for (va, own, at) in cases {
        // SAFETY: refused: nothing is used.
        let e = unsafe { g.mmu.raw_mut().set_scratch(va, own) }.unwrap_err();
        assert_eq!(e.op, Op::Scratch);
        assert_eq!(
            e.cause,
            Cause::Unsupported(Unsupported::Scratch(at)),
            "{va:#x}"
        );
        assert_eq!(g.mmu.raw().scratch().1, 0);
    }
}

/// Stores reach only tables whose protection is held back. A table made read-only at once
/// (`FillStrategy::Queue`, or before the strategy changed) is queued even while the model
/// stores, also when it lies right after a range that is held back; a store into it would
/// fault (the model's stores walk the current tables, and the frame has no writable mapping).
#[test]
fn a_table_already_read_only_is_queued_not_stored() {
    use crate::FillStrategy;
    use hal_core::memblock::Direction;
    use hal_core::{EntryRun, FreshTable, PageTableFlags, Pte};
    use typenum::U1;
    let mut g = boot(DomainConfig::mib(64));
    g.xen().set_stores(true);
    g.mmu
        .raw_mut()
        .set_fill_strategy(FillStrategy::Queue)
        .unwrap();
    // Frames the initial mapping covers (so a store could reach them through it): the first
    // three after the bootstrap tables, handed out top-down below a limit.
    let p = g.after_bootstrap(3);
    let limit = (p + 3) * 4096;
    // Read-only at once: the highest of them.
    let mut late =
        hal_core::PgtBuf::new(&mut g.mmu, &mut g.mb, 1, limit, Direction::TopDown).unwrap();
    assert_eq!(late.range().start().as_u64(), p + 2);
    g.mmu
        .raw_mut()
        .set_fill_strategy(FillStrategy::StoreThenProtect)
        .unwrap();
    // Held back: the two right below it.
    let mut held =
        hal_core::PgtBuf::new(&mut g.mmu, &mut g.mb, 2, limit, Direction::TopDown).unwrap();
    assert_eq!(held.range().end(), late.range().start().as_u64());
    assert_eq!(g.mmu.raw().deferred(), &[held.range()]);
    let leaf = Pte::new(
        Pfn::new(0x100).unwrap(),
        PageTableFlags::PRESENT | PageTableFlags::WRITABLE,
    );
    let run = EntryRun {
        first: leaf,
        step: 1,
        count: 4,
    };
    let stored = g.xen().stored();
    let mut tables = [
        FreshTable::<U1>::new(late.alloc().unwrap()),
        FreshTable::<U1>::new(held.alloc().unwrap()),
    ];
    // Both filled while the lower two frames' protection is held back (no flush between).
    for t in &mut tables {
        // SAFETY: the leaves map ordinary RAM of the domain; the tables are never hooked.
        unsafe { g.mmu.put_leaves(t, 0, &run) }.unwrap();
    }
    assert_eq!(
        g.xen().stored() - stored,
        4,
        "the held-back table's 4 leaves stored"
    );
    let [late_t, held_t] = tables;
    // The held-back table finished by stores (its other 508 slots), then the flush makes its
    // frames read-only; the read-only one is queued.
    let held_t = g.mmu.finish_table(held_t).unwrap();
    let late_t = g.mmu.finish_table(late_t).unwrap();
    assert_eq!(g.xen().stored() - stored, 512);
    let _ = (late_t, held_t);
    g.xen().audit().unwrap();
}
