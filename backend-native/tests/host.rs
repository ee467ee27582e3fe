//! The native backend's logic on the host: table frames are simulated memory reached through
//! a window, CR3 is a variable. The whole pgt_buf lifecycle runs through it.

use backend_native::{Cpu, Native, Window};
use hal_core::direct_map::{self, plan::LINUX_PAGE_OFFSET, DirectMapSpec, Target};
use hal_core::memblock::{Direction, Memblock};
use hal_core::{
    LiveRoot, Mmu, PageSizes, PageTableFlags, Pfn, PfnRange, PgtBuf, TableBuilder, TableLevel,
};

/// Frames of simulated memory backing the window (pfn 0..FRAMES).
const FRAMES: u64 = 64;

struct FakeCpu {
    root: Pfn,
    flushes: u32,
}

// SAFETY: no processor walks the simulated tables; `root` is what `set_root` set.
unsafe impl Cpu for FakeCpu {
    fn root(&self) -> Pfn {
        self.root
    }
    unsafe fn set_root(&mut self, root: Pfn) {
        self.root = root;
    }
    fn flush_tlb(&mut self) {
        self.flushes += 1;
    }
    fn invalidate_page(&mut self, _va: u64) {}
}

fn setup(mem: &mut [[u64; 512]]) -> Mmu<Native<FakeCpu>> {
    let window = Window {
        va: mem.as_mut_ptr() as u64,
        pfns: PfnRange::new(Pfn::new(0).unwrap(), FRAMES).unwrap(),
    };
    let cpu = FakeCpu {
        root: Pfn::new(0).unwrap(),
        flushes: 0,
    };
    // SAFETY: the window is the heap buffer `mem`, writable, alive for the whole test.
    Mmu::new(unsafe { Native::new(cpu, &[window]) }.unwrap())
}

fn build_at(mem_bytes: u64, sizes: PageSizes) -> (u64, u64, [u64; 3]) {
    let mut mem = vec![[0u64; 512]; FRAMES as usize];
    // The boot root (frame 0) maps "the kernel" through slot 0.
    mem[0][0] = (1 << 12) | 3;
    let mut mmu = setup(&mut mem);
    // SAFETY: the fake CPU's root is frame 0 and nothing else claims the simulated frames.
    let mut live = unsafe { LiveRoot::adopt_boot_root(&mmu) };
    let mut mb: Memblock<16> = Memblock::new();
    // SAFETY: the simulated frames are this memblock's alone.
    unsafe { mb.add_memory(0, FRAMES * 4096) }.unwrap();
    mb.reserve(0, 2 * 4096).unwrap();
    let ranges = [PfnRange::new(Pfn::new(0).unwrap(), mem_bytes / 4096).unwrap()];
    let spec = DirectMapSpec {
        base: LINUX_PAGE_OFFSET,
        page_sizes: sizes,
    };
    let count = direct_map::count_tables(&ranges, &[], &spec, &mmu.caps()).unwrap();
    let mut buf = PgtBuf::new(
        &mut mmu,
        &mut mb,
        count.total() + 1 + 4,
        FRAMES * 4096,
        Direction::BottomUp,
    )
    .unwrap();
    let mut root = TableBuilder::new(buf.alloc().unwrap());
    assert_eq!(mmu.inherit_root(&live, &mut root, (256, 512)).unwrap(), 1);
    // SAFETY: the direct map's virtual range is unused in this test, the frames are not real.
    let built = unsafe {
        direct_map::build(
            &mut mmu,
            &mut buf,
            Target::New(&mut root),
            &ranges,
            &[],
            &spec,
            PageTableFlags::PRESENT | PageTableFlags::WRITABLE,
        )
    }
    .unwrap();
    built.pending.flush(&mut mmu).unwrap();
    let root = mmu.new_table(root).unwrap();
    let root = mmu.pin(root).unwrap();
    // SAFETY: the fake CPU runs nothing.
    let previous = unsafe { mmu.switch_root(&mut live, root) }.unwrap();
    assert!(matches!(previous, hal_core::PreviousRoot::Boot(p) if p.as_u64() == 0));
    let root = &live;
    assert_eq!(buf.used(), count.total() + 1);
    let fin = buf.finish(&mut mmu, &mut mb).unwrap();
    assert_eq!(fin.released.len(), 4);
    // Every 64th page translates to its own frame.
    for pfn in (0..mem_bytes / 4096).step_by(64) {
        let t = mmu
            .translate(root.table(), LINUX_PAGE_OFFSET + pfn * 4096)
            .unwrap()
            .expect("mapped");
        assert_eq!(t.pfn.as_u64(), pfn);
        assert!(t.leaf.flags().contains(PageTableFlags::WRITABLE));
    }
    // The kernel's slot came along.
    let k = mmu.translate(root.table(), 0).unwrap();
    assert!(k.is_none() || k.unwrap().level != TableLevel::L4);
    assert!(mem[root.pfn().as_u64() as usize][0] == (1 << 12) | 3);
    (
        count.total(),
        mmu.raw().counters().entries_written,
        built.pages,
    )
}

#[test]
fn large_pages_where_alignment_allows() {
    // 3 GiB + 6 MiB + 12 KiB: 3 × 1 GiB, 3 × 2 MiB, 3 × 4 KiB.
    let bytes = (3 << 30) + (6 << 20) + (12 << 10);
    let (tables, _, pages) = build_at(bytes, PageSizes::all());
    assert_eq!(pages, [3, 3, 3]);
    // L3 + L2 (4th GiB) + L1 (the last 2 MiB).
    assert_eq!(tables, 3);
}

#[test]
fn four_k_only() {
    let (tables, written, pages) = build_at(8 << 20, PageSizes::SIZE_4K);
    assert_eq!(pages, [2048, 0, 0]);
    assert_eq!(tables, 4 + 1 + 1);
    // Every new table is written once, whole: 6 tables + the root.
    assert_eq!(written, 7 * 512);
}
