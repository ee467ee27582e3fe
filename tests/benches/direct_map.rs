//! The direct-map build on the host, side by side: pvmmu (the public API over
//! `backend_native::Native`), the `x86_64` crate's `OffsetPageTable::map_to` per page, and a
//! flat loop storing the same entries, each into its own simulated memory of the same size.
//!
//! `cargo bench -p pvmmu-tests --bench direct_map` prints, per mapping (1 GiB and 4 GiB, 4 KiB
//! pages only and large pages allowed; 16 GiB and 64 GiB with large pages): the median ns per 4 KiB
//! page mapped over interleaved runs, the ratios to x86_64 and to the flat loop, and the stack each
//! build used (painted stack, high-water mark). Before timing, the three trees are walked and
//! checked identical. Large-page builds also get the fastest run and the ns per build. With
//! `--callgrind` it also runs each build once under `valgrind --tool=callgrind` (collecting only
//! inside the build) and prints instructions per page, all and those outside `memset` (callgrind
//! counts a `rep stos` once per byte). A word that is not an option (`large`, `4 KiB`) keeps only
//! the mappings whose name contains it.

#[path = "support/callgrind.rs"]
mod callgrind;

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::time::Instant;

use backend_native::{Cpu, Native, Window};
use hal_core::direct_map::{self, plan::LINUX_PAGE_OFFSET, DirectMapSpec, Target};
use hal_core::memblock::{Direction, Memblock};
use hal_core::{FreshTable, Mmu, PageSizes, PageTableFlags, Pfn, PfnRange, PgtBuf};
use x86_64::structures::paging::{
    FrameAllocator, Mapper, OffsetPageTable, Page, PageTable, PhysFrame, Size1GiB, Size2MiB,
    Size4KiB,
};
use x86_64::{PhysAddr, VirtAddr};

const BASE: u64 = LINUX_PAGE_OFFSET;
const FLAGS: PageTableFlags = PageTableFlags::PRESENT.union(PageTableFlags::WRITABLE);
/// Frame 0 is the (unused) boot root; tables come from frame 1 on.
const FIRST_TABLE: u64 = 1;

#[derive(Clone, Copy)]
struct Case {
    name: &'static str,
    bytes: u64,
    large: bool,
}

const CASES: [Case; 6] = [
    Case {
        name: "1 GiB, 4 KiB pages",
        bytes: 1 << 30,
        large: false,
    },
    Case {
        name: "4 GiB, 4 KiB pages",
        bytes: 4 << 30,
        large: false,
    },
    Case {
        name: "1 GiB, large pages",
        bytes: 1 << 30,
        large: true,
    },
    Case {
        name: "4 GiB, large pages",
        bytes: 4 << 30,
        large: true,
    },
    // Where the build's fixed cost stops mattering: x86_64 walks from the root per page.
    Case {
        name: "16 GiB, large pages",
        bytes: 16 << 30,
        large: true,
    },
    Case {
        name: "64 GiB, large pages",
        bytes: 64 << 30,
        large: true,
    },
];

/// Simulated physical memory: `frames` page-aligned frames, frame `n` at `base + n * 4096`.
struct SimMem {
    base: *mut u64,
    frames: u64,
}

impl SimMem {
    fn new(frames: u64) -> Self {
        let layout = Self::layout(frames);
        // SAFETY: the layout has a non-zero size.
        let base = unsafe { alloc_zeroed(layout) }.cast::<u64>();
        assert!(!base.is_null(), "out of memory");
        Self { base, frames }
    }

    fn layout(frames: u64) -> Layout {
        Layout::from_size_align(frames as usize * 4096, 4096).expect("layout")
    }

    fn va(&self) -> u64 {
        self.base as u64
    }

    fn entry(&self, pfn: u64, i: usize) -> u64 {
        assert!(pfn < self.frames && i < 512);
        // SAFETY: inside the allocation (checked above).
        unsafe { self.base.add(pfn as usize * 512 + i).read() }
    }

    /// Fills every frame with a pattern, so that no builder profits from zeroed memory.
    fn dirty(&mut self) {
        for i in 0..self.frames as usize * 512 {
            // SAFETY: inside the allocation.
            unsafe { self.base.add(i).write(0xdead_beef_0000_0000 | i as u64) };
        }
    }
}

// SAFETY: the memory is owned by the value alone; the builders reach it through `&mut` or
// one thread at a time.
unsafe impl Send for SimMem {}
// SAFETY: as above: shared references only read, or are used by one thread at a time.
unsafe impl Sync for SimMem {}

impl Drop for SimMem {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with the same layout.
        unsafe { dealloc(self.base.cast(), Self::layout(self.frames)) };
    }
}

struct HostCpu;

// SAFETY: no processor walks the benchmark's tables, and nothing switches to them (it builds
// tables only): the root stays frame 0.
unsafe impl Cpu for HostCpu {
    fn root(&self) -> Pfn {
        Pfn::new(0).expect("frame 0")
    }
    unsafe fn set_root(&mut self, _root: Pfn) {}
    fn flush_tlb(&mut self) {}
    fn invalidate_page(&mut self, _va: u64) {}
}

fn spec(case: Case) -> DirectMapSpec {
    DirectMapSpec {
        base: BASE,
        page_sizes: if case.large {
            PageSizes::all()
        } else {
            PageSizes::SIZE_4K
        },
    }
}

fn ranges(case: Case) -> [PfnRange; 1] {
    [PfnRange::new(Pfn::new(0).expect("0"), case.bytes / 4096).expect("range")]
}

fn native(mem: &SimMem) -> Mmu<Native<HostCpu>> {
    let window = Window {
        va: mem.va(),
        pfns: PfnRange::new(Pfn::new(0).expect("0"), mem.frames).expect("range"),
    };
    // SAFETY: the window is `mem`, writable, alive while the backend is used.
    Mmu::new(unsafe { Native::new(HostCpu, &[window]) }.expect("one window"))
}

/// Tables below the root, as hal-core counts them.
fn tables(case: Case) -> u64 {
    let mem = SimMem::new(1);
    let mmu = native(&mem);
    direct_map::count_tables(&ranges(case), &[], &spec(case), &mmu.caps())
        .expect("plan")
        .total()
}

// ---- pvmmu ---------------------------------------------------------------------------------

struct PvmmuSetup {
    mmu: Mmu<Native<HostCpu>>,
    buf: PgtBuf,
}

fn pvmmu_setup(mem: &SimMem, case: Case) -> PvmmuSetup {
    let mut mmu = native(mem);
    let mut mb: Memblock<4> = Memblock::new();
    // SAFETY: the simulated frames are this memblock's alone.
    unsafe { mb.add_memory(0, mem.frames * 4096) }.expect("memory");
    mb.reserve(0, FIRST_TABLE * 4096).expect("boot root");
    let count = tables(case) + 1;
    let buf = PgtBuf::new(
        &mut mmu,
        &mut mb,
        count,
        mem.frames * 4096,
        Direction::BottomUp,
    )
    .expect("pgt_buf");
    assert_eq!(buf.start().as_u64(), FIRST_TABLE);
    PvmmuSetup { mmu, buf }
}

/// The build through the public API: a new root, the direct map under it, written. Returns
/// the root's frame.
#[inline(never)]
fn pvmmu_build(s: &mut PvmmuSetup, case: Case) -> u64 {
    let mut root = FreshTable::new(s.buf.alloc().expect("root"));
    // SAFETY: the direct map's virtual range is unused, the frames are numbers only.
    let built = unsafe {
        direct_map::build(
            &mut s.mmu,
            &mut s.buf,
            Target::Fresh(&mut root),
            &ranges(case),
            &[],
            &spec(case),
            FLAGS,
        )
    }
    .expect("build");
    built.pending.flush(&mut s.mmu).expect("flush");
    let root = s.mmu.finish_table(root).expect("root written");
    // The tree stays in the simulated memory; the frame handle is dropped (leaked).
    let _tree = root.pfn();
    _tree.as_u64()
}

// ---- x86_64 --------------------------------------------------------------------------------

struct Bump {
    next: u64,
    end: u64,
}

// SAFETY: hands out each frame of the simulated memory once, from `next` up.
unsafe impl FrameAllocator<Size4KiB> for Bump {
    fn allocate_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
        (self.next < self.end).then(|| {
            self.next += 1;
            PhysFrame::containing_address(PhysAddr::new((self.next - 1) * 4096))
        })
    }
}

/// `map_to` per page (the largest the alignment allows when large pages are on). Returns the
/// root's frame.
#[inline(never)]
fn x86_build(mem: &SimMem, case: Case) -> u64 {
    let root_pfn = FIRST_TABLE;
    let mut alloc = Bump {
        next: root_pfn + 1,
        end: mem.frames,
    };
    // SAFETY: frame `root_pfn` of `mem` is page-aligned and nobody else references it.
    let root = unsafe { &mut *(mem.va() as *mut PageTable).add(root_pfn as usize) };
    root.zero();
    // SAFETY: all simulated memory is at `mem.va()` + physical address; nothing else uses it.
    let mut pt = unsafe { OffsetPageTable::new(root, VirtAddr::new(mem.va())) };
    let mut pa = 0;
    while pa < case.bytes {
        let va = VirtAddr::new(BASE + pa);
        let left = case.bytes - pa;
        if case.large && pa % (1 << 30) == 0 && left >= 1 << 30 {
            let page = Page::<Size1GiB>::containing_address(va);
            let frame = PhysFrame::<Size1GiB>::containing_address(PhysAddr::new(pa));
            // SAFETY: the virtual range is unused, the frames are numbers only.
            unsafe { pt.map_to(page, frame, FLAGS, &mut alloc) }
                .expect("map")
                .ignore();
            pa += 1 << 30;
        } else if case.large && pa % (2 << 20) == 0 && left >= 2 << 20 {
            let page = Page::<Size2MiB>::containing_address(va);
            let frame = PhysFrame::<Size2MiB>::containing_address(PhysAddr::new(pa));
            // SAFETY: the virtual range is unused, the frames are numbers only.
            unsafe { pt.map_to(page, frame, FLAGS, &mut alloc) }
                .expect("map")
                .ignore();
            pa += 2 << 20;
        } else {
            let page = Page::<Size4KiB>::containing_address(va);
            let frame = PhysFrame::<Size4KiB>::containing_address(PhysAddr::new(pa));
            // SAFETY: the virtual range is unused, the frames are numbers only.
            unsafe { pt.map_to(page, frame, FLAGS, &mut alloc) }
                .expect("map")
                .ignore();
            pa += 4096;
        }
    }
    root_pfn
}

// ---- the flat loop -------------------------------------------------------------------------

/// The floor: every entry of every table stored once, in the order the tables are allocated,
/// with nothing checked. Handles whole GiBs from physical 0 (the cases here). Returns the
/// root's frame.
#[inline(never)]
fn flat_build(mem: &SimMem, case: Case) -> u64 {
    let t = |pfn: u64| -> *mut u64 {
        assert!(pfn < mem.frames);
        // SAFETY: inside the simulated memory (checked above).
        unsafe { (mem.va() as *mut u64).add(pfn as usize * 512) }
    };
    let table = |pfn: u64| (pfn << 12) | FLAGS.bits();
    let gibs = case.bytes >> 30;
    let root_pfn = FIRST_TABLE;
    let l3 = root_pfn + 1;
    let (root, l3t) = (t(root_pfn), t(l3));
    let slot = ((BASE >> 39) & 511) as usize;
    let first3 = ((BASE >> 30) & 511) as usize;
    // SAFETY (every store below): `t` checked the frame; indices are below 512.
    unsafe {
        for i in 0..512 {
            *root.add(i) = 0;
            *l3t.add(i) = 0;
        }
        *root.add(slot) = table(l3);
        if case.large {
            let huge = FLAGS.bits() | PageTableFlags::HUGE_PAGE.bits();
            for g in 0..gibs {
                *l3t.add(first3 + g as usize) = (g << 30) | huge;
            }
            return root_pfn;
        }
        let mut next = l3 + 1;
        let mut pa = 0u64;
        for g in 0..gibs as usize {
            let l2 = next;
            next += 1;
            *l3t.add(first3 + g) = table(l2);
            let l2t = t(l2);
            for m in 0..512 {
                let l1 = next;
                next += 1;
                *l2t.add(m) = table(l1);
                let l1t = t(l1);
                for e in 0..512 {
                    *l1t.add(e) = pa | FLAGS.bits();
                    pa += 4096;
                }
            }
        }
    }
    root_pfn
}

// ---- checks and measurement ----------------------------------------------------------------

/// Walks both trees and compares them: the same present entries with the same flags, the same
/// leaves; tables compared by their contents, not by frame number. Returns the leaves seen.
fn same_tree(a: &SimMem, ra: u64, b: &SimMem, rb: u64, level: u8) -> u64 {
    let mut leaves = 0;
    for i in 0..512 {
        let (x, y) = (a.entry(ra, i), b.entry(rb, i));
        let present = x & 1 != 0;
        assert_eq!(present, y & 1 != 0, "L{level} slot {i}: {x:#x} vs {y:#x}");
        if !present {
            assert_eq!(x, 0, "non-present entries are zero");
            assert_eq!(y, 0, "non-present entries are zero");
            continue;
        }
        let huge = x & PageTableFlags::HUGE_PAGE.bits() != 0;
        if level == 1 || huge {
            assert_eq!(x, y, "L{level} leaf {i}");
            leaves += 1;
        } else {
            let mask = 0x000f_ffff_ffff_f000;
            assert_eq!(x & !mask, y & !mask, "L{level} table flags {i}");
            leaves += same_tree(a, (x & mask) >> 12, b, (y & mask) >> 12, level - 1);
        }
    }
    leaves
}

/// Runs `f` on a thread whose stack below the current frame was painted first; returns `f`'s
/// result and the bytes of stack it touched below the current frame, plus the unpainted gap
/// `GAP` just below it (so an upper bound, to within `GAP`).
fn with_stack_depth<T: Send>(f: impl FnOnce() -> T + Send) -> (T, usize) {
    const PAINTED: usize = 256 * 1024;
    const PATTERN: u8 = 0xa5;
    const GAP: usize = 256;
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .stack_size(1 << 20)
            .spawn_scoped(s, move || {
                let here = 0u8;
                let top = core::ptr::addr_of!(here) as usize - GAP;
                let bottom = top - PAINTED;
                for a in bottom..top {
                    // SAFETY: the thread's 1 MiB stack is mapped and unused below the current
                    // frame (no signal handler runs on this thread); nothing lives there.
                    unsafe { (a as *mut u8).write_volatile(PATTERN) };
                }
                let out = std::hint::black_box(f());
                let low = (bottom..top)
                    // SAFETY: as above: mapped stack memory.
                    .find(|&a| unsafe { (a as *const u8).read_volatile() } != PATTERN)
                    .unwrap_or(top);
                (out, top - low + GAP)
            })
            .expect("thread")
            .join()
            .expect("build")
    })
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[v.len() / 2]
}

fn fastest(v: &[f64]) -> f64 {
    v.iter().copied().fold(f64::INFINITY, f64::min)
}

#[derive(Clone, Copy, PartialEq)]
enum Who {
    Pvmmu,
    X86,
    Flat,
}

const WHO: [Who; 3] = [Who::Pvmmu, Who::X86, Who::Flat];

fn frames_for(case: Case) -> u64 {
    FIRST_TABLE + tables(case) + 1 + 8
}

/// One build by `who` into `mem`, timed (setup excluded); the root's frame and the ns.
fn run(who: Who, mem: &mut SimMem, case: Case) -> (u64, f64) {
    match who {
        Who::Pvmmu => {
            let mut s = pvmmu_setup(mem, case);
            let t = Instant::now();
            let root = pvmmu_build(&mut s, case);
            let ns = t.elapsed().as_nanos() as f64;
            let _unfinished = s.buf;
            (root, ns)
        }
        Who::X86 => {
            let t = Instant::now();
            let root = x86_build(mem, case);
            (root, t.elapsed().as_nanos() as f64)
        }
        Who::Flat => {
            let t = Instant::now();
            let root = flat_build(mem, case);
            (root, t.elapsed().as_nanos() as f64)
        }
    }
}

fn stack_of(who: Who, case: Case) -> usize {
    let mut mem = SimMem::new(frames_for(case));
    mem.dirty();
    let mem = &mut mem;
    match who {
        Who::Pvmmu => {
            let mut s = pvmmu_setup(mem, case);
            let (_, depth) = with_stack_depth(|| pvmmu_build(&mut s, case));
            let _unfinished = s.buf;
            depth
        }
        Who::X86 => with_stack_depth(|| x86_build(mem, case)).1,
        Who::Flat => with_stack_depth(|| flat_build(mem, case)).1,
    }
}

/// Instructions executed inside `who`'s build function, counted by callgrind: all of them,
/// and those outside `memset` (whose `rep stos` callgrind counts once per byte stored).
fn callgrind(who: Who, case_index: usize) -> Option<(u64, u64)> {
    let func = match who {
        Who::Pvmmu => "*pvmmu_build*",
        Who::X86 => "*x86_build*",
        Who::Flat => "*flat_build*",
    };
    let (case, who) = (format!("{case_index}"), format!("{}", who as u8));
    let text = callgrind::run(func, &["--once", &case, &who])?;
    let total = callgrind::total(&text)?;
    Some((
        total,
        total.checked_sub(callgrind::self_cost(&text, "memset"))?,
    ))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--once") {
        // One build, for callgrind.
        let case = CASES[args[i + 1].parse::<usize>().expect("case")];
        let who = WHO[args[i + 2].parse::<usize>().expect("who")];
        let mut mem = SimMem::new(frames_for(case));
        let _ = run(who, &mut mem, case);
        return;
    }
    let with_callgrind = args.iter().any(|a| a == "--callgrind");
    // cargo bench passes `--bench`; any other word that is not an option filters the mappings.
    let filter: Vec<&str> = args[1..]
        .iter()
        .filter(|a| !a.starts_with("--"))
        .map(String::as_str)
        .collect();
    let rounds: usize = std::env::var("PVMMU_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    println!("direct-map build, host, release; median of {rounds} interleaved runs");
    println!();
    println!(
        "| mapping | pvmmu ns/page | x86_64 ns/page | flat ns/page | pvmmu / flat | x86_64 / pvmmu | stack pvmmu / x86_64 / flat |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut counts = Vec::new();
    for (ci, case) in CASES.into_iter().enumerate() {
        if !filter.is_empty() && !filter.iter().any(|f| case.name.contains(f)) {
            continue;
        }
        let pages = case.bytes / 4096;
        let frames = frames_for(case);
        let mut mems: Vec<SimMem> = WHO.iter().map(|_| SimMem::new(frames)).collect();
        for m in &mut mems {
            m.dirty();
        }
        // The trees, checked identical before anything is timed.
        let roots: Vec<u64> = WHO
            .iter()
            .zip(mems.iter_mut())
            .map(|(&w, m)| run(w, m, case).0)
            .collect();
        for k in 1..WHO.len() {
            let leaves = same_tree(&mems[0], roots[0], &mems[k], roots[k], 4);
            let expect = if case.large { case.bytes >> 30 } else { pages };
            assert_eq!(leaves, expect, "{}: leaves", case.name);
        }
        let mut ns: Vec<Vec<f64>> = vec![Vec::new(); WHO.len()];
        for _ in 0..rounds {
            for (k, &w) in WHO.iter().enumerate() {
                ns[k].push(run(w, &mut mems[k], case).1);
            }
        }
        let best: Vec<f64> = ns.iter().map(|v| fastest(v)).collect();
        let per_page: Vec<f64> = ns.iter_mut().map(|v| median(v) / pages as f64).collect();
        let stacks: Vec<usize> = WHO.iter().map(|&w| stack_of(w, case)).collect();
        let st = |b: usize| {
            if b <= 256 {
                "≤256".to_string()
            } else {
                b.to_string()
            }
        };
        println!(
            "| {} | {:.3} | {:.3} | {:.3} | {:.2} | {:.1} | {} / {} / {} B |",
            case.name,
            per_page[0],
            per_page[1],
            per_page[2],
            per_page[0] / per_page[2],
            per_page[1] / per_page[0],
            st(stacks[0]),
            st(stacks[1]),
            st(stacks[2]),
        );
        if case.large {
            let build: Vec<f64> = per_page.iter().map(|p| p * pages as f64).collect();
            println!(
                "|  (per build, median) | {:.0} ns | {:.0} ns | {:.0} ns | {:.2} | {:.2} | |",
                build[0],
                build[1],
                build[2],
                build[0] / build[2],
                build[1] / build[0],
            );
            println!(
                "|  (per build, fastest) | {:.0} ns | {:.0} ns | {:.0} ns | {:.2} | {:.2} | |",
                best[0],
                best[1],
                best[2],
                best[0] / best[2],
                best[1] / best[0],
            );
        }
        if with_callgrind {
            counts.push((case, WHO.map(|w| callgrind(w, ci))));
        }
    }
    if with_callgrind {
        println!();
        println!(
            "callgrind, instructions inside the build function: per 4 KiB page (4 KiB-only \
             mappings), per build (large pages)"
        );
        println!();
        println!(
            "| mapping | pvmmu | x86_64 | flat | pvmmu outside memset | x86_64 outside memset | flat outside memset |"
        );
        println!("|---|---|---|---|---|---|---|");
        for (case, c) in counts {
            let pages = if case.large {
                1.0
            } else {
                (case.bytes / 4096) as f64
            };
            let f = |x: Option<u64>| {
                x.map_or_else(|| "n/a".to_string(), |n| format!("{:.2}", n as f64 / pages))
            };
            println!(
                "| {} | {} | {} | {} | {} | {} | {} |",
                case.name,
                f(c[0].map(|c| c.0)),
                f(c[1].map(|c| c.0)),
                f(c[2].map(|c| c.0)),
                f(c[0].map(|c| c.1)),
                f(c[1].map(|c| c.1)),
                f(c[2].map(|c| c.1)),
            );
        }
    }
}
