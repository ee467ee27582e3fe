//! The run-time mapper, judged by a walk and by the CPU: a seeded random sequence of map,
//! unmap and protect operations over a window of virtual space, then a full teardown.
//!
//! The seed and the number of operations come from the guest command line
//! (`runtime_map.seed=N runtime_map.ops=N`), so the runner chooses them. The window (L4 slot 2)
//! has three areas: 2,048 slots of 4 KiB pages over a pool of frames, 8 slots of 2 MiB pages
//! over four 2 MiB frames, two slots of 1 GiB pages of physical `[0, 1 GiB)` (read-only:
//! the kernel lives there); the large ones only where the backend maps large pages. Every
//! pool frame carries a pattern at offset 0 written through the boot mapping.
//!
//! The program keeps its own model of the window (slot → frame, writable) and predicts each
//! outcome (accepted, or refused as an overlap). Operations queue; every few (chosen by the
//! seed) one flush covers them, and then every page the operations since the last flush
//! touched is checked: by hal-core's walker (frame, size, protection), by a CPU load (the
//! frame's pattern), and by a CPU store through a probe that catches a `#PF` and continues: a
//! store must land (read back through the boot mapping) where the model says writable, and
//! fault where it says read-only or unmapped. Then the mapper tears down, and memblock's free
//! bytes must equal what they were before the first table was taken.

use boards::common::expect::{probe_store, probes_caught};
use boards::MmuPlatform;
use pvmmu::mapper::{EmptyTables, Flush, MapError, Mapper, MapperStats, MemblockSource, PageSize};
use pvmmu::memblock::Direction;
use pvmmu::{PageSizes, PageTableFlags, TableLevel};

use crate::{memview, Failure};

/// The window: L4 slot 2.
pub const WINDOW: u64 = 0x0000_0100_0000_0000;
const SMALL_VA: u64 = WINDOW;
const LARGE_VA: u64 = WINDOW + (1 << 30);
const HUGE_VA: u64 = WINDOW + (2 << 30);
const SMALL: usize = 2048;
const LARGE: usize = 8;
const HUGE: usize = 2;
const LARGE_FRAMES: u64 = 4;
const M2: u64 = 2 << 20;
const G1: u64 = 1 << 30;
const MAGIC: u64 = 0x9e37_79b9_7f4a_7c15;
/// Where a 1 GiB page is read and stored to (1 MiB in: no null page, inside the kernel's RAM).
const HUGE_PROBE: u64 = 1 << 20;

/// What the run did.
#[derive(Clone, Copy, Debug, Default, defmt::Format)]
pub struct Figures {
    /// The seed (from the command line).
    pub seed: u64,
    /// Operations run (from the command line).
    pub ops: u64,
    /// Of them: maps, unmaps, protects; refused (as predicted).
    pub maps: u64,
    /// Unmaps.
    pub unmaps: u64,
    /// Protection changes.
    pub protects: u64,
    /// Refusals (each predicted by the model).
    pub refused: u64,
    /// Pages checked by a walk and the CPU.
    pub pages_checked: u64,
    /// Stores that faulted, as expected.
    pub faults_caught: u64,
    /// The mapper's counters.
    pub tables_allocated: u64,
    /// Tables freed.
    pub tables_freed: u64,
    /// Level-3 tables the mapper made in root slots: they stay there after the teardown.
    pub tables_kept: u64,
    /// Flushes.
    pub flushes: u64,
    /// Of them full.
    pub full_flushes: u64,
    /// Single-page invalidations.
    pub pages_invalidated: u64,
    /// Entries the mapper wrote (tables' 512 included).
    pub entries_written: u64,
    /// Hypercalls during the run and teardown, and the entries they carried (Xen; 0 else).
    pub hypercalls: u64,
    /// Entries they carried.
    pub hypercall_entries: u64,
    /// memblock's free bytes before the first table and after the teardown.
    pub free_before: u64,
    /// After.
    pub free_after: u64,
    /// Page sizes used: 4 KiB, 2 MiB, 1 GiB mappings made.
    pub maps_by_size: [u64; 3],
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A slot of the model: frame (physical address) and writability.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Slot {
    phys: u64,
    writable: bool,
}

fn arg(cmdline: &str, key: &str) -> Option<u64> {
    cmdline
        .split_ascii_whitespace()
        .find_map(|w| w.strip_prefix(key))
        .and_then(|v| v.parse().ok())
}

fn fail(what: &'static str, va: u64, op: u64) -> Failure {
    defmt::error!("runtime_map: op {=u64}: {=str} at {=u64:#x}", op, what, va);
    Failure::Runtime { what, va, op }
}

/// Runs the sequence; see the module docs.
pub fn run<P: MmuPlatform>(p: &mut P) -> Result<Figures, Failure> {
    let cmd = p.cmdline();
    let seed = arg(cmd, "runtime_map.seed=").unwrap_or(1);
    let ops = arg(cmd, "runtime_map.ops=").unwrap_or(10_000);
    let mut f = Figures {
        seed,
        ops,
        ..Figures::default()
    };
    let mb = memview::memblock(p)?;
    let (win_va, win) = p.boot_window();
    let limit = (win.end() << 12).min(p.table_limit());
    let caps = p.mmu().caps();
    let large = caps
        .page_sizes
        .contains(PageSizes::SIZE_2M | PageSizes::SIZE_1G);
    let bw = pvmmu::Window {
        va: win_va,
        pfns: win,
    };
    let window = move |phys: u64| bw.va_of(phys >> 12).map(|va| va + (phys & 0xfff));
    let pool_frames: u64 = if large { 256 } else { 64 };
    let small_pool = mb
        .alloc(pool_frames * 4096, 4096, limit, Direction::TopDown)
        .map_err(Failure::Memblock)?;
    let large_pool = if large {
        mb.alloc(LARGE_FRAMES * M2, M2, limit, Direction::TopDown)
            .map_err(Failure::Memblock)?
    } else {
        0
    };
    // Patterns, through the boot mapping.
    let pattern = |phys: u64| MAGIC ^ phys;
    for i in 0..pool_frames {
        let pa = small_pool + i * 4096;
        let va = window(pa).ok_or_else(|| fail("pool frame outside the boot window", pa, 0))?;
        // SAFETY: the frame is ours (allocated above) and the boot window maps it writable.
        unsafe { core::ptr::write_volatile(va as *mut u64, pattern(pa)) };
    }
    for i in 0..if large { LARGE_FRAMES } else { 0 } {
        let pa = large_pool + i * M2;
        let va = window(pa).ok_or_else(|| fail("pool frame outside the boot window", pa, 0))?;
        // SAFETY: as above.
        unsafe { core::ptr::write_volatile(va as *mut u64, pattern(pa)) };
    }
    // The model of the 4 KiB area (2048 slots, 32 KiB) lives in frames of its own, through
    // the boot mapping: on the boot stack it would be half of it.
    let model_bytes = (SMALL * core::mem::size_of::<Option<Slot>>()) as u64;
    let model_pa = mb
        .alloc(model_bytes, 4096, limit, Direction::TopDown)
        .map_err(Failure::Memblock)?;
    let model_va = window(model_pa)
        .filter(|_| window(model_pa + model_bytes - 1).is_some())
        .ok_or_else(|| fail("model frames outside the boot window", model_pa, 0))?;
    let small: &mut [Option<Slot>] = {
        let base = model_va as *mut Option<Slot>;
        for i in 0..SMALL {
            // SAFETY: the frames are ours (allocated above, page-aligned, so aligned for a
            // slot), and the boot window maps all `model_bytes` of them writable.
            unsafe { base.add(i).write(None) };
        }
        // SAFETY: as above; every slot was written just now, and nothing else refers to these
        // frames until they are unreserved at the end, after the last use of `small`.
        unsafe { core::slice::from_raw_parts_mut(base, SMALL) }
    };
    f.free_before = mb.free_bytes();
    let hc0 = pvmmu::Report::hypercalls(p.mmu().raw()).unwrap_or((0, 0));
    let caught0 = probes_caught();

    let mut lslots = [None::<Slot>; LARGE];
    let mut hslots = [None::<Slot>; HUGE];
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut expected_faults = 0u64;
    // Ranges to check at the next flush: (area, first slot, count).
    let mut dirty: heapless::Vec<(u8, usize, usize), 16> = heapless::Vec::new();
    let stats: MapperStats;
    let kept: u64;
    {
        let (mmu, root) = p.mmu_and_root();
        let source = MemblockSource::new(mb, limit);
        let mut m: Mapper<_, 64> = Mapper::new(root.table(), caps, source, EmptyTables::Free);
        let mut pending = Flush::none();
        for op in 0..ops {
            let area = if large {
                match rng.below(100) {
                    0..=69 => 0u8,
                    70..=94 => 1,
                    _ => 2,
                }
            } else {
                0
            };
            let kind = rng.below(100);
            let writable = rng.below(2) == 0;
            let (va, len, first, count, slots): (u64, u64, usize, usize, &mut [Option<Slot>]) =
                match area {
                    0 => {
                        let count = 1 + rng.below(16) as usize;
                        let first = rng.below((SMALL - count + 1) as u64) as usize;
                        (
                            SMALL_VA + first as u64 * 4096,
                            count as u64 * 4096,
                            first,
                            count,
                            &mut small[..],
                        )
                    }
                    1 => {
                        let s = rng.below(LARGE as u64) as usize;
                        (LARGE_VA + s as u64 * M2, M2, s, 1, &mut lslots[..])
                    }
                    _ => {
                        let s = rng.below(HUGE as u64) as usize;
                        (HUGE_VA + s as u64 * G1, G1, s, 1, &mut hslots[..])
                    }
                };
            let span = len / count as u64;
            let (size, phys0, writable) = match area {
                0 => {
                    let fr = rng.below(pool_frames - count as u64 + 1);
                    (PageSize::Auto, small_pool + fr * 4096, writable)
                }
                1 => (
                    PageSize::Size2M,
                    large_pool + rng.below(LARGE_FRAMES) * M2,
                    writable,
                ),
                _ => (PageSize::Size1G, 0, false),
            };
            let mut flags = PageTableFlags::empty();
            if writable {
                flags |= PageTableFlags::WRITABLE;
            }
            let range = &mut slots[first..first + count];
            let res = if kind < 45 {
                f.maps += 1;
                let overlap = range.iter().any(Option::is_some);
                let (mmu, root) = (&mut *mmu, &*root);
                // SAFETY: the pool frames are this program's (allocated from memblock above),
                // physical [0, 1 GiB) is mapped read-only only, and the window is unused.
                let r = unsafe { m.map(mmu, root.table(), va, phys0, len, flags, size) };
                match (r, overlap) {
                    (Ok(fl), false) => {
                        for (i, s) in range.iter_mut().enumerate() {
                            *s = Some(Slot {
                                phys: phys0 + i as u64 * span,
                                writable,
                            });
                        }
                        f.maps_by_size[usize::from(area)] += 1;
                        Ok(fl)
                    }
                    (Err(MapError::Overlap(_)), true) => {
                        f.refused += 1;
                        Ok(Flush::none())
                    }
                    (Ok(fl), true) => {
                        fl.defer();
                        return Err(fail("accepted over a mapping", va, op));
                    }
                    (Err(e), _) => Err(e),
                }
            } else if kind < 75 {
                f.unmaps += 1;
                for s in range.iter_mut() {
                    *s = None;
                }
                // SAFETY: the window is this program's; nothing relies on its mappings.
                unsafe { m.unmap(mmu, root.table(), va, len) }
            } else {
                f.protects += 1;
                for s in range.iter_mut().flatten() {
                    s.writable = writable;
                }
                // SAFETY: as for `map`: the pool frames may be writable, [0, 1 GiB) is kept
                // read-only (its protect asks for read-only).
                unsafe { m.protect(mmu, root.table(), va, len, flags) }
            };
            match res {
                Ok(fl) => pending = pending.join(fl),
                Err(e) => {
                    defmt::error!("runtime_map: op {=u64}: {}", op, e);
                    return Err(Failure::Backend("mapper", e.kind()));
                }
            }
            let _ = dirty.push((area, first, count));
            if dirty.is_full() || rng.below(4) == 0 || op + 1 == ops {
                let done = core::mem::replace(&mut pending, Flush::none());
                if let Err(e) = m.flush(mmu, done) {
                    defmt::error!("runtime_map: flush: {}", e);
                    return Err(Failure::Backend("flush", e.kind()));
                }
                for &(area, first, count) in dirty.iter() {
                    for i in first..first + count {
                        let (va, slot, level) = match area {
                            0 => (SMALL_VA + i as u64 * 4096, small[i], TableLevel::L1),
                            1 => (LARGE_VA + i as u64 * M2, lslots[i], TableLevel::L2),
                            _ => (HUGE_VA + i as u64 * G1, hslots[i], TableLevel::L3),
                        };
                        let probe = if area == 2 { va + HUGE_PROBE } else { va };
                        let t = m
                            .translate(mmu, root.table(), probe)
                            .map_err(|e| Failure::Backend("walk", e.kind()))?;
                        match (slot, t) {
                            (None, None) => {}
                            (Some(s), Some(t)) => {
                                let w = t.leaf.flags().contains(PageTableFlags::WRITABLE);
                                let want = (s.phys + (probe - va)) >> 12;
                                if t.pfn.as_u64() != want || t.level != level || w != s.writable {
                                    return Err(fail("walk disagrees with the model", va, op));
                                }
                                let expect = if area == 2 {
                                    let wva = window(HUGE_PROBE)
                                        .ok_or_else(|| fail("no boot mapping", 0, op))?;
                                    // SAFETY: the boot window maps physical memory readably.
                                    unsafe { core::ptr::read_volatile(wva as *const u64) }
                                } else {
                                    pattern(s.phys)
                                };
                                // SAFETY: the walk says `probe` maps the frame, readably.
                                let got = unsafe { core::ptr::read_volatile(probe as *const u64) };
                                if got != expect {
                                    return Err(fail("CPU load disagrees with the model", va, op));
                                }
                            }
                            _ => return Err(fail("walk disagrees with the model", va, op)),
                        }
                        let value = rng.next();
                        let writable = slot.is_some_and(|s| s.writable);
                        // SAFETY: where the model says writable the 8 bytes at offset 8 are a
                        // pool frame's, ours to write; elsewhere the store must fault.
                        let stored = unsafe { probe_store(probe + 8, value) };
                        if stored != writable {
                            return Err(fail(
                                if stored {
                                    "store did not fault"
                                } else {
                                    "store faulted"
                                },
                                va,
                                op,
                            ));
                        }
                        if stored {
                            let s = slot.unwrap_or_else(|| unreachable!(/* writable */));
                            let wva =
                                window(s.phys + 8).ok_or_else(|| fail("no boot mapping", 0, op))?;
                            // SAFETY: the boot window maps the pool frame.
                            if unsafe { core::ptr::read_volatile(wva as *const u64) } != value {
                                return Err(fail("store went elsewhere", va, op));
                            }
                        } else {
                            expected_faults += 1;
                        }
                        f.pages_checked += 1;
                    }
                }
                dirty.clear();
            }
        }
        pending.defer();
        // SAFETY: the window is this program's.
        let td = unsafe { m.teardown(mmu, root.table()) }.map_err(|e| {
            defmt::error!("runtime_map: teardown: {}", e);
            Failure::Backend("teardown", e.kind())
        })?;
        for va in [SMALL_VA, LARGE_VA, HUGE_VA] {
            if m.translate(mmu, root.table(), va)
                .map_err(|e| Failure::Backend("walk", e.kind()))?
                .is_some()
            {
                return Err(fail("mapped after the teardown", va, ops));
            }
        }
        if m.tables_owned() as u64 != td.tables_kept
            || td.tables_freed_total + td.tables_kept != td.tables_allocated
        {
            return Err(fail("tables left after the teardown", 0, ops));
        }
        kept = td.tables_kept;
        stats = m.stats();
        let _ = m.into_source();
    }
    f.free_after = mb.free_bytes();
    f.faults_caught = probes_caught() - caught0;
    if f.faults_caught != expected_faults {
        return Err(fail("faults caught differ from faults expected", 0, ops));
    }
    let hc1 = pvmmu::Report::hypercalls(p.mmu().raw()).unwrap_or((0, 0));
    f.hypercalls = hc1.0 - hc0.0;
    f.hypercall_entries = hc1.1 - hc0.1;
    f.tables_allocated = stats.tables_allocated;
    f.tables_freed = stats.tables_freed;
    f.tables_kept = kept;
    f.flushes = stats.flushes;
    f.full_flushes = stats.full_flushes;
    f.pages_invalidated = stats.pages_invalidated;
    f.entries_written = stats.entries_written;
    // SAFETY: the pools were allocated above and nothing maps them any more (the teardown);
    // the model's frames were allocated above, and `small` is not used past this point.
    unsafe {
        mb.unreserve(model_pa, model_pa + model_bytes.next_multiple_of(4096))
            .map_err(Failure::Memblock)?;
        mb.unreserve(small_pool, small_pool + pool_frames * 4096)
            .map_err(Failure::Memblock)?;
        if large {
            mb.unreserve(large_pool, large_pool + LARGE_FRAMES * M2)
                .map_err(Failure::Memblock)?;
        }
    }
    let per_k = |n: u64| n * 1000 / ops.max(1);
    defmt::info!(
        "runtime_map: {=u64} ops, {=u64} tables allocated, {=u64} freed; per 1,000 ops: {=u64} hypercalls, {=u64} flushes",
        ops,
        f.tables_allocated,
        f.tables_freed,
        per_k(f.hypercalls),
        per_k(f.flushes)
    );
    defmt::info!("RESULT runtime_map {}", f);
    Ok(f)
}
