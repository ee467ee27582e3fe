//! The visit against a tree the test builds itself: what it must see is computed from the
//! list of mappings the tree was built from (sorted by address, tables before what they
//! hold), not by walking anything.
extern crate std;
use std::collections::{BTreeMap, BTreeSet};
use std::vec::Vec;

use proptest::prelude::*;
use x86_64::structures::paging::PageTableFlags as F;

use super::*;
use crate::level::TableLevel;
use crate::pte::Pte;

/// Tables by number (0 is the root), with their entries; a table entry's frame is the
/// child's number.
struct Tree {
    tables: BTreeMap<u64, [u64; 512]>,
    /// What each table's entries were made of: (va, level, bits, leaf), in build order.
    made: Vec<(u64, TableLevel, u64, bool)>,
}

fn canonical(va: u64) -> u64 {
    (((va << 16) as i64) >> 16) as u64
}

impl Tree {
    /// Maps `(va, level)` pages in order, creating tables; a page that would sit on a
    /// large page, or a large page over a table, is left out.
    fn build(pages: &[(u64, TableLevel)]) -> Self {
        let mut t = Tree {
            tables: BTreeMap::from([(0, [0; 512])]),
            made: Vec::new(),
        };
        let mut next = 1u64;
        'pages: for &(va, leaf_level) in pages {
            let va = canonical(va & !(leaf_level.entry_span() - 1));
            let mut table = 0;
            let mut level = TableLevel::L4;
            while level != leaf_level {
                let i = usize::from(level.index_of(va));
                let e = t.tables[&table][i];
                if e & 1 == 0 {
                    let child = next;
                    next += 1;
                    t.tables.insert(child, [0; 512]);
                    let bits = (child << 12) | 0b11;
                    t.tables.get_mut(&table).unwrap()[i] = bits;
                    let start = va & !(level.entry_span() - 1);
                    t.made.push((start, level, bits, false));
                    table = child;
                } else if e & F::HUGE_PAGE.bits() != 0 && level != TableLevel::L4 {
                    continue 'pages;
                } else {
                    table = (e & 0x000f_ffff_ffff_f000) >> 12;
                }
                level = level.child().unwrap();
            }
            let i = usize::from(level.index_of(va));
            if t.tables[&table][i] & 1 != 0 {
                continue;
            }
            let huge = if level == TableLevel::L1 {
                0
            } else {
                F::HUGE_PAGE.bits()
            };
            // Frame numbers past the table numbers: never taken for a table.
            let bits = ((1 << 30) + (va >> 12 & 0xff_ffff)) << 12 | huge | 0b11;
            t.tables.get_mut(&table).unwrap()[i] = bits;
            t.made.push((va, level, bits, true));
        }
        t
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Enter(u64, TableLevel, u64, u64),
    Entry(Slot<u64>, u64, bool),
    Leave(u64, TableLevel, u64, u64, Option<(Slot<u64>, u64)>),
}

/// The reader's error for a read of a frame that is no table.
const NO_TABLE: usize = usize::MAX;

/// Records everything; descends unless `skip(va)`; fails the `fail_at`-th read.
struct Rec<'a> {
    tree: &'a Tree,
    seen: Vec<Seen>,
    reads: Vec<(u64, u16)>,
    skip: &'a dyn Fn(u64) -> bool,
    fail_at: Option<usize>,
}

impl Visitor for Rec<'_> {
    type Table = u64;
    type Error = usize;
    fn read(&mut self, table: u64, _: TableLevel, index: u16) -> Result<Pte, usize> {
        if self.fail_at == Some(self.reads.len()) {
            return Err(self.reads.len());
        }
        self.reads.push((table, index));
        // A frame that is no table of the tree (a page read as a table): an error of its own.
        let t = self.tree.tables.get(&table).ok_or(NO_TABLE)?;
        Ok(Pte::from_bits(t[usize::from(index)]))
    }
    fn child(&mut self, _: &Slot<u64>, e: Pte) -> Result<u64, usize> {
        Ok(e.pfn().as_u64())
    }
    fn enter(&mut self, t: &InTable<u64>) -> Result<(), usize> {
        self.seen.push(Seen::Enter(t.table, t.level, t.lo, t.last));
        Ok(())
    }
    fn entry(&mut self, s: &Slot<u64>, e: Pte, leaf: bool) -> Result<Step, usize> {
        self.seen.push(Seen::Entry(*s, e.bits(), leaf));
        Ok(if (self.skip)(s.va) {
            Step::Next
        } else {
            Step::Descend
        })
    }
    fn leave(&mut self, t: &InTable<u64>, above: Option<(&Slot<u64>, Pte)>) -> Result<(), usize> {
        self.seen.push(Seen::Leave(
            t.table,
            t.level,
            t.lo,
            t.last,
            above.map(|(s, e)| (*s, e.bits())),
        ));
        Ok(())
    }
}

fn last_of(va: u64, level: TableLevel) -> u64 {
    va + (level.entry_span() - 1)
}

/// What the visit must report for `lo..=last`: every made entry meeting the range and not
/// under a skipped table entry, by address, a table entry before what it holds.
fn expected(
    tree: &Tree,
    lo: u64,
    last: u64,
    skip: &dyn Fn(u64) -> bool,
) -> Vec<(u64, TableLevel, u64, bool)> {
    let meets = |va: u64, l: TableLevel| va <= last && last_of(va, l) >= lo;
    let skipped: Vec<_> = tree
        .made
        .iter()
        .filter(|&&(va, l, _, leaf)| !leaf && meets(va, l) && skip(va))
        .copied()
        .collect();
    let mut want: Vec<_> = tree
        .made
        .iter()
        .filter(|&&(va, l, _, _)| meets(va, l))
        .filter(|&&(va, l, _, _)| {
            !skipped
                .iter()
                .any(|&(s, sl, _, _)| sl > l && (s..=last_of(s, sl)).contains(&va))
        })
        .copied()
        .collect();
    want.sort_by_key(|&(va, l, _, _)| (va, core::cmp::Reverse(l)));
    want
}

fn check(pages: &[(u64, TableLevel)], lo: u64, last: u64, salt: u64) -> Result<(), TestCaseError> {
    let tree = Tree::build(pages);
    let skip = move |va: u64| (va >> 21 ^ salt).count_ones() % 4 == 0;
    let mut r = Rec {
        tree: &tree,
        seen: Vec::new(),
        reads: Vec::new(),
        skip: &skip,
        fail_at: None,
    };
    prop_assert_eq!(visit(0, lo..=last, &mut r), Ok(()));
    let got: Vec<_> = r
        .seen
        .iter()
        .filter_map(|s| match s {
            Seen::Entry(s, bits, leaf) => Some((s.va, s.level, *bits, *leaf)),
            _ => None,
        })
        .collect();
    prop_assert_eq!(&got, &expected(&tree, lo, last, &skip));
    // Enters and leaves nest, the root outermost; a table's part of the range is the
    // range clamped to its entry; `above` is the entry that led there; slots name the
    // table holding them and their index.
    let mut stack: Vec<(u64, TableLevel, u64, u64, Option<(Slot<u64>, u64)>)> = Vec::new();
    let mut pending: Option<(Slot<u64>, u64)> = None;
    for s in &r.seen {
        match s.clone() {
            Seen::Enter(t, l, a, b) => {
                match (stack.last(), pending) {
                    (None, None) => {
                        prop_assert!(t == 0 && l == TableLevel::L4 && (a, b) == (lo, last))
                    }
                    (Some(_), Some((slot, bits))) => {
                        prop_assert_eq!(t, (bits & 0x000f_ffff_ffff_f000) >> 12);
                        prop_assert_eq!(Some(l), slot.level.child());
                        prop_assert_eq!((a, b), (lo.max(slot.va), last.min(slot.last())));
                    }
                    _ => prop_assert!(false, "enter without an entry above: {:?}", s),
                }
                stack.push((t, l, a, b, pending.take()));
            }
            Seen::Entry(slot, bits, leaf) => {
                let top = stack.last().unwrap();
                prop_assert_eq!((slot.table, slot.level), (top.0, top.1));
                prop_assert_eq!(tree.tables[&slot.table][usize::from(slot.index)], bits);
                prop_assert_eq!(slot.level.index_of(slot.va), slot.index);
                pending = (!leaf && !skip(slot.va)).then_some((slot, bits));
            }
            Seen::Leave(t, l, a, b, above) => {
                let top = stack.pop().unwrap();
                prop_assert_eq!((t, l, a, b, above), top);
                pending = None;
            }
        }
    }
    prop_assert!(stack.is_empty());
    // Each entry read once, and exactly those of the entered tables whose span meets the
    // table's part of the range.
    let reads: BTreeSet<_> = r.reads.iter().copied().collect();
    prop_assert_eq!(reads.len(), r.reads.len());
    let mut want = BTreeSet::new();
    for s in &r.seen {
        if let Seen::Enter(t, l, a, b) = *s {
            let span = l.entry_span();
            for i in 0..512u16 {
                let va = if l == TableLevel::L4 {
                    canonical(u64::from(i) << 39)
                } else {
                    (a & !(span * 512 - 1)) + u64::from(i) * span
                };
                if va <= b && last_of(va, l) >= a {
                    want.insert((t, i));
                }
            }
        }
    }
    prop_assert_eq!(reads, want);
    // The reader's error ends the visit at once, passed through as it is.
    if !r.reads.is_empty() {
        let k = (salt as usize) % r.reads.len();
        let mut f = Rec {
            tree: &tree,
            seen: Vec::new(),
            reads: Vec::new(),
            skip: &skip,
            fail_at: Some(k),
        };
        prop_assert_eq!(visit(0, lo..=last, &mut f), Err(k));
        prop_assert_eq!(&f.reads[..], &r.reads[..k]);
        prop_assert!(f.seen.len() <= r.seen.len() && f.seen[..] == r.seen[..f.seen.len()]);
    }
    Ok(())
}

fn level() -> impl Strategy<Value = TableLevel> {
    prop_oneof![
        6 => Just(TableLevel::L1),
        2 => Just(TableLevel::L2),
        1 => Just(TableLevel::L3),
    ]
}

/// Addresses near a few places (both halves, the edges of the halves), so pages share
/// tables and ranges cut through them.
fn va() -> impl Strategy<Value = u64> {
    let base = prop_oneof![
        Just(0u64),
        Just(0x0000_7fff_c000_0000),
        Just(0x0000_4000_0000_0000),
        Just(0xffff_8000_0000_0000),
        Just(0xffff_ffff_c000_0000),
    ];
    (base, 0u64..(1 << 31)).prop_map(|(b, o)| canonical(b.wrapping_add(o << 12 >> 3)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn visit_sees_what_the_tree_was_built_from(
        pages in prop::collection::vec((va(), level()), 0..40),
        a in va(),
        b in va(),
        salt in any::<u64>(),
    ) {
        let (lo, last) = if a <= b { (a, b | 0xfff) } else { (b, a | 0xfff) };
        check(&pages, lo, last, salt)?;
        check(&pages, 0, u64::MAX, salt)?;
    }
}

#[test]
fn large_pages_are_leaves_below_the_root_only() {
    let e = Pte::from_bits((7 << 12) | F::HUGE_PAGE.bits() | 1);
    assert!(is_leaf(TableLevel::L1, Pte::from_bits(1)));
    assert!(is_leaf(TableLevel::L2, e) && is_leaf(TableLevel::L3, e));
    assert!(!is_leaf(TableLevel::L4, e));
    assert!(!is_leaf(TableLevel::L2, Pte::from_bits((7 << 12) | 1)));
}

#[test]
fn the_hole_between_the_halves_is_no_entry() {
    // A page at each edge of the hole; a range inside the hole sees only the root.
    let pages = [
        (0x0000_7fff_ffff_f000, TableLevel::L1),
        (0xffff_8000_0000_0000, TableLevel::L1),
    ];
    let tree = Tree::build(&pages);
    let never = |_: u64| false;
    let mut r = Rec {
        tree: &tree,
        seen: Vec::new(),
        reads: Vec::new(),
        skip: &never,
        fail_at: None,
    };
    visit(0, 0x0000_8000_0000_0000..=0xffff_7fff_ffff_ffff, &mut r).unwrap();
    assert!(r.reads.is_empty());
    assert_eq!(r.seen.len(), 2);
    let mut r = Rec {
        tree: &tree,
        seen: Vec::new(),
        reads: Vec::new(),
        skip: &never,
        fail_at: None,
    };
    visit(0, 0x0000_7fff_ffff_f000..=0xffff_8000_0000_0fff, &mut r).unwrap();
    let roots: Vec<_> = r
        .seen
        .iter()
        .filter_map(|s| match s {
            Seen::Entry(s, _, _) if s.level == TableLevel::L4 => Some((s.index, s.va)),
            _ => None,
        })
        .collect();
    assert_eq!(
        roots,
        [(255, 0x0000_7f80_0000_0000), (256, 0xffff_8000_0000_0000)]
    );
    // Only the two root slots were read at the root.
    assert_eq!(r.reads.iter().filter(|r| r.0 == 0).count(), 2);
}

#[test]
fn a_tree_that_loops_is_visited_four_deep_at_most() {
    // Root slot 3 names the root itself (a recursive mapping).
    let mut tree = Tree::build(&[]);
    tree.tables.get_mut(&0).unwrap()[3] = 0b11;
    let always = |_: u64| false;
    let mut r = Rec {
        tree: &tree,
        seen: Vec::new(),
        reads: Vec::new(),
        skip: &always,
        fail_at: None,
    };
    visit(0, 0..=u64::MAX, &mut r).unwrap();
    let entries: Vec<_> = r
        .seen
        .iter()
        .filter_map(|s| match s {
            Seen::Entry(s, _, leaf) => Some((s.level, s.va, *leaf)),
            _ => None,
        })
        .collect();
    // The root's slot 3, read as an L3, L2 and L1: the L1 entry is a leaf.
    let span = |l: TableLevel| l.entry_span();
    assert_eq!(
        entries,
        [
            (TableLevel::L4, 3 * span(TableLevel::L4), false),
            (
                TableLevel::L3,
                3 * span(TableLevel::L4) + 3 * span(TableLevel::L3),
                false
            ),
            (
                TableLevel::L2,
                3 * span(TableLevel::L4) + 3 * span(TableLevel::L3) + 3 * span(TableLevel::L2),
                false
            ),
            (
                TableLevel::L1,
                3 * span(TableLevel::L4)
                    + 3 * span(TableLevel::L3)
                    + 3 * span(TableLevel::L2)
                    + 3 * span(TableLevel::L1),
                true
            ),
        ]
    );
}
