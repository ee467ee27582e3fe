//! The same direct map built five ways in one boot on real Xen, each phase counted with the
//! TSC (under QEMU's `-icount shift=0` an exact count of the instructions guest and Xen
//! executed together), each resulting tree checked before its count is reported.
//!
//! After `map_ram` has made the ordinary direct map live (at Linux's base), every strategy
//! builds a tree mapping all of dom0's RAM at [`BASE`] (root slot [`SLOT`]): a new root that
//! inherits every other slot of the live root, one L3, the L2s and the L1s, 4 KiB leaves,
//! `PRESENT | WRITABLE` except for frames that are page tables (the live tables, Xen's
//! bootstrap tables and the five strategies' frames, all set aside before the first build),
//! which are mapped read-only. The tree ends pinned (validated by Xen); it is not switched to.
//!
//! | strategy | what it does |
//! |---|---|
//! | `pvmmu` | hal-core's typed path: `PgtBuf::new` (the buffer read-only in one batch), `direct_map::build` streaming every entry into the `mmu_update` queue (512 per hypercall), the root pinned once |
//! | `linux` | entries through `mmu_update` requests collected into 32-entry multicalls (Linux's `xen_mc` batching: `MC_ARGS` holds 32 requests); each new table remapped read-only by `update_va_mapping` once filled (`make_lowmem_page_readonly`), each L1 pinned at once (`xen_alloc_pte_init`), the root pinned last |
//! | `minios` | Mini-OS's `new_pt_frame`: the root zeroed, filled, remapped read-only and pinned first; every new table zeroed by stores, remapped read-only and hooked into its (live) parent, one single-entry `mmu_update` each; the leaves of an L1 in one `mmu_update` of up to 512 |
//! | `trap` | plain stores into read-only tables, left to Xen's writable-page-table emulation: each L1 zeroed, remapped read-only and pinned, then its leaves stored one by one (each store traps and Xen emulates it); the upper tables (which Xen does not emulate) filled while writable, remapped read-only, the root pinned |
//! | `floor` | the validation floor: every table filled by plain stores while writable, then all of them made read-only in one batch and the root pinned once: what Xen has to do anyway |
//!
//! Phases: `protect` (read-only remaps done as a batch of their own), `fill` (writing the
//! entries, with whatever remaps, pins and hooks a strategy interleaves), `pin` (the root's
//! pin: Xen validates what is not validated yet). Checks, none of which a strategy reports
//! itself: Xen accepted every hypercall (its verdict on the tree: a pin of a tree with a
//! writable mapping of a table, or a wrong entry, is refused); then every tree is walked
//! through the live direct map and every entry compared with what the host side of this
//! program computes from the P2M and the read-only set (leaves), the live root (inherited
//! slots) and the strategy's own frames (every table frame used once), and with `pvmmu`'s tree
//! entry for entry (leaves and inherited slots identical, bit for bit).
//!
//! Output: `RESULT strategy name=.. protect=.. fill=.. pin=.. total=.. hypercalls=..
//! entries=.. tables=..` per strategy, then `RESULT strategies done pages=N tables=T`.

use boards::MmuPlatform;
use heapless::Vec;
use pvmmu::direct_map::{self, count_tables, map_ram, plan::LINUX_PAGE_OFFSET, DirectMapSpec};
use pvmmu::direct_map::{Setup, Target};
use pvmmu::memblock::Direction;
use pvmmu::walk::{Slot, Step};
use pvmmu::xen_pv::hypercall::abi::{mmu, mmuext, nr, uvmf, vmasst, DOMID_SELF};
use pvmmu::xen_pv::hypercall::{MmuUpdate, MmuextOp, MulticallEntry, RawHypercall};
use pvmmu::xen_pv::{Counted, FillStrategy, P2m, XenHypercalls};
use pvmmu::{
    BackendError, FrameRange, Free, FreshTable, PageSizes, PageTableFlags, Pfn, PfnRange, Pte,
    RawMmu, TableLevel,
};
use pvmmu_figures::DIRECT_MAP_HEADROOM;

use crate::{memview, Failure};

/// The root slot the strategies' trees use (empty in the live root).
pub const SLOT: u16 = 400;
/// The virtual base of the strategies' trees: root slot [`SLOT`], sign-extended.
pub const BASE: u64 = 0xffff_0000_0000_0000 | ((SLOT as u64) << 39);
/// The strategies, in the order they run.
pub const NAMES: [&str; 6] = ["pvmmu-queue", "pvmmu", "linux", "minios", "trap", "floor"];

const P: u64 = 1;
const RW: u64 = 2;
const USER: u64 = 4;
/// Xen's `_PAGE_GUEST_KERNEL` (flag bit 12, kept in PTE bit 52): added with `_PAGE_USER`.
const GUEST_KERNEL: u64 = 1 << 52;
const ACCESSED_DIRTY: u64 = 0x60;
const ADDR: u64 = 0x000f_ffff_ffff_f000;
/// Requests in one Linux multicall (`MC_ARGS` / `sizeof(struct mmu_update)`).
const LINUX_BATCH: usize = 32;
/// Xen's root slots, which no guest writes.
const XEN_SLOTS: core::ops::Range<u16> = 256..272;

/// What the board offers: the Xen board itself, or nothing on bare metal.
pub trait StrategiesBoard: MmuPlatform {
    /// Under Xen: the board. `None` without a hypervisor.
    fn xen(&mut self) -> Option<&mut boards::xen::XenBoard>;
}

#[cfg(feature = "native")]
impl StrategiesBoard for boards::native::NativeBoard {
    fn xen(&mut self) -> Option<&mut boards::xen::XenBoard> {
        None
    }
}

impl StrategiesBoard for boards::xen::XenBoard {
    fn xen(&mut self) -> Option<&mut boards::xen::XenBoard> {
        Some(self)
    }
}

/// One strategy's figures.
#[derive(Clone, Copy, Debug, Default, defmt::Format)]
pub struct Counts {
    /// TSC ticks per phase: protect, fill, pin.
    pub ticks: [u64; 3],
    /// Hypercalls made (a multicall counts once).
    pub hypercalls: u64,
    /// Entries they carried (requests, commands, mappings; inside multicalls too).
    pub entries: u64,
}

fn failed(what: &'static str, ret: i64) -> Failure {
    defmt::error!("strategies: {=str} ({=i64})", what, ret);
    Failure::Hypercall { what, ret }
}

fn be<E: defmt::Format>(what: &'static str, e: &E, kind: pvmmu::ErrorKind) -> Failure {
    defmt::error!("strategies: pvmmu: {=str}: {}", what, e);
    Failure::Backend(what, kind)
}

fn tsc() -> u64 {
    // SAFETY: rdtsc only reads the time-stamp counter; Xen lets PV guests use it.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// The direct map's virtual address of `pfn` (live once `map_ram` returned).
fn dm(pfn: u64) -> u64 {
    LINUX_PAGE_OFFSET + (pfn << 12)
}

/// Hypercalls, counted.
struct Hc {
    hv: &'static Counted<XenHypercalls>,
    calls: u64,
    entries: u64,
}

impl Hc {
    /// # Safety
    /// As [`RawHypercall::mmu_update`].
    unsafe fn update(&mut self, reqs: &[MmuUpdate], what: &'static str) -> Result<(), Failure> {
        if reqs.is_empty() {
            return Ok(());
        }
        let mut done = 0;
        self.calls += 1;
        self.entries += reqs.len() as u64;
        // SAFETY: the caller's contract.
        let ret = unsafe { self.hv.mmu_update(reqs, &mut done, DOMID_SELF) };
        if ret < 0 || done as usize != reqs.len() {
            return Err(failed(what, ret));
        }
        Ok(())
    }

    /// # Safety
    /// As [`RawHypercall::mmuext_op`].
    unsafe fn ext(&mut self, cmd: u32, mfn: u64, what: &'static str) -> Result<(), Failure> {
        let ops = [MmuextOp {
            cmd,
            arg1: mfn,
            arg2: 0,
        }];
        let mut done = 0;
        self.calls += 1;
        self.entries += 1;
        // SAFETY: the caller's contract.
        let ret = unsafe { self.hv.mmuext_op(&ops, &mut done, DOMID_SELF) };
        if ret < 0 || done != 1 {
            return Err(failed(what, ret));
        }
        Ok(())
    }

    /// `update_va_mapping(va, pte, INVLPG | LOCAL)`.
    ///
    /// # Safety
    /// As [`RawHypercall::update_va_mapping`].
    unsafe fn remap(&mut self, va: u64, pte: u64, what: &'static str) -> Result<(), Failure> {
        self.calls += 1;
        self.entries += 1;
        // SAFETY: the caller's contract.
        let ret = unsafe {
            self.hv
                .update_va_mapping(va, pte, uvmf::INVLPG | uvmf::LOCAL)
        };
        if ret < 0 {
            return Err(failed(what, ret));
        }
        Ok(())
    }

    /// One multicall holding one `mmu_update` of `reqs` (Linux's merged batch).
    ///
    /// # Safety
    /// As [`RawHypercall::mmu_update`].
    unsafe fn multicall(&mut self, reqs: &[MmuUpdate], what: &'static str) -> Result<(), Failure> {
        if reqs.is_empty() {
            return Ok(());
        }
        let mut done = 0u32;
        let mut mc = [MulticallEntry {
            op: u64::from(nr::MMU_UPDATE),
            result: 0,
            args: [
                reqs.as_ptr() as u64,
                reqs.len() as u64,
                &mut done as *mut u32 as u64,
                u64::from(DOMID_SELF),
                0,
                0,
            ],
        }];
        self.calls += 1;
        self.entries += reqs.len() as u64;
        // SAFETY: the caller's contract for the one mmu_update; its pointers live until the
        // call returns.
        let ret = unsafe { self.hv.multicall(&mut mc) };
        if ret < 0 || (mc[0].result as i64) < 0 || done as usize != reqs.len() {
            return Err(failed(what, mc[0].result as i64));
        }
        Ok(())
    }
}

/// The read-only set: frame ranges, sorted.
struct ReadOnly(Vec<(u64, u64), 16>);

impl ReadOnly {
    fn contains(&self, pfn: u64) -> bool {
        self.0.iter().any(|&(s, e)| s <= pfn && pfn < e)
    }
    fn meets(&self, lo: u64, hi: u64) -> bool {
        self.0.iter().any(|&(s, e)| s < hi && lo < e)
    }
}

/// The tree's shape for RAM `[0, n)`: `k1` L1s, `k2` L2s, one L3, the root.
#[derive(Clone, Copy)]
struct Shape {
    n: u64,
    k1: u64,
    k2: u64,
}

impl Shape {
    fn new(n: u64) -> Self {
        let k1 = n.div_ceil(512);
        Self {
            n,
            k1,
            k2: k1.div_ceil(512),
        }
    }
    fn tables(&self) -> u64 {
        2 + self.k2 + self.k1
    }
}

/// One strategy's frames `[start, start + tables)`: the root, the L3, then each L2 followed by
/// its L1s.
#[derive(Clone, Copy)]
struct Frames {
    start: u64,
    shape: Shape,
}

impl Frames {
    fn root(&self) -> u64 {
        self.start
    }
    fn l3(&self) -> u64 {
        self.start + 1
    }
    /// Depth first, as a builder meets them: each L2 followed by its L1s.
    fn l2(&self, i: u64) -> u64 {
        self.start + 2 + i * 513
    }
    fn l1(&self, j: u64) -> u64 {
        self.l2(j / 512) + 1 + j % 512
    }
    fn range(&self) -> (u64, u64) {
        (self.start, self.start + self.shape.tables())
    }
}

/// What every strategy needs: the P2M, the read-only set, the live root's entries.
struct World {
    p2m: P2m<'static>,
    ro: ReadOnly,
    shape: Shape,
    /// The live root's entries (machine values) for every slot a new root inherits.
    inherited: [u64; 512],
}

impl World {
    fn mfn(&self, pfn: u64) -> u64 {
        // Every pfn asked for is below nr_pages (checked when the shape was made).
        self.p2m.entries()[pfn as usize]
    }

    /// The machine value of a table entry pointing at `child`.
    fn table_entry(&self, child: u64) -> u64 {
        (self.mfn(child) << 12) | P | RW
    }

    /// The leaf for `pfn` (0 beyond the RAM).
    fn leaf(&self, pfn: u64) -> u64 {
        if pfn >= self.shape.n {
            0
        } else if self.ro.contains(pfn) {
            (self.mfn(pfn) << 12) | P
        } else {
            (self.mfn(pfn) << 12) | P | RW
        }
    }

    /// Entry `slot` of table `index` of `level` in the tree in `f`, as a strategy writes it.
    fn entry(&self, f: &Frames, level: u8, index: u64, slot: u64) -> u64 {
        let s = self.shape;
        match level {
            4 if slot == u64::from(SLOT) => self.table_entry(f.l3()),
            4 => self.inherited[slot as usize],
            3 if slot < s.k2 => self.table_entry(f.l2(slot)),
            2 => {
                let j = index * 512 + slot;
                if j < s.k1 {
                    self.table_entry(f.l1(j))
                } else {
                    0
                }
            }
            1 => self.leaf(index * 512 + slot),
            _ => 0,
        }
    }

    /// Writes the leaves of L1 `j` into `out` (512 entries), fast where no read-only frame is
    /// in its span.
    fn leaves(&self, j: u64, out: &mut [u64; 512]) {
        let lo = j * 512;
        let hi = (lo + 512).min(self.shape.n);
        let p2m = &self.p2m.entries()[lo as usize..hi as usize];
        if self.ro.meets(lo, hi) {
            for (i, (o, &m)) in out.iter_mut().zip(p2m).enumerate() {
                let rw = if self.ro.contains(lo + i as u64) {
                    0
                } else {
                    RW
                };
                *o = (m << 12) | P | rw;
            }
        } else {
            for (o, &m) in out.iter_mut().zip(p2m) {
                *o = (m << 12) | P | RW;
            }
        }
        for o in out.iter_mut().skip(p2m.len()) {
            *o = 0;
        }
    }

    /// The tables of `f` in the order a depth-first build meets them: `(level, index, pfn)`.
    fn for_each_table(
        &self,
        f: &Frames,
        post_order: bool,
        mut visit: impl FnMut(u8, u64, u64) -> Result<(), Failure>,
    ) -> Result<(), Failure> {
        let s = self.shape;
        if !post_order {
            visit(4, 0, f.root())?;
            visit(3, 0, f.l3())?;
        }
        for i in 0..s.k2 {
            if !post_order {
                visit(2, i, f.l2(i))?;
            }
            for j in i * 512..((i + 1) * 512).min(s.k1) {
                visit(1, j, f.l1(j))?;
            }
            if post_order {
                visit(2, i, f.l2(i))?;
            }
        }
        if post_order {
            visit(3, 0, f.l3())?;
            visit(4, 0, f.root())?;
        }
        Ok(())
    }
}

/// A pointer to entry `slot` of frame `pfn` through the live direct map.
fn slot_ptr(pfn: u64, slot: u64) -> *mut u64 {
    (dm(pfn) + slot * 8) as *mut u64
}

/// Fills table `pfn` with plain stores (the frame is writable and no table yet).
///
/// # Safety
/// `pfn` is a frame of this program's, writable in the direct map, no page table.
unsafe fn store_table(w: &World, f: &Frames, level: u8, index: u64, pfn: u64) {
    if level == 1 {
        let mut leaves = [0u64; 512];
        w.leaves(index, &mut leaves);
        // SAFETY: the caller's contract: the frame is ours and writable.
        unsafe { core::ptr::copy_nonoverlapping(leaves.as_ptr(), slot_ptr(pfn, 0), 512) };
        return;
    }
    for slot in 0..512 {
        // SAFETY: as above.
        unsafe { slot_ptr(pfn, slot).write_volatile(w.entry(f, level, index, slot)) };
    }
}

/// Zeroes frame `pfn` with plain stores.
///
/// # Safety
/// As [`store_table`].
unsafe fn zero(pfn: u64) {
    // SAFETY: the caller's contract.
    unsafe { core::ptr::write_bytes(slot_ptr(pfn, 0), 0, 512) };
}

/// The read-only direct-map entry for `pfn` (as `update_va_mapping` takes it).
fn ro_pte(w: &World, pfn: u64) -> u64 {
    (w.mfn(pfn) << 12) | P
}

/// The machine address of the live direct map's L1 entry for `pfn`, by walking the live
/// tables with pvmmu's walker (tables named by machine frame, read through the direct map
/// itself).
fn dm_pte_maddr(hv: &Counted<XenHypercalls>, root_mfn: u64, pfn: u64) -> Result<u64, Failure> {
    use pvmmu::xen_pv::mmu::PvPlatform;
    let va = dm(pfn);
    let root = Pfn::new(root_mfn).ok_or_else(|| failed("CR3 names no frame", 0))?;
    let read = |table: Pfn, _: TableLevel, index: u16| -> Result<Pte, Failure> {
        // SAFETY: the M2P read of a frame a validated table (or CR3) names.
        let t = unsafe { hv.mfn_to_pfn(table.as_u64()) };
        // SAFETY: live table frames are RAM, mapped (read-only) in the direct map.
        let e = unsafe { slot_ptr(t, u64::from(index)).read_volatile() };
        Ok(Pte::from_bits(e))
    };
    match pvmmu::walk::walk(root, va, Some(TableLevel::L1), read)? {
        pvmmu::walk::Reached::Table(l1) => {
            Ok((l1.as_u64() << 12) + 8 * u64::from(TableLevel::L1.index_of(va)))
        }
        _ => Err(failed("the direct map does not map a strategy frame", 0)),
    }
}

/// Runs the five strategies; logs one `RESULT strategy` line each.
pub fn run<P: StrategiesBoard>(p: &mut P) -> Result<(), Failure> {
    let Some(b) = p.xen() else {
        defmt::info!("strategies: nothing to measure: no hypervisor");
        defmt::info!("RESULT strategies none");
        return Ok(());
    };
    let memblock = memview::memblock(b)?;
    let setup = Setup::linux().headroom(DIRECT_MAP_HEADROOM);
    let (mmu, live) = b.mmu_and_root();
    let map = map_ram(mmu, live, memblock, &setup).map_err(|e| {
        defmt::error!("strategies: map_ram: {}", e);
        Failure::Setup(e.kind())
    })?;
    let ram = match map.ranges.as_slice() {
        [r] if r.start().as_u64() == 0 => *r,
        _ => return Err(failed("dom0's RAM is not one range from pfn 0", 0)),
    };
    let n = ram.end();
    let p2m = *b.p2m();
    if p2m.nr_pages() < n {
        return Err(failed("the P2M is shorter than the RAM", 0));
    }
    let shape = Shape::new(n);
    let spec = DirectMapSpec {
        base: BASE,
        page_sizes: PageSizes::SIZE_4K,
    };
    let caps = b.mmu().caps();
    let planned = count_tables(&[ram], &[], &spec, &caps)
        .map_err(Failure::Plan)?
        .total();
    if planned + 1 != shape.tables() {
        return Err(Failure::CountMismatch {
            computed: planned + 1,
            used: shape.tables(),
        });
    }
    let t = shape.tables();
    let hv = b.hypercalls();
    let ret = hv.vm_assist(vmasst::CMD_ENABLE, vmasst::TYPE_WRITABLE_PAGETABLES);
    if ret < 0 {
        return Err(failed("vm_assist(writable_pagetables)", ret));
    }
    let mut hc = Hc {
        hv,
        calls: 0,
        entries: 0,
    };

    // Every strategy's frames, from the top of memory (above the domain builder's initial
    // mapping, so each has one mapping: the direct map's): the peers' first, then the frames
    // of pvmmu's second run (given back just before it takes them as its buffer), then
    // pvmmu's first buffer below them.
    let mut regions: Vec<FrameRange<Free>, 5> = Vec::new();
    for _ in 0..5 {
        let r = memblock
            .alloc_frames(t, u64::MAX, Direction::TopDown)
            .map_err(Failure::Memblock)?;
        let _ = regions.push(r);
    }
    let second = regions
        .pop()
        .unwrap_or_else(|| unreachable!(/* five regions */));
    let second_range = second.pfns();
    let mut extra: Vec<PfnRange, 8> = Vec::new();
    let _ = extra.push(map.buffer.used);
    for r in &regions {
        let _ = extra.push(r.pfns());
    }
    let mmu = b.mmu();
    let mut ro = ReadOnly(Vec::new());
    for r in extra.iter().chain(mmu.raw().foreign_tables()) {
        let _ = ro.0.push((r.start().as_u64(), r.end()));
    }
    let _ =
        ro.0.push((second_range.start().as_u64(), second_range.end()));
    let mut inherited = [0u64; 512];
    let live_root = mmu.raw().current_root().as_u64();
    for (slot, e) in inherited.iter_mut().enumerate() {
        if !XEN_SLOTS.contains(&(slot as u16)) && slot != usize::from(SLOT) {
            // SAFETY: the live root is RAM, mapped read-only in the live direct map.
            *e = unsafe { slot_ptr(live_root, slot as u64).read_volatile() };
        }
    }
    // SAFETY: as above.
    if unsafe { slot_ptr(live_root, u64::from(SLOT)).read_volatile() } != 0 {
        return Err(failed("the strategies' root slot is in use", 0));
    }
    let root_mfn = p2m
        .pfn_to_mfn(live_root)
        .map_err(|_| Failure::P2mLookup { pfn: live_root })?
        .0;

    // 1. pvmmu as it was: every entry an mmu_update request.
    let mut first_ro = extra.clone();
    let _ = first_ro.push(second_range);
    let (queued, c_queued) = pvmmu_run(b, memblock, ram, t, &first_ro, FillStrategy::Queue)?;
    let _ = ro.0.push((queued, queued + t));
    // 2. pvmmu storing into the fresh tables, then protecting them in one batch.
    memblock
        .free_frames(second)
        .map_err(|e| Failure::Memblock(e.error))?;
    let mut second_ro = extra.clone();
    let _ = second_ro.push(
        PfnRange::from_raw(queued, queued + t).unwrap_or_else(|| unreachable!(/* a buffer */)),
    );
    let (stored, c_stored) = pvmmu_run(
        b,
        memblock,
        ram,
        t,
        &second_ro,
        FillStrategy::StoreThenProtect,
    )?;
    if stored != second_range.start().as_u64() {
        return Err(failed(
            "pvmmu's second buffer did not land where it was set aside",
            0,
        ));
    }
    ro.0.sort_unstable_by_key(|r| r.0);
    let w = World {
        p2m,
        ro,
        shape,
        inherited,
    };
    let pv_frames = Frames {
        start: queued,
        shape,
    };
    let mut all: [(Frames, Counts); 6] = [(pv_frames, c_queued); 6];
    all[1] = (
        Frames {
            start: stored,
            shape,
        },
        c_stored,
    );
    let starts: Vec<u64, 4> = regions.iter().map(|r| r.pfns().start().as_u64()).collect();
    // The regions are the program's from here on: frames it fills, protects and pins itself
    // (their typed handles end here; the frames stay reserved in memblock).
    drop(regions);

    // 3.-6. The peers.
    for (k, &start) in starts.iter().enumerate() {
        let f = Frames { start, shape };
        hc.calls = 0;
        hc.entries = 0;
        // SAFETY: the frames are this program's (allocated above), writable in the direct map,
        // mapped nowhere else, and become tables only through the strategy.
        let ticks = unsafe {
            match k {
                0 => linux(&w, &f, &mut hc)?,
                1 => minios(&w, &f, &mut hc, root_mfn)?,
                2 => trap(&w, &f, &mut hc)?,
                _ => floor(&w, &f, &mut hc, root_mfn)?,
            }
        };
        all[k + 2] = (
            f,
            Counts {
                ticks,
                hypercalls: hc.calls,
                entries: hc.entries,
            },
        );
    }

    // The checks, then the figures.
    for (i, (f, _)) in all.iter().enumerate() {
        check(&w, f.range(), f.root(), pv_frames.root(), hv).inspect_err(|_| {
            defmt::error!("strategies: the tree of {=str} is wrong", NAMES[i]);
        })?;
    }
    for (i, (_, c)) in all.iter().enumerate() {
        defmt::info!(
            "RESULT strategy name={=str} protect={=u64} fill={=u64} pin={=u64} total={=u64} hypercalls={=u64} entries={=u64} tables={=u64}",
            NAMES[i],
            c.ticks[0],
            c.ticks[1],
            c.ticks[2],
            c.ticks.iter().sum::<u64>(),
            c.hypercalls,
            c.entries,
            t
        );
    }
    defmt::info!("RESULT strategies done pages={=u64} tables={=u64}", n, t);
    Ok(())
}

/// One build of pvmmu's through the typed API with the backend's `fill` strategy: the buffer
/// (`PgtBuf::new`), a fresh root inheriting the live root's slots, `direct_map::build`, the
/// root finished and pinned. `ro` are the other page-table frames (the buffer adds itself).
/// Returns the buffer's first frame (the root) and the counts. Phases: `protect` is
/// `PgtBuf::new` and, when held back, the flush that applies it; `fill` the rest up to the
/// pin.
#[inline(never)] // its frame apart from the others' (the release boot stack is 32 KiB)
fn pvmmu_run(
    b: &mut boards::xen::XenBoard,
    memblock: &mut pvmmu::memblock::Memblock<{ memview::REGIONS }>,
    ram: PfnRange,
    t: u64,
    ro: &[PfnRange],
    fill: FillStrategy,
) -> Result<(u64, Counts), Failure> {
    let spec = DirectMapSpec {
        base: BASE,
        page_sizes: PageSizes::SIZE_4K,
    };
    let (mmu, live) = b.mmu_and_root();
    let previous = mmu.raw().fill_strategy();
    mmu.raw_mut()
        .set_fill_strategy(fill)
        .map_err(|e| be("set_fill_strategy", &e, e.kind()))?;
    let before = mmu.raw().counters().total();
    let t0 = tsc();
    let mut buf = pvmmu::PgtBuf::new(mmu, memblock, t, u64::MAX, Direction::TopDown)
        .map_err(|e| be("PgtBuf::new", &e, pvmmu::ErrorKind::Other))?;
    let t1 = tsc();
    let start = buf.start().as_u64();
    let root_frame = buf
        .alloc()
        .map_err(|_| failed("pvmmu: the buffer is empty", 0))?;
    let mut root = FreshTable::new(root_frame);
    mmu.inherit_root_fresh(live, &mut root, (0, SLOT))
        .map_err(|e| be("inherit", &e, pvmmu::ErrorKind::Other))?;
    let flags = PageTableFlags::PRESENT | PageTableFlags::WRITABLE;
    // SAFETY: the range at BASE is used by nothing (its root slot is empty in the live root,
    // checked by the caller), and all RAM is dom0's, mapped with ordinary flags.
    let built = unsafe {
        direct_map::build(
            mmu,
            &mut buf,
            Target::Fresh(&mut root),
            &[ram],
            ro,
            &spec,
            flags,
        )
    }
    .map_err(|e| be("build", &e, e.kind()))?;
    mmu.inherit_root_fresh(live, &mut root, (SLOT + 1, 512))
        .map_err(|e| be("inherit", &e, pvmmu::ErrorKind::Other))?;
    // The root's last slots, then the flush (which applies a held-back protection).
    let ta = tsc();
    let root = mmu
        .finish_table(root)
        .map_err(|f| be("finish_table", &f.error, f.error.kind()))?;
    built
        .pending
        .flush(mmu)
        .map_err(|e| be("flush", &e, e.kind()))?;
    let t2 = tsc();
    let pinned = mmu
        .pin(root)
        .map_err(|f| be("pin", &f.error, f.error.kind()))?;
    let t3 = tsc();
    let after = mmu.raw().counters().total();
    mmu.raw_mut()
        .set_fill_strategy(previous)
        .map_err(|e| be("set_fill_strategy", &e, e.kind()))?;
    let ticks = match fill {
        FillStrategy::Queue => [t1 - t0, t2 - t1, t3 - t2],
        FillStrategy::StoreThenProtect => [(t1 - t0) + (t2 - ta), ta - t1, t3 - t2],
    };
    if buf.remaining() != 0 {
        return Err(Failure::CountMismatch {
            computed: t,
            used: buf.used(),
        });
    }
    let _ = buf.finish(mmu, memblock);
    // The tree stays pinned for the comparisons (and for the rest of the run).
    drop(pinned);
    Ok((
        start,
        Counts {
            ticks,
            hypercalls: after.hypercalls - before.hypercalls,
            entries: after.entries - before.entries,
        },
    ))
}

/// Linux: entries through 32-entry multicalls, each table remapped read-only once filled, each
/// L1 pinned at once, the root pinned last.
///
/// # Safety
/// `f`'s frames are the caller's, writable, no tables.
#[inline(never)] // its frame apart from the others' (the release boot stack is 32 KiB)
unsafe fn linux(w: &World, f: &Frames, hc: &mut Hc) -> Result<[u64; 3], Failure> {
    let t0 = tsc();
    let mut batch: Vec<MmuUpdate, LINUX_BATCH> = Vec::new();
    let mut leaves = [0u64; 512];
    w.for_each_table(f, true, |level, index, pfn| {
        let base = w.mfn(pfn) << 12;
        if level == 1 {
            w.leaves(index, &mut leaves);
        }
        for slot in 0..512u64 {
            let val = if level == 1 {
                leaves[slot as usize]
            } else {
                w.entry(f, level, index, slot)
            };
            let _ = batch.push(MmuUpdate {
                ptr: (base + slot * 8) | mmu::NORMAL_PT_UPDATE,
                val,
            });
            if batch.is_full() {
                // SAFETY: writes into a frame of ours that is no table yet.
                unsafe { hc.multicall(&batch, "linux: multicall of mmu_update") }?;
                batch.clear();
            }
        }
        // SAFETY: as above (512 entries a table: the batch is empty here anyway).
        unsafe { hc.multicall(&batch, "linux: multicall of mmu_update") }?;
        batch.clear();
        // SAFETY: the frame is ours; read-only is always allowed.
        unsafe { hc.remap(dm(pfn), ro_pte(w, pfn), "linux: read-only remap") }?;
        if level == 1 {
            // SAFETY: a complete L1 of ours, read-only everywhere now.
            unsafe { hc.ext(mmuext::PIN_L1_TABLE, w.mfn(pfn), "linux: pin L1") }?;
        }
        Ok(())
    })?;
    let t1 = tsc();
    // SAFETY: the complete root of ours, every table under it read-only.
    unsafe { hc.ext(mmuext::PIN_L4_TABLE, w.mfn(f.root()), "linux: pin root") }?;
    let t2 = tsc();
    Ok([0, t1 - t0, t2 - t1])
}

/// Mini-OS: the root first (filled, read-only, pinned), then every table zeroed, remapped
/// read-only and hooked, one single-entry `mmu_update` each, the leaves 512 to a call.
///
/// # Safety
/// As [`linux`].
#[inline(never)] // its frame apart from the others' (the release boot stack is 32 KiB)
unsafe fn minios(w: &World, f: &Frames, hc: &mut Hc, root_mfn: u64) -> Result<[u64; 3], Failure> {
    let t0 = tsc();
    let root = f.root();
    // SAFETY: the caller's contract.
    unsafe { zero(root) };
    for slot in 0..512u64 {
        if slot != u64::from(SLOT) {
            let e = w.inherited[slot as usize];
            if e != 0 {
                // SAFETY: as above.
                unsafe { slot_ptr(root, slot).write_volatile(e) };
            }
        }
    }
    let ro = |hv: &Counted<XenHypercalls>, pfn: u64| -> Result<[MmuUpdate; 1], Failure> {
        Ok([MmuUpdate {
            ptr: dm_pte_maddr(hv, root_mfn, pfn)? | mmu::NORMAL_PT_UPDATE,
            val: ro_pte(w, pfn),
        }])
    };
    let req = ro(hc.hv, root)?;
    // SAFETY: read-only remap of a frame of ours.
    unsafe { hc.update(&req, "minios: read-only remap") }?;
    let t1 = tsc();
    // SAFETY: the root of ours, read-only, its inherited slots live tables.
    unsafe { hc.ext(mmuext::PIN_L4_TABLE, w.mfn(root), "minios: pin root") }?;
    let t2 = tsc();
    let mut leaves = [MmuUpdate::default(); 512];
    let mut vals = [0u64; 512];
    w.for_each_table(f, false, |level, index, pfn| {
        if level == 4 {
            return Ok(());
        }
        // SAFETY: the caller's contract.
        unsafe { zero(pfn) };
        let req = ro(hc.hv, pfn)?;
        // SAFETY: read-only remap of a frame of ours.
        unsafe { hc.update(&req, "minios: read-only remap") }?;
        let (parent, slot) = match level {
            3 => (f.root(), u64::from(SLOT)),
            2 => (f.l3(), index),
            _ => (f.l2(index / 512), index % 512),
        };
        let hook = [MmuUpdate {
            ptr: ((w.mfn(parent) << 12) + slot * 8) | mmu::NORMAL_PT_UPDATE,
            val: w.table_entry(pfn),
        }];
        // SAFETY: an empty, read-only table of ours hooked into our (pinned) tree.
        unsafe { hc.update(&hook, "minios: hook") }?;
        if level == 1 {
            w.leaves(index, &mut vals);
            let base = w.mfn(pfn) << 12;
            let count = (w.shape.n - index * 512).min(512) as usize;
            for (slot, (r, &v)) in leaves.iter_mut().zip(&vals).enumerate().take(count) {
                *r = MmuUpdate {
                    ptr: (base + slot as u64 * 8) | mmu::NORMAL_PT_UPDATE,
                    val: v,
                };
            }
            // SAFETY: leaves of RAM of ours into a live L1 of our tree (not the current root).
            unsafe { hc.update(&leaves[..count], "minios: leaves") }?;
        }
        Ok(())
    })?;
    let t3 = tsc();
    Ok([0, (t1 - t0) + (t3 - t2), t2 - t1])
}

/// Trap and emulate: each L1 zeroed, read-only, pinned, then its leaves stored one by one
/// (Xen emulates each); the upper tables filled while writable, made read-only, the root
/// pinned.
///
/// # Safety
/// As [`linux`].
#[inline(never)] // its frame apart from the others' (the release boot stack is 32 KiB)
unsafe fn trap(w: &World, f: &Frames, hc: &mut Hc) -> Result<[u64; 3], Failure> {
    let t0 = tsc();
    let mut leaves = [0u64; 512];
    w.for_each_table(f, false, |level, index, pfn| {
        if level != 1 {
            // SAFETY: the caller's contract: ours, writable, no table yet.
            unsafe { store_table(w, f, level, index, pfn) };
            return Ok(());
        }
        // SAFETY: as above.
        unsafe { zero(pfn) };
        // SAFETY: read-only remap of a frame of ours.
        unsafe { hc.remap(dm(pfn), ro_pte(w, pfn), "trap: read-only remap") }?;
        // SAFETY: an empty L1 of ours, read-only.
        unsafe { hc.ext(mmuext::PIN_L1_TABLE, w.mfn(pfn), "trap: pin L1") }?;
        w.leaves(index, &mut leaves);
        let count = (w.shape.n - index * 512).min(512) as usize;
        for (slot, &v) in leaves.iter().enumerate().take(count) {
            // SAFETY: a store into a pinned L1 of ours, mapped read-only: it faults and Xen
            // emulates it (writable page tables), validating the entry; nothing of Rust's is
            // behind it.
            unsafe { slot_ptr(pfn, slot as u64).write_volatile(v) };
        }
        Ok(())
    })?;
    for pfn in [f.root(), f.l3()]
        .into_iter()
        .chain((0..w.shape.k2).map(|i| f.l2(i)))
    {
        // SAFETY: read-only remap of a frame of ours.
        unsafe { hc.remap(dm(pfn), ro_pte(w, pfn), "trap: read-only remap") }?;
    }
    let t1 = tsc();
    // SAFETY: the complete root of ours, every table under it read-only.
    unsafe { hc.ext(mmuext::PIN_L4_TABLE, w.mfn(f.root()), "trap: pin root") }?;
    let t2 = tsc();
    Ok([0, t1 - t0, t2 - t1])
}

/// The floor: every table filled by plain stores while writable, then all made read-only in
/// one batch (512 requests to an `mmu_update`), the root pinned once.
///
/// # Safety
/// As [`linux`].
#[inline(never)] // its frame apart from the others' (the release boot stack is 32 KiB)
unsafe fn floor(w: &World, f: &Frames, hc: &mut Hc, root_mfn: u64) -> Result<[u64; 3], Failure> {
    let t0 = tsc();
    w.for_each_table(f, false, |level, index, pfn| {
        // SAFETY: the caller's contract: ours, writable, no table yet.
        unsafe { store_table(w, f, level, index, pfn) };
        Ok(())
    })?;
    let t1 = tsc();
    let mut batch: Vec<MmuUpdate, 512> = Vec::new();
    let mut l1_base = None;
    for pfn in f.start..f.start + w.shape.tables() {
        // One walk per L1 of the direct map: the frames are contiguous.
        let maddr = match l1_base {
            Some((key, base)) if key == pfn >> 9 => base + 8 * (pfn & 511),
            _ => {
                let m = dm_pte_maddr(hc.hv, root_mfn, pfn)?;
                l1_base = Some((pfn >> 9, m - 8 * (pfn & 511)));
                m
            }
        };
        let _ = batch.push(MmuUpdate {
            ptr: maddr | mmu::NORMAL_PT_UPDATE,
            val: ro_pte(w, pfn),
        });
        if batch.is_full() {
            // SAFETY: read-only remaps of frames of ours.
            unsafe { hc.update(&batch, "floor: read-only batch") }?;
            batch.clear();
        }
    }
    // SAFETY: as above.
    unsafe { hc.update(&batch, "floor: read-only batch") }?;
    // The stale writable TLB entries of the frames, gone before Xen validates them.
    // SAFETY: a local flush changes no mapping.
    unsafe { hc.ext(mmuext::TLB_FLUSH_LOCAL, 0, "floor: TLB flush") }?;
    let t2 = tsc();
    // SAFETY: the complete root of ours, every table under it read-only.
    unsafe { hc.ext(mmuext::PIN_L4_TABLE, w.mfn(f.root()), "floor: pin root") }?;
    let t3 = tsc();
    Ok([t2 - t1, t1 - t0, t3 - t2])
}

/// Walks the tree rooted at `root` with pvmmu's walker ([`TreeCheck`]) through the live direct
/// map (children found through Xen's M2P) and compares every entry with the expectation ([`World`]: the P2M and the read-only
/// set for leaves, the live root for inherited slots, present table entries exactly where the
/// shape has tables, each child a frame of `frames` met once) and with the tree of `pvmmu`
/// (`pv_root`), leaves and inherited slots bit for bit. Xen adds `_PAGE_USER` to a PV guest's
/// kernel entries (and the CPU may set accessed and dirty), so the expectation ignores those
/// bits (and `_PAGE_GUEST_KERNEL`, bit 52, which Xen adds with it); the comparison with
/// `pvmmu`'s tree does not.
#[inline(never)] // its frame apart from the others' (the release boot stack is 32 KiB)
fn check(
    w: &World,
    frames: (u64, u64),
    root: u64,
    pv_root: u64,
    hv: &Counted<XenHypercalls>,
) -> Result<(), Failure> {
    let mut seen = Seen {
        bits: [0; 64],
        frames,
        count: 0,
    };
    seen.visit(root)?;
    let mut tree = TreeCheck {
        w,
        seen: &mut seen,
        hv,
        pv: [0, 0, 0, pv_root],
        index: [0; 4],
    };
    pvmmu::walk::visit(root, 0..=u64::MAX, &mut tree)?;
    if seen.count != frames.1 - frames.0 {
        return Err(Failure::CountMismatch {
            computed: frames.1 - frames.0,
            used: seen.count,
        });
    }
    Ok(())
}

/// The frames a walk met, at most 4096.
struct Seen {
    bits: [u64; 64],
    frames: (u64, u64),
    count: u64,
}

impl Seen {
    fn visit(&mut self, pfn: u64) -> Result<(), Failure> {
        let i = pfn.wrapping_sub(self.frames.0);
        if pfn < self.frames.0 || pfn >= self.frames.1 || i >= 4096 {
            return Err(failed("a table outside the strategy's frames", pfn as i64));
        }
        let (word, bit) = ((i / 64) as usize, 1u64 << (i % 64));
        if self.bits[word] & bit != 0 {
            return Err(failed("a table frame used twice", pfn as i64));
        }
        self.bits[word] |= bit;
        self.count += 1;
        Ok(())
    }
}

fn wrong(level: u8, index: u64, slot: u64, got: u64, want: u64) -> Failure {
    defmt::error!(
        "strategies: L{=u8} #{=u64} slot {=u64}: {=u64:#x}, expected {=u64:#x}",
        level,
        index,
        slot,
        got,
        want
    );
    failed("a tree differs from the expected one", 0)
}

/// The check of one tree as a visitor of pvmmu's walker: tables named by their pfn, entries
/// read through the live direct map, each compared when read (non-present ones too) with the
/// expectation and with `pvmmu`'s entry in the same place; the walk descends into the slot of
/// the tree in the root and into every table entry of the L3 and L2s. Per level (index 0: the
/// L1), of the table open there: `pvmmu`'s table in its place, and its index among the tables
/// of its level.
struct TreeCheck<'a> {
    w: &'a World,
    seen: &'a mut Seen,
    hv: &'a Counted<XenHypercalls>,
    pv: [u64; 4],
    index: [u64; 4],
}

impl pvmmu::walk::Visitor for TreeCheck<'_> {
    type Table = u64;
    type Error = Failure;

    fn read(&mut self, pfn: u64, level: TableLevel, slot: u16) -> Result<Pte, Failure> {
        if level == TableLevel::L4 && XEN_SLOTS.contains(&slot) {
            // Xen's own slots: not the guest's tree.
            return Ok(Pte::EMPTY);
        }
        let mask = !(USER | GUEST_KERNEL | ACCESSED_DIRTY);
        let s = self.w.shape;
        let (l, slot) = (level.as_u8(), u64::from(slot));
        let at = usize::from(l - 1);
        let index = self.index[at];
        // SAFETY: the tables are RAM of ours, mapped read-only in the direct map.
        let (got, theirs) = unsafe {
            (
                slot_ptr(pfn, slot).read_volatile(),
                slot_ptr(self.pv[at], slot).read_volatile(),
            )
        };
        let child_index = index * 512 + slot;
        let table = match l {
            4 if slot == u64::from(SLOT) => true,
            4 => {
                let want = self.w.inherited[slot as usize];
                if got & mask != want & mask || got != theirs {
                    return Err(wrong(l, index, slot, got, want));
                }
                return Ok(Pte::from_bits(got));
            }
            3 => slot < s.k2,
            2 => child_index < s.k1,
            _ => {
                let want = self.w.leaf(child_index);
                if got & mask != want & mask || got != theirs {
                    return Err(wrong(l, index, slot, got, want));
                }
                return Ok(Pte::from_bits(got));
            }
        };
        if !table {
            if got != 0 || theirs != 0 {
                return Err(wrong(l, index, slot, got, 0));
            }
            return Ok(Pte::EMPTY);
        }
        if got & P == 0 || got & !ADDR & mask != P | RW || theirs & P == 0 {
            return Err(wrong(l, index, slot, got, P | RW));
        }
        Ok(Pte::from_bits(got))
    }

    fn child(&mut self, slot: &Slot<u64>, e: Pte) -> Result<u64, Failure> {
        use pvmmu::xen_pv::mmu::PvPlatform;
        let at = usize::from(slot.level.as_u8() - 1);
        // SAFETY: as in `read`.
        let theirs = unsafe { slot_ptr(self.pv[at], u64::from(slot.index)).read_volatile() };
        // SAFETY: M2P reads of frames that validated tables name.
        let (child, pv_child) = unsafe {
            (
                self.hv.mfn_to_pfn((e.bits() & ADDR) >> 12),
                self.hv.mfn_to_pfn((theirs & ADDR) >> 12),
            )
        };
        self.seen.visit(child)?;
        self.pv[at - 1] = pv_child;
        self.index[at - 1] = if slot.level == TableLevel::L4 {
            0
        } else {
            self.index[at] * 512 + u64::from(slot.index)
        };
        Ok(child)
    }

    fn entry(&mut self, slot: &Slot<u64>, _: Pte, leaf: bool) -> Result<Step, Failure> {
        // The inherited root slots and the leaves were checked when read; every other present
        // entry is a table of the tree.
        let inherited = slot.level == TableLevel::L4 && slot.index != SLOT;
        Ok(if leaf || inherited {
            Step::Next
        } else {
            Step::Descend
        })
    }
}
