//! The guest-side page-table walker, over any way of reading an entry (a backend's
//! [`RawMmu::read`], a backend's own machine-level reads, or plain loads from tables the
//! caller can read): a point walk ([`walk`], and [`translate`] on top of it) and a visit of
//! every present entry over a virtual range ([`visit`], with a [`Visitor`]). It is the one walk
//! of the guest side: the backends, the run-time mapper's unmap, protect and teardown, the Xen
//! board's check of its bootstrap tables and the examples go through it.
//!
//! Host-side checks (the model's walk, the tests' oracle, the runner's walker) stay separate
//! on purpose: they check this one.

use crate::addr::Pfn;
use crate::backend::RawMmu;
use crate::level::TableLevel;
use crate::pte::Pte;

/// Where a virtual address leads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Translation {
    /// The 4 KiB frame the address falls in.
    pub pfn: Pfn,
    /// The level of the leaf entry (1: 4 KiB, 2: 2 MiB, 3: 1 GiB page).
    pub level: TableLevel,
    /// The leaf entry.
    pub leaf: Pte,
}

/// Where a [`walk`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Reached {
    /// The table of the level the walk was asked to stop at.
    Table(Pfn),
    /// A leaf (before that level, for a large page).
    Leaf(Translation),
    /// A not-present entry on the way.
    NotMapped,
}

/// Whether the present entry `e` of a level-`level` table maps a page: every entry of an L1,
/// an entry with PSE in an L2 or L3 (a 2 MiB or 1 GiB page). PSE is reserved in an L4 entry,
/// which always names a table.
#[inline(always)]
pub fn is_leaf(level: TableLevel, e: Pte) -> bool {
    level == TableLevel::L1 || (e.is_huge() && level != TableLevel::L4)
}

/// Walks from `root` towards `va`, reading entries with `read(table, level, index)`; stops at
/// the table of level `stop` (`None`: at the leaf). A large-page entry (PSE below L4) is a
/// leaf ([`is_leaf`]).
pub fn walk<E>(
    root: Pfn,
    va: u64,
    stop: Option<TableLevel>,
    mut read: impl FnMut(Pfn, TableLevel, u16) -> Result<Pte, E>,
) -> Result<Reached, E> {
    let mut table = root;
    let mut level = TableLevel::L4;
    loop {
        if stop == Some(level) {
            return Ok(Reached::Table(table));
        }
        let e = read(table, level, level.index_of(va))?;
        if !e.is_present() {
            return Ok(Reached::NotMapped);
        }
        let child = match level.child() {
            Some(c) if !is_leaf(level, e) => c,
            _ => {
                let within = (va & (level.entry_span() - 1)) >> 12;
                return Ok(match Pfn::new(e.pfn().as_u64() + within) {
                    Some(pfn) => Reached::Leaf(Translation {
                        pfn,
                        level,
                        leaf: e,
                    }),
                    // A leaf whose page runs past the last frame: it maps nothing there.
                    None => Reached::NotMapped,
                });
            }
        };
        table = e.pfn();
        level = child;
    }
}

/// Walks from `root` to the leaf mapping `va` through the backend; `Ok(None)` if it is not
/// mapped.
pub fn translate<B: RawMmu>(
    raw: &mut B,
    root: Pfn,
    va: u64,
) -> Result<Option<Translation>, B::Error> {
    Ok(match walk(root, va, None, |t, l, i| raw.read(t, l, i))? {
        Reached::Leaf(t) => Some(t),
        Reached::NotMapped | Reached::Table(_) => None,
    })
}

/// What a [`visit`] does after a present entry that names a table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Step {
    /// Visit the table the entry names (the part of the range it covers), then go on.
    Descend,
    /// Go on with the next entry, without visiting the table below this one.
    Next,
}

/// Where an entry lies: its table, the table's level, its index there and the first virtual
/// address it covers (canonical: the upper half sign-extended).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Slot<T> {
    /// The table holding the entry.
    pub table: T,
    /// That table's level.
    pub level: TableLevel,
    /// The entry's index in it.
    pub index: u16,
    /// The first virtual address the entry covers.
    pub va: u64,
}

impl<T> Slot<T> {
    /// The last virtual address the entry covers.
    #[inline(always)]
    pub fn last(&self) -> u64 {
        self.va + (self.level.entry_span() - 1)
    }
}

/// A table a [`visit`] is in: the table, its level and the part of the visited range it
/// covers, `lo..=last`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct InTable<T> {
    /// The table.
    pub table: T,
    /// Its level.
    pub level: TableLevel,
    /// The first address of the range inside it.
    pub lo: u64,
    /// The last address of the range inside it.
    pub last: u64,
}

/// What a [`visit`] calls: how to read an entry, how to find the table a table entry names,
/// and what to do at each table and each present entry. Every error ends the visit at once
/// and is returned as it is.
pub trait Visitor {
    /// How a table is named (a frame number, a virtual address, ...).
    type Table: Copy;
    /// What reading, or the visitor itself, can fail with.
    type Error;

    /// Entry `index` of `table`, a level-`level` table.
    fn read(
        &mut self,
        table: Self::Table,
        level: TableLevel,
        index: u16,
    ) -> Result<Pte, Self::Error>;

    /// The table that the present table entry `entry`, at `slot`, names (asked only for the
    /// entries [`entry`](Self::entry) descends into).
    fn child(&mut self, slot: &Slot<Self::Table>, entry: Pte) -> Result<Self::Table, Self::Error>;

    /// A table is entered, before its entries (the root first).
    #[inline(always)]
    fn enter(&mut self, table: &InTable<Self::Table>) -> Result<(), Self::Error> {
        let _ = table;
        Ok(())
    }

    /// A present entry whose span meets the range, in address order; `leaf`: it maps a page
    /// ([`is_leaf`]), and [`Step`] is not asked for. For a table entry, whether to visit the
    /// table below it.
    fn entry(
        &mut self,
        slot: &Slot<Self::Table>,
        entry: Pte,
        leaf: bool,
    ) -> Result<Step, Self::Error>;

    /// A table is done (after the tables below it); `above`: the entry that led to it and its
    /// slot, `None` for the root.
    #[inline(always)]
    fn leave(
        &mut self,
        table: &InTable<Self::Table>,
        above: Option<(&Slot<Self::Table>, Pte)>,
    ) -> Result<(), Self::Error> {
        let _ = (table, above);
        Ok(())
    }
}

/// The first virtual address of the `TableLevel::L4` entry `index`.
#[inline(always)]
const fn root_slot_va(index: u16) -> u64 {
    let va = (index as u64) << TableLevel::L4.entry_shift();
    if index >= 256 {
        va | 0xffff_0000_0000_0000
    } else {
        va
    }
}

/// The root entries whose span meets `lo..=last`: first and last index (first > last: none;
/// the non-canonical hole between the halves belongs to no entry).
#[inline(always)]
const fn root_slots(lo: u64, last: u64) -> (u16, u16) {
    const LOW_END: u64 = 0x0000_8000_0000_0000;
    const HIGH: u64 = 0xffff_8000_0000_0000;
    let first = if lo < LOW_END {
        TableLevel::L4.index_of(lo)
    } else if lo < HIGH {
        256
    } else {
        TableLevel::L4.index_of(lo)
    };
    let end = if last >= HIGH {
        TableLevel::L4.index_of(last)
    } else if last >= LOW_END {
        255
    } else {
        TableLevel::L4.index_of(last)
    };
    (first, end)
}

/// One table of the walk's path (its level is its place in the path): the table, the part of
/// the range it covers, the first address it covers, the entry above it (for a table below
/// the root; that entry's index is the parent's `next - 1`), the next index to read and the
/// last.
#[derive(Clone, Copy)]
struct Open<T> {
    table: T,
    lo: u64,
    last: u64,
    base: u64,
    above: Pte,
    next: u16,
    end: u16,
}

/// Visits every present entry whose span meets `range`, from `root` (an L4), in address
/// order, depth first: at each table [`Visitor::enter`], then each present entry of it met by
/// the range ([`Visitor::entry`]; a table entry the visitor descends into is followed through
/// [`Visitor::child`] and visited before the next entry), then [`Visitor::leave`]. Entries are
/// read with [`Visitor::read`], each once, only those whose span meets the range. A leaf is
/// what [`is_leaf`] says. No recursion and no heap: the path, at most four tables, is kept in
/// an array indexed by level. A tree that loops (an entry naming a table above it) is visited
/// as the levels say, at most four deep.
pub fn visit<V: Visitor>(
    root: V::Table,
    range: core::ops::RangeInclusive<u64>,
    v: &mut V,
) -> Result<(), V::Error> {
    let (lo, last) = (*range.start(), *range.end());
    if lo > last {
        return Ok(());
    }
    let (next, end) = root_slots(lo, last);
    let top = Open {
        table: root,
        lo,
        last,
        base: 0,
        above: Pte::EMPTY,
        next,
        end,
    };
    v.enter(&InTable {
        table: root,
        level: TableLevel::L4,
        lo,
        last,
    })?;
    // The path, by level (index 0: the L1); `level` is the deepest open table.
    let mut path = [top; 4];
    let mut level = TableLevel::L4;
    loop {
        let at = usize::from(level.as_u8() - 1);
        let open = &mut path[at];
        if open.next > open.end {
            let done = *open;
            let t = InTable {
                table: done.table,
                level,
                lo: done.lo,
                last: done.last,
            };
            let Some(up) = TableLevel::from_u8(level.as_u8() + 1) else {
                return v.leave(&t, None);
            };
            let parent = &path[at + 1];
            let slot = Slot {
                table: parent.table,
                level: up,
                index: parent.next - 1,
                va: done.base,
            };
            v.leave(&t, Some((&slot, done.above)))?;
            level = up;
            continue;
        }
        let index = open.next;
        open.next += 1;
        let (table, base) = (open.table, open.base);
        let e = v.read(table, level, index)?;
        if !e.is_present() {
            continue;
        }
        let va = if level == TableLevel::L4 {
            root_slot_va(index)
        } else {
            base + (u64::from(index) << level.entry_shift())
        };
        let slot = Slot {
            table,
            level,
            index,
            va,
        };
        let leaf = is_leaf(level, e);
        let step = v.entry(&slot, e, leaf)?;
        let child_level = match level.child() {
            Some(c) if !leaf && step == Step::Descend => c,
            _ => continue,
        };
        let child = v.child(&slot, e)?;
        let (clo, clast) = (lo.max(va), last.min(slot.last()));
        v.enter(&InTable {
            table: child,
            level: child_level,
            lo: clo,
            last: clast,
        })?;
        path[at - 1] = Open {
            table: child,
            lo: clo,
            last: clast,
            base: va,
            above: e,
            next: child_level.index_of(clo),
            end: child_level.index_of(clast),
        };
        level = child_level;
    }
}

#[cfg(test)]
mod tests {
    //! The visit against a tree the test builds itself: what it must see is computed from the
    //! list of mappings the tree was built from (sorted by address, tables before what they
    //! hold), not by walking anything.
    extern crate std;
    use std::collections::{BTreeMap, BTreeSet};
    use std::vec::Vec;

    use proptest::prelude::*;
    use x86_64::structures::paging::PageTableFlags as F;

    use super::*;

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
        Leave(u64, TableLevel, Option<(Slot<u64>, u64)>),
    }

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
            Ok(Pte::from_bits(self.tree.tables[&table][usize::from(index)]))
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
        fn leave(
            &mut self,
            t: &InTable<u64>,
            above: Option<(&Slot<u64>, Pte)>,
        ) -> Result<(), usize> {
            self.seen.push(Seen::Leave(
                t.table,
                t.level,
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

    fn check(
        pages: &[(u64, TableLevel)],
        lo: u64,
        last: u64,
        salt: u64,
    ) -> Result<(), TestCaseError> {
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
                Seen::Leave(t, l, above) => {
                    let top = stack.pop().unwrap();
                    prop_assert_eq!((t, l, above), (top.0, top.1, top.4));
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
}
