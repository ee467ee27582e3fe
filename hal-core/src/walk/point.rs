//! The point walk: from the root towards one address.

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

/// Walks from `root` to the leaf mapping `va` through the backend's
/// [`read`](RawMmu::read); `Ok(None)` if it is not mapped. The safe form, from a typed root,
/// is [`Mmu::translate`](crate::Mmu::translate).
///
/// # Safety
/// `root` and every table a present non-leaf entry on the way names (from the root, the
/// walk's path) may be read as [`RawMmu::read`] says: for example `root` is a live level-4
/// table, so that the entries on the way name tables.
pub unsafe fn translate<B: RawMmu>(
    raw: &mut B,
    root: Pfn,
    va: u64,
) -> Result<Option<Translation>, B::Error> {
    // SAFETY: the walk reads `root` and the tables its path's entries name: the caller's
    // contract.
    Ok(
        match walk(root, va, None, |t, l, i| unsafe { raw.read(t, l, i) })? {
            Reached::Leaf(t) => Some(t),
            Reached::NotMapped | Reached::Table(_) => None,
        },
    )
}
