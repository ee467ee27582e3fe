//! Bad input: every refusal is a typed error, and the refused operation changed nothing.

mod common;

use common::sim::{caps, Op};
use common::World;
use hal_core::direct_map::plan::LINUX_PAGE_OFFSET;
use hal_core::direct_map::{self, count_tables, BuildError, DirectMapSpec, PlanError, Target};
use hal_core::memblock::{Direction, MapError, Memblock, MemblockError, Region};
use hal_core::memmap::{MemRegion, RegionKind};
use hal_core::pgt_buf::Exhausted;
use hal_core::{
    Caps, FrameRange, Free, PageSizes, PageTableFlags, Pfn, PfnRange, PgtBuf, TableBuilder,
};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

fn ram(start: u64, len: u64) -> MemRegion {
    MemRegion {
        start,
        len,
        kind: RegionKind::Ram,
    }
}

fn reserved(start: u64, len: u64) -> MemRegion {
    MemRegion {
        start,
        len,
        kind: RegionKind::Reserved,
    }
}

type Snapshot = (Vec<Region>, Vec<Region>);

fn snap<const N: usize>(mb: &Memblock<N>) -> Snapshot {
    (mb.memory().to_vec(), mb.reserved().to_vec())
}

/// `Memblock::from_firmware` over maps that describe no real memory.
fn fw<const N: usize>(
    map: &[MemRegion],
) -> Result<(Memblock<N>, hal_core::memblock::MapReport), MapError> {
    // SAFETY: the maps are test data; the memblocks hand out frames nobody dereferences.
    unsafe { Memblock::<N>::from_firmware(map) }
}

/// `Memblock::add_memory` of test memory.
fn add<const N: usize>(mb: &mut Memblock<N>, start: u64, end: u64) -> Result<(), MemblockError> {
    // SAFETY: as `fw`.
    unsafe { mb.add_memory(start, end) }
}

fn pfns(start: u64, end: u64) -> PfnRange {
    PfnRange::new(Pfn::new(start).unwrap(), end).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Firmware maps

#[test]
fn firmware_map_overlapping() {
    let map = [ram(0, 0x10000), ram(0x8000, 0x10000)];
    assert_eq!(fw::<8>(&map).unwrap_err(), MapError::Overlap { index: 1 });
    // Overlap with a non-RAM entry counts too.
    let map = [ram(0, 0x10000), reserved(0xf000, 0x2000)];
    assert_eq!(fw::<8>(&map).unwrap_err(), MapError::Overlap { index: 1 });
}

#[test]
fn firmware_map_unsorted() {
    let map = [ram(0x100000, 0x1000), ram(0, 0x1000)];
    assert_eq!(fw::<8>(&map).unwrap_err(), MapError::Unsorted { index: 1 });
}

#[test]
fn firmware_map_zero_length() {
    let map = [ram(0, 0x1000), reserved(0x1000, 0), ram(0x2000, 0x1000)];
    assert_eq!(
        fw::<8>(&map).unwrap_err(),
        MapError::ZeroLength { index: 1 }
    );
}

#[test]
fn firmware_map_overflowing() {
    let map = [ram(0, 0x1000), ram(u64::MAX - 0xfff, 0x2000)];
    assert_eq!(fw::<8>(&map).unwrap_err(), MapError::Overflow { index: 1 });
}

#[test]
fn firmware_map_too_many_regions() {
    // Nine RAM entries with holes between them; room for eight.
    let map: Vec<MemRegion> = (0..9).map(|i| ram(i * 0x10_0000, 0x1000)).collect();
    assert_eq!(fw::<8>(&map).unwrap_err(), MapError::TooMany { index: 8 });
    // Adjacent RAM entries merge: nine of them fit in one region.
    let map: Vec<MemRegion> = (0..9).map(|i| ram(i * 0x1000, 0x1000)).collect();
    let (mb, report) = fw::<1>(&map).unwrap();
    assert_eq!(mb.memory().len(), 1);
    assert_eq!(report.ram_entries, 9);
}

#[test]
fn firmware_map_without_ram() {
    let map = [reserved(0, 0x10000), reserved(0x20000, 0x1000)];
    assert_eq!(fw::<8>(&map).unwrap_err(), MapError::NoRam);
    assert_eq!(fw::<8>(&[]).unwrap_err(), MapError::NoRam);
    // RAM that is no whole page after trimming is no RAM.
    let map = [ram(0x800, 0x1000), ram(0x10_0001, 0xfff)];
    assert_eq!(fw::<8>(&map).unwrap_err(), MapError::NoRam);
}

#[test]
fn firmware_map_trims_inward() {
    // The classic low-memory edge: 0..0x9fc00 RAM, then the EBDA.
    let map = [
        ram(0, 0x9fc00),
        reserved(0x9fc00, 0x400),
        ram(0x10_0000, 0x7ee_0000 + 0x123),
    ];
    let (mb, report) = fw::<8>(&map).unwrap();
    assert_eq!(
        snap(&mb).0,
        vec![
            Region::new(0, 0x9f000).unwrap(),
            Region::new(0x10_0000, 0x7fe_0000).unwrap()
        ]
    );
    assert_eq!(report.trimmed_bytes, 0xc00 + 0x123);
}

// ---------------------------------------------------------------------------------------------
// memblock operations

fn mb_with(ranges: &[(u64, u64)]) -> Memblock<4> {
    let mut mb = Memblock::<4>::new();
    for &(s, e) in ranges {
        add(&mut mb, s, e).unwrap();
    }
    mb
}

#[test]
fn add_memory_unaligned() {
    let mut mb = mb_with(&[(0, 0x10000)]);
    let before = snap(&mb);
    assert_eq!(
        add(&mut mb, 0x20000, 0x20800),
        Err(MemblockError::Unaligned {
            start: 0x20000,
            end: 0x20800
        })
    );
    assert_eq!(
        add(&mut mb, 0x20010, 0x21000),
        Err(MemblockError::Unaligned {
            start: 0x20010,
            end: 0x21000
        })
    );
    assert_eq!(snap(&mb), before);
}

#[test]
fn add_memory_overlapping() {
    let mut mb = mb_with(&[(0x10000, 0x20000)]);
    let before = snap(&mb);
    assert_eq!(
        add(&mut mb, 0x1f000, 0x30000),
        Err(MemblockError::Overlap {
            start: 0x1f000,
            end: 0x30000,
            with: Region::new(0x10000, 0x20000).unwrap()
        })
    );
    assert!(matches!(
        add(&mut mb, 0, 0x100000),
        Err(MemblockError::Overlap { .. })
    ));
    assert_eq!(snap(&mb), before);
    // Touching is no overlap: it merges.
    add(&mut mb, 0x20000, 0x30000).unwrap();
    assert_eq!(mb.memory(), &[Region::new(0x10000, 0x30000).unwrap()]);
}

#[test]
fn add_memory_empty_reversed_and_full() {
    let mut mb = mb_with(&[
        (0, 0x1000),
        (0x3000, 0x4000),
        (0x6000, 0x7000),
        (0x9000, 0xa000),
    ]);
    let before = snap(&mb);
    assert_eq!(
        add(&mut mb, 0x20000, 0x20000),
        Err(MemblockError::ZeroLength)
    );
    assert_eq!(add(&mut mb, 0x21000, 0x20000), Err(MemblockError::Overflow));
    assert_eq!(add(&mut mb, 0x20000, 0x21000), Err(MemblockError::Capacity));
    assert_eq!(snap(&mb), before);
    // Merging with a neighbour needs no new slot.
    add(&mut mb, 0x1000, 0x2000).unwrap();
    assert_eq!(mb.memory().len(), 4);
}

#[test]
fn reserve_beyond_capacity() {
    let mut mb = mb_with(&[(0, 0x100000)]);
    for i in 0..4 {
        mb.reserve(i * 0x10000, i * 0x10000 + 0x1000).unwrap();
    }
    let before = snap(&mb);
    assert_eq!(mb.reserve(0x80000, 0x81000), Err(MemblockError::Capacity));
    assert_eq!(snap(&mb), before);
    // Reserving again, or next to a reservation, merges and needs no slot.
    mb.reserve(0x800, 0x1800).unwrap();
    mb.reserve(0x11000, 0x12000).unwrap();
    assert_eq!(mb.reserved().len(), 4);
}

#[test]
fn reserve_rounds_out_and_refuses_nonsense() {
    let mut mb = mb_with(&[(0, 0x100000)]);
    mb.reserve(0x1234, 0x2345).unwrap();
    assert_eq!(mb.reserved(), &[Region::new(0x1000, 0x3000).unwrap()]);
    let before = snap(&mb);
    assert_eq!(mb.reserve(0x5000, 0x5000), Err(MemblockError::ZeroLength));
    assert_eq!(mb.reserve(0x6000, 0x5000), Err(MemblockError::Overflow));
    assert_eq!(snap(&mb), before);
}

#[test]
fn reserve_at_the_top_of_the_address_space() {
    // Rounding the end out to a page would pass 2^64: refused, not a region with an
    // unaligned end.
    let mut mb = mb_with(&[(0, 0x100000)]);
    let before = snap(&mb);
    assert_eq!(
        mb.reserve(u64::MAX - 0x10, u64::MAX),
        Err(MemblockError::Overflow)
    );
    assert_eq!(snap(&mb), before);
}

#[test]
fn alloc_beyond_memory() {
    let mut mb = mb_with(&[(0x100000, 0x200000), (0x400000, 0x500000)]);
    let before = snap(&mb);
    assert_eq!(
        mb.alloc(0x100001, 4096, u64::MAX, Direction::TopDown),
        Err(MemblockError::OutOfMemory {
            size: 0x101000,
            limit: u64::MAX
        })
    );
    assert!(matches!(
        mb.alloc_frames(257, u64::MAX, Direction::BottomUp),
        Err(MemblockError::OutOfMemory { .. })
    ));
    assert_eq!(snap(&mb), before);
    // Exactly a region fits.
    assert_eq!(
        mb.alloc(0x100000, 4096, u64::MAX, Direction::TopDown),
        Ok(0x400000)
    );
}

#[test]
fn alloc_below_a_too_low_limit() {
    let mut mb = mb_with(&[(0x100000, 0x200000)]);
    let before = snap(&mb);
    for dir in [Direction::TopDown, Direction::BottomUp] {
        assert_eq!(
            mb.alloc(0x1000, 4096, 0x100000, dir),
            Err(MemblockError::OutOfMemory {
                size: 0x1000,
                limit: 0x100000
            })
        );
        assert!(mb.alloc(0x1000, 4096, 0x100fff, dir).is_err());
        assert!(mb.alloc_frame(0, dir).is_err());
    }
    assert_eq!(snap(&mb), before);
    assert_eq!(
        mb.alloc(0x1000, 4096, 0x101000, Direction::TopDown),
        Ok(0x100000)
    );
}

#[test]
fn alloc_bad_alignment_and_size() {
    let mut mb = mb_with(&[(0, 0x1000000)]);
    let before = snap(&mb);
    for align in [0, 1, 3, 2048, 4097, 3 << 20] {
        assert_eq!(
            mb.alloc(0x1000, align, u64::MAX, Direction::TopDown),
            Err(MemblockError::BadAlign(align))
        );
    }
    assert_eq!(
        mb.alloc(0, 4096, u64::MAX, Direction::TopDown),
        Err(MemblockError::ZeroLength)
    );
    assert_eq!(
        mb.alloc(u64::MAX - 1, 4096, u64::MAX, Direction::TopDown),
        Err(MemblockError::Overflow)
    );
    assert!(matches!(
        mb.alloc_frames(0, u64::MAX, Direction::TopDown),
        Err(MemblockError::ZeroLength)
    ));
    assert!(matches!(
        mb.alloc_frames(u64::MAX / 2, u64::MAX, Direction::TopDown),
        Err(MemblockError::Overflow)
    ));
    assert_eq!(snap(&mb), before);
    // A large alignment is honoured.
    let a = mb
        .alloc(0x1000, 2 << 20, u64::MAX, Direction::TopDown)
        .unwrap();
    assert_eq!(a, 0xe00000);
}

#[test]
fn alloc_frames_never_hands_out_unrepresentable_frames() {
    // Memory above 2^52 (a firmware map may claim it) has no frame numbers: allocating frames
    // must fail without reserving anything.
    let top = 1u64 << 52;
    let mut mb = mb_with(&[(0, 0x2000), (top, top + 0x10000)]);
    let before = snap(&mb);
    let r = mb.alloc_frames(4, u64::MAX, Direction::TopDown);
    assert!(r.is_err(), "{r:?}");
    assert_eq!(snap(&mb), before);
    // Below 2^52 it still works.
    let f = mb.alloc_frames(2, u64::MAX, Direction::TopDown).unwrap();
    assert_eq!(f.pfns(), pfns(0, 2));
    mb.free_frames(f).unwrap();
}

/// Frames the test claims without allocating them (to hand memblock something it did not give).
fn claim(start: u64, end: u64) -> FrameRange<Free> {
    // SAFETY: test frames; nothing else uses them.
    unsafe { FrameRange::from_pfns_unchecked(pfns(start, end)) }
}

#[test]
fn free_of_a_non_reserved_range() {
    let mut mb = mb_with(&[(0, 0x100000)]);
    mb.reserve(0x10000, 0x20000).unwrap();
    let before = snap(&mb);
    let f = mb
        .free_frames(claim(0x30, 0x32))
        .expect_err("never reserved");
    assert_eq!(
        f.error,
        MemblockError::NotReserved {
            start: 0x30000,
            end: 0x32000
        }
    );
    assert_eq!(f.value.pfns(), pfns(0x30, 0x32), "the frames come back");
    // Half reserved is not reserved.
    let f = mb.free_frames(claim(0x1f, 0x21)).expect_err("straddles");
    assert!(matches!(f.error, MemblockError::NotReserved { .. }));
    // One frame.
    // SAFETY: as `claim`.
    let one = unsafe { hal_core::Frame::<Free>::from_pfn_unchecked(Pfn::new(0x40).unwrap()) };
    let f = mb.free_frame(one).expect_err("never reserved");
    assert_eq!(f.value.pfn(), Pfn::new(0x40).unwrap());
    assert_eq!(
        // SAFETY: nothing of the range is held (and the call is refused anyway).
        unsafe { mb.unreserve(0x10000, 0x10800) },
        Err(MemblockError::Unaligned {
            start: 0x10000,
            end: 0x10800
        })
    );
    assert_eq!(snap(&mb), before);
    // Freeing nothing is fine and changes nothing.
    mb.free_frames(FrameRange::empty(Pfn::new(0x50).unwrap()))
        .unwrap();
    assert_eq!(snap(&mb), before);
}

#[test]
fn free_that_needs_a_region_more_than_capacity() {
    let mut mb = mb_with(&[(0, 0x100000)]);
    let frames = mb.alloc_frames(16, u64::MAX, Direction::BottomUp).unwrap();
    for i in 1..4 {
        mb.reserve(i * 0x20000, i * 0x20000 + 0x1000).unwrap();
    }
    let before = snap(&mb);
    // Freeing the middle of the first reservation splits it: a fifth region.
    let (head, rest) = frames.split_at(4);
    let (mid, tail) = rest.split_at(4);
    let f = mb.free_frames(mid).expect_err("no room to split");
    assert_eq!(f.error, MemblockError::Capacity);
    assert_eq!(f.value.pfns(), pfns(4, 8));
    assert_eq!(snap(&mb), before);
    // The whole range in one piece works.
    let whole = head.join(f.value).unwrap().join(tail).unwrap();
    mb.free_frames(whole).unwrap();
    assert_eq!(mb.reserved().len(), 3);
}

// ---------------------------------------------------------------------------------------------
// PgtBuf and the builder

fn small(caps: Caps, ram_len: u64) -> World {
    common::ram_world(caps, ram_len)
}

fn spec(base: u64) -> DirectMapSpec {
    DirectMapSpec {
        base,
        page_sizes: PageSizes::all(),
    }
}

const FLAGS: PageTableFlags = PageTableFlags::PRESENT.union(PageTableFlags::WRITABLE);

#[test]
fn pgt_buf_exhausted() {
    let mut w = small(caps::NATIVE, 16 * MIB);
    let mut buf = PgtBuf::new(&mut w.mmu, &mut w.mb, 2, u64::MAX, Direction::TopDown).unwrap();
    let range = buf.range();
    let a = buf.alloc().unwrap();
    let b = buf.alloc().unwrap();
    assert_eq!(buf.alloc().unwrap_err(), Exhausted { capacity: 2 });
    assert_eq!((buf.used(), buf.remaining()), (2, 0));
    // Only the frame handed out last can be taken back.
    let a = buf.unalloc(a).expect_err("not the last one");
    buf.unalloc(b).unwrap();
    assert_eq!((buf.used(), buf.end()), (1, range.start().as_u64() + 1));
    let b = buf.alloc().unwrap();
    assert_eq!(b.pfn().as_u64(), range.start().as_u64() + 1);
    let _ = (a, b);
}

/// A fresh buffer with `frames` frames and a root builder taken from it.
fn buf_and_root(w: &mut World, frames: u64) -> (PgtBuf, TableBuilder<hal_core::Root>) {
    let mut buf =
        PgtBuf::new(&mut w.mmu, &mut w.mb, frames, u64::MAX, Direction::BottomUp).unwrap();
    let root = TableBuilder::new(buf.alloc().unwrap());
    (buf, root)
}

#[test]
fn build_with_a_buffer_too_small() {
    for c in [caps::NATIVE, caps::XEN] {
        let mut w = small(c, 64 * MIB);
        let ranges = w.ranges.clone();
        let ro = [w.boot];
        let need = count_tables(
            &ranges,
            if c.tables_read_only { &ro } else { &[] },
            &spec(LINUX_PAGE_OFFSET),
            &c,
        )
        .unwrap()
        .total();
        // One frame short (the root comes out of the buffer too). On Xen the buffer's own
        // frames are read-only and may add tables; the check still comes first.
        let (mut buf, mut root) = buf_and_root(&mut w, need);
        let counts = w.mmu.raw().counts.clone();
        let entries = *root.entries();
        let (used, remaining) = (buf.used(), buf.remaining());
        // SAFETY: nothing is mapped at the base.
        let err = unsafe {
            direct_map::build(
                &mut w.mmu,
                &mut buf,
                Target::New(&mut root),
                &ranges,
                &[],
                &spec(LINUX_PAGE_OFFSET),
                FLAGS,
            )
        }
        .unwrap_err();
        match err {
            BuildError::Exhausted {
                needed,
                remaining: r,
            } => {
                assert!(needed >= need && r == need - 1, "{needed} {r}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            (buf.used(), buf.remaining()),
            (used, remaining),
            "buffer unchanged"
        );
        assert_eq!(root.entries(), &entries, "root unchanged");
        assert_eq!(w.mmu.raw().counts, counts, "no backend call at all");
        assert_eq!(w.mmu.raw().counts.get(Op::Write), 0);
        let _ = (buf, root);
    }
}

#[test]
fn build_with_a_bad_base() {
    let mut w = small(caps::NATIVE, 16 * MIB);
    let ranges = w.ranges.clone();
    let (mut buf, mut root) = buf_and_root(&mut w, 16);
    let counts = w.mmu.raw().counts.clone();
    for base in [
        LINUX_PAGE_OFFSET + 2 * MIB,       // not 1 GiB-aligned
        0x0000_8000_0000_0000,             // not canonical
        0xffff_0000_0000_0000 + 512 * GIB, // not canonical either
    ] {
        // SAFETY: refused before anything is mapped.
        let err = unsafe {
            direct_map::build(
                &mut w.mmu,
                &mut buf,
                Target::New(&mut root),
                &ranges,
                &[],
                &spec(base),
                FLAGS,
            )
        }
        .unwrap_err();
        assert!(
            matches!(err, BuildError::Plan(PlanError::BadBase(b)) if b == base),
            "{base:#x}: {err:?}"
        );
    }
    assert_eq!(buf.used(), 1);
    assert_eq!(w.mmu.raw().counts, counts);
    let _ = (buf, root);
}

#[test]
fn build_out_of_virtual_space() {
    let mut w = small(caps::NATIVE, 16 * MIB);
    let (mut buf, mut root) = buf_and_root(&mut w, 16);
    // The last 1 GiB of the lower half: a range of 2 GiB would cross into the hole.
    let base = 0x0000_7fff_c000_0000;
    let ranges = [pfns(0, (2 * GIB) >> 12)];
    // SAFETY: refused before anything is mapped.
    let err = unsafe {
        direct_map::build(
            &mut w.mmu,
            &mut buf,
            Target::New(&mut root),
            &ranges,
            &[],
            &spec(base),
            FLAGS,
        )
    }
    .unwrap_err();
    assert!(
        matches!(err, BuildError::Plan(PlanError::OutOfVirtualSpace { pfn }) if pfn == ((2 * GIB) >> 12) - 1),
        "{err:?}"
    );
    let _ = (buf, root);
}

#[test]
fn build_with_unsorted_ranges() {
    let mut w = small(caps::NATIVE, 16 * MIB);
    let (mut buf, mut root) = buf_and_root(&mut w, 16);
    let ranges = [pfns(0x100, 0x200), pfns(0x180, 0x300)];
    // SAFETY: refused before anything is mapped.
    let err = unsafe {
        direct_map::build(
            &mut w.mmu,
            &mut buf,
            Target::New(&mut root),
            &ranges,
            &[],
            &spec(LINUX_PAGE_OFFSET),
            FLAGS,
        )
    }
    .unwrap_err();
    assert!(
        matches!(err, BuildError::Plan(PlanError::Unsorted { index: 1 })),
        "{err:?}"
    );
    let _ = (buf, root);
}

#[test]
fn build_into_xen_reserved_slots() {
    let xen_slots = 0xffff_8000_0000_0000; // root slot 256, Xen's
    let mut w = small(caps::XEN, 16 * MIB);
    let ranges = w.ranges.clone();
    let (mut buf, mut root) = buf_and_root(&mut w, 64);
    for base in [xen_slots, xen_slots + 15 * (512 * GIB) + 511 * GIB] {
        // SAFETY: refused before anything is mapped.
        let err = unsafe {
            direct_map::build(
                &mut w.mmu,
                &mut buf,
                Target::New(&mut root),
                &ranges,
                &[],
                &spec(base),
                FLAGS,
            )
        }
        .unwrap_err();
        assert!(
            matches!(
                err,
                BuildError::Plan(PlanError::OutOfVirtualSpace { pfn: 0 })
            ),
            "{base:#x}: {err:?}"
        );
    }
    assert_eq!(buf.used(), 1);
    // The same base on bare metal is fine.
    let mut n = small(caps::NATIVE, 16 * MIB);
    let r = n.ranges.clone();
    let (mut nbuf, mut nroot) = buf_and_root(&mut n, 64);
    // SAFETY: nothing is mapped there in the new root.
    let built = unsafe {
        direct_map::build(
            &mut n.mmu,
            &mut nbuf,
            Target::New(&mut nroot),
            &r,
            &[],
            &spec(xen_slots),
            FLAGS,
        )
    }
    .unwrap();
    built.pending.defer();
    let _ = (buf, root, nbuf, nroot);
}

#[test]
fn build_running_into_reserved_slots_from_below() {
    // A backend reserving root slots 300..310; the direct map at slot 273 with RAM reaching
    // past slot 300: refused at the first frame that would land in slot 300.
    let c = Caps {
        reserved_root_slots: (300, 310),
        ..caps::NATIVE
    };
    let mut w = small(c, 16 * MIB);
    let (mut buf, mut root) = buf_and_root(&mut w, 16);
    let slot_frames = (512 * GIB) >> 12;
    let ranges = [pfns(0, 28 * slot_frames)];
    // SAFETY: refused before anything is mapped.
    let err = unsafe {
        direct_map::build(
            &mut w.mmu,
            &mut buf,
            Target::New(&mut root),
            &ranges,
            &[],
            &spec(LINUX_PAGE_OFFSET),
            FLAGS,
        )
    }
    .unwrap_err();
    assert!(
        matches!(err, BuildError::Plan(PlanError::OutOfVirtualSpace { pfn }) if pfn == 27 * slot_frames),
        "{err:?}"
    );
    let _ = (buf, root);
}

#[test]
fn build_with_bad_flags() {
    let mut w = small(caps::HYBRID, 16 * MIB);
    let ranges = w.ranges.clone();
    let (mut buf, mut root) = buf_and_root(&mut w, 64);
    for flags in [
        PageTableFlags::WRITABLE,
        FLAGS | PageTableFlags::HUGE_PAGE,
        FLAGS | PageTableFlags::NO_EXECUTE, // the hybrid caps have no NX
    ] {
        // SAFETY: refused before anything is mapped.
        let err = unsafe {
            direct_map::build(
                &mut w.mmu,
                &mut buf,
                Target::New(&mut root),
                &ranges,
                &[],
                &spec(LINUX_PAGE_OFFSET),
                flags,
            )
        }
        .unwrap_err();
        assert!(matches!(err, BuildError::BadFlags), "{flags:?}: {err:?}");
    }
    assert_eq!(w.mmu.raw().counts.get(Op::Write), 0);
    let _ = (buf, root);
}

#[test]
fn build_over_an_existing_map() {
    for c in [caps::NATIVE, caps::XEN] {
        let mut w = small(c, 64 * MIB);
        let ranges = w.ranges.clone();
        let (mut buf, mut root) = buf_and_root(&mut w, 128);
        // SAFETY: nothing is mapped at the base in the new root.
        let built = unsafe {
            direct_map::build(
                &mut w.mmu,
                &mut buf,
                Target::New(&mut root),
                &ranges,
                &[],
                &spec(LINUX_PAGE_OFFSET),
                FLAGS,
            )
        }
        .unwrap();
        built.pending.flush(&mut w.mmu).unwrap();
        let root = w.mmu.new_table(root).unwrap();
        let used = buf.used();
        let writes = w.mmu.raw().counts.get(Op::Write);
        // The same ranges again, into the (now complete) root: refused at the first leaf.
        // SAFETY: the build must refuse before it maps anything.
        let err = unsafe {
            direct_map::build(
                &mut w.mmu,
                &mut buf,
                Target::Live(root.as_table()),
                &ranges,
                &[],
                &spec(LINUX_PAGE_OFFSET),
                FLAGS,
            )
        }
        .unwrap_err();
        assert!(
            matches!(err, BuildError::AlreadyMapped(va) if va == LINUX_PAGE_OFFSET),
            "{err:?}"
        );
        assert_eq!(buf.used(), used, "no table taken");
        assert_eq!(w.mmu.raw().counts.get(Op::Write), writes, "nothing written");
        let _ = (buf, root);
    }
}
