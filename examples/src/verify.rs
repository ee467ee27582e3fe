//! The `direct_map` example's own checks of the map `map_ram` made, independent of its
//! figures: the software walk of every leaf (frame, size, protection against the plan), the
//! released tail written and read back through the new map and through a second mapping the
//! board gives (twice on a backend that compares the seed's release), and the CPU reading through the map.

use boards::{AliasError, MmuPlatform};
use heapless::Vec;
use pvmmu::direct_map::{DirectMap, DirectMapSpec, PageSize, Runs};
use pvmmu::memblock::Memblock;
use pvmmu::walk::Translation;
use pvmmu::{
    BackendError, Caps, Mmu, PageTableFlags, Pfn, PfnRange, RawMmu, Report, Root, TableRef,
};
use pvmmu_figures::Figures;

use crate::Failure;

/// Checks the live direct map `map` on board `p`, whose memblock is `mb`, and returns the
/// figures: the map's own, plus what was checked.
pub fn direct_map<P: MmuPlatform, const N: usize>(
    p: &mut P,
    mb: &mut Memblock<N>,
    map: &DirectMap<N>,
) -> Result<Figures, Failure> {
    let m = map.figures;
    let mut f = Figures {
        ram_bytes: m.ram_bytes,
        computed: m.computed,
        tables_used: m.tables_used,
        tail_released: m.tail_released,
        pages: m.pages,
        ..Figures::default()
    };
    if m.tables_used != m.computed + 1 || m.tables_made != m.computed {
        return Err(Failure::CountMismatch {
            computed: m.computed + 1,
            used: m.tables_used,
        });
    }
    let base = map.spec.base;

    // Every released frame: allocated as memory, written and read back through the new map.
    let tail = mb
        .alloc_exact(map.buffer.released)
        .map_err(Failure::Memblock)?;
    // SAFETY: we own the tail frames (allocated just now) and the direct map is live.
    f.cross_checked = unsafe { pattern(p, base, tail.pfns()) }?;
    // The backend's comparison (Xen PV: the same frames released again the seed's way).
    let tail = P::Backend::compare_release(p.mmu(), tail).map_err(|e| {
        defmt::error!("compare_release: {}", e.error);
        Failure::Backend("compare_release", e.error.kind())
    })?;
    // SAFETY: as above: the frames came back free and ours.
    unsafe { pattern(p, base, tail.pfns()) }?;
    mb.free_frames(tail)
        .map_err(|e| Failure::Memblock(e.error))?;

    // Every leaf by walking, and the CPU through the map on a dense sample.
    let caps = p.mmu().caps();
    let mut read_only: Vec<PfnRange, 16> = Vec::new();
    if caps.tables_read_only {
        let own = p.mmu().raw().foreign_tables().iter().copied();
        for r in core::iter::once(map.buffer.used).chain(own) {
            read_only.push(r).map_err(|_| Failure::Mapping { va: 0 })?;
        }
        PfnRange::sort_by_start(&mut read_only);
    }
    // Walked from the root in use (the one the CPU translates through), which `map_ram` says
    // is `map.root`.
    let (mmu, live) = p.mmu_and_root();
    let checked = every_leaf(mmu, live.table(), &map.ranges, &read_only, &map.spec, &caps)?;
    f.leaves_checked = checked.leaves;
    // SAFETY: the direct map is live.
    f.pages_touched = unsafe { touch(base, &map.ranges, 16) };
    Ok(f)
}

/// What [`every_leaf`] checked.
#[derive(Clone, Copy, Debug, Default, defmt::Format)]
pub struct Checked {
    /// Leaf entries walked.
    pub leaves: u64,
    /// 4 KiB pages they cover.
    pub pages_4k: u64,
}

/// Walks every leaf of the direct map (the first 4 KiB page of each) from `root` and checks
/// frame, page size and protection against the plan.
pub fn every_leaf<B: RawMmu<Error: defmt::Format>>(
    mmu: &mut Mmu<B>,
    root: TableRef<'_, Root>,
    ranges: &[PfnRange],
    read_only: &[PfnRange],
    spec: &DirectMapSpec,
    caps: &Caps,
) -> Result<Checked, Failure> {
    let mut walk = |va| {
        mmu.translate(root, va).map_err(|e| {
            defmt::error!("walk of {=u64:#x} failed: {}", va, e);
            Failure::Backend("walk", pvmmu::BackendError::kind(&e))
        })
    };
    check_leaves(&mut walk, ranges, read_only, spec, caps)
}

/// [`every_leaf`]'s checks, through `walk` (the backend's translation of an address): not
/// generic over the backend, so one copy serves every board.
#[inline(never)]
fn check_leaves(
    walk: &mut dyn FnMut(u64) -> Result<Option<Translation>, Failure>,
    ranges: &[PfnRange],
    read_only: &[PfnRange],
    spec: &DirectMapSpec,
    caps: &Caps,
) -> Result<Checked, Failure> {
    let mut c = Checked::default();
    let runs = Runs::new(ranges, read_only, spec, caps).map_err(Failure::Plan)?;
    for run in runs {
        for i in 0..run.pages {
            let pfn = run.pfn + i * run.size.frames();
            let va = spec.base + (pfn << 12);
            let t = walk(va)?;
            let Some(t) = t else {
                return Err(Failure::Translation {
                    va,
                    expected: pfn,
                    got: u64::MAX,
                });
            };
            if t.pfn.as_u64() != pfn {
                return Err(Failure::Translation {
                    va,
                    expected: pfn,
                    got: t.pfn.as_u64(),
                });
            }
            let writable = t.leaf.flags().contains(PageTableFlags::WRITABLE);
            let size_ok =
                t.level == run.size.level() && (run.size == PageSize::Size4K) != t.leaf.is_huge();
            if !size_ok || writable == run.read_only {
                defmt::error!(
                    "mapping of {=u64:#x}: level {=u8}, writable {=bool}, expected {} ro {=bool}",
                    va,
                    t.level.as_u8(),
                    writable,
                    run.size,
                    run.read_only
                );
                return Err(Failure::Mapping { va });
            }
            c.leaves += 1;
            c.pages_4k += run.size.frames();
        }
    }
    Ok(c)
}

/// Writes a pattern into every frame of `frames` through the direct map at `base`, reads it
/// back, and reads it again through a second, independent mapping of the same frame that the
/// board gives ([`MmuPlatform::alias`]). Returns how many frames were read through it: every
/// frame, or the run fails ([`Failure::NoAlias`] where the board has no second mapping).
///
/// # Safety
/// The caller owns the frames as memory, and the direct map of them at `base` is live and
/// writable.
pub unsafe fn pattern<P: MmuPlatform>(
    p: &mut P,
    base: u64,
    frames: PfnRange,
) -> Result<u64, Failure> {
    // SAFETY: the caller's promise.
    let crossed = unsafe { pattern_through(&mut |pfn| p.alias(pfn), base, frames) };
    let ended = p.end_alias().map_err(|e| alias_failure(u64::MAX, e));
    let crossed = crossed?;
    ended?;
    Ok(crossed)
}

/// [`pattern`]'s writes and reads, with `alias` the board's second mapping of a frame: not
/// generic over the board.
///
/// # Safety
/// As [`pattern`].
#[inline(never)]
unsafe fn pattern_through(
    alias: &mut dyn FnMut(Pfn) -> Result<u64, AliasError>,
    base: u64,
    frames: PfnRange,
) -> Result<u64, Failure> {
    {
        let mut crossed = 0;
        for pfn in frames.iter() {
            let d = (base + pfn.addr()) as *mut u64;
            let tag = pfn.as_u64().wrapping_mul(0x9e37_79b9_7f4a_7c15);
            for i in 0..512 {
                // SAFETY: the caller owns the frame and its direct mapping is live and writable.
                unsafe { d.add(i).write_volatile(tag ^ i as u64) };
            }
            for i in 0..512 {
                // SAFETY: as above.
                if unsafe { d.add(i).read_volatile() } != tag ^ i as u64 {
                    return Err(Failure::Pattern { pfn: pfn.as_u64() });
                }
            }
            let q = alias(pfn).map_err(|e| alias_failure(pfn.as_u64(), e))? as *const u64;
            for i in 0..512 {
                // SAFETY: the board maps the frame readable at `q` until the next `alias` or
                // `end_alias`; the caller owns it, so nothing else writes it.
                if unsafe { q.add(i).read_volatile() } != tag ^ i as u64 {
                    return Err(Failure::Alias { pfn: pfn.as_u64() });
                }
            }
            crossed += 1;
        }
        Ok(crossed)
    }
}

/// `pfn`: the frame asked for (`u64::MAX`: ending the alias).
fn alias_failure(pfn: u64, e: AliasError) -> Failure {
    match e {
        AliasError::NoMapping { pfn } => {
            defmt::error!("no second mapping of pfn {=u64:#x} to cross-check it", pfn);
            Failure::NoAlias { pfn }
        }
        AliasError::Backend(kind) => {
            defmt::error!("second mapping of pfn {=u64:#x} refused", pfn);
            Failure::Backend("alias", kind)
        }
    }
}

/// Reads one word from every `stride`-th page of `ranges` through the direct map: the hardware
/// (or Xen) walks the new tables; a bad entry faults and fails the run.
///
/// # Safety
/// The direct map of `ranges` at `base` is live.
pub unsafe fn touch(base: u64, ranges: &[PfnRange], stride: u64) -> u64 {
    let mut sum = 0u64;
    let mut n = 0;
    for r in ranges {
        for pfn in r.iter().step_by(stride as usize) {
            // SAFETY: the caller promises the mapping is live; RAM is readable.
            sum = sum.wrapping_add(unsafe { ((base + pfn.addr()) as *const u64).read_volatile() });
            n += 1;
        }
    }
    core::hint::black_box(sum);
    n
}
