//! A Xen PV guest on the model, booted the way the Xen board boots, and the direct-map
//! scenario of the example, step by step (so that tests can stop or misbehave in between).

#![allow(dead_code)]

use std::boxed::Box;
use std::vec::Vec;

use crate::model::{DomainConfig, Model, PageType};
use crate::{Bootstrap, BootstrapLayout, Counted, P2m, Phase, StartInfo, Storage, XenPv};
use hal_core::direct_map::{self, count_tables, plan::LINUX_PAGE_OFFSET, DirectMapSpec, Target};
use hal_core::memblock::{Direction, Memblock};
use hal_core::pgt_buf::Finished;
use hal_core::{
    Frame, LiveRoot, Mmu, PageSizes, PageTableFlags, Pfn, PfnRange, PgtBuf, PinnedRO, PreviousRoot,
    RawMmu, TableBuilder, TableLevel,
};
use typenum::U4;

pub const BASE: u64 = LINUX_PAGE_OFFSET;

pub type Backend = XenPv<'static, Model>;

pub struct Guest {
    pub mmu: Mmu<Backend>,
    /// The one handle to the live root: the bootstrap L4 at boot, the new root after
    /// [`switch`].
    pub live: LiveRoot,
    pub mb: Memblock<64>,
    pub ram: PfnRange,
    pub layout: BootstrapLayout,
    pub boot_tables: PfnRange,
}

impl Guest {
    /// The model.
    pub fn xen(&self) -> &Model {
        self.mmu.raw().hypervisor().inner()
    }

    pub fn set_phase(&mut self, phase: Phase) {
        self.mmu.raw_mut().set_phase(phase);
    }

    /// The first frame after the bootstrap elements, checked to start `n` frames that the
    /// initial mapping covers (so that they can be reached, and stored into, through it).
    pub fn after_bootstrap(&self, n: u64) -> u64 {
        let p = self.layout.bootstrap_end().div_ceil(4096);
        let last = p + n.max(1) - 1;
        assert!(
            self.layout.pfn_to_va(last).is_some(),
            "pfn {last:#x} is initially mapped"
        );
        p
    }

    /// The direct-map address of `pfn`.
    pub fn va(pfn: u64) -> u64 {
        BASE + pfn * 4096
    }

    pub fn spec() -> DirectMapSpec {
        DirectMapSpec {
            base: BASE,
            page_sizes: PageSizes::all(),
        }
    }
}

/// Boots a guest: the model's domain builder, then what the Xen board does with start_info.
pub fn boot(cfg: DomainConfig) -> Guest {
    let model = Model::new(cfg);
    let image = model.boot().clone();
    let si = StartInfo::from_bytes(&image.start_info).expect("a valid start_info");
    let layout = BootstrapLayout::new(&si, image.start_info_va, image.virt_base).unwrap();
    assert_eq!(layout.mapped_end, image.mapped_end);
    let list: &'static [u64] = Box::leak(image.p2m.clone().into_boxed_slice());
    let p2m = P2m::new(list).unwrap();
    let bootstrap = Bootstrap::from_start_info(&si, &layout).unwrap();
    let storage = Box::leak(Box::new(Storage::new()));
    let hv = Box::leak(Box::new(Counted::new(model)));
    // SAFETY: the model's domain is as start_info says, and nothing else changes its tables.
    let raw = unsafe { XenPv::new(hv, p2m, &bootstrap, storage) }.unwrap();
    let mut mb = Memblock::new();
    // SAFETY: the model's frames are this memblock's alone (one memblock per model), and the
    // bootstrap elements are reserved right below before anything is allocated.
    unsafe { mb.add_memory(0, si.nr_pages() * 4096) }.unwrap();
    mb.reserve(0, layout.bootstrap_end()).unwrap();
    let mmu = Mmu::new(raw);
    // SAFETY: the one handle to this model's address space; the tests change its tables only
    // through `mmu` from now on (the raw escape hatch only where a test says so).
    let live = unsafe { LiveRoot::adopt_boot_root(&mmu) };
    Guest {
        mmu,
        live,
        mb,
        ram: PfnRange::new(Pfn::new(0).unwrap(), si.nr_pages()).unwrap(),
        layout,
        boot_tables: bootstrap.tables,
    }
}

/// [`boot`], with `protect` applied at once ([`FillStrategy::Queue`](crate::FillStrategy)): for
/// tests that look at what `protect` did right after it.
pub fn boot_queued(cfg: DomainConfig) -> Guest {
    let mut g = boot(cfg);
    g.mmu
        .raw_mut()
        .set_fill_strategy(crate::FillStrategy::Queue)
        .unwrap();
    g
}

/// The mappings of released `frames` in the live tables, from the model: a released frame is
/// ordinary memory mapped only writable, so its type count is its number of mappings. Checked
/// frame by frame against the layout: the direct map's, plus the initial mapping's where that
/// covers the frame. Returns `m·K` (the sum) and the fewest and most mappings of one frame.
pub fn tail_mappings(g: &Guest, frames: PfnRange) -> (u64, u32, u32) {
    let (mut sum, mut lo, mut hi) = (0, u32::MAX, 0);
    for pfn in frames.iter().map(|p| p.as_u64()) {
        let f = g.xen().frame(pfn);
        assert_eq!(f.ty, PageType::Writable, "pfn {pfn:#x}: ordinary memory");
        let m = f.writable_mappings();
        let layout = 1 + u32::from(g.layout.pfn_to_va(pfn).is_some());
        assert_eq!(
            m, layout,
            "pfn {pfn:#x}: the model's mappings, the layout's"
        );
        sum += u64::from(m);
        lo = lo.min(m);
        hi = hi.max(m);
    }
    (sum, lo, hi)
}

/// Tables the direct map of all RAM needs (below the root).
pub fn needed(g: &Guest) -> u64 {
    let foreign: Vec<PfnRange> = g.mmu.raw().foreign_tables().to_vec();
    count_tables(&[g.ram], &foreign, &Guest::spec(), &g.mmu.caps())
        .unwrap()
        .total()
}

/// `pgt_buf`: the exact count + the root + `headroom`, bottom-up like the example, made
/// read-only.
pub fn make_buf(g: &mut Guest, headroom: u64) -> PgtBuf {
    let n = needed(g) + 1 + headroom;
    g.set_phase(Phase::MakeReadOnly);
    let buf = PgtBuf::new(&mut g.mmu, &mut g.mb, n, u64::MAX, Direction::BottomUp).unwrap();
    g.set_phase(Phase::Other);
    buf
}

/// A new root inheriting the kernel's mappings, the direct map under it, all written.
pub fn fill(g: &mut Guest, buf: &mut PgtBuf) -> Frame<PinnedRO<U4>> {
    fill_with(g, buf, &[])
}

/// [`fill`], with the caller's own read-only frames `extra` (`build`'s `extra_read_only`).
pub fn fill_with(g: &mut Guest, buf: &mut PgtBuf, extra: &[PfnRange]) -> Frame<PinnedRO<U4>> {
    g.set_phase(Phase::FillInstall);
    let mut root = TableBuilder::new(buf.alloc().unwrap());
    let spec = Guest::spec();
    let first = TableLevel::L4.index_of(spec.base);
    let last = TableLevel::L4.index_of(spec.base + g.ram.end() * 4096 - 1);
    g.mmu
        .inherit_root(&g.live, &mut root, (first, last + 1))
        .unwrap();
    let flags = PageTableFlags::PRESENT | PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE;
    // SAFETY: the direct map's slots were skipped when inheriting; all RAM is the guest's.
    let built = unsafe {
        direct_map::build(
            &mut g.mmu,
            buf,
            Target::New(&mut root),
            &[g.ram],
            extra,
            &spec,
            flags,
        )
    }
    .unwrap();
    built.pending.flush(&mut g.mmu).unwrap();
    let root = g.mmu.new_table(root).unwrap();
    g.set_phase(Phase::Other);
    root
}

/// Pin, switch (the live root owns the new root from then on), and the direct map as a window.
pub fn switch(g: &mut Guest, root: Frame<PinnedRO<U4>>) {
    g.set_phase(Phase::Switch);
    let boot_root = g.live.pfn();
    let pinned = g.mmu.pin(root).unwrap();
    // SAFETY: the root inherited every slot of the current root outside the direct map.
    let previous = unsafe { g.mmu.switch_root(&mut g.live, pinned) }.unwrap();
    assert!(
        matches!(previous, PreviousRoot::Boot(p) if p == boot_root),
        "the previous root was the boot root: {previous:?}"
    );
    assert!(!g.live.is_boot_root());
    g.set_phase(Phase::Other);
    // SAFETY: the new root is live and maps all RAM at BASE.
    unsafe { g.mmu.raw_mut().add_window(BASE, g.ram) }.unwrap();
}

/// `finish`: the tail released and given back to memblock.
pub fn finish(g: &mut Guest, buf: PgtBuf) -> Finished {
    g.set_phase(Phase::Release);
    let fin = buf.finish(&mut g.mmu, &mut g.mb).unwrap();
    g.set_phase(Phase::Other);
    fin
}

/// The whole scenario; returns what `finish` did. The new root is `g.live`'s.
pub fn direct_map(g: &mut Guest, headroom: u64) -> Finished {
    let mut buf = make_buf(g, headroom);
    let root = fill(g, &mut buf);
    switch(g, root);
    finish(g, buf)
}
