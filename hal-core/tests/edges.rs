//! The edges of the address space and the claims on memory: no panic at `MAX_PFN`, refused
//! calls change nothing, and a buffer goes back only to the memblock it came from.

mod common;

use common::sim::caps;
use common::world;
use hal_core::addr::MAX_PFN;
use hal_core::memblock::{Direction, Memblock, MemblockError};
use hal_core::memmap::{MemRegion, RegionKind};
use hal_core::pgt_buf::FinishError;
use hal_core::{Frame, FrameRange, Free, Pfn, PfnRange, PgtBuf};

const TOP: u64 = MAX_PFN << 12;

#[test]
fn inside_bytes_never_starts_at_or_past_max_pfn() {
    // The first whole frame of [u64::MAX - 4095, ..) is far above MAX_PFN.
    assert_eq!(PfnRange::inside_bytes(u64::MAX - 4095, 0), None);
    assert_eq!(PfnRange::inside_bytes(TOP, TOP + 4096), None);
    // The last frame is fine; an end exactly at MAX_PFN too.
    let last = PfnRange::inside_bytes(TOP - 4096, TOP).unwrap();
    assert_eq!((last.start().as_u64(), last.end()), (MAX_PFN - 1, MAX_PFN));
    // An end past MAX_PFN is out of range, whatever the start.
    assert_eq!(PfnRange::inside_bytes(0, TOP + 4096), None);
    // Reversed or partial ranges are empty, and their start is a valid frame number.
    let e = PfnRange::inside_bytes(0x1001, 0x1fff).unwrap();
    assert!(e.is_empty());
    // A partial frame at the very top has no whole frame inside below MAX_PFN.
    assert_eq!(PfnRange::inside_bytes(TOP - 4095, TOP - 1), None);
    assert_eq!(PfnRange::from_raw(MAX_PFN, MAX_PFN).unwrap().len(), 0);
    assert!(
        PfnRange::from_raw(MAX_PFN, MAX_PFN)
            .unwrap()
            .start()
            .as_u64()
            < MAX_PFN
    );
    assert_eq!(PfnRange::from_raw(MAX_PFN, MAX_PFN + 1), None);
    assert_eq!(PfnRange::from_raw(3, 2), None);
}

fn last_frames(n: u64) -> FrameRange<Free> {
    let r = PfnRange::new(Pfn::new(MAX_PFN - n).unwrap(), MAX_PFN).unwrap();
    // SAFETY: test frames at the top of the address space; nothing dereferences them.
    unsafe { FrameRange::from_pfns_unchecked(r) }
}

#[test]
fn ranges_at_max_pfn_split_and_pop_without_panic() {
    let mut r = last_frames(3);
    let mut seen = Vec::new();
    while let Some(f) = r.pop_front() {
        seen.push(f.pfn().as_u64());
        let _ = f.erase();
    }
    assert_eq!(seen, [MAX_PFN - 3, MAX_PFN - 2, MAX_PFN - 1]);
    assert!(r.is_empty());
    let (left, right) = last_frames(2).split_at(2);
    assert_eq!(left.len(), 2);
    assert!(right.is_empty());
    let (left, right) = last_frames(2).split_at(u64::MAX);
    assert_eq!((left.len(), right.len()), (2, 0));
    // Joining an empty range at the top back on works either way round.
    let joined = right.join(left).unwrap();
    assert_eq!(joined.pfns().end(), MAX_PFN);
    let _ = joined.split_at(0);
}

#[test]
fn memblock_at_the_top_hands_out_the_last_frame() {
    let mut mb = Memblock::<4>::new();
    // SAFETY: test memory nobody dereferences, claimed by this memblock only.
    unsafe { mb.add_memory(TOP - 8 * 4096, TOP) }.unwrap();
    let all = mb.alloc_frames(8, u64::MAX, Direction::TopDown).unwrap();
    assert_eq!(all.pfns().end(), MAX_PFN);
    let before = mb.snapshot();
    assert!(matches!(
        mb.alloc_frames(1, u64::MAX, Direction::TopDown),
        Err(MemblockError::OutOfMemory { .. })
    ));
    assert_eq!(
        mb.snapshot(),
        before,
        "a refused allocation changes nothing"
    );
    let mut frames: Vec<Frame<Free>> = all.collect();
    let last = frames.pop().unwrap();
    assert_eq!(last.pfn().as_u64(), MAX_PFN - 1);
    mb.free_frame(last).unwrap();
    let again = mb.alloc_frame(u64::MAX, Direction::TopDown).unwrap();
    assert_eq!(again.pfn().as_u64(), MAX_PFN - 1);
    for f in frames.into_iter().chain([again]) {
        mb.free_frame(f).unwrap();
    }
    assert!(mb.reserved().is_empty());
}

#[test]
fn pgt_buf_at_the_top_of_the_address_space() {
    let map = [MemRegion {
        start: TOP - (64 << 20),
        len: 64 << 20,
        kind: RegionKind::Ram,
    }];
    let mut w = world(&map, caps::XEN).unwrap();
    let mut buf = PgtBuf::new(&mut w.mmu, &mut w.mb, 4, u64::MAX, Direction::TopDown).unwrap();
    assert_eq!(buf.top(), MAX_PFN);
    let mut got = Vec::new();
    while let Ok(f) = buf.alloc() {
        got.push(f);
    }
    assert_eq!((buf.used(), buf.end()), (4, MAX_PFN));
    // The last frame handed out comes back.
    buf.unalloc(got.pop().unwrap()).unwrap();
    assert_eq!(buf.end(), MAX_PFN - 1);
    let fin = buf.finish(&mut w.mmu, &mut w.mb).unwrap();
    assert_eq!((fin.used.len(), fin.released.len()), (3, 1));
    assert_eq!(fin.released.end(), MAX_PFN);
    for f in got {
        let _ = f.erase();
    }
}

#[test]
fn finish_refuses_another_memblock_and_changes_nothing() {
    let map = [MemRegion {
        start: 0,
        len: 64 << 20,
        kind: RegionKind::Ram,
    }];
    let mut w = world(&map, caps::XEN).unwrap();
    let buf = PgtBuf::new(&mut w.mmu, &mut w.mb, 8, u64::MAX, Direction::BottomUp).unwrap();
    assert_eq!(buf.owner(), w.mb.id());
    let range = buf.range();
    // Another memblock, even one that reserved the buffer's bytes itself, does not get it.
    let mut other = Memblock::<8>::new();
    assert_ne!(other.id(), w.mb.id());
    let (s, e) = range.bytes();
    other.reserve(s, e).unwrap();
    let before = (w.mb.snapshot(), other.snapshot());
    let calls = w.mmu.raw().counts.clone();
    let err = buf.finish(&mut w.mmu, &mut other).unwrap_err();
    let FinishError::WrongMemblock(buf) = err else {
        panic!("{err:?}")
    };
    assert_eq!((w.mb.snapshot(), other.snapshot()), before);
    assert_eq!(w.mmu.raw().counts, calls, "no backend call");
    assert_eq!(buf.range(), range);
    // Its own memblock takes the tail.
    let fin = buf.finish(&mut w.mmu, &mut w.mb).unwrap();
    assert_eq!(fin.released, range);
}

#[test]
fn ids_are_unique() {
    let ids: Vec<_> = (0..64).map(|_| Memblock::<1>::new().id()).collect();
    for (i, a) in ids.iter().enumerate() {
        assert!(ids[i + 1..].iter().all(|b| b != a));
    }
}

/// The build's read-only set (buffer, the backend's own tables, the caller's extra ranges)
/// covers exactly the frames of its inputs, as disjoint, sorted, non-adjacent ranges: checked
/// frame by frame against a set built from the inputs, with extra ranges that overlap, nest,
/// touch, repeat, come unsorted and are empty.
#[test]
fn read_only_set_is_the_union_of_its_inputs() {
    use std::collections::BTreeSet;
    let map = [MemRegion {
        start: 0,
        len: 64 << 20,
        kind: RegionKind::Ram,
    }];
    let mut w = world(&map, caps::XEN).unwrap();
    let buf = PgtBuf::new(&mut w.mmu, &mut w.mb, 8, u64::MAX, Direction::BottomUp).unwrap();
    let r = |s: u64, e: u64| PfnRange::new(Pfn::new(s).unwrap(), e).unwrap();
    let (b, e) = (buf.range().start().as_u64(), buf.range().end());
    let extra = [
        r(900, 950),
        r(100, 120),
        r(110, 130), // overlaps the one before
        r(130, 140), // touches it
        r(900, 910), // inside an earlier one
        r(900, 950), // repeated
        r(500, 500), // empty
        r(e, e + 3), // right after the buffer
        r(b + 1, b + 2),
        r(2000, 2001),
    ];
    let got = hal_core::direct_map::build::read_only_set(&w.mmu, &buf, &extra).unwrap();
    let mut want = BTreeSet::new();
    for x in core::iter::once(buf.range())
        .chain(core::iter::once(w.boot))
        .chain(extra)
    {
        want.extend(x.start().as_u64()..x.end());
    }
    let mut seen = BTreeSet::new();
    for (i, x) in got.iter().enumerate() {
        assert!(!x.is_empty(), "{got:?}");
        if i > 0 {
            assert!(got[i - 1].end() < x.start().as_u64(), "not merged: {got:?}");
        }
        seen.extend(x.start().as_u64()..x.end());
    }
    assert_eq!(seen, want, "{got:?}");
    let _ = buf.finish(&mut w.mmu, &mut w.mb).unwrap();
}
