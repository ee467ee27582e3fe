//! Test support shared by hal-core's integration tests: the simulated backend, the oracles,
//! the strategies, and the setup every lifecycle test starts from.
#![allow(dead_code)]

pub mod gen;
pub mod oracle;
pub mod sim;
pub mod space;
pub mod xen_model;

use hal_core::backend::Caps;
use hal_core::direct_map::{count_tables, DirectMapSpec, TableCount};
use hal_core::memblock::{Direction, Memblock};
use hal_core::memmap::MemRegion;
use hal_core::{LiveRoot, Mmu, PfnRange, PgtBuf};

use sim::{Sim, BOOT_FRAMES};

/// memblock capacity used by the tests.
pub const N: usize = 64;

/// A machine at boot: memblock from the firmware map, the sim's boot tables reserved in it.
pub struct World {
    pub mb: Memblock<N>,
    pub mmu: Mmu<Sim>,
    /// The one handle to the live root (the sim's boot root at first).
    pub live: LiveRoot,
    /// The boot tables (root, L3, L2): foreign tables, reserved in memblock.
    pub boot: PfnRange,
    /// RAM as frame ranges (memblock's memory).
    pub ranges: Vec<PfnRange>,
}

/// Sets a machine up; `None` if the map has too little RAM for the boot tables.
pub fn world(map: &[MemRegion], caps: Caps) -> Option<World> {
    // SAFETY: the map describes simulated memory that this memblock alone hands out.
    let (mut mb, _) = unsafe { Memblock::<N>::from_firmware(map) }.ok()?;
    let ranges = oracle::pfn_ranges(&mb);
    let boot = mb
        .alloc_frames(BOOT_FRAMES, u64::MAX, Direction::BottomUp)
        .ok()?;
    let pfns = boot.pfns();
    // The boot tables belong to the sim from now on (they are the firmware's tables).
    let _ = boot;
    let mmu = Mmu::new(Sim::new(caps, pfns.start(), &ranges));
    // SAFETY: one world, one simulated address space, one handle to its root.
    let live = unsafe { LiveRoot::adopt_boot_root(&mmu) };
    Some(World {
        mb,
        mmu,
        live,
        boot: pfns,
        ranges,
    })
}

/// [`world`] over one RAM region, `[0, bytes)`.
pub fn ram_world(caps: Caps, bytes: u64) -> World {
    let map = [MemRegion {
        start: 0,
        len: bytes,
        kind: hal_core::memmap::RegionKind::Ram,
    }];
    world(&map, caps).expect("a machine with RAM for the boot tables")
}

/// The read-only set the builder will use for a buffer at `buf`, plus `extra`.
pub fn ro_set(caps: &Caps, boot: PfnRange, buf: PfnRange, extra: &[PfnRange]) -> Vec<PfnRange> {
    if !caps.tables_read_only {
        return Vec::new();
    }
    let mut v = vec![boot, buf];
    v.extend_from_slice(extra);
    oracle::merge(v)
}

/// Sizes a `pgt_buf` of exactly `count + 1 (root) + headroom` frames, where `count` is the
/// table count for where the buffer lands (on a backend with read-only tables, the buffer's own
/// frames are mapped read-only, which can split large pages and change the count). Returns the
/// frame count to ask `PgtBuf::new` for (it lands where the trial allocation did: memblock is
/// deterministic), the table count for it, and the headroom actually given (`>= headroom`;
/// equal unless the placement never settled).
#[allow(clippy::too_many_arguments)]
pub fn alloc_buf(
    w: &mut World,
    ranges: &[PfnRange],
    spec: &DirectMapSpec,
    headroom: u64,
    root: bool,
    dir: Direction,
    extra_ro: &[PfnRange],
) -> Option<(u64, TableCount, u64)> {
    let caps = w.mmu.caps();
    let extra = u64::from(root) + headroom;
    let empty = PfnRange::empty(w.boot.start());
    let mut size = count_tables(ranges, &ro_set(&caps, w.boot, empty, extra_ro), spec, &caps)
        .ok()?
        .total()
        + extra;
    for attempt in 0..8 {
        let frames = w.mb.alloc_frames(size, u64::MAX, dir).ok()?;
        let ro = ro_set(&caps, w.boot, frames.pfns(), extra_ro);
        let count = count_tables(ranges, &ro, spec, &caps).ok()?;
        let want = count.total() + extra;
        w.mb.free_frames(frames).ok()?;
        if want == size || (want < size && attempt >= 4) {
            return Some((size, count, size - count.total() - u64::from(root)));
        }
        size = want;
    }
    None
}

/// `alloc_buf`, then the buffer itself (`PgtBuf::new` with the settled size).
#[allow(clippy::too_many_arguments)]
pub fn new_buf(
    w: &mut World,
    ranges: &[PfnRange],
    spec: &DirectMapSpec,
    headroom: u64,
    root: bool,
    dir: Direction,
    extra_ro: &[PfnRange],
) -> Option<(PgtBuf, TableCount, u64)> {
    let (size, count, headroom) = alloc_buf(w, ranges, spec, headroom, root, dir, extra_ro)?;
    let buf = PgtBuf::new(&mut w.mmu, &mut w.mb, size, u64::MAX, dir).ok()?;
    Some((buf, count, headroom))
}
