//! proptest strategies: firmware maps, caps, direct-map parameters; and a runner that counts.

use std::cell::Cell;

use hal_core::backend::Caps;
use hal_core::direct_map::plan::LINUX_PAGE_OFFSET;
use hal_core::memblock::Direction;
use hal_core::memmap::{MemRegion, RegionKind};
use hal_core::PageSizes;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use super::sim::caps;

pub const KIB: u64 = 1 << 10;
pub const MIB: u64 = 1 << 20;
pub const GIB: u64 = 1 << 30;

/// Cases per property: 256, or `PVMMU_PROPTEST_CASES`. A value that is not a positive
/// number fails the property (zero cases would pass without testing anything).
pub fn cases() -> u32 {
    let v = std::env::var("PVMMU_PROPTEST_CASES").ok();
    parse_cases(v.as_deref()).unwrap_or_else(|e| panic!("{e}"))
}

/// `PVMMU_PROPTEST_CASES` read: unset is 256; otherwise a positive integer.
pub fn parse_cases(v: Option<&str>) -> Result<u32, String> {
    match v {
        None => Ok(256),
        Some(v) => match v.trim().parse::<u32>() {
            Ok(0) => Err("PVMMU_PROPTEST_CASES=0 would run no case: set at least 1".into()),
            Ok(n) => Ok(n),
            Err(e) => Err(format!(
                "PVMMU_PROPTEST_CASES={v:?} is not a number of cases: {e}"
            )),
        },
    }
}

/// Runs a property for [`cases`] passing cases and prints how many ran.
pub fn run_prop<S: Strategy>(
    name: &str,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S::Value: std::fmt::Debug,
{
    run_prop_part(name, 1, strategy, test)
}

/// As [`run_prop`], with a `1/part` share of [`cases`] (at least one): for properties whose
/// cases cost as much as a whole lifecycle and whose ground another property covers.
pub fn run_prop_part<S: Strategy>(
    name: &str,
    part: u32,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) where
    S::Value: std::fmt::Debug,
{
    let cases = (cases() / part.max(1)).max(1);
    let config = Config {
        cases,
        failure_persistence: None,
        max_global_rejects: 4096,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let calls = Cell::new(0u64);
    let rejected = Cell::new(0u64);
    let res = runner.run(&strategy, |v| {
        calls.set(calls.get() + 1);
        let r = test(v);
        if let Err(TestCaseError::Reject(_)) = &r {
            rejected.set(rejected.get() + 1);
        }
        r
    });
    if let Err(e) = res {
        panic!("property {name} failed: {e}");
    }
    println!(
        "proptest {name}: {} cases passed ({} rejected, {} calls)",
        cases,
        rejected.get(),
        calls.get()
    );
}

/// A length in `unit`s, log-uniform from 1 to `2^max_log2`.
fn units(max_log2: u32) -> impl Strategy<Value = u64> {
    (0..=max_log2).prop_flat_map(|b| (1u64 << b)..=(1u64 << b) * 2 - 1)
}

/// A page-ish unit: 4 KiB, 2 MiB or 1 GiB, so that large-page alignment happens often.
fn unit() -> impl Strategy<Value = u64> {
    prop_oneof![2 => Just(4 * KIB), 2 => Just(2 * MIB), 1 => Just(GIB)]
}

/// An unaligned nudge of an edge: mostly none.
fn nudge() -> impl Strategy<Value = u64> {
    prop_oneof![6 => Just(0u64), 1 => 1..4 * KIB]
}

fn kind() -> impl Strategy<Value = RegionKind> {
    prop_oneof![
        6 => Just(RegionKind::Ram),
        2 => Just(RegionKind::Reserved),
        1 => Just(RegionKind::AcpiReclaimable),
        1 => Just(RegionKind::AcpiNvs),
        1 => Just(RegionKind::Other(12)),
    ]
}

/// One entry before layout: a gap before it, the alignment its start is rounded up to (then
/// nudged off it by `skew`), its length, its kind.
#[derive(Clone, Copy, Debug)]
pub struct Seg {
    pub gap: u64,
    pub align: u64,
    pub skew: u64,
    pub len: u64,
    pub kind: RegionKind,
}

fn seg(max_len_log2: u32) -> impl Strategy<Value = Seg> {
    let gap = prop_oneof![
        2 => Just(0u64),
        3 => (unit(), units(10)).prop_map(|(u, n)| (u * n).min(1 << 41)),
    ];
    let align = prop_oneof![Just(1u64), Just(4 * KIB), Just(2 * MIB), Just(GIB)];
    let len = (unit(), units(max_len_log2), nudge()).prop_map(|(u, n, a)| (u * n).min(1 << 38) + a);
    (gap, align, nudge(), len, kind()).prop_map(|(gap, align, skew, len, kind)| Seg {
        gap,
        align,
        skew,
        len,
        kind,
    })
}

/// Lays segments out from `start`, in order.
pub fn layout(start: u64, segs: &[Seg]) -> Vec<MemRegion> {
    let mut cur = start;
    segs.iter()
        .map(|s| {
            let start = (cur + s.gap).next_multiple_of(s.align) + s.skew;
            cur = start + s.len;
            MemRegion {
                start,
                len: s.len,
                kind: s.kind,
            }
        })
        .collect()
}

/// A valid firmware map (sorted, disjoint, non-empty entries), up to `n` entries, with
/// unaligned edges, holes, adjacent entries and all kinds.
pub fn firmware_map(n: usize) -> impl Strategy<Value = Vec<MemRegion>> {
    (
        prop_oneof![Just(0u64), 0..2 * MIB],
        prop::collection::vec(seg(12), 1..=n),
    )
        .prop_map(|(start, segs)| layout(start, &segs))
}

/// The map's RAM as spans `[start, end)`: touching RAM entries (one starting where the one
/// before it ends) joined, in map order (the map is sorted).
pub fn ram_spans(map: &[MemRegion]) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    let mut prev_ram = false;
    for e in map {
        let ram = e.kind == RegionKind::Ram;
        match out.last_mut() {
            Some(last) if ram && prev_ram && last.1 == e.start => last.1 = e.start + e.len,
            _ if ram => out.push((e.start, e.start + e.len)),
            _ => {}
        }
        prev_ram = ram;
    }
    out
}

/// Bytes of whole pages of RAM in the map (each span of touching RAM entries trimmed inward).
pub fn ram_bytes(map: &[MemRegion]) -> u64 {
    ram_spans(map)
        .into_iter()
        .map(|(s, t)| (t & !4095).saturating_sub(s.div_ceil(4096) * 4096))
        .sum()
}

/// A backend to play.
pub fn any_caps() -> impl Strategy<Value = Caps> {
    prop_oneof![
        Just(caps::NATIVE),
        Just(caps::NATIVE_2M),
        Just(caps::XEN),
        Just(caps::HYBRID),
    ]
}

/// Page sizes the caller asks for (4 KiB always).
pub fn spec_sizes() -> impl Strategy<Value = PageSizes> {
    prop_oneof![
        4 => Just(PageSizes::all()),
        1 => Just(PageSizes::SIZE_4K),
        1 => Just(PageSizes::SIZE_4K | PageSizes::SIZE_2M),
        1 => Just(PageSizes::SIZE_4K | PageSizes::SIZE_1G),
    ]
}

/// Direct-map bases: Linux's, one 1 GiB off a slot boundary, the lower half, zero.
pub fn base() -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => Just(LINUX_PAGE_OFFSET),
        1 => Just(LINUX_PAGE_OFFSET + 509 * GIB),
        1 => Just(0x0000_0080_0000_0000),
        1 => Just(0),
    ]
}

pub fn direction() -> impl Strategy<Value = Direction> {
    prop_oneof![Just(Direction::TopDown), Just(Direction::BottomUp)]
}

/// The RAM budget of a case: 4 KiB-only maps are kept small (every page is a leaf to check).
pub fn ram_budget(caps: &Caps, sizes: PageSizes) -> u64 {
    if (caps.page_sizes & sizes).contains(PageSizes::SIZE_2M) {
        64 * GIB
    } else {
        GIB
    }
}

/// A map for a whole lifecycle: like [`firmware_map`], with one RAM entry of 8..64 MiB (room
/// for the buffer) at a random place, and RAM beyond `budget` turned into reserved entries.
pub fn lifecycle_map(budget: u64) -> impl Strategy<Value = Vec<MemRegion>> {
    (
        prop_oneof![Just(0u64), 0..2 * MIB],
        prop::collection::vec(seg(8), 0..12),
        0usize..12,
        prop_oneof![8 * MIB..64 * MIB, GIB..4 * GIB],
        prop_oneof![Just(1u64), Just(2 * MIB), Just(GIB)],
        nudge(),
    )
        .prop_map(move |(start, mut segs, at, main, align, skew)| {
            let at = at.min(segs.len());
            let main = main.min(budget);
            segs.insert(
                at,
                Seg {
                    gap: 0,
                    align,
                    skew,
                    len: main,
                    kind: RegionKind::Ram,
                },
            );
            let mut left = budget.saturating_sub(main);
            for (i, s) in segs.iter_mut().enumerate() {
                if i == at || s.kind != RegionKind::Ram {
                    continue;
                }
                if s.len <= left {
                    left -= s.len;
                } else {
                    s.kind = RegionKind::Reserved;
                }
            }
            layout(start, &segs)
        })
}
