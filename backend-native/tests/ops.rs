//! Every operation of the native backend on the host, one by one, judged by reading the
//! simulated memory directly (and with a walker of this file's own, not hal-core's): partial
//! writes, hook, `map_leaves`, unhook, retire (and its refusals), pin/unpin, the TLB flushes a
//! fake CPU counts, `protect`/`release` as no-ops, and a direct map built into a live root.
//!
//! `Mmu::settle` does not appear: it takes an `Unsettled`, which only a failed `protect`,
//! `release` or `retire` makes, and none of them can fail on this backend (no stores, and a
//! flush that always succeeds); hal-core's own tests settle through a failing backend.

use std::cell::Cell;
use std::rc::Rc;

use backend_native::{Cpu, Native, NativeError, Window};
use hal_core::backend::EntryRun;
use hal_core::direct_map::{self, DirectMapSpec, Target};
use hal_core::memblock::{Direction, Memblock};
use hal_core::table::EntryError;
use hal_core::BackendError;
use hal_core::{
    ErrorKind, Frame, LiveRoot, Mmu, PageSizes, PageTableFlags, Pfn, PfnRange, PgtBuf, PgtReserved,
    PinnedRO, Pte, RawMmu, RetireError, TableBuilder, TableLevel, WriteError,
};
use typenum::{U1, U2, U3};

/// Frames of simulated memory (pfn 0..FRAMES), all reachable through one window.
const FRAMES: u64 = 96;
const P: u64 = 1;
const RW: u64 = 2;
const PS: u64 = 1 << 7;
const ADDR: u64 = 0x000f_ffff_ffff_f000;

/// The CPU's CR3 and its TLB flushes, shared with the test so that it can look (and, for one
/// test, point CR3 somewhere the backend did not put it).
#[derive(Clone)]
struct FakeCpu {
    root: Rc<Cell<u64>>,
    flushes: Rc<Cell<u32>>,
}

// SAFETY: no processor walks the simulated tables; `root` is the simulated CR3, which
// `set_root` sets (one test moves it behind the backend's back, as another agent could).
unsafe impl Cpu for FakeCpu {
    fn root(&self) -> Pfn {
        Pfn::new(self.root.get()).unwrap()
    }
    unsafe fn set_root(&mut self, root: Pfn) {
        self.root.set(root.as_u64());
    }
    fn flush_tlb(&mut self) {
        self.flushes.set(self.flushes.get() + 1);
    }
    // A single-page invalidation is no full flush: not counted here.
    fn invalidate_page(&mut self, _va: u64) {}
}

struct Rig {
    /// The simulated frames (boxed: the window's address must not move).
    mem: Box<[[u64; 512]]>,
    cpu: FakeCpu,
    mmu: Mmu<Native<FakeCpu>>,
    live: LiveRoot,
    mb: Memblock<16>,
}

impl Rig {
    /// Frame 0 is the boot root; it maps "the kernel" (frame 1) through slot 0.
    fn new() -> Self {
        let mut mem = vec![[0u64; 512]; FRAMES as usize].into_boxed_slice();
        mem[0][0] = (1 << 12) | P | RW;
        let window = Window {
            va: mem.as_mut_ptr() as u64,
            pfns: PfnRange::new(Pfn::new(0).unwrap(), FRAMES).unwrap(),
        };
        let cpu = FakeCpu {
            root: Rc::new(Cell::new(0)),
            flushes: Rc::new(Cell::new(0)),
        };
        // SAFETY: the window is the boxed buffer `mem`, writable, alive as long as the rig.
        let mmu = Mmu::new(unsafe { Native::new(cpu.clone(), &[window]) }.unwrap());
        // SAFETY: the fake CPU's root is frame 0; nothing else claims the simulated frames.
        let live = unsafe { LiveRoot::adopt_boot_root(&mmu) };
        let mut mb = Memblock::new();
        // SAFETY: the simulated frames are this memblock's alone.
        unsafe { mb.add_memory(0, FRAMES * 4096) }.unwrap();
        mb.reserve(0, 2 * 4096).unwrap();
        Self {
            mem,
            cpu,
            mmu,
            live,
            mb,
        }
    }

    fn flushes(&self) -> u32 {
        self.cpu.flushes.get()
    }

    fn buf(&mut self, n: u64) -> PgtBuf {
        PgtBuf::new(
            &mut self.mmu,
            &mut self.mb,
            n,
            FRAMES * 4096,
            Direction::BottomUp,
        )
        .unwrap()
    }

    /// One free frame, as page-table-ready (native: nothing to do but the claim).
    fn reserved_frame(&mut self) -> Frame<PgtReserved> {
        let f = self
            .mb
            .alloc_frames(1, FRAMES * 4096, Direction::TopDown)
            .unwrap();
        let mut r = self.mmu.protect(f).unwrap();
        r.pop_front().unwrap()
    }

    /// A new root (the kernel's slot inherited), pinned and switched to.
    fn switch_to_new_root(&mut self) {
        let mut root = TableBuilder::new(self.reserved_frame());
        assert_eq!(
            self.mmu
                .inherit_root(&self.live, &mut root, (1, 512))
                .unwrap(),
            1
        );
        let root = self.mmu.new_table(root).unwrap();
        let root = self.mmu.pin(root).unwrap();
        // SAFETY: the fake CPU runs nothing.
        let _ = unsafe { self.mmu.switch_root(&mut self.live, root) }.unwrap();
    }

    fn row(&self, pfn: Pfn) -> &[u64; 512] {
        &self.mem[pfn.as_u64() as usize]
    }
}

/// This file's own walker over the simulated memory: the frame `va` reaches and the size of
/// the page, or `None`.
fn walk(mem: &[[u64; 512]], root: u64, va: u64) -> Option<(u64, u64)> {
    let mut table = root;
    for level in (1..=4u32).rev() {
        let shift = 12 + 9 * (level - 1);
        let e = mem[table as usize][((va >> shift) & 511) as usize];
        if e & P == 0 {
            return None;
        }
        let frame = (e & ADDR) >> 12;
        if level == 1 || e & PS != 0 {
            let size = 1u64 << shift;
            return Some((frame + ((va & (size - 1)) >> 12), size));
        }
        table = frame;
    }
    None
}

/// `(l4, l3, l2, l1)` slots as a canonical virtual address.
fn va(l4: u64, l3: u64, l2: u64, l1: u64) -> u64 {
    let a = (l4 << 39) | (l3 << 30) | (l2 << 21) | (l1 << 12);
    if l4 >= 256 {
        a | 0xffff_0000_0000_0000
    } else {
        a
    }
}

fn leaf(pfn: u64) -> Pte {
    Pte::new(
        Pfn::new(pfn).unwrap(),
        PageTableFlags::PRESENT | PageTableFlags::WRITABLE,
    )
}

#[test]
fn a_partial_write_stores_exactly_the_slots_given() {
    let mut r = Rig::new();
    let t = r.reserved_frame().pfn();
    let sentinel = 0xdead_0000u64; // not present: bit 0 clear
    r.mem[t.as_u64() as usize] = [sentinel; 512];
    let entries = [leaf(10), leaf(11), leaf(12)];
    // SAFETY: `t` is a frame of simulated memory that nothing else uses.
    unsafe { r.mmu.raw_mut().write(t, TableLevel::L1, 200, &entries) }.unwrap();
    let row = r.row(t);
    for (i, &e) in row.iter().enumerate() {
        let want = match i {
            200..=202 => (10 + i as u64 - 200) << 12 | P | RW,
            _ => sentinel,
        };
        assert_eq!(e, want, "slot {i}");
    }
    assert_eq!(r.mmu.raw().counters().entries_written, 3);
    // The last slot, and one past it.
    // SAFETY: as above.
    unsafe { r.mmu.raw_mut().write(t, TableLevel::L1, 511, &[leaf(13)]) }.unwrap();
    assert_eq!(r.row(t)[511], 13 << 12 | P | RW);
    let before = *r.row(t);
    // SAFETY: as above (refused before any store).
    let e = unsafe {
        r.mmu
            .raw_mut()
            .write(t, TableLevel::L1, 511, &[leaf(1), leaf(2)])
    };
    assert_eq!(e, Err(NativeError::BadIndex(511)));
    assert_eq!(e.unwrap_err().kind(), ErrorKind::OutOfRange);
    assert_eq!(*r.row(t), before, "a refused write stores nothing");
    assert_eq!(r.mmu.raw().counters().entries_written, 4);
    // Reads see the stores, slot by slot.
    for i in [0u16, 199, 200, 202, 203, 511] {
        // SAFETY: `t` is the test's table frame, in the rig's memory, which no reference
        // covers and nothing writes during the call.
        let e = unsafe { r.mmu.raw_mut().read(t, TableLevel::L1, i) }.unwrap();
        assert_eq!(e.bits(), r.row(t)[usize::from(i)], "slot {i}");
    }
    // SAFETY: as above (refused before any load).
    let e = unsafe { r.mmu.raw_mut().read(t, TableLevel::L1, 512) };
    assert_eq!(e, Err(NativeError::BadIndex(512)));
}

#[test]
fn a_fresh_table_over_dirty_memory_gets_every_slot_once() {
    let mut r = Rig::new();
    let t = r.reserved_frame().pfn();
    let dirty = |i: usize| 0xdead_beef_0000_0000 | (i as u64) << 3; // bit 0 clear: not present
    for (i, e) in r.mem[t.as_u64() as usize].iter_mut().enumerate() {
        *e = dirty(i);
    }
    let huge = PageTableFlags::PRESENT | PageTableFlags::WRITABLE | PageTableFlags::HUGE_PAGE;
    let run = |pfn: u64, step: u64, count: u16| EntryRun {
        first: Pte::new(Pfn::new(pfn).unwrap(), huge),
        step,
        count,
    };
    let raw = r.mmu.raw_mut();
    // SAFETY (each call): `t` is a frame of simulated memory nobody walks or uses.
    unsafe {
        // The empty slots before a run, the run, a single entry, a run of copies, the rest.
        raw.fill_fresh(t, TableLevel::L2, 0, &EntryRun::empty(100))
            .unwrap();
        raw.fill_fresh(t, TableLevel::L2, 100, &run(1 << 9, 512, 50))
            .unwrap();
        raw.fill_fresh(t, TableLevel::L2, 150, &EntryRun::empty(150))
            .unwrap();
        raw.fill_fresh(t, TableLevel::L2, 300, &run(7 << 9, 0, 3))
            .unwrap();
        raw.fill_fresh(t, TableLevel::L2, 303, &EntryRun::empty(209))
            .unwrap();
        assert_eq!(
            raw.fill_fresh(t, TableLevel::L2, 511, &EntryRun::empty(2)),
            Err(NativeError::BadIndex(511))
        );
    }
    for (i, &e) in r.row(t).iter().enumerate() {
        let want = match i {
            100..=149 => ((1 + i as u64 - 100) << 21) | huge.bits(),
            300..=302 => (7 << 21) | huge.bits(),
            _ => 0,
        };
        assert_eq!(e, want, "slot {i}");
    }
    assert_eq!(r.mmu.raw().counters().entries_written, 512);
}

#[test]
fn frames_outside_every_window_are_refused() {
    let mut r = Rig::new();
    let outside = Pfn::new(FRAMES).unwrap();
    // SAFETY: refused: no window maps the frame.
    let e = unsafe {
        r.mmu
            .raw_mut()
            .write(outside, TableLevel::L1, 0, &[leaf(1)])
    };
    assert_eq!(e, Err(NativeError::NotMapped(outside)));
    assert_eq!(e.unwrap_err().kind(), ErrorKind::NotMapped);
    // SAFETY: refused: no window maps the frame, so nothing is loaded.
    let e = unsafe { r.mmu.raw_mut().read(outside, TableLevel::L1, 0) };
    assert_eq!(e, Err(NativeError::NotMapped(outside)));
    // A second window makes it reachable.
    let mut extra = vec![[0u64; 512]; 1].into_boxed_slice();
    // SAFETY: `extra` is writable and outlives the backend's use of it in this test.
    unsafe {
        r.mmu.raw_mut().add_window(
            extra.as_mut_ptr() as u64,
            PfnRange::new(outside, FRAMES + 1).unwrap(),
        )
    }
    .unwrap();
    assert_eq!(r.mmu.raw().windows().len(), 2);
    // SAFETY: the frame is `extra`, used by nothing else.
    unsafe {
        r.mmu
            .raw_mut()
            .write(outside, TableLevel::L1, 7, &[leaf(3)])
    }
    .unwrap();
    assert_eq!(extra[0][7], 3 << 12 | P | RW);
    // Eight windows at most.
    for _ in 2..8 {
        // SAFETY: as above (the same memory again, never written through).
        unsafe {
            r.mmu.raw_mut().add_window(
                extra.as_mut_ptr() as u64,
                PfnRange::new(outside, FRAMES + 1).unwrap(),
            )
        }
        .unwrap();
    }
    // SAFETY: refused, nothing recorded.
    let e = unsafe {
        r.mmu.raw_mut().add_window(
            extra.as_mut_ptr() as u64,
            PfnRange::new(outside, FRAMES + 1).unwrap(),
        )
    };
    assert_eq!(e, Err(NativeError::TooManyWindows));
    assert_eq!(e.unwrap_err().kind(), ErrorKind::Capacity);
    drop(r);
}

#[test]
fn a_changed_present_entry_costs_exactly_one_tlb_flush() {
    let mut r = Rig::new();
    let t = r.reserved_frame().pfn();
    let write = |r: &mut Rig, first: u16, entries: &[Pte]| {
        // SAFETY: `t` is simulated memory nothing else uses.
        unsafe { r.mmu.raw_mut().write(t, TableLevel::L1, first, entries) }.unwrap();
    };
    write(&mut r, 0, &[leaf(5), leaf(6)]);
    r.mmu.raw_mut().flush().unwrap();
    assert_eq!(r.flushes(), 0, "empty slots filled: nothing stale");
    // The same values again: nothing changed.
    write(&mut r, 0, &[leaf(5), leaf(6)]);
    r.mmu.raw_mut().flush().unwrap();
    assert_eq!(r.flushes(), 0, "identical entries");
    // A present entry retargeted, and one cleared: one flush for both, at the next flush.
    write(&mut r, 0, &[leaf(7), Pte::EMPTY]);
    assert_eq!(r.flushes(), 0, "not before the flush");
    r.mmu.raw_mut().flush().unwrap();
    assert_eq!(r.flushes(), 1);
    assert_eq!(r.mmu.raw().counters().tlb_flushes, 1);
    r.mmu.raw_mut().flush().unwrap();
    assert_eq!(r.flushes(), 1, "nothing stale after a flush");
    // A not-present slot overwritten: nothing the TLB could hold.
    write(&mut r, 1, &[leaf(8)]);
    r.mmu.raw_mut().flush().unwrap();
    assert_eq!(r.flushes(), 1);
    // A switch flushes what is stale before loading the root, and loading it drops the rest.
    write(&mut r, 1, &[leaf(9)]);
    r.switch_to_new_root();
    assert_eq!(r.flushes(), 2);
    assert_eq!(r.mmu.raw().counters().root_switches, 1);
    assert_eq!(r.mmu.raw().counters().tlb_flushes, 2);
    r.mmu.raw_mut().flush().unwrap();
    assert_eq!(r.flushes(), 2);
}

#[test]
fn hook_map_leaves_and_unhook_on_the_live_root() {
    let mut r = Rig::new();
    r.switch_to_new_root();
    let root = r.live.pfn();
    let mut buf = r.buf(8);
    let l3 = r
        .mmu
        .new_table(TableBuilder::<U3>::new(buf.alloc().unwrap()))
        .unwrap();
    let l2 = r
        .mmu
        .new_table(TableBuilder::<U2>::new(buf.alloc().unwrap()))
        .unwrap();
    let l1 = r
        .mmu
        .new_table(TableBuilder::<U1>::new(buf.alloc().unwrap()))
        .unwrap();
    let (p3, p2, p1) = (l3.pfn(), l2.pfn(), l1.pfn());
    let flushes = r.flushes();

    let root_ref = r.live.table();
    r.mmu
        .hook(root_ref, 300, l3)
        .unwrap()
        .flush(&mut r.mmu)
        .unwrap();
    assert_eq!(r.row(root)[300] & (ADDR | P), p3.addr() | P);
    // SAFETY: the L3 was just hooked under the live root at slot 300.
    let t3 = r.mmu.child(r.live.table(), 300).unwrap().expect("hooked");
    assert_eq!(t3.pfn(), p3);
    r.mmu.hook(t3, 1, l2).unwrap().flush(&mut r.mmu).unwrap();
    let t3 = r.mmu.child(r.live.table(), 300).unwrap().unwrap();
    let t2 = r.mmu.child(t3, 1).unwrap().unwrap();
    r.mmu.hook(t2, 2, l1).unwrap().flush(&mut r.mmu).unwrap();
    assert_eq!(r.row(p3)[1] & (ADDR | P), p2.addr() | P);
    assert_eq!(r.row(p2)[2] & (ADDR | P), p1.addr() | P);
    assert_eq!(r.flushes(), flushes, "only empty slots were filled");

    // A taken slot: the child comes back, memory unchanged.
    let other = r
        .mmu
        .new_table(TableBuilder::<U3>::new(buf.alloc().unwrap()))
        .unwrap();
    let before = *r.row(root);
    let failed = r.mmu.hook(r.live.table(), 300, other).unwrap_err();
    assert!(matches!(
        failed.error,
        WriteError::Entry(EntryError::Occupied(300))
    ));
    assert_eq!(*r.row(root), before);
    let failed = r.mmu.hook(r.live.table(), 512, failed.value).unwrap_err();
    assert!(matches!(
        failed.error,
        WriteError::Entry(EntryError::IndexOutOfRange(512))
    ));
    let other = failed.value;

    // Leaves at slots 10..13 of the L1, mapping frames 40..43.
    let t3 = r.mmu.child(r.live.table(), 300).unwrap().unwrap();
    let t2 = r.mmu.child(t3, 1).unwrap().unwrap();
    let t1 = r.mmu.child(t2, 2).unwrap().unwrap();
    let leaves = [leaf(40), leaf(41), leaf(42)];
    // SAFETY: the pages are unused; the frames are simulated.
    unsafe { r.mmu.map_leaves(t1, 10, &leaves) }
        .unwrap()
        .flush(&mut r.mmu)
        .unwrap();
    for i in 0..512u64 {
        let v = va(300, 1, 2, i);
        let want = (10..13).contains(&i).then(|| (40 + i - 10, 4096));
        assert_eq!(walk(&r.mem, root.as_u64(), v), want, "slot {i}");
        let t = r.mmu.translate(r.live.table(), v).unwrap();
        assert_eq!(
            t.map(|t| t.pfn.as_u64()),
            want.map(|w| w.0),
            "hal-core's walker, {i}"
        );
    }
    // Refusals write nothing.
    let before = *r.row(p1);
    let t3 = r.mmu.child(r.live.table(), 300).unwrap().unwrap();
    let t2 = r.mmu.child(t3, 1).unwrap().unwrap();
    let t1 = r.mmu.child(t2, 2).unwrap().unwrap();
    // SAFETY (three refusals): nothing is written.
    let e = unsafe { r.mmu.map_leaves(t1, 9, &[leaf(50), leaf(51)]) }.unwrap_err();
    assert!(
        matches!(e, WriteError::Entry(EntryError::Occupied(10))),
        "{e:?}"
    );
    let huge = Pte::new(
        Pfn::new(0).unwrap(),
        PageTableFlags::PRESENT | PageTableFlags::HUGE_PAGE,
    );
    // SAFETY: refused before anything is written.
    let e = unsafe { r.mmu.map_leaves(t1, 20, &[leaf(50), huge]) }.unwrap_err();
    assert!(
        matches!(e, WriteError::Entry(EntryError::BadLeaf(21))),
        "{e:?}"
    );
    // SAFETY: refused before anything is written.
    let e = unsafe { r.mmu.map_leaves(t1, 511, &[leaf(50), leaf(51)]) }.unwrap_err();
    assert!(
        matches!(e, WriteError::Entry(EntryError::IndexOutOfRange(513))),
        "{e:?}"
    );
    assert_eq!(*r.row(p1), before);

    // Unhook the L1: its slot is empty, the walk ends there, and one TLB flush follows.
    let t3 = r.mmu.child(r.live.table(), 300).unwrap().unwrap();
    let t2 = r.mmu.child(t3, 1).unwrap().unwrap();
    let flushes = r.flushes();
    // SAFETY: the subtree is this test's; nothing uses its addresses.
    let (l1, pending) = unsafe { r.mmu.unhook(t2, 2) }.unwrap().expect("a table");
    pending.flush(&mut r.mmu).unwrap();
    assert_eq!(l1.pfn(), p1);
    assert_eq!(r.row(p2)[2], 0);
    assert_eq!(walk(&r.mem, root.as_u64(), va(300, 1, 2, 10)), None);
    assert_eq!(r.flushes(), flushes + 1, "the removed entry was present");
    // An empty slot: nothing to unhook, nothing written.
    let t3 = r.mmu.child(r.live.table(), 300).unwrap().unwrap();
    let t2 = r.mmu.child(t3, 1).unwrap().unwrap();
    // SAFETY: as above.
    assert!(unsafe { r.mmu.unhook(t2, 2) }.unwrap().is_none());
    // The L1 is memory again once retired (its leaves do not make it a parent).
    let before = *r.row(p1);
    let freed = r.mmu.retire(l1).unwrap();
    assert_eq!(freed.pfn(), p1);
    assert_eq!(*r.row(p1), before, "retire stores nothing");
    let _ = (other, buf);
}

#[test]
fn retire_refuses_the_current_root_and_tables_with_children() {
    let mut r = Rig::new();
    let mut buf = r.buf(4);
    let l2 = r
        .mmu
        .new_table(TableBuilder::<U2>::new(buf.alloc().unwrap()))
        .unwrap();
    let mut b3 = TableBuilder::<U3>::new(buf.alloc().unwrap());
    b3.adopt(7, l2).map_err(|(e, _)| e).unwrap();
    let l3 = r.mmu.new_table(b3).unwrap();
    let p3 = l3.pfn();
    let before = *r.row(p3);
    let flushes = r.flushes();
    let l3 = match r.mmu.retire(l3) {
        Err(RetireError::HasChild { index: 7, table }) => table,
        other => panic!("{other:?}"),
    };
    assert_eq!(*r.row(p3), before);
    assert_eq!(r.flushes(), flushes);

    // The CPU's root, whoever owns the frame: refused, nothing flushed.
    let l1 = r
        .mmu
        .new_table(TableBuilder::<U1>::new(buf.alloc().unwrap()))
        .unwrap();
    let p1 = l1.pfn();
    r.cpu.root.set(p1.as_u64());
    let l1 = match r.mmu.retire(l1) {
        Err(RetireError::CurrentRoot(t)) => t,
        other => panic!("{other:?}"),
    };
    assert_eq!(r.flushes(), flushes);
    r.cpu.root.set(0);
    // Not the root any more: retired. It was never hooked into a live tree and no entry
    // changed since the last flush, so no TLB can hold it: no flush is owed.
    let freed = r.mmu.retire(l1).unwrap();
    assert_eq!(freed.pfn(), p1);
    assert_eq!(r.flushes(), flushes);
    let _ = (l3, buf);
}

#[test]
fn pins_and_unpins_are_counted() {
    let mut r = Rig::new();
    let mut buf = r.buf(2);
    let t = r
        .mmu
        .new_table(TableBuilder::<U2>::new(buf.alloc().unwrap()))
        .unwrap();
    let pinned = r.mmu.pin(t).unwrap();
    assert_eq!(
        (r.mmu.raw().counters().pins, r.mmu.raw().counters().unpins),
        (1, 0)
    );
    let t: Frame<PinnedRO<U2>> = r.mmu.unpin(pinned).unwrap();
    assert_eq!(
        (r.mmu.raw().counters().pins, r.mmu.raw().counters().unpins),
        (1, 1)
    );
    let pinned = r.mmu.pin(t).unwrap();
    let _ = r.mmu.unpin(pinned).unwrap();
    assert_eq!(
        (r.mmu.raw().counters().pins, r.mmu.raw().counters().unpins),
        (2, 2)
    );
    let _ = buf;
}

#[test]
fn protect_and_release_change_no_memory() {
    let mut r = Rig::new();
    // Every frame filled with a pattern first.
    for (i, row) in r.mem.iter_mut().enumerate().skip(2) {
        for (j, e) in row.iter_mut().enumerate() {
            *e = ((i as u64) << 20) | ((j as u64) << 1);
        }
    }
    let snapshot = r.mem.clone();
    let frames =
        r.mb.alloc_frames(8, FRAMES * 4096, Direction::BottomUp)
            .unwrap();
    let reserved = r.mmu.protect(frames).unwrap();
    assert_eq!(reserved.len(), 8);
    let released = r.mmu.release(reserved).unwrap();
    assert_eq!(released.len(), 8);
    assert!(r.mem == snapshot, "protect and release store nothing");
    assert_eq!(r.flushes(), 0);
    assert_eq!(r.mmu.raw().counters(), Default::default());
    assert_eq!(r.mmu.raw().name(), "native");
    assert_eq!(r.mmu.raw().foreign_tables(), &[]);
    assert_eq!(
        r.mmu.machine_frame(Pfn::new(77).unwrap()).unwrap().0,
        77,
        "pfn is the machine frame"
    );
    let caps = r.mmu.caps();
    assert_eq!(caps.page_sizes, PageSizes::all());
    assert!(!caps.tables_read_only && !caps.nx);
    assert_eq!(caps.reserved_root_slots, (0, 0));
}

#[test]
fn a_direct_map_built_into_the_live_root_reuses_its_tables() {
    let mut r = Rig::new();
    r.switch_to_new_root();
    let root = r.live.pfn();
    let base = va(256, 0, 0, 0);
    // First 6 MiB + 8 KiB, into the live root.
    let first = [PfnRange::new(Pfn::new(0).unwrap(), 1538).unwrap()];
    let spec = DirectMapSpec {
        base,
        page_sizes: PageSizes::all(),
    };
    let flags = PageTableFlags::PRESENT | PageTableFlags::WRITABLE;
    let mut buf = r.buf(8);
    // SAFETY: the direct map's addresses are unused here; the frames are simulated.
    let built = unsafe {
        direct_map::build(
            &mut r.mmu,
            &mut buf,
            Target::Live(r.live.table()),
            &first,
            &[],
            &spec,
            flags,
        )
    }
    .unwrap();
    built.pending.flush(&mut r.mmu).unwrap();
    assert_eq!(built.pages, [2, 3, 0]);
    // L3, L2 and one L1 (for the last 8 KiB).
    assert_eq!(built.made.total(), 3);
    // Then the next 2 MiB into the same live root: the L3 and L2 are reused.
    let second = [PfnRange::new(Pfn::new(1538).unwrap(), 2048).unwrap()];
    // SAFETY: as above.
    let built2 = unsafe {
        direct_map::build(
            &mut r.mmu,
            &mut buf,
            Target::Live(r.live.table()),
            &second,
            &[],
            &spec,
            flags,
        )
    }
    .unwrap();
    built2.pending.flush(&mut r.mmu).unwrap();
    assert!(built2.reused >= 2, "reused {}", built2.reused);
    // Every page of the 8 MiB, against this file's walker and hal-core's.
    for pfn in 0..2048u64 {
        let v = base + pfn * 4096;
        let (frame, size) = walk(&r.mem, root.as_u64(), v).expect("mapped");
        assert_eq!(frame, pfn, "page {pfn}");
        let want_size = if pfn < 1536 { 2 << 20 } else { 4096 };
        assert_eq!(size, want_size, "page {pfn}");
        let t = r.mmu.translate(r.live.table(), v).unwrap().unwrap();
        assert_eq!(t.pfn.as_u64(), pfn);
    }
    assert_eq!(walk(&r.mem, root.as_u64(), base + 2048 * 4096), None);
    let _ = buf;
}

#[test]
fn errors_say_their_kind() {
    assert_eq!(NativeError::BadIndex(3).kind(), ErrorKind::OutOfRange);
    assert_eq!(NativeError::TooManyWindows.kind(), ErrorKind::Capacity);
    assert_eq!(
        NativeError::NotMapped(Pfn::new(1).unwrap()).kind(),
        ErrorKind::NotMapped
    );
}
