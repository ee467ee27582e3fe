//! The direct-map builder on random RAM layouts, on backend-xen-pv over the model of Xen's
//! rules: a domain of random size, the direct map of a random part of its RAM (holes
//! anywhere, the image and the bootstrap tables included or not), with a random headroom.
//! Every step must succeed, and afterwards: exactly the computed tables (+ the root) were
//! used, the tail released; the model's bookkeeping audits clean; every frame of the layout is
//! mapped at its place (read-only exactly when it is a table, writable otherwise), every frame
//! of a hole is not mapped; the tail is writable everywhere.

#![no_main]

use backend_xen_pv::model::{Fault, PageType, Translation};
use backend_xen_pv::{Counted, Phase, Storage};
use hal_core::direct_map::plan::LINUX_PAGE_OFFSET;
use hal_core::direct_map::{self, count_tables, DirectMapSpec, Target};
use hal_core::memblock::{Direction, Memblock, MemblockError};
use hal_core::pgt_buf::NewError;
use hal_core::{
    LiveRoot, PageSizes, PageTableFlags, Pfn, PfnRange, PgtBuf, PreviousRoot, RawMmu, TableBuilder,
    TableLevel,
};
use libfuzzer_sys::fuzz_target;
use pvmmu_fuzz::guest;
use pvmmu_fuzz::input::Input;

const BASE: u64 = LINUX_PAGE_OFFSET;

fn pfn(n: u64) -> Pfn {
    Pfn::new(n).expect("small pfn")
}

/// Sorted, disjoint, non-empty ranges inside `[0, nr_pages)`: at most 7 (the backend has 8
/// windows, one is the initial mapping).
fn layout(inp: &mut Input<'_>, nr_pages: u64) -> Vec<PfnRange> {
    let mut out = Vec::new();
    let mut at = 0u64;
    while out.len() < 7 && at < nr_pages {
        // A hole (often none), then a range; sizes in pages, sometimes big.
        let unit = if inp.bool() { 1 } else { 512 };
        let hole = if inp.below(4) == 0 {
            u64::from(inp.u8()) * unit
        } else {
            0
        };
        let len = (u64::from(inp.u8()) + 1) * if inp.bool() { 1 } else { 512 };
        let s = at + hole;
        if s >= nr_pages {
            break;
        }
        let e = (s + len).min(nr_pages);
        out.push(PfnRange::new(pfn(s), e).expect("ordered"));
        // Ranges must not touch (the builder merges them, the windows would not).
        at = e + 1;
        if inp.is_empty() {
            break;
        }
    }
    if out.is_empty() {
        out.push(PfnRange::new(pfn(0), nr_pages).expect("ordered"));
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input::new(data);
    // 4.5 MiB to 12.5 MiB (the smallest domain Xen's layout allows, up to six L1 tables of
    // direct map), any page count.
    let nr_pages = 1152 + u64::from(inp.u16()) % 2048;
    let headroom = u64::from(inp.u8());
    let ranges = layout(&mut inp, nr_pages);

    let b = guest::boot(nr_pages);
    let mut storage = Box::new(Storage::new());
    let model = Counted::new(b.model);
    let mut mmu = guest::backend(&model, &b.p2m, &b.bootstrap, &mut storage);
    // SAFETY: the one handle to the model's address space; only `mmu` changes its tables.
    let mut live = unsafe { LiveRoot::adopt_boot_root(&mmu) };
    let mut mb = Memblock::<16>::new();
    // SAFETY: the model's frames are this memblock's alone (one memblock per model); nothing
    // dereferences them (the model's memory is simulated).
    unsafe { mb.add_memory(0, nr_pages * 4096) }.unwrap();
    mb.reserve(0, b.layout.bootstrap_end()).unwrap();

    let spec = DirectMapSpec {
        base: BASE,
        page_sizes: PageSizes::all(),
    };
    let foreign: Vec<PfnRange> = mmu.raw().foreign_tables().to_vec();
    let needed = count_tables(&ranges, &foreign, &spec, &mmu.caps())
        .unwrap()
        .total();
    // The buffer inside the initial mapping, where the backend can read its tables.
    let limit = b.layout.mapped_pages() * 4096;
    mmu.raw_mut().set_phase(Phase::MakeReadOnly);
    let n = needed + 1 + headroom;
    let mut buf = match PgtBuf::new(&mut mmu, &mut mb, n, limit, Direction::BottomUp) {
        Ok(buf) => buf,
        // Too big for the initial mapping: nothing to build.
        Err(NewError::Memblock(MemblockError::OutOfMemory { .. })) => return,
        Err(e) => panic!("pgt_buf of {n} frames: {e:?}"),
    };
    mmu.raw_mut().set_phase(Phase::FillInstall);
    let mut root = TableBuilder::new(buf.alloc().unwrap());
    let first = TableLevel::L4.index_of(BASE);
    let last = TableLevel::L4.index_of(BASE + ranges.last().unwrap().end() * 4096 - 1);
    mmu.inherit_root(&live, &mut root, (first, last + 1))
        .unwrap();
    let flags = PageTableFlags::PRESENT | PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE;
    // SAFETY: the direct map's slots were skipped when inheriting; all RAM is the model
    // guest's, and nothing dereferences it (the model's memory is simulated).
    let built = unsafe {
        direct_map::build(
            &mut mmu,
            &mut buf,
            Target::New(&mut root),
            &ranges,
            &[],
            &spec,
            flags,
        )
    }
    .unwrap();
    built.pending.flush(&mut mmu).unwrap();
    let root = mmu.new_table(root).unwrap();
    let root_pfn = root.pfn();
    mmu.raw_mut().set_phase(Phase::Switch);
    let pinned = mmu.pin(root).unwrap();
    // SAFETY: the root inherited every slot of the current root outside the direct map.
    let previous = unsafe { mmu.switch_root(&mut live, pinned) }.unwrap();
    assert!(matches!(previous, PreviousRoot::Boot(p) if p == b.bootstrap.root));
    assert_eq!(live.pfn(), root_pfn);
    for r in &ranges {
        // SAFETY: the new root is live and maps `r` linearly at BASE.
        unsafe { mmu.raw_mut().add_window(BASE + r.start().addr(), *r) }.unwrap();
    }
    mmu.raw_mut().set_phase(Phase::Release);
    let fin = buf.finish(&mut mmu, &mut mb).unwrap();

    assert_eq!(
        fin.used.len(),
        needed + 1,
        "exactly the computed tables + the root"
    );
    assert_eq!(built.made.total(), needed);
    assert_eq!(fin.released.len(), headroom);
    let fill = *mmu.raw().counters().get(Phase::FillInstall);
    assert_eq!(fill.hypercalls, needed + 1, "one mmu_update per table");
    let xen = mmu.raw().hypervisor().inner();
    xen.audit().unwrap();
    assert_eq!(xen.current_root(), root_pfn.as_u64());
    let is_table = |p: u64| fin.used.contains(pfn(p)) || b.bootstrap.tables.contains(pfn(p));
    let mut r = ranges.iter().peekable();
    // One walk per page of the model's own tables (the upper levels once per 2 MiB).
    xen.translate_pages(BASE, nr_pages, |p, got| {
        while r.peek().is_some_and(|r| r.end() <= p) {
            r.next();
        }
        let mapped = r.peek().is_some_and(|r| r.contains(pfn(p)));
        assert_eq!(xen.frame(p).is_table(), is_table(p), "pfn {p:#x}");
        if !mapped {
            assert!(
                matches!(got, Err(Fault::NotPresent { .. })),
                "hole {p:#x}: {got:?}"
            );
        } else {
            let writable = !is_table(p);
            assert_eq!(
                got,
                Ok(Translation { pfn: p, writable }),
                "pfn {p:#x} at its place, writable exactly when no table"
            );
        }
    });
    for p in fin.released.iter().map(Pfn::as_u64) {
        assert!(matches!(
            xen.frame(p).ty,
            PageType::Writable | PageType::None
        ));
        assert_eq!(xen.store(b.layout.pfn_to_va(p).unwrap()), Ok(p));
    }
    assert_eq!(mmu.raw().queued(), 0);
});
