//! The seed's scenario, end to end: memblock from the firmware map; `pgt_buf` sized from the
//! exact table count (plus headroom, which becomes the tail); the direct map of all RAM at
//! Linux's base with the largest pages the backend allows; a new root pinned and switched to;
//! `finish`; every released tail frame allocated, written and read back through the new map;
//! every leaf verified; figures printed. Any failed check fails the run.

use boards::{MmuPlatform, Phase};
use hal_core::direct_map::plan::LINUX_PAGE_OFFSET;
use hal_core::direct_map::{self, count_tables, BuildError, DirectMapSpec, Target};
use hal_core::memblock::Direction;
use hal_core::pgt_buf::{FinishError, NewError};
use hal_core::{
    BackendError, PageSizes, PageTableFlags, PfnRange, PgtBuf, PreviousRoot, RawMmu, SwitchError,
    TableBuilder, TableLevel, WriteError,
};
use heapless::Vec;

use crate::memview::{self, REGIONS};
use crate::{verify, Failure};

/// Frames `pgt_buf` holds beyond the exact count: the tail `finish` releases.
pub const HEADROOM: u64 = 64;

/// Figures of one run.
#[derive(Debug, Default, defmt::Format)]
pub struct Figures {
    /// Bytes of RAM mapped.
    pub ram_bytes: u64,
    /// Tables computed (below the root).
    pub computed: u64,
    /// Frames taken from the buffer (tables + root).
    pub tables_used: u64,
    /// Tail frames released.
    pub tail_released: u64,
    /// Pages mapped: 4 KiB, 2 MiB, 1 GiB.
    pub pages: [u64; 3],
    /// Leaves walked and checked.
    pub leaves_checked: u64,
    /// Pages touched through the new map by the CPU.
    pub pages_touched: u64,
    /// Tail frames cross-checked through the boot mapping.
    pub cross_checked: u64,
}

fn backend<E: BackendError>(what: &'static str, e: &E) -> Failure {
    defmt::error!("{=str}: backend refused: {}", what, defmt::Debug2Format(e));
    Failure::Backend(what, e.kind())
}

/// Runs the scenario; logs each phase with its cycle count.
pub fn run<P: MmuPlatform>(p: &mut P) -> Result<Figures, Failure> {
    let mut f = Figures::default();
    let mut t = p.cycles();
    let mut lap = |p: &P, name: &'static str| {
        let now = p.cycles();
        defmt::info!("phase {=str}: {=u64} cycles", name, now - t);
        t = now;
    };

    // memblock and the exact count.
    let mut mb = memview::memblock(p)?;
    let ranges: Vec<PfnRange, REGIONS> = memview::ram_ranges(&mb);
    f.ram_bytes = ranges.iter().map(|r| r.len() * 4096).sum();
    let caps = p.mmu().caps();
    let spec = DirectMapSpec {
        base: LINUX_PAGE_OFFSET,
        page_sizes: PageSizes::all(),
    };
    let foreign: Vec<PfnRange, 8> = p.mmu().raw().foreign_tables().iter().copied().collect();
    let count = count_tables(&ranges, &foreign, &spec, &caps).map_err(Failure::Plan)?;
    f.computed = count.total();
    defmt::info!(
        "backend {=str}: {} ; RAM {=u64} MiB in {=usize} ranges; tables needed: {} = {=u64} (+1 root)",
        p.mmu().raw().name(),
        caps,
        f.ram_bytes >> 20,
        ranges.len(),
        count,
        count.total()
    );
    lap(p, "plan");

    // pgt_buf: exact count + root + headroom, made read-only before anything is built.
    let want = count.total() + 1 + HEADROOM;
    let limit = p.table_limit();
    p.set_phase(Phase::MakeReadOnly);
    let mut buf =
        PgtBuf::new(p.mmu(), &mut mb, want, limit, Direction::BottomUp).map_err(|e| match e {
            NewError::Memblock(e) => {
                defmt::error!("pgt_buf: {=u64} frames do not fit: {}", want, e);
                Failure::Memblock(e)
            }
            NewError::Protect(e) => backend("PgtBuf::new", &e.error),
        })?;
    defmt::info!("pgt_buf = {}", buf.range());
    lap(p, "make read-only");

    // Build: a new root that keeps the kernel's mappings, the direct map under it.
    p.set_phase(Phase::FillInstall);
    let mut root = TableBuilder::new(buf.alloc().map_err(|_| Failure::Exhausted {
        needed: 1,
        remaining: 0,
    })?);
    let first_slot = TableLevel::L4.index_of(spec.base);
    let last_pfn = ranges.last().map_or(0, |r| r.end());
    let last_slot = TableLevel::L4.index_of(spec.base + (last_pfn << 12).saturating_sub(1));
    let (mmu, live) = p.mmu_and_root();
    let inherited = mmu
        .inherit_root(live, &mut root, (first_slot, last_slot + 1))
        .map_err(|e| match e {
            WriteError::Backend(e) => backend("inherit_root", &e),
            WriteError::Entry(e) => {
                defmt::error!("inherit_root: entry refused: {}", e);
                Failure::Backend("inherit_root", hal_core::ErrorKind::OutOfRange)
            }
        })?;
    let flags = PageTableFlags::PRESENT | PageTableFlags::WRITABLE;
    // SAFETY: the direct map's slots were skipped by inherit_root, so its virtual range is
    // unused; every frame of `ranges` is RAM this kernel owns.
    let built = unsafe {
        direct_map::build(
            p.mmu(),
            &mut buf,
            Target::New(&mut root),
            &ranges,
            &[],
            &spec,
            flags,
        )
    }
    .map_err(|e| match e {
        BuildError::Exhausted { needed, remaining } => Failure::Exhausted { needed, remaining },
        BuildError::Plan(e) => Failure::Plan(e),
        other => backend("build", &other),
    })?;
    f.pages = built.pages;
    built
        .pending
        .flush(p.mmu())
        .map_err(|e| backend("flush tables", &e))?;
    let root = p
        .mmu()
        .new_table(root)
        .map_err(|e| backend("new root", &e.error))?;
    defmt::info!(
        "built: {} tables made, {=u64} reused, {=u16} root slots inherited, {=u64} frames read-only",
        built.made,
        built.reused,
        inherited,
        built.read_only_frames
    );
    lap(p, "fill and install");

    // Pin and switch.
    p.set_phase(Phase::Switch);
    let root = p
        .mmu()
        .pin(root)
        .map_err(|e| backend("pin root", &e.error))?;
    let (mmu, live) = p.mmu_and_root();
    // SAFETY: the root inherited every present slot of the current root outside the direct
    // map's, so code, stack and data stay mapped where they are.
    let previous = unsafe { mmu.switch_root(live, root) }.map_err(|e| match e.error {
        SwitchError::Backend(e) => backend("switch root", &e),
        SwitchError::NotLive => Failure::Backend("switch root", hal_core::ErrorKind::Other),
    })?;
    let root_pfn = live.pfn();
    // The boot tables stay: the kernel's image is mapped through the L3/L2 tables they share.
    let PreviousRoot::Boot(_) = previous else {
        defmt::error!("switch root: the previous root was not the boot root");
        return Err(Failure::Backend("switch root", hal_core::ErrorKind::Other));
    };
    for r in &ranges {
        // SAFETY: the new root is live and maps `r` linearly at the base.
        unsafe {
            p.mmu()
                .raw_mut()
                .add_window(spec.base + r.start().addr(), *r)
        }
        .map_err(|e| backend("add window", &e))?;
    }
    lap(p, "pin and switch");

    // The hook: finish the buffer.
    f.tables_used = buf.used();
    p.set_phase(Phase::Release);
    let fin = buf.finish(p.mmu(), &mut mb).map_err(|e| match e {
        FinishError::Release(e) => backend("finish: release", &e.error),
        FinishError::Memblock(e) => Failure::Memblock(e.error),
        FinishError::WrongMemblock(_) => {
            defmt::error!("finish: not the buffer's memblock");
            Failure::Backend("finish", hal_core::ErrorKind::Other)
        }
    })?;
    f.tail_released = fin.released.len();
    lap(p, "finish (release tail)");
    p.set_phase(Phase::Other);
    if f.tables_used != f.computed + 1 || built.made.total() != f.computed {
        return Err(Failure::CountMismatch {
            computed: f.computed + 1,
            used: f.tables_used,
        });
    }

    // Every released frame: allocated as memory, written and read back through the new map.
    let tail = mb.alloc_exact(fin.released).map_err(Failure::Memblock)?;
    // SAFETY: we own the tail frames (allocated just now) and the direct map is live.
    f.cross_checked = unsafe { verify::pattern(spec.base, tail.pfns(), p.boot_window()) }?;
    lap(p, "write tail frames");

    // The seed's way, side by side: the same frames protected again, then released one
    // hypercall per page.
    if p.set_seed_release(true) {
        // Counted as "other": the make-read-only figure stays the buffer's alone.
        p.set_phase(Phase::Other);
        let again = p
            .mmu()
            .protect(tail)
            .map_err(|e| backend("re-protect tail", &e.error))?;
        p.set_phase(Phase::SeedRelease);
        let released = p
            .mmu()
            .release(again)
            .map_err(|e| backend("seed release", &e.error))?;
        p.set_seed_release(false);
        p.set_phase(Phase::Other);
        let tail = released.into_free();
        // SAFETY: as above.
        unsafe { verify::pattern(spec.base, tail.pfns(), p.boot_window()) }?;
        mb.free_frames(tail)
            .map_err(|e| Failure::Memblock(e.error))?;
        lap(p, "seed release (per page), for comparison");
    } else {
        mb.free_frames(tail)
            .map_err(|e| Failure::Memblock(e.error))?;
    }

    // Verify: every leaf by walking, and the CPU through the map on a dense sample.
    let mut read_only: Vec<PfnRange, 16> = Vec::new();
    if caps.tables_read_only {
        let _ = read_only.push(fin.used);
        for r in &foreign {
            let _ = read_only.push(*r);
        }
        read_only.sort_unstable_by_key(|r| r.start());
    }
    let checked = verify::every_leaf(p.mmu(), root_pfn, &ranges, &read_only, &spec, &caps)?;
    f.leaves_checked = checked.leaves;
    lap(p, "verify every leaf (walk)");
    // SAFETY: the direct map is live.
    f.pages_touched = unsafe { verify::touch(spec.base, &ranges, 16) };
    lap(p, "touch every 16th page");
    // The new root stays live for the rest of the kernel's life, owned by the board's
    // LiveRoot.

    defmt::info!("RESULT direct_map {}", f);
    p.log_counters();
    Ok(f)
}
