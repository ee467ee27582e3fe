//! Mapping and unmapping 4 KiB pages on the host, side by side: x86_64's `OffsetPageTable`
//! (`map_to` / `unmap`, one call per page) and hal-core's `Mapper` over this backend (one call
//! per page, and one call for the whole range), both storing into the same kind of simulated
//! physical memory (a heap buffer; x86_64 through its physical-memory offset, ours through a
//! window). TLB flushes are ignored on both sides (there is no TLB to flush in a host process).
//!
//! `cargo bench -p backend-native --bench map`: prints ns per page for each, medians of 9
//! rounds, and the ratio.

use std::time::Instant;

use backend_native::{Cpu, Native, Window};
use hal_core::mapper::{EmptyTables, FrameSource, Mapper, PageSize};
use hal_core::{Frame, Free, LiveRoot, Mmu, PageTableFlags, Pfn, PfnRange};
use x86_64::structures::paging::{
    FrameAllocator, Mapper as _, OffsetPageTable, Page, PageTable, PhysFrame, Size4KiB,
};
use x86_64::{PhysAddr, VirtAddr};

const FRAMES: usize = 4096;
const PAGES: u64 = 64 * 512;
const VA: u64 = 0x0000_4000_0000_0000;
const DATA: u64 = 1 << 32;

struct HostCpu(Pfn);
impl Cpu for HostCpu {
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
    let flags = x86_64::structures::paging::PageTableFlags::PRESENT
        | x86_64::structures::paging::PageTableFlags::WRITABLE;
    let t = Instant::now();
    for i in 0..PAGES {
        let page = Page::<Size4KiB>::containing_address(VirtAddr::new(VA + i * 4096));
        let frame = PhysFrame::containing_address(PhysAddr::new(DATA + i * 4096));
        // SAFETY: simulated memory; the frames are never accessed.
        unsafe { pt.map_to(page, frame, flags, &mut alloc) }
            .unwrap()
            .ignore();
    }
    let map = t.elapsed().as_nanos() as f64 / PAGES as f64;
    let t = Instant::now();
    for i in 0..PAGES {
        let page = Page::<Size4KiB>::containing_address(VirtAddr::new(VA + i * 4096));
        pt.unmap(page).unwrap().1.ignore();
    }
    let unmap = t.elapsed().as_nanos() as f64 / PAGES as f64;
    std::hint::black_box(&mem);
    (map, unmap)
}

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
    let mut m: Mapper<_, 256> = Mapper::new(root, mmu.caps(), src, EmptyTables::Free);
    let t = Instant::now();
    if per_page {
        for i in 0..PAGES {
            // SAFETY: simulated memory; the frames are never accessed.
            unsafe {
                m.map(
                    &mut mmu,
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
    } else {
        // SAFETY: as above.
        unsafe {
            m.map(
                &mut mmu,
                root,
                VA,
                DATA,
                PAGES * 4096,
                PageTableFlags::WRITABLE,
                PageSize::Size4K,
            )
        }
        .unwrap()
        .defer();
    }
    m.flush(&mut mmu, hal_core::mapper::Flush::none()).unwrap();
    let map = t.elapsed().as_nanos() as f64 / PAGES as f64;
    let t = Instant::now();
    if per_page {
        for i in 0..PAGES {
            // SAFETY: the bench's own window.
            unsafe { m.unmap(&mut mmu, root, VA + i * 4096, 4096) }
                .unwrap()
                .defer();
        }
    } else {
        // SAFETY: as above.
        unsafe { m.unmap(&mut mmu, root, VA, PAGES * 4096) }
            .unwrap()
            .defer();
    }
    m.flush(&mut mmu, hal_core::mapper::Flush::none()).unwrap();
    let unmap = t.elapsed().as_nanos() as f64 / PAGES as f64;
    assert_eq!(m.stats().tables_allocated, m.stats().tables_freed);
    std::hint::black_box(&mem);
    (map, unmap)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let rounds = 9;
    let (mut xm, mut xu, mut pm, mut pu, mut rm, mut ru) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..rounds {
        let (a, b) = x86_64_round();
        xm.push(a);
        xu.push(b);
        let (a, b) = mapper_round(true);
        pm.push(a);
        pu.push(b);
        let (a, b) = mapper_round(false);
        rm.push(a);
        ru.push(b);
    }
    let (xm, xu, pm, pu, rm, ru) = (
        median(xm),
        median(xu),
        median(pm),
        median(pu),
        median(rm),
        median(ru),
    );
    println!("{PAGES} pages of 4 KiB, median of {rounds} interleaved rounds, ns per page:");
    println!("  x86_64 OffsetPageTable  map_to {xm:7.2}  unmap {xu:7.2}");
    println!("  hal-core Mapper, per page  map {pm:7.2}  unmap {pu:7.2}   ({:.2}x, {:.2}x of x86_64's time)", pm / xm, pu / xu);
    println!("  hal-core Mapper, one range map {rm:7.2}  unmap {ru:7.2}   ({:.2}x, {:.2}x of x86_64's time)", rm / xm, ru / xu);
}
