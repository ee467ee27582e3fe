//! Independent expectations: which page maps each frame, which tables that needs, and a
//! walk of the sim's tables that does not go through hal-core.

use hal_core::direct_map::PageSize;
use hal_core::memblock::{Memblock, Region};
use hal_core::{PageSizes, PageTableFlags, Pfn, PfnRange, Pte, TableLevel};

use super::sim::Sim;

/// A run of expected leaves: `pages` pages of `size` from frame `pfn`, read-only at build time
/// or not. Runs are maximal: neighbours differ in size or protection, or are not contiguous.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expect {
    pub pfn: u64,
    pub pages: u64,
    pub size: PageSize,
    pub ro: bool,
}

impl Expect {
    pub fn end(&self) -> u64 {
        self.pfn + self.pages * self.size.frames()
    }
}

/// Whether `pfn` is in a set of frame ranges.
pub fn in_set(set: &[PfnRange], pfn: u64) -> bool {
    set.iter()
        .any(|r| r.start().as_u64() <= pfn && pfn < r.end())
}

fn overlaps_set(set: &[PfnRange], start: u64, len: u64) -> bool {
    set.iter()
        .any(|r| r.start().as_u64() < start + len && start < r.end())
}

/// Appends a page, merging it into the last run when it continues it.
pub fn push_page(out: &mut Vec<Expect>, pfn: u64, size: PageSize, ro: bool) {
    if let Some(last) = out.last_mut() {
        if last.size == size && last.ro == ro && last.end() == pfn {
            last.pages += 1;
            return;
        }
    }
    out.push(Expect {
        pfn,
        pages: 1,
        size,
        ro,
    });
}

/// The leaves a direct map of `ranges` must have: for each frame, the largest page size the
/// sizes allow whose aligned block lies inside the frame's range and holds no read-only frame;
/// 4 KiB otherwise (read-only if the frame is). Written from the definition, page by page, not
/// from `Runs`.
pub fn expected_leaves(ranges: &[PfnRange], ro: &[PfnRange], sizes: PageSizes) -> Vec<Expect> {
    let mut large = Vec::new();
    if sizes.contains(PageSizes::SIZE_1G) {
        large.push(PageSize::Size1G);
    }
    if sizes.contains(PageSizes::SIZE_2M) {
        large.push(PageSize::Size2M);
    }
    let mut out = Vec::new();
    for r in ranges {
        let (s, e) = (r.start().as_u64(), r.end());
        let mut p = s;
        'page: while p < e {
            for &size in &large {
                let n = size.frames();
                if p % n == 0 && p + n <= e && !overlaps_set(ro, p, n) {
                    push_page(&mut out, p, size, false);
                    p += n;
                    continue 'page;
                }
            }
            push_page(&mut out, p, PageSize::Size4K, in_set(ro, p));
            p += 1;
        }
    }
    out
}

/// Pages per size (4K, 2M, 1G) and read-only 4 KiB pages.
pub fn page_counts(runs: &[Expect]) -> ([u64; 3], u64) {
    let mut pages = [0; 3];
    let mut ro = 0;
    for r in runs {
        pages[r.size as usize] += r.pages;
        if r.ro {
            ro += r.pages;
        }
    }
    (pages, ro)
}

/// The tables (below the root) the leaves at `base` need, per level `[l1, l2, l3]`, as sorted
/// keys: the virtual address shifted by the span of the parent's entry.
pub fn table_keys(runs: &[Expect], base: u64) -> [Vec<u64>; 3] {
    let mut keys: [Vec<u64>; 3] = Default::default();
    for r in runs {
        let first = base.wrapping_add(r.pfn << 12);
        let last = base.wrapping_add((r.end() - 1) << 12);
        let mut add = |level: usize, shift: u32| {
            let v = &mut keys[level];
            for k in first >> shift..=last >> shift {
                if v.last() != Some(&k) {
                    v.push(k);
                }
            }
        };
        add(2, 39);
        if r.size != PageSize::Size1G {
            add(1, 30);
        }
        if r.size == PageSize::Size4K {
            add(0, 21);
        }
    }
    for v in &mut keys {
        v.sort_unstable();
        v.dedup();
    }
    keys
}

/// A leaf found by walking the sim's tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leaf {
    pub va: u64,
    pub pfn: u64,
    pub size: PageSize,
    pub flags: PageTableFlags,
}

/// What a walk found under some root slots.
#[derive(Debug, Default)]
pub struct Tree {
    /// In ascending virtual order.
    pub leaves: Vec<Leaf>,
    /// Every table reached (below the root), with its level, as often as it was reached.
    pub tables: Vec<(u64, TableLevel)>,
    pub errors: Vec<String>,
}

fn sign_extend(va: u64) -> u64 {
    if va & (1 << 47) != 0 {
        va | 0xffff_0000_0000_0000
    } else {
        va
    }
}

/// Walks the root slots `slots` of `root` directly in the sim's memory.
pub fn walk(sim: &Sim, root: u64, slots: std::ops::Range<u16>) -> Tree {
    let mut tree = Tree::default();
    for slot in slots {
        let Some(e) = sim.peek(root, slot) else {
            tree.errors.push(format!("root {root:#x} has no contents"));
            return tree;
        };
        let pte = Pte::from_bits(e);
        if !pte.is_present() {
            continue;
        }
        if pte.is_huge() {
            tree.errors.push(format!("huge bit at L4 slot {slot}"));
            continue;
        }
        walk_table(
            sim,
            pte.pfn().as_u64(),
            TableLevel::L3,
            u64::from(slot) << 39,
            &mut tree,
        );
    }
    tree
}

fn walk_table(sim: &Sim, t: u64, level: TableLevel, va0: u64, tree: &mut Tree) {
    tree.tables.push((t, level));
    for i in 0..512u16 {
        let Some(e) = sim.peek(t, i) else {
            tree.errors
                .push(format!("table {t:#x} ({level:?}) has no contents"));
            return;
        };
        let pte = Pte::from_bits(e);
        if !pte.is_present() {
            continue;
        }
        let va = va0 + (u64::from(i) << level.entry_shift());
        if level == TableLevel::L1 || pte.is_huge() {
            let size = match level {
                TableLevel::L1 => PageSize::Size4K,
                TableLevel::L2 => PageSize::Size2M,
                _ => PageSize::Size1G,
            };
            tree.leaves.push(Leaf {
                va: sign_extend(va),
                pfn: pte.pfn().as_u64(),
                size,
                flags: pte.flags(),
            });
        } else {
            walk_table(sim, pte.pfn().as_u64(), level.child().unwrap(), va, tree);
        }
    }
}

/// The root slots `[first, last]` a direct map of `ranges` at `base` touches, as a range.
pub fn slots(ranges: &[PfnRange], base: u64) -> std::ops::Range<u16> {
    let nonempty: Vec<&PfnRange> = ranges.iter().filter(|r| !r.is_empty()).collect();
    match (nonempty.first(), nonempty.last()) {
        (Some(f), Some(l)) => {
            let a = TableLevel::L4.index_of(base + (f.start().as_u64() << 12));
            let b = TableLevel::L4.index_of(base + ((l.end() - 1) << 12));
            a..b + 1
        }
        _ => {
            let a = TableLevel::L4.index_of(base);
            a..a
        }
    }
}

/// memory − reserved, computed from the definition.
pub fn free_oracle(memory: &[Region], reserved: &[Region]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for m in memory {
        let mut cur = m.start();
        for r in reserved {
            if r.end() <= cur || r.start() >= m.end() {
                continue;
            }
            if r.start() > cur {
                out.push((cur, r.start()));
            }
            cur = cur.max(r.end());
        }
        if cur < m.end() {
            out.push((cur, m.end()));
        }
    }
    out
}

/// Memory regions as frame ranges.
pub fn pfn_ranges<const N: usize>(mb: &Memblock<N>) -> Vec<PfnRange> {
    mb.memory()
        .iter()
        .map(|r| PfnRange::new(Pfn::new(r.start() >> 12).unwrap(), r.end() >> 12).unwrap())
        .collect()
}

/// Sorted, merged union of frame ranges.
pub fn merge(mut v: Vec<PfnRange>) -> Vec<PfnRange> {
    v.retain(|r| !r.is_empty());
    v.sort_by_key(|r| r.start());
    let mut out: Vec<PfnRange> = Vec::new();
    for r in v {
        match out.last_mut() {
            Some(last) if r.start().as_u64() <= last.end() => {
                *last = PfnRange::new(last.start(), last.end().max(r.end())).unwrap();
            }
            _ => out.push(r),
        }
    }
    out
}

/// Whether `[start, end)` (bytes) lies inside one of `regions`.
pub fn inside(regions: &[(u64, u64)], start: u64, end: u64) -> bool {
    regions.iter().any(|&(s, e)| s <= start && end <= e)
}
