//! The firmware map at the edges of the address space (found by fuzzing `from_firmware`):
//! RAM in the last page of the address space, RAM beyond the last frame number, and the
//! causes reported for refused entries.

use hal_core::addr::{MAX_PFN, PAGE_SIZE};
use hal_core::memblock::{MapError, MapReport, Memblock, MemblockError};
use hal_core::memmap::{MemRegion, RegionKind};

const MIB: u64 = 1 << 20;

fn ram(start: u64, len: u64) -> MemRegion {
    MemRegion {
        start,
        len,
        kind: RegionKind::Ram,
    }
}

/// `Memblock::from_firmware` over maps that describe no real memory.
fn firmware(map: &[MemRegion]) -> Result<(Memblock<8>, MapReport), MapError> {
    // SAFETY: the memblock is only inspected; no frame it could hand out is dereferenced.
    unsafe { Memblock::<8>::from_firmware(map) }
}

fn memory<const N: usize>(mb: &Memblock<N>) -> Vec<(u64, u64)> {
    mb.memory().iter().map(|r| (r.start(), r.end())).collect()
}

#[test]
fn ram_in_the_last_page_of_the_address_space_holds_no_page() {
    // Rounding its start up to a page passes 2^64: an overflow panic in debug builds, and in
    // release builds a start of 0, so nearly the whole address space was taken as RAM (or
    // refused as an "overlap" with the RAM before it).
    let last_page = u64::MAX - PAGE_SIZE + 1;
    for (start, len) in [(last_page + 1, PAGE_SIZE - 2), (last_page + 0x800, 0x7ff)] {
        let map = [ram(0, 16 * MIB), ram(start, len)];
        let (mb, report) = firmware(&map).expect("the first entry is RAM");
        assert_eq!(memory(&mb), [(0, 16 * MIB)]);
        assert_eq!(report.trimmed_bytes, len, "the partial page is trimmed");
        assert_eq!(report.ram_entries, 1);
    }
    let alone = [ram(last_page + 1, PAGE_SIZE - 2)];
    assert_eq!(firmware(&alone).unwrap_err(), MapError::NoRam);
}

#[test]
fn ram_beyond_the_last_frame_number_is_dropped_and_counted() {
    let top = MAX_PFN * PAGE_SIZE;
    // Straddling the limit: the part below is kept, the part above counted.
    let map = [
        ram(0, 16 * MIB),
        ram(top - 2 * MIB, 6 * MIB),
        ram(top + 8 * MIB, MIB),
    ];
    let (mb, report) = firmware(&map).unwrap();
    assert_eq!(memory(&mb), [(0, 16 * MIB), (top - 2 * MIB, top)]);
    assert_eq!(
        report,
        MapReport {
            ram_entries: 2,
            ram_bytes: 18 * MIB,
            trimmed_bytes: 0,
            unaddressable_bytes: 5 * MIB,
        }
    );
    // Every frame memblock holds has a frame number.
    assert!(mb.memory().iter().all(|r| r.end() <= top));
    // Only RAM no frame number can name: no usable RAM.
    let only_high = [ram(top, 16 * MIB)];
    assert_eq!(firmware(&only_high).unwrap_err(), MapError::NoRam);
}

#[test]
fn errors_say_what_happened() {
    let e = MapError::Memblock {
        index: 3,
        error: MemblockError::Capacity,
    };
    assert_eq!(
        e.to_string(),
        "map entry 3 refused by memblock: more regions than memblock's fixed capacity"
    );
    let source = core::error::Error::source(&e).expect("memblock's error is the source");
    assert_eq!(source.to_string(), MemblockError::Capacity.to_string());
    assert_eq!(
        MapError::Overlap { index: 2 }.to_string(),
        "Overlap: map entry 2 overlaps the previous one"
    );
    assert_eq!(
        MemblockError::Unaligned {
            start: 0x1001,
            end: 0x3000
        }
        .to_string(),
        "range [0x1001, 0x3000) is not page-aligned"
    );
}

/// The bytes of RAM in `map`, in 128 bits: what the report must account for, every byte.
fn ram_len(map: &[MemRegion]) -> u128 {
    map.iter()
        .filter(|e| e.kind == RegionKind::Ram)
        .map(|e| u128::from(e.len))
        .sum()
}

fn accounted(r: &MapReport) -> u128 {
    u128::from(r.ram_bytes) + u128::from(r.trimmed_bytes) + u128::from(r.unaddressable_bytes)
}

#[test]
fn an_entry_ending_at_the_top_of_the_address_space_does_not_overflow() {
    // `[2^64 - 4096, 2^64)` ends at the top: it runs past nothing (it was refused as an
    // overflow, and the whole map with it).
    let top = MAX_PFN * PAGE_SIZE;
    let last_page = u64::MAX - PAGE_SIZE + 1;
    let reserved = MemRegion {
        start: last_page,
        len: PAGE_SIZE,
        kind: RegionKind::Reserved,
    };
    let map = [ram(0, 16 * MIB), reserved];
    let (mb, report) = firmware(&map).expect("a map whose last entry ends at 2^64");
    assert_eq!(memory(&mb), [(0, 16 * MIB)]);
    assert_eq!(accounted(&report), ram_len(&map));
    // RAM up to the top, from a partial page below the last frame number: the whole pages
    // below it are kept, the partial page trimmed, the rest counted unaddressable.
    for start in [
        top - PAGE_SIZE - 0x800,
        top - 8 * MIB,
        top,
        1 << 60,
        last_page,
    ] {
        let map = [ram(0, 16 * MIB), ram(start, u64::MAX - start + 1)];
        let (mb, report) = firmware(&map).expect("RAM up to 2^64");
        let kept_from = start.next_multiple_of(PAGE_SIZE);
        let mut expected = vec![(0, 16 * MIB)];
        if kept_from < top {
            expected.push((kept_from, top));
        }
        assert_eq!(memory(&mb), expected, "RAM from {start:#x} to 2^64");
        assert_eq!(report.trimmed_bytes, kept_from - start);
        let above = (1u128 << 64) - u128::from(kept_from.max(top));
        assert_eq!(u128::from(report.unaddressable_bytes), above);
        assert_eq!(
            accounted(&report),
            ram_len(&map),
            "every byte accounted for"
        );
    }
    // RAM in part of the last page, up to 2^64: no whole page, all trimmed.
    let map = [ram(0, 16 * MIB), ram(last_page + 1, PAGE_SIZE - 1)];
    let (_, report) = firmware(&map).unwrap();
    assert_eq!(report.trimmed_bytes, PAGE_SIZE - 1);
    // One byte more does run past the top; an entry after one that ends there overlaps it.
    let past = [ram(0, 16 * MIB), ram(last_page, PAGE_SIZE + 1)];
    assert_eq!(
        firmware(&past).unwrap_err(),
        MapError::Overflow { index: 1 }
    );
    let after = [ram(0, 16 * MIB), reserved, ram(last_page, 16)];
    assert_eq!(
        firmware(&after).unwrap_err(),
        MapError::Overlap { index: 2 }
    );
    let (max_len, next) = (ram(0, u64::MAX), ram(u64::MAX, 1));
    let (_, report) = firmware(&[max_len]).expect("[0, 2^64 - 1)");
    assert_eq!(accounted(&report), u128::from(u64::MAX));
    assert_eq!(
        firmware(&[max_len, next]).map(|(_, r)| r.ram_entries),
        Ok(1),
        "[2^64 - 1, 2^64) follows [0, 2^64 - 1): a byte, no page"
    );
}
