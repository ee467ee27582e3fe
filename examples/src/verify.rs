//! The `direct_map` example's own checks of the map `map_ram` made, independent of its
//! figures: the software walk of every leaf (frame, size, protection against the plan), the
//! released tail written and read back through the new map and the boot mapping (twice on a
//! backend that compares the seed's release), and the CPU reading through the map.

use boards::MmuPlatform;
use heapless::Vec;
use pvmmu::direct_map::{DirectMap, DirectMapSpec, PageSize, Runs};
use pvmmu::memblock::Memblock;
use pvmmu::walk::translate;
use pvmmu::{BackendError, Caps, Mmu, PageTableFlags, Pfn, PfnRange, RawMmu, Report};
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
    f.cross_checked = unsafe { pattern(base, tail.pfns(), p.boot_window()) }?;
    // The backend's comparison (Xen PV: the same frames released again the seed's way).
    let tail = P::Backend::compare_release(p.mmu(), tail).map_err(|e| {
        defmt::error!("compare_release: {}", defmt::Display2Format(&e.error));
        Failure::Backend("compare_release", e.error.kind())
    })?;
    // SAFETY: as above: the frames came back free and ours.
    unsafe { pattern(base, tail.pfns(), p.boot_window()) }?;
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
        read_only.sort_unstable_by_key(|r| r.start());
    }
    let checked = every_leaf(p.mmu(), map.root, &map.ranges, &read_only, &map.spec, &caps)?;
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
pub fn every_leaf<B: RawMmu>(
    mmu: &mut Mmu<B>,
    root: Pfn,
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
            let t = translate(mmu.raw_mut(), root, va).map_err(|e| {
                defmt::error!("walk of {=u64:#x} failed: {}", va, defmt::Debug2Format(&e));
                Failure::Backend("walk", pvmmu::BackendError::kind(&e))
            })?;
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
/// back, and where `boot` (a second mapping: `(va, frames)`) also covers a frame, reads it
/// through that one too. Returns how many frames were cross-checked through `boot`.
///
/// # Safety
/// The caller owns the frames as memory, and both mappings are live and writable.
pub unsafe fn pattern(base: u64, frames: PfnRange, boot: (u64, PfnRange)) -> Result<u64, Failure> {
    let mut crossed = 0;
    for pfn in frames.iter() {
        let p = (base + pfn.addr()) as *mut u64;
        let tag = pfn.as_u64().wrapping_mul(0x9e37_79b9_7f4a_7c15);
        for i in 0..512 {
            // SAFETY: the caller owns the frame and its direct mapping is live and writable.
            unsafe { p.add(i).write_volatile(tag ^ i as u64) };
        }
        for i in 0..512 {
            // SAFETY: as above.
            if unsafe { p.add(i).read_volatile() } != tag ^ i as u64 {
                return Err(Failure::Pattern { pfn: pfn.as_u64() });
            }
        }
        let (bva, bframes) = boot;
        if bframes.contains(pfn) {
            let q = (bva + (pfn.as_u64() - bframes.start().as_u64()) * 4096) as *const u64;
            // SAFETY: the boot mapping covers the frame (checked) and is live.
            if unsafe { q.add(7).read_volatile() } != tag ^ 7 {
                return Err(Failure::Alias { pfn: pfn.as_u64() });
            }
            crossed += 1;
        }
    }
    Ok(crossed)
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
