//! The firmware memory map into memblock: `Memblock::from_firmware` against an independent
//! reference of the documented rules (first bad entry and its cause; touching RAM entries
//! joined, then trimmed inward to whole pages and cut at the last addressable frame; the
//! report's figures).

#![no_main]

use hal_core::addr::{MAX_PFN, PAGE_SIZE};
use hal_core::memblock::{MapError, MapReport, Memblock};
use hal_core::memmap::{MemRegion, RegionKind};
use libfuzzer_sys::fuzz_target;
use pvmmu_fuzz::input::Input;

const N: usize = 8;
const PAGE: u128 = PAGE_SIZE as u128;

fn decode(data: &[u8]) -> Vec<MemRegion> {
    let mut inp = Input::new(data);
    let mut map = Vec::new();
    let mut prev_end = 0u64;
    while !inp.is_empty() && map.len() < 32 {
        let mode = inp.u8();
        let kind = match mode & 3 {
            0 | 1 => RegionKind::Ram,
            2 => RegionKind::Reserved,
            _ => RegionKind::Other(u32::from(inp.u8())),
        };
        // Mostly sorted maps (relative to the previous end), so that validation passes often
        // enough to reach memblock.
        let start = if mode & 4 == 0 {
            prev_end
                .wrapping_add(u64::from(inp.u16()) * (if mode & 8 == 0 { PAGE_SIZE } else { 1 }))
        } else {
            inp.addr()
        };
        let len = match (mode >> 4) & 3 {
            0 => u64::from(inp.u16()) * PAGE_SIZE,
            1 => u64::from(inp.u16()),
            2 => inp.addr(),
            _ => inp.u64(),
        };
        prev_end = start.wrapping_add(len);
        map.push(MemRegion { start, len, kind });
    }
    map
}

/// What `from_firmware` must do, written from its documentation, not from its code: touching
/// RAM entries joined into spans, each span trimmed inward to whole pages, cut at `MAX_PFN`.
fn reference(map: &[MemRegion]) -> Result<(Vec<(u64, u64)>, MapReport), MapError> {
    let limit = u128::from(MAX_PFN) * PAGE;
    // The first bad entry: only the entries before it can have added RAM.
    let mut bad = None;
    for (index, e) in map.iter().enumerate() {
        // In u128 throughout, so nothing can overflow: an entry may end at 2^64 exactly.
        let end = u128::from(e.start) + u128::from(e.len);
        let prev = index.checked_sub(1).map(|i| map[i]);
        bad = if e.len == 0 {
            Some((index, MapError::ZeroLength { index }))
        } else if end > 1 << 64 {
            Some((index, MapError::Overflow { index }))
        } else if prev.is_some_and(|p| e.start < p.start) {
            Some((index, MapError::Unsorted { index }))
        } else if prev
            .is_some_and(|p| u128::from(e.start) < u128::from(p.start) + u128::from(p.len))
        {
            Some((index, MapError::Overlap { index }))
        } else {
            None
        };
        if bad.is_some() {
            break;
        }
    }
    let valid = &map[..bad.map_or(map.len(), |b| b.0)];
    // Spans `[start, end)` of touching RAM entries, with the indices of their entries.
    let mut spans: Vec<(u128, u128, std::ops::Range<usize>)> = Vec::new();
    for (i, e) in valid.iter().enumerate() {
        if e.kind != RegionKind::Ram {
            continue;
        }
        let (s, t) = (u128::from(e.start), u128::from(e.start) + u128::from(e.len));
        match spans.last_mut() {
            Some(span) if span.1 == s && span.2.end == i => {
                span.1 = t;
                span.2.end = i + 1;
            }
            _ => spans.push((s, t, i..i + 1)),
        }
    }
    let mut mem: Vec<(u64, u64)> = Vec::new();
    let mut report = MapReport::default();
    let mut whole_bytes = 0u128;
    for (s, t, entries) in spans {
        let (ws, wt) = (s.div_ceil(PAGE) * PAGE, t / PAGE * PAGE);
        if ws >= wt {
            continue;
        }
        whole_bytes += wt - ws;
        let kept_end = wt.min(limit);
        report.unaddressable_bytes += (wt - ws.max(kept_end)) as u64;
        if ws >= kept_end {
            continue;
        }
        if mem.len() == N {
            // The span's region is added by the entry holding its first page's last byte.
            let byte = ws + PAGE - 1;
            let index = entries
                .clone()
                .find(|&i| {
                    let e = valid[i];
                    u128::from(e.start) <= byte && byte < u128::from(e.start) + u128::from(e.len)
                })
                .expect("the span's first page lies in its entries");
            return Err(MapError::TooMany { index });
        }
        mem.push((ws as u64, kept_end as u64));
        report.ram_bytes += (kept_end - ws) as u64;
        report.ram_entries += entries
            .filter(|&i| {
                let e = valid[i];
                u128::from(e.start) < kept_end && ws < u128::from(e.start) + u128::from(e.len)
            })
            .count();
    }
    if let Some((_, e)) = bad {
        return Err(e);
    }
    let all: u128 = valid
        .iter()
        .filter(|e| e.kind == RegionKind::Ram)
        .map(|e| u128::from(e.len))
        .sum();
    report.trimmed_bytes = (all - whole_bytes) as u64;
    if report.ram_bytes == 0 {
        return Err(MapError::NoRam);
    }
    Ok((mem, report))
}

fuzz_target!(|data: &[u8]| {
    let map = decode(data);
    let expected = reference(&map);
    // SAFETY: the fuzzed memblock owns no real memory: it is only inspected, nothing it could
    // hand out is dereferenced.
    let got = unsafe { Memblock::<N>::from_firmware(&map) }.map(|(mb, r)| {
        (
            mb.memory().iter().map(|r| (r.start(), r.end())).collect(),
            r,
        )
    });
    assert_eq!(got, expected, "map {map:x?}");
});
