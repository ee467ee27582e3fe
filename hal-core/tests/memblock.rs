//! memblock against its definition, on random firmware maps and random operation sequences.

mod common;

use common::gen::{self, run_prop, KIB};
use common::oracle;
use hal_core::memblock::{Direction, MapError, Memblock, MemblockError, Region};
use hal_core::memmap::{MemRegion, RegionKind};
use hal_core::{FrameRange, Free};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

const CAP: usize = 32;

macro_rules! check {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(TestCaseError::fail(format!($($fmt)+)));
        }
    };
}

/// RAM of a firmware map, touching RAM entries joined, trimmed inward to pages and merged: the
/// definition.
fn ram_oracle(map: &[MemRegion]) -> Vec<(u64, u64)> {
    let mut v: Vec<(u64, u64)> = gen::ram_spans(map)
        .into_iter()
        .filter_map(|(s, t)| {
            let (s, t) = (s.div_ceil(4096) * 4096, t & !4095);
            (t > s).then_some((s, t))
        })
        .collect();
    v.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (s, t) in v {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(t),
            _ => out.push((s, t)),
        }
    }
    out
}

fn pairs(r: &[Region]) -> Vec<(u64, u64)> {
    r.iter().map(|r| (r.start(), r.end())).collect()
}

/// Sorted, disjoint, not touching (merged), page-aligned.
fn well_formed(set: &[Region], what: &str) -> Result<(), TestCaseError> {
    for r in set {
        check!(
            r.start() % 4096 == 0 && r.end() % 4096 == 0 && r.start() < r.end(),
            "{what}: bad region {r:?}"
        );
    }
    for w in set.windows(2) {
        check!(
            w[0].end() < w[1].start(),
            "{what}: not merged or unsorted {w:?}"
        );
    }
    Ok(())
}

fn invariants<const N: usize>(mb: &Memblock<N>) -> Result<(), TestCaseError> {
    well_formed(mb.memory(), "memory")?;
    well_formed(mb.reserved(), "reserved")?;
    let free: Vec<(u64, u64)> = mb.free_ranges().map(|r| (r.start(), r.end())).collect();
    let want = oracle::free_oracle(mb.memory(), mb.reserved());
    check!(free == want, "free ranges {free:x?}, expected {want:x?}");
    // free + (reserved ∩ memory) == memory.
    let reserved_in_memory: u64 = mb
        .memory()
        .iter()
        .flat_map(|m| {
            mb.reserved().iter().map(move |r| {
                let s = r.start().max(m.start());
                let e = r.end().min(m.end());
                e.saturating_sub(s)
            })
        })
        .sum();
    check!(
        mb.free_bytes() + reserved_in_memory == mb.memory_bytes(),
        "free {} + reserved {} != memory {}",
        mb.free_bytes(),
        reserved_in_memory,
        mb.memory_bytes()
    );
    Ok(())
}

#[test]
fn firmware_maps() {
    run_prop("memblock_firmware_maps", gen::firmware_map(24), |map| {
        let ram = ram_oracle(&map);
        let ram_entries = map.iter().filter(|e| e.kind == RegionKind::Ram).count();
        // SAFETY: generated maps describe no real memory; nothing is dereferenced.
        match unsafe { Memblock::<CAP>::from_firmware(&map) } {
            Ok((mb, report)) => {
                invariants(&mb)?;
                check!(
                    pairs(mb.memory()) == ram,
                    "memory {:x?}, RAM {ram:x?}",
                    mb.memory()
                );
                check!(mb.reserved().is_empty(), "nothing reserved yet");
                check!(
                    pairs(&mb.free_ranges().collect::<Vec<_>>()) == ram,
                    "all RAM free"
                );
                check!(
                    report.ram_bytes == gen::ram_bytes(&map),
                    "report {report:?}"
                );
                let all: u64 = map
                    .iter()
                    .filter(|e| e.kind == RegionKind::Ram)
                    .map(|e| e.len)
                    .sum();
                check!(
                    report.ram_bytes + report.trimmed_bytes == all,
                    "trim {report:?}"
                );
                check!(report.ram_entries <= ram_entries, "entries {report:?}");
            }
            Err(MapError::NoRam) => check!(ram.is_empty(), "NoRam but RAM {ram:x?}"),
            Err(MapError::TooMany { .. }) => check!(ram.len() > CAP, "TooMany for {}", ram.len()),
            Err(e) => return Err(TestCaseError::fail(format!("valid map refused: {e:?}"))),
        }
        Ok(())
    });
}

#[derive(Clone, Copy, Debug)]
enum Alloc {
    /// `alloc(size, align, limit)`, freed with `unreserve`.
    Bytes {
        size: u64,
        align_log2: u32,
        limit_frac: u16,
        dir: Direction,
    },
    /// `alloc_in(size, align, min, limit)`, freed with `unreserve`.
    In {
        size: u64,
        align_log2: u32,
        min_frac: u16,
        limit_frac: u16,
        dir: Direction,
    },
    /// `alloc_exact` of part of a free range (or of a range that is not all free).
    Exact {
        pick: prop::sample::Index,
        off: u16,
        count: u64,
    },
    /// `alloc_frames(count, limit)`, freed with `free_frames`.
    Frames {
        count: u64,
        limit_frac: u16,
        dir: Direction,
    },
}

fn alloc_op() -> impl Strategy<Value = Alloc> {
    let limit = prop_oneof![Just(u16::MAX), 0u16..=1000];
    prop_oneof![
        (
            1u64..64 * KIB * 1024,
            12u32..=31,
            limit.clone(),
            gen::direction()
        )
            .prop_map(|(size, align_log2, limit_frac, dir)| Alloc::Bytes {
                size,
                align_log2,
                limit_frac,
                dir
            }),
        (
            1u64..64 * KIB * 1024,
            12u32..=24,
            0u16..1000,
            limit.clone(),
            gen::direction()
        )
            .prop_map(|(size, align_log2, min_frac, limit_frac, dir)| Alloc::In {
                size,
                align_log2,
                min_frac,
                limit_frac,
                dir
            }),
        (any::<prop::sample::Index>(), 0u16..1000, 1u64..2048)
            .prop_map(|(pick, off, count)| Alloc::Exact { pick, off, count }),
        (1u64..4096, limit, gen::direction()).prop_map(|(count, limit_frac, dir)| {
            Alloc::Frames {
                count,
                limit_frac,
                dir,
            }
        }),
    ]
}

/// The highest (top-down) or lowest (bottom-up) aligned start of `size` bytes inside a free
/// range and below `limit`: the definition of where an allocation must land.
fn best_fit(
    free: &[(u64, u64)],
    size: u64,
    align: u64,
    min: u64,
    limit: u64,
    dir: Direction,
) -> Option<u64> {
    let cands = free.iter().filter_map(|&(s, e)| {
        let s = s.max(min);
        let e = e.min(limit);
        match dir {
            Direction::TopDown => {
                let start = e.checked_sub(size)? / align * align;
                (start >= s).then_some(start)
            }
            Direction::BottomUp => {
                let start = s.checked_next_multiple_of(align)?;
                (start.checked_add(size)? <= e).then_some(start)
            }
        }
    });
    match dir {
        Direction::TopDown => cands.max(),
        Direction::BottomUp => cands.min(),
    }
}

enum Held {
    Bytes(u64, u64),
    Frames(FrameRange<Free>),
}

#[test]
fn allocations() {
    let strat = (
        gen::firmware_map(16),
        prop::collection::vec(
            (any::<prop::sample::Index>(), 0u16..1000, 1u64..1 << 24),
            0..6,
        ),
        prop::collection::vec(alloc_op(), 1..24),
        any::<u64>(),
    );
    run_prop(
        "memblock_alloc_free",
        strat,
        |(map, reserves, allocs, seed)| {
            // SAFETY: as above.
            let Ok((mut mb, _)) = (unsafe { Memblock::<CAP>::from_firmware(&map) }) else {
                return Err(TestCaseError::reject("no RAM"));
            };
            let top = map.last().map_or(0, |e| e.start + e.len);
            // Random reservations: inside entries of any kind, or beyond.
            for (idx, frac, len) in reserves {
                let e = idx.get(&map);
                let start = e.start + e.len / 1000 * u64::from(frac);
                mb.reserve(start, start + len)
                    .map_err(|e| TestCaseError::fail(format!("reserve: {e:?}")))?;
                invariants(&mb)?;
            }
            let after_reserves = mb.snapshot();
            let mut held: Vec<Held> = Vec::new();
            for a in allocs {
                let before = mb.snapshot();
                let free_before: Vec<(u64, u64)> =
                    mb.free_ranges().map(|r| (r.start(), r.end())).collect();
                let mut min = 0;
                let (size, align, limit, dir, res) = match a {
                    Alloc::In {
                        size,
                        align_log2,
                        min_frac,
                        limit_frac,
                        dir,
                    } => {
                        let limit = limit_of(limit_frac, top);
                        min = top / 1000 * u64::from(min_frac);
                        let align = 1 << align_log2;
                        let res = mb.alloc_in(size, align, min, limit, dir);
                        if let Ok(s) = res {
                            held.push(Held::Bytes(s, s + size.next_multiple_of(4096)));
                        }
                        (size.next_multiple_of(4096), align, limit, dir, res)
                    }
                    Alloc::Exact { pick, off, count } => {
                        // Inside a free range, or (when it runs past its end) not all free.
                        let start = if free_before.is_empty() {
                            0
                        } else {
                            let (s, e) = *pick.get(&free_before);
                            s + ((e - s) >> 12) / 1000 * u64::from(off) * 4096
                        };
                        let pfns = hal_core::PfnRange::new(
                            hal_core::Pfn::new(start >> 12).unwrap(),
                            (start >> 12) + count,
                        )
                        .unwrap();
                        let all_free = oracle::inside(&free_before, start, start + count * 4096);
                        let res = mb.alloc_exact(pfns).map(|f| {
                            check_len(&f, count);
                            held.push(Held::Frames(f));
                            start
                        });
                        min = start;
                        let limit = if all_free {
                            start + count * 4096
                        } else {
                            start
                        };
                        (count * 4096, 4096, limit, Direction::BottomUp, res)
                    }
                    Alloc::Bytes {
                        size,
                        align_log2,
                        limit_frac,
                        dir,
                    } => {
                        let limit = limit_of(limit_frac, top);
                        let align = 1 << align_log2;
                        let res = mb.alloc(size, align, limit, dir);
                        if let Ok(s) = res {
                            held.push(Held::Bytes(s, s + size.next_multiple_of(4096)));
                        }
                        (size.next_multiple_of(4096), align, limit, dir, res)
                    }
                    Alloc::Frames {
                        count,
                        limit_frac,
                        dir,
                    } => {
                        let limit = limit_of(limit_frac, top);
                        let res = mb.alloc_frames(count, limit, dir).map(|f| {
                            let s = f.pfns().start().addr();
                            check_len(&f, count);
                            held.push(Held::Frames(f));
                            s
                        });
                        (count * 4096, 4096, limit, dir, res)
                    }
                };
                let want = best_fit(&free_before, size, align, min, limit, dir);
                match res {
                    Ok(start) => {
                        check!(
                            Some(start) == want,
                            "allocated at {start:#x}, expected {want:x?}"
                        );
                        check!(start % align == 0, "unaligned {start:#x} / {align:#x}");
                        check!(start + size <= limit, "above the limit");
                        check!(start >= min, "below the minimum");
                        check!(
                            oracle::inside(&free_before, start, start + size),
                            "not in free memory"
                        );
                        check!(
                            mb.free_bytes() + size == before.free_bytes(),
                            "free bytes accounting"
                        );
                    }
                    Err(MemblockError::OutOfMemory { .. }) => {
                        check!(want.is_none(), "OutOfMemory but {want:x?} fits");
                        check!(
                            pairs(mb.reserved()) == pairs(before.reserved()),
                            "changed on error"
                        );
                    }
                    Err(MemblockError::Capacity) => {
                        check!(
                            pairs(mb.reserved()) == pairs(before.reserved()),
                            "changed on error"
                        );
                    }
                    Err(e) => return Err(TestCaseError::fail(format!("alloc: {e:?}"))),
                }
                invariants(&mb)?;
            }
            // Nothing held overlaps anything else held.
            let mut spans: Vec<(u64, u64)> = held
                .iter()
                .map(|h| match h {
                    Held::Bytes(s, e) => (*s, *e),
                    Held::Frames(f) => f.pfns().bytes(),
                })
                .collect();
            spans.sort_unstable();
            for w in spans.windows(2) {
                check!(w[0].1 <= w[1].0, "allocations overlap: {w:x?}");
            }
            // Give everything back in a random order: the state after the reservations returns.
            let mut order: Vec<usize> = (0..held.len()).collect();
            let mut x = seed | 1;
            for i in (1..order.len()).rev() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                order.swap(i, (x % (i as u64 + 1)) as usize);
            }
            let mut slots: Vec<Option<Held>> = held.into_iter().map(Some).collect();
            for i in order {
                match slots[i].take().unwrap() {
                    // SAFETY: the bytes were reserved by `alloc` for this test and nobody
                    // holds frames of them.
                    Held::Bytes(s, e) => unsafe { mb.unreserve(s, e) }
                        .map_err(|e| TestCaseError::fail(format!("unreserve: {e:?}")))?,
                    Held::Frames(f) => mb
                        .free_frames(f)
                        .map_err(|e| TestCaseError::fail(format!("free_frames: {:?}", e.error)))?,
                }
                invariants(&mb)?;
            }
            check!(
                pairs(mb.memory()) == pairs(after_reserves.memory()),
                "memory restored"
            );
            check!(
                pairs(mb.reserved()) == pairs(after_reserves.reserved()),
                "reserved {:x?}, expected {:x?}",
                mb.reserved(),
                after_reserves.reserved()
            );
            Ok(())
        },
    );
}

fn limit_of(frac: u16, top: u64) -> u64 {
    if frac == u16::MAX {
        u64::MAX
    } else {
        top / 1000 * u64::from(frac)
    }
}

fn check_len(f: &FrameRange<Free>, count: u64) {
    assert_eq!(f.len(), count);
}
