//! The edges of the address space and the claims on memory: no panic at `MAX_PFN`, refused
//! calls change nothing, and a buffer goes back only to the memblock it came from.

mod common;

use common::sim::caps;
use common::world;
use hal_core::addr::MAX_PFN;
use hal_core::backend::EntryRun;
use hal_core::memblock::{Direction, Memblock, MemblockError};
use hal_core::memmap::{MemRegion, RegionKind};
use hal_core::pgt_buf::FinishError;
use hal_core::table::ENTRIES;
use hal_core::walk::Slot;
use hal_core::{
    Frame, FrameRange, Free, PageTableFlags, Pfn, PfnRange, PgtBuf, Pte, TableLevel, Window,
};

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

// ---------------------------------------------------------------------------------------------
// Plain-data helpers at the top of the address space: their fields are public, so any value
// can reach them, and none may panic (debug builds check overflow).

/// The entries of `run`, computed apart from `EntryRun::entry`: frame `first + i * step`, in
/// 128 bits, so that nothing wraps unnoticed.
fn run_entry(first: Pte, step: u64, i: u64) -> u128 {
    u128::from(first.bits()) + ((u128::from(i) * u128::from(step)) << 12)
}

#[test]
fn longest_run_never_passes_one_table() {
    let flags = PageTableFlags::PRESENT | PageTableFlags::WRITABLE;
    // 70,000 equal entries: more than a u16 counts. A run is at most one table.
    for len in [511usize, 512, 513, 65_535, 65_536, 70_000] {
        let empty = vec![Pte::EMPTY; len];
        let run = EntryRun::longest(&empty);
        assert_eq!(
            run,
            EntryRun::empty(len.min(ENTRIES) as u16),
            "{len} empty entries"
        );
        let frames: Vec<Pte> = (0..len as u64)
            .map(|i| Pte::new(Pfn::new(i * 3).unwrap(), flags))
            .collect();
        let run = EntryRun::longest(&frames);
        assert_eq!(
            usize::from(run.count),
            len.min(ENTRIES),
            "{len} spaced frames"
        );
        assert_eq!(run.step, 3);
        for (i, e) in frames.iter().take(usize::from(run.count)).enumerate() {
            assert_eq!(
                u128::from(e.bits()),
                run_entry(run.first, run.step, i as u64)
            );
            assert_eq!(run.entry(i as u16), *e);
        }
    }
    // A run that would carry past the last frame ends where the frames stop rising.
    let top = MAX_PFN - 2;
    let near_top: Vec<Pte> = (0..4)
        .map(|i| Pte::from_bits(((top + i) << 12) & 0x000f_ffff_ffff_f000 | 1))
        .collect();
    let run = EntryRun::longest(&near_top);
    assert_eq!(
        run.count, 2,
        "frames MAX_PFN - 2 and - 1, then the address wraps to 0"
    );
    assert!(run.frames_in_range());
}

#[test]
fn window_addresses_never_wrap() {
    let last_page = u64::MAX - 4095;
    for (va, start, len) in [
        (last_page, 0, 2),
        (last_page - 4096, 7, 3),
        (0, 0, 4),
        (u64::MAX - (1 << 40) * 4096 + 1, 0, 1 << 40),
        (1 << 63, MAX_PFN - 4, 4),
    ] {
        let w = Window {
            va,
            pfns: PfnRange::new(Pfn::new(start).unwrap(), start + len).unwrap(),
        };
        for pfn in [
            start,
            start + 1,
            start + len - 1,
            start + len,
            start.wrapping_sub(1),
        ] {
            let inside = pfn >= start && pfn < start + len;
            // Exact where the window fits below 2^64 (every window a backend takes); modulo
            // 2^64 past it, as documented.
            let expected = u128::from(va) + u128::from(pfn.wrapping_sub(start)) * 4096;
            let expected = inside.then_some((expected % (1 << 64)) as u64);
            assert_eq!(w.va_of(pfn), expected, "window at {va:#x}, pfn {pfn:#x}");
        }
    }
}

#[test]
fn a_slot_ends_where_its_entry_ends() {
    for level in [
        TableLevel::L1,
        TableLevel::L2,
        TableLevel::L3,
        TableLevel::L4,
    ] {
        let span = u128::from(level.entry_span());
        for va in [
            0,
            1,
            u64::MAX,
            u64::MAX - 5,
            !(level.entry_span() - 1),
            1 << 47,
        ] {
            let slot = Slot {
                table: (),
                level,
                index: level.index_of(va),
                va,
            };
            let expected = (u128::from(va) / span + 1) * span - 1;
            assert_eq!(u128::from(slot.last()), expected, "{level:?} at {va:#x}");
        }
    }
}
