//! memblock operation sequences against a reference model: two plain sets of byte ranges
//! (memory, reserved), normalised by sorting and merging, with the documented rules of each
//! operation written out naively. After every operation memblock's memory, reserved and free
//! ranges must equal the model's, and its answer (the address allocated, or the error) the
//! model's prediction.

#![no_main]

use hal_core::addr::{MAX_PFN, PAGE_SIZE};
use hal_core::memblock::{Direction, Memblock, MemblockError};
use hal_core::{FrameRange, Free, Pfn, PfnRange};
use libfuzzer_sys::fuzz_target;
use pvmmu_fuzz::input::Input;

const N: usize = 6;
type Set = Vec<(u64, u64)>;

/// Sorted, with overlapping or touching ranges merged.
fn normalise(mut v: Set) -> Set {
    v.sort_unstable();
    let mut out: Set = Vec::new();
    for (s, e) in v {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// `a ∖ b`, both normalised.
fn minus(a: &Set, b: &Set) -> Set {
    let mut out = Vec::new();
    for &(s, e) in a {
        let mut cur = s;
        for &(bs, be) in b {
            if be <= cur || bs >= e {
                continue;
            }
            if bs > cur {
                out.push((cur, bs));
            }
            cur = cur.max(be);
        }
        if cur < e {
            out.push((cur, e));
        }
    }
    out
}

fn aligned(s: u64, e: u64) -> bool {
    s % PAGE_SIZE == 0 && e % PAGE_SIZE == 0
}

fn range_error(s: u64, e: u64) -> Option<MemblockError> {
    if s == e {
        Some(MemblockError::ZeroLength)
    } else if e < s {
        Some(MemblockError::Overflow)
    } else {
        None
    }
}

#[derive(Default)]
struct Model {
    memory: Set,
    reserved: Set,
}

impl Model {
    fn free(&self) -> Set {
        minus(&self.memory, &self.reserved)
    }

    fn add_memory(&mut self, s: u64, e: u64) -> Result<(), MemblockError> {
        if let Some(err) = range_error(s, e) {
            return Err(err);
        }
        if !aligned(s, e) {
            return Err(MemblockError::Unaligned { start: s, end: e });
        }
        if let Some(&(ws, we)) = self.memory.iter().find(|&&(ms, me)| ms < e && s < me) {
            let with = hal_core::memblock::Region::new(ws, we).unwrap();
            return Err(MemblockError::Overlap {
                start: s,
                end: e,
                with,
            });
        }
        let mut m = self.memory.clone();
        m.push((s, e));
        let m = normalise(m);
        if m.len() > N {
            return Err(MemblockError::Capacity);
        }
        self.memory = m;
        Ok(())
    }

    fn reserve(&mut self, s: u64, e: u64) -> Result<(), MemblockError> {
        if let Some(err) = range_error(s, e) {
            return Err(err);
        }
        let rs = s / PAGE_SIZE * PAGE_SIZE;
        let re = u128::from(e).div_ceil(4096) * 4096;
        if re > u128::from(u64::MAX) {
            return Err(MemblockError::Overflow);
        }
        let mut r = self.reserved.clone();
        r.push((rs, re as u64));
        let r = normalise(r);
        if r.len() > N {
            return Err(MemblockError::Capacity);
        }
        self.reserved = r;
        Ok(())
    }

    fn unreserve(&mut self, s: u64, e: u64) -> Result<(), MemblockError> {
        if let Some(err) = range_error(s, e) {
            return Err(err);
        }
        if !aligned(s, e) {
            return Err(MemblockError::Unaligned { start: s, end: e });
        }
        if !self.reserved.iter().any(|&(rs, re)| rs <= s && e <= re) {
            return Err(MemblockError::NotReserved { start: s, end: e });
        }
        let r = minus(&self.reserved, &vec![(s, e)]);
        if r.len() > N {
            return Err(MemblockError::Capacity);
        }
        self.reserved = r;
        Ok(())
    }

    /// The highest (top-down) or lowest (bottom-up) aligned start of `size` free bytes inside
    /// `[min, limit)`, by scanning the free set.
    fn alloc_in(
        &mut self,
        size: u64,
        align: u64,
        min: u64,
        limit: u64,
        dir: Direction,
    ) -> Result<u64, MemblockError> {
        if size == 0 {
            return Err(MemblockError::ZeroLength);
        }
        if !align.is_power_of_two() || align < PAGE_SIZE {
            return Err(MemblockError::BadAlign(align));
        }
        let size = u128::from(size).div_ceil(4096) * 4096;
        if size > u128::from(u64::MAX) {
            return Err(MemblockError::Overflow);
        }
        let size = size as u64;
        let mut best: Option<u64> = None;
        for (s, e) in self.free() {
            let lo = u128::from(s.max(min));
            let hi = u128::from(e.min(limit));
            let a = u128::from(align);
            let cand = match dir {
                Direction::TopDown => hi
                    .checked_sub(u128::from(size))
                    .map(|x| x / a * a)
                    .filter(|&x| x >= lo),
                Direction::BottomUp => Some(lo.div_ceil(a) * a)
                    .filter(|&x| x + u128::from(size) <= hi && x <= u128::from(u64::MAX)),
            };
            if let Some(c) = cand {
                let c = c as u64;
                best = Some(match (dir, best) {
                    (Direction::TopDown, Some(b)) => b.max(c),
                    (Direction::BottomUp, Some(b)) => b.min(c),
                    (_, None) => c,
                });
            }
        }
        let start = best.ok_or(MemblockError::OutOfMemory { size, limit })?;
        self.reserve(start, start + size)?;
        Ok(start)
    }
}

fn regions(r: &[hal_core::memblock::Region]) -> Set {
    r.iter().map(|r| (r.start(), r.end())).collect()
}

fn check(mb: &Memblock<N>, m: &Model) {
    assert_eq!(regions(mb.memory()), m.memory, "memory");
    assert_eq!(regions(mb.reserved()), m.reserved, "reserved");
    let free: Set = mb.free_ranges().map(|r| (r.start(), r.end())).collect();
    assert_eq!(free, m.free(), "free ranges");
    assert_eq!(
        mb.free_bytes(),
        m.free().iter().map(|r| r.1 - r.0).sum::<u64>()
    );
}

fn dir(inp: &mut Input<'_>) -> Direction {
    if inp.bool() {
        Direction::TopDown
    } else {
        Direction::BottomUp
    }
}

fn align(inp: &mut Input<'_>) -> u64 {
    match inp.below(8) {
        0 => 0,
        1 => inp.u64(),
        2 => 2 * PAGE_SIZE,
        3 => 1 << 21,
        _ => PAGE_SIZE,
    }
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input::new(data);
    let mut mb = Memblock::<N>::new();
    let mut model = Model::default();
    let mut held: Vec<FrameRange<Free>> = Vec::new();
    let mut steps = 0;
    while !inp.is_empty() && steps < 64 {
        steps += 1;
        match inp.below(8) {
            0 => {
                let (s, e) = (inp.addr(), inp.addr());
                let expected = model.add_memory(s, e);
                // SAFETY: the fuzzed memblock owns no real memory; nothing dereferences a frame
                // it hands out.
                let got = unsafe { mb.add_memory(s, e) };
                assert_eq!(got, expected, "add_memory({s:#x}, {e:#x})");
            }
            1 => {
                let (s, e) = (inp.addr(), inp.addr());
                let expected = model.reserve(s, e);
                assert_eq!(mb.reserve(s, e), expected, "reserve({s:#x}, {e:#x})");
            }
            2 => {
                let (s, e) = (inp.addr(), inp.addr());
                // Un-reserving frames someone holds is the caller's promise not to, so the
                // sequence never does it.
                let held_overlap = held.iter().any(|r| {
                    let (hs, he) = r.pfns().bytes();
                    hs < e && s < he
                });
                if held_overlap {
                    continue;
                }
                let expected = model.unreserve(s, e);
                // SAFETY: no held frame is in the range (checked above), and the memblock owns
                // no real memory.
                let got = unsafe { mb.unreserve(s, e) };
                assert_eq!(got, expected, "unreserve({s:#x}, {e:#x})");
            }
            3 => {
                let (size, a, lim, d) = (inp.addr(), align(&mut inp), inp.addr(), dir(&mut inp));
                let expected = model.alloc_in(size, a, 0, lim, d);
                assert_eq!(
                    mb.alloc(size, a, lim, d),
                    expected,
                    "alloc({size:#x}, {a:#x}, {lim:#x})"
                );
            }
            4 => {
                let (size, a, min, lim) = (inp.addr(), align(&mut inp), inp.addr(), inp.addr());
                let d = dir(&mut inp);
                let expected = model.alloc_in(size, a, min, lim, d);
                assert_eq!(mb.alloc_in(size, a, min, lim, d), expected, "alloc_in");
            }
            5 => {
                let count = u64::from(inp.u8() % 16);
                let (lim, d) = (inp.addr(), dir(&mut inp));
                let lim_frames = lim.min(MAX_PFN << 12);
                let expected = match count.checked_mul(PAGE_SIZE) {
                    Some(bytes) => model.alloc_in(bytes, PAGE_SIZE, 0, lim_frames, d),
                    None => Err(MemblockError::Overflow),
                };
                let got = mb.alloc_frames(count, lim, d);
                match (got, expected) {
                    (Ok(r), Ok(start)) => {
                        assert_eq!(r.pfns().bytes(), (start, start + count * PAGE_SIZE));
                        held.push(r);
                    }
                    (Err(g), Err(e)) => assert_eq!(g, e, "alloc_frames({count})"),
                    (g, e) => panic!("alloc_frames({count}): {g:?}, model {e:?}"),
                }
            }
            6 => {
                // Give back a held run, or a part of one.
                if held.is_empty() {
                    continue;
                }
                let i = usize::from(inp.u8()) % held.len();
                let r = held.swap_remove(i);
                let n = u64::from(inp.u8());
                let (front, back) = r.split_at(n);
                if !back.is_empty() {
                    held.push(back);
                }
                let (s, e) = front.pfns().bytes();
                let expected = if front.is_empty() {
                    Ok(())
                } else {
                    model.unreserve(s, e)
                };
                match mb.free_frames(front) {
                    Ok(()) => assert_eq!(expected, Ok(()), "free_frames [{s:#x}, {e:#x})"),
                    Err(f) => {
                        assert_eq!(Err(f.error), expected, "free_frames [{s:#x}, {e:#x})");
                        held.push(f.value);
                    }
                }
            }
            _ => {
                // alloc_exact of a fuzzed run of frames.
                let first = inp.addr() >> 12;
                let len = u64::from(inp.u8() % 8);
                let Some(pfns) = Pfn::new(first).and_then(|p| PfnRange::new(p, first + len)) else {
                    continue;
                };
                let (s, e) = pfns.bytes();
                let expected = if pfns.is_empty() {
                    Err(MemblockError::ZeroLength)
                } else {
                    model.alloc_in(e - s, PAGE_SIZE, s, e, Direction::BottomUp)
                };
                match (mb.alloc_exact(pfns), expected) {
                    (Ok(r), Ok(start)) => {
                        assert_eq!(start, s);
                        assert_eq!(r.pfns(), pfns);
                        held.push(r);
                    }
                    (Err(g), Err(e)) => assert_eq!(g, e, "alloc_exact({pfns:?})"),
                    (g, e) => panic!("alloc_exact({pfns:?}): {g:?}, model {e:?}"),
                }
            }
        }
        check(&mb, &model);
    }
    // Every held frame is reserved, and no two held runs share a frame.
    held.sort_by_key(|r| r.pfns().start());
    for w in held.windows(2) {
        assert!(
            w[0].pfns().end() <= w[1].pfns().start().as_u64(),
            "a frame handed out twice"
        );
    }
    for r in &held {
        let (s, e) = r.pfns().bytes();
        assert!(model.reserved.iter().any(|&(rs, re)| rs <= s && e <= re));
    }
});
