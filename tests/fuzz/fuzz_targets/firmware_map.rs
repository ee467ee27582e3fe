//! The firmware memory map into memblock: `Memblock::from_firmware` against an independent
//! reference of the documented rules (first bad entry and its cause; RAM trimmed inward to
//! whole pages, cut at the last addressable frame, adjacent RAM merged; the report's figures).

#![no_main]

use hal_core::addr::{MAX_PFN, PAGE_SIZE};
use hal_core::memblock::{MapError, MapReport, Memblock};
use hal_core::memmap::{MemRegion, RegionKind};
use libfuzzer_sys::fuzz_target;
use pvmmu_fuzz::input::Input;

const N: usize = 8;

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

/// What `from_firmware` must do, written from its documentation, not from its code.
fn reference(map: &[MemRegion]) -> Result<(Vec<(u64, u64)>, MapReport), MapError> {
    let limit = MAX_PFN * PAGE_SIZE;
    let mut mem: Vec<(u64, u64)> = Vec::new();
    let mut report = MapReport::default();
    for (index, e) in map.iter().enumerate() {
        if e.len == 0 {
            return Err(MapError::ZeroLength { index });
        }
        // In u128 throughout, so nothing can overflow: an entry may end at 2^64 exactly.
        let end = u128::from(e.start) + u128::from(e.len);
        if end > 1 << 64 {
            return Err(MapError::Overflow { index });
        }
        if index > 0 {
            let p = map[index - 1];
            if e.start < p.start {
                return Err(MapError::Unsorted { index });
            }
            if u128::from(e.start) < u128::from(p.start) + u128::from(p.len) {
                return Err(MapError::Overlap { index });
            }
        }
        if e.kind != RegionKind::Ram {
            continue;
        }
        // Whole pages inside the entry.
        let s = (u128::from(e.start)).div_ceil(4096) * 4096;
        let t = end / 4096 * 4096;
        let (s, t) = if t > s { (s, t) } else { (0, 0) };
        let usable_end = t.min(u128::from(limit));
        let usable = usable_end.saturating_sub(s);
        let beyond = (t - s) - usable;
        report.trimmed_bytes += e.len - (t - s) as u64;
        report.unaddressable_bytes += beyond as u64;
        let (s, usable) = (s as u64, usable as u64);
        if usable == 0 {
            continue;
        }
        match mem.last_mut() {
            Some(last) if last.1 == s => last.1 = s + usable,
            _ => {
                if mem.len() == N {
                    return Err(MapError::TooMany { index });
                }
                mem.push((s, s + usable));
            }
        }
        report.ram_entries += 1;
        report.ram_bytes += usable;
    }
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
