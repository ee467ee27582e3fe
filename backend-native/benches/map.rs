//! Mapping and unmapping 4 KiB pages on the host, side by side: x86_64's `OffsetPageTable`
//! (`map_to` / `unmap`, one call per page) and hal-core's `Mapper` over this backend (one call
//! per page, and one call for the whole range), both storing into the same kind of simulated
//! physical memory (a heap buffer; x86_64 through its physical-memory offset, ours through a
//! window). TLB flushes are ignored on both sides (there is no TLB to flush in a host process).
//!
//! `cargo bench -p backend-native --bench map [-- x86_64|page|range ...] [--callgrind]`: prints
//! ns per page for each variant (all by default), medians of interleaved rounds
//! (`PVMMU_BENCH_ROUNDS`, default 9), and x86_64's time over the mapper's (above 1: the mapper
//! is faster). With `--callgrind` it also runs one round of each variant under
//! `valgrind --tool=callgrind` per phase, counting the instructions inside that phase's
//! function only (exact, unlike the timings).

#[path = "../../tests/benches/support/callgrind.rs"]
mod callgrind;

use std::time::Instant;

use backend_native::{Cpu, Native, Window};
use hal_core::mapper::{EmptyTables, Flush, FrameSource, Mapper, PageSize};
use hal_core::{Frame, Free, LiveRoot, Mmu, PageTableFlags, Pfn, PfnRange, TableRef};
use typenum::U4;
use x86_64::structures::paging::{
    FrameAllocator, Mapper as _, OffsetPageTable, Page, PageTable, PhysFrame, Size4KiB,
};
use x86_64::{PhysAddr, VirtAddr};

const FRAMES: usize = 4096;
const PAGES: u64 = 64 * 512;
const VA: u64 = 0x0000_4000_0000_0000;
const DATA: u64 = 1 << 32;

struct HostCpu(Pfn);
// SAFETY: no processor walks the benchmark's tables; `root` is what `set_root` set.
unsafe impl Cpu for HostCpu {
    fn root(&self) -> Pfn {
        self.0
    }
    unsafe fn set_root(&mut self, root: Pfn) {
        self.0 = root;
    }
    fn flush_tlb(&mut self) {}
    fn invalidate_page(&mut self, _va: u64) {}
}

/// Frames 1.. of the buffer, in order, and back.
struct Bump {
    next: u64,
    free: Vec<u64>,
}
impl FrameSource for Bump {
    fn alloc(&mut self) -> Option<Frame<Free>> {
        let p = self.free.pop().unwrap_or_else(|| {
            self.next += 1;
            self.next
        });
        // SAFETY: the frames of the bench's buffer are handed out once each.
        Some(unsafe { Frame::from_pfn_unchecked(Pfn::new(p)?) })
    }
    fn give_back(&mut self, frame: Frame<Free>) -> Result<(), Frame<Free>> {
        self.free.push(frame.pfn().as_u64());
        Ok(())
    }
}
// SAFETY: the same frames, for x86_64's mapper.
unsafe impl FrameAllocator<Size4KiB> for Bump {
    fn allocate_frame(&mut self) -> Option<PhysFrame> {
        let p = self.free.pop().unwrap_or_else(|| {
            self.next += 1;
            self.next
        });
        Some(PhysFrame::containing_address(PhysAddr::new(p * 4096)))
    }
}

fn buffer() -> Vec<[u64; 512]> {
    vec![[0u64; 512]; FRAMES]
}

/// ns per page: (map, unmap) with x86_64's OffsetPageTable.
fn x86_64_round() -> (f64, f64) {
    let mut mem = buffer();
    let base = mem.as_mut_ptr() as u64;
    // SAFETY: frame 0 of the buffer is the root; the buffer stands for physical memory at
    // offset `base`, alive for the whole round.
    let mut pt =
        unsafe { OffsetPageTable::new(&mut *(base as *mut PageTable), VirtAddr::new(base)) };
    let mut alloc = Bump {
        next: 0,
        free: Vec::new(),
    };
    let t = Instant::now();
    x86_map(&mut pt, &mut alloc);
    let map = t.elapsed().as_nanos() as f64 / PAGES as f64;
    let t = Instant::now();
    x86_unmap(&mut pt);
    let unmap = t.elapsed().as_nanos() as f64 / PAGES as f64;
    std::hint::black_box(&mem);
    (map, unmap)
}

#[inline(never)]
fn x86_map(pt: &mut OffsetPageTable<'_>, alloc: &mut Bump) {
    let flags = x86_64::structures::paging::PageTableFlags::PRESENT
        | x86_64::structures::paging::PageTableFlags::WRITABLE;
    for i in 0..PAGES {
        let page = Page::<Size4KiB>::containing_address(VirtAddr::new(VA + i * 4096));
        let frame = PhysFrame::containing_address(PhysAddr::new(DATA + i * 4096));
        // SAFETY: simulated memory; the frames are never accessed.
        unsafe { pt.map_to(page, frame, flags, alloc) }
            .unwrap()
            .ignore();
    }
}

#[inline(never)]
fn x86_unmap(pt: &mut OffsetPageTable<'_>) {
    for i in 0..PAGES {
        let page = Page::<Size4KiB>::containing_address(VirtAddr::new(VA + i * 4096));
        pt.unmap(page).unwrap().1.ignore();
    }
}

type Bench = Mapper<Bump, 256>;
type HostMmu = Mmu<Native<HostCpu>>;

/// ns per page: (map, unmap) with hal-core's Mapper, per page or as one range.
fn mapper_round(per_page: bool) -> (f64, f64) {
    let mut mem = buffer();
    let window = Window {
        va: mem.as_mut_ptr() as u64,
        pfns: PfnRange::new(Pfn::new(0).unwrap(), FRAMES as u64).unwrap(),
    };
    // SAFETY: the window is the heap buffer, writable and alive for the round.
    let mut mmu =
        Mmu::new(unsafe { Native::new(HostCpu(Pfn::new(0).unwrap()), &[window]) }.unwrap());
    // SAFETY: one address space, one handle.
    let live = unsafe { LiveRoot::adopt_boot_root(&mmu) };
    let root = live.table();
    let src = Bump {
        next: 0,
        free: Vec::new(),
    };
    let mut m: Bench = Mapper::new(root, mmu.caps(), src, EmptyTables::Free);
    let t = Instant::now();
    if per_page {
        pv_map_pages(&mut m, &mut mmu, root);
    } else {
        pv_map_range(&mut m, &mut mmu, root);
    }
    let map = t.elapsed().as_nanos() as f64 / PAGES as f64;
    let t = Instant::now();
    if per_page {
        pv_unmap_pages(&mut m, &mut mmu, root);
    } else {
        pv_unmap_range(&mut m, &mut mmu, root);
    }
    let unmap = t.elapsed().as_nanos() as f64 / PAGES as f64;
    // Every table freed but the level-3 one in its root slot, which stays.
    assert_eq!(m.stats().tables_allocated, m.stats().tables_freed + 1);
    std::hint::black_box(&mem);
    (map, unmap)
}

#[inline(never)]
fn pv_map_pages(m: &mut Bench, mmu: &mut HostMmu, root: TableRef<'_, U4>) {
    for i in 0..PAGES {
        // SAFETY: simulated memory; the frames are never accessed.
        unsafe {
            m.map(
                mmu,
                root,
                VA + i * 4096,
                DATA + i * 4096,
                4096,
                PageTableFlags::WRITABLE,
                PageSize::Size4K,
            )
        }
        .unwrap()
        .defer();
    }
    m.flush(mmu, Flush::none()).unwrap();
}

#[inline(never)]
fn pv_map_range(m: &mut Bench, mmu: &mut HostMmu, root: TableRef<'_, U4>) {
    // SAFETY: simulated memory; the frames are never accessed.
    let f = unsafe {
        m.map(
            mmu,
            root,
            VA,
            DATA,
            PAGES * 4096,
            PageTableFlags::WRITABLE,
            PageSize::Size4K,
        )
    }
    .unwrap();
    m.flush(mmu, f).unwrap();
}

#[inline(never)]
fn pv_unmap_pages(m: &mut Bench, mmu: &mut HostMmu, root: TableRef<'_, U4>) {
    for i in 0..PAGES {
        // SAFETY: the bench's own window.
        unsafe { m.unmap(mmu, root, VA + i * 4096, 4096) }
            .unwrap()
            .defer();
    }
    m.flush(mmu, Flush::none()).unwrap();
}

#[inline(never)]
fn pv_unmap_range(m: &mut Bench, mmu: &mut HostMmu, root: TableRef<'_, U4>) {
    // SAFETY: the bench's own window.
    let f = unsafe { m.unmap(mmu, root, VA, PAGES * 4096) }.unwrap();
    m.flush(mmu, f).unwrap();
}

/// Instructions per page executed inside `func` (a phase function above) in one round of
/// `variant`, counted by callgrind.
fn callgrind(variant: &str, func: &str) -> Option<f64> {
    let text = callgrind::run(&format!("*{func}*"), &["--once", variant])?;
    callgrind::total(&text).map(|n| n as f64 / PAGES as f64)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--once") {
        // One round of one variant, for callgrind.
        match args.get(i + 1).map(String::as_str) {
            Some("x86_64") => drop(x86_64_round()),
            Some("page") => drop(mapper_round(true)),
            Some("range") => drop(mapper_round(false)),
            other => panic!("--once x86_64|page|range, not {other:?}"),
        }
        return;
    }
    // `cargo bench -p backend-native --bench map [-- x86_64|page|range ...]`: the variants to
    // run (all by default; one alone for a profiler). `PVMMU_BENCH_ROUNDS` rounds (default 9).
    let names: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let on = |n: &str| names.is_empty() || names.iter().any(|a| a == n);
    let rounds: usize = std::env::var("PVMMU_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&r| r > 0)
        .unwrap_or(9);
    let (mut xm, mut xu, mut pm, mut pu, mut rm, mut ru) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..rounds {
        if on("x86_64") {
            let (a, b) = x86_64_round();
            xm.push(a);
            xu.push(b);
        }
        if on("page") {
            let (a, b) = mapper_round(true);
            pm.push(a);
            pu.push(b);
        }
        if on("range") {
            let (a, b) = mapper_round(false);
            rm.push(a);
            ru.push(b);
        }
    }
    println!("{PAGES} pages of 4 KiB, median of {rounds} interleaved rounds, ns per page:");
    let (xm, xu) = (median(xm), median(xu));
    if on("x86_64") {
        println!("  x86_64 OffsetPageTable      map_to {xm:7.2}  unmap {xu:7.2}");
    }
    for (name, m, u) in [("page", pm, pu), ("range", rm, ru)] {
        if !on(name) {
            continue;
        }
        let (m, u) = (median(m), median(u));
        let what = if name == "page" {
            "per page "
        } else {
            "one range"
        };
        print!("  hal-core Mapper, {what}  map {m:7.2}  unmap {u:7.2}");
        if on("x86_64") {
            print!(
                "   (x86_64 / Mapper: map {:.2}, unmap {:.2})",
                xm / m,
                xu / u
            );
        }
        println!();
    }
    if args.iter().any(|a| a == "--callgrind") {
        println!("callgrind, instructions per page inside the phase function:");
        for (variant, map, unmap) in [
            ("x86_64", "x86_map", "x86_unmap"),
            ("page", "pv_map_pages", "pv_unmap_pages"),
            ("range", "pv_map_range", "pv_unmap_range"),
        ] {
            if !on(variant) {
                continue;
            }
            let show = |v: Option<f64>| v.map_or("failed".to_string(), |n| format!("{n:.2}"));
            println!(
                "  {variant:7} map {:>8}  unmap {:>8}",
                show(callgrind(variant, map)),
                show(callgrind(variant, unmap))
            );
        }
    }
}
