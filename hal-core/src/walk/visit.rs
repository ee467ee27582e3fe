//! The visit: every present entry over a virtual range, depth first, through a [`Visitor`].

use crate::level::TableLevel;
use crate::pte::Pte;

use super::is_leaf;

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
    /// The last virtual address the entry covers (of the entry that covers `va`, should `va`
    /// not be the entry's first address: the fields are public).
    #[inline(always)]
    pub fn last(&self) -> u64 {
        self.va | (self.level.entry_span() - 1)
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

/// One table of the walk's path (its level is its place in the path): the table, the first
/// address it covers, the entry above it (for a table below the root; that entry's index is
/// the parent's `next - 1`), the next index to read and the last. The part of the range the
/// table covers is computed again when it is left, from the range and `base`.
#[derive(Clone, Copy)]
struct Open<T> {
    table: T,
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
            let Some(up) = TableLevel::from_u8(level.as_u8() + 1) else {
                let t = InTable {
                    table: done.table,
                    level,
                    lo,
                    last,
                };
                return v.leave(&t, None);
            };
            // The range clamped to what the table covers, as when it was entered.
            let t = InTable {
                table: done.table,
                level,
                lo: lo.max(done.base),
                last: last.min(done.base + (up.entry_span() - 1)),
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
            base: va,
            above: e,
            next: child_level.index_of(clo),
            end: child_level.index_of(clast),
        };
        level = child_level;
    }
}
