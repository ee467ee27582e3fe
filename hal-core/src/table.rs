//! Tables as typed values: [`TableBuilder<L>`] (a table being filled before it exists for the
//! platform) and [`TableRef<L>`] (a handle to a live table in a tree).

use core::marker::PhantomData;

use typenum::{U1, U2, U3};
use x86_64::structures::paging::PageTableFlags;

use crate::addr::Pfn;
use crate::frame::Frame;
use crate::level::{ChildOf, HasChild, Level, TableLevel};
use crate::pte::Pte;
use crate::state::{PgtReserved, PinnedRO};

/// Entries in one table.
pub const ENTRIES: usize = 512;

mod sealed {
    pub trait Sealed {}
    impl Sealed for typenum::U1 {}
    impl Sealed for typenum::U2 {}
    impl Sealed for typenum::U3 {}
}

/// A level whose entries may map memory directly: L1 (4 KiB), L2 (2 MiB), L3 (1 GiB).
/// There are no level-4 leaves.
pub trait LeafLevel: Level + sealed::Sealed {}
impl LeafLevel for U1 {}
impl LeafLevel for U2 {}
impl LeafLevel for U3 {}

/// Why an entry was not accepted into a table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum EntryError {
    /// Index 512 or more.
    IndexOutOfRange(u16),
    /// The slot already holds a present entry.
    Occupied(u16),
    /// A leaf at level 2 or 3 without `HUGE_PAGE`, or a level-1 leaf with it.
    BadLeaf(u16),
    /// The entry is not present.
    NotPresent(u16),
}

/// A table under construction: a [`PgtReserved`] frame plus the 512 entries it will hold.
///
/// Nothing reaches the frame until [`Mmu::new_table`](crate::mmu::Mmu::new_table) writes all
/// 512 entries at once (one batch on Xen PV) and the frame becomes `Frame<PinnedRO<L>>`.
/// Children adopted with [`adopt`](Self::adopt) are owned by the table from then on.
#[must_use = "dropping a TableBuilder leaks its frame and adopted children"]
pub struct TableBuilder<L: Level> {
    frame: Frame<PgtReserved>,
    entries: [Pte; ENTRIES],
    _level: PhantomData<L>,
}

impl<L: Level> core::fmt::Debug for TableBuilder<L> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let present = self.entries.iter().filter(|e| e.is_present()).count();
        write!(
            f,
            "TableBuilder<L{}>({:?}, {} present)",
            L::LEVEL.as_u8(),
            self.frame.pfn(),
            present
        )
    }
}

impl<L: Level> TableBuilder<L> {
    /// An empty table in `frame`.
    pub fn new(frame: Frame<PgtReserved>) -> Self {
        Self {
            frame,
            entries: [Pte::EMPTY; ENTRIES],
            _level: PhantomData,
        }
    }

    /// The frame the table will live in.
    pub fn pfn(&self) -> Pfn {
        self.frame.pfn()
    }

    /// Entry `index` as it stands.
    pub fn entry(&self, index: u16) -> Option<Pte> {
        self.entries.get(usize::from(index)).copied()
    }

    /// All entries.
    pub fn entries(&self) -> &[Pte; ENTRIES] {
        &self.entries
    }

    /// Sets a present leaf entry mapping memory.
    ///
    /// # Safety
    /// Once the table is live, the virtual page this slot covers maps `pte`'s frame: the caller
    /// promises that virtual page is not otherwise in use and that the frame may be mapped with
    /// these flags.
    pub unsafe fn set_leaf(&mut self, index: u16, pte: Pte) -> Result<(), EntryError>
    where
        L: LeafLevel,
    {
        let huge = pte.flags().contains(PageTableFlags::HUGE_PAGE);
        if !pte.is_present() {
            return Err(EntryError::NotPresent(index));
        }
        if huge != (L::LEVEL != TableLevel::L1) {
            return Err(EntryError::BadLeaf(index));
        }
        self.set(index, pte)
    }

    /// Copies an entry verbatim (for example the kernel's own mappings from the current root).
    ///
    /// # Safety
    /// The entry must be one the platform already accepts at this level in a live table of the
    /// caller's (the referenced table or page stays valid for as long as this table is used).
    pub unsafe fn set_raw(&mut self, index: u16, pte: Pte) -> Result<(), EntryError> {
        self.set(index, pte)
    }

    /// Takes `child` as the table behind slot `index`; the child is owned by this table from
    /// now on. Gives the child back if the slot is taken.
    pub fn adopt(
        &mut self,
        index: u16,
        child: Frame<PinnedRO<ChildOf<L>>>,
    ) -> Result<(), (EntryError, Frame<PinnedRO<ChildOf<L>>>)>
    where
        L: HasChild,
    {
        match self.set(index, Pte::table(child.pfn())) {
            Ok(()) => {
                crate::frame::handed_over(child);
                Ok(())
            }
            Err(e) => Err((e, child)),
        }
    }

    /// Gives up building: the frame comes back. Children adopted so far stay set aside
    /// (leaked); call it only on a table without children.
    pub fn into_frame(self) -> Frame<PgtReserved> {
        self.frame
    }

    pub(crate) fn into_parts(self) -> (Frame<PgtReserved>, [Pte; ENTRIES]) {
        (self.frame, self.entries)
    }

    fn set(&mut self, index: u16, pte: Pte) -> Result<(), EntryError> {
        let slot = self
            .entries
            .get_mut(usize::from(index))
            .ok_or(EntryError::IndexOutOfRange(index))?;
        if slot.is_present() {
            return Err(EntryError::Occupied(index));
        }
        *slot = pte;
        Ok(())
    }
}

/// A handle to a live level-`L` table: one owned as `Frame<PinnedRO<L>>`, the current root,
/// or a table reached through one of those. It does not own the table; the lifetime ties it
/// to the owner it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableRef<'a, L: Level> {
    pfn: Pfn,
    _level: PhantomData<&'a L>,
}

impl<'a, L: Level> TableRef<'a, L> {
    /// The table's frame.
    pub fn pfn(&self) -> Pfn {
        self.pfn
    }

    /// A handle to table `pfn`.
    ///
    /// # Safety
    /// `pfn` is a live table of level `L` (for example the current root) that stays a table of
    /// that level for `'a`, and writes through the handle are the caller's to make.
    pub unsafe fn from_pfn(pfn: Pfn) -> Self {
        Self {
            pfn,
            _level: PhantomData,
        }
    }

    pub(crate) fn child<'b>(self, pfn: Pfn) -> TableRef<'b, ChildOf<L>>
    where
        L: HasChild,
        'a: 'b,
    {
        TableRef {
            pfn,
            _level: PhantomData,
        }
    }
}

impl<L: Level> Frame<PinnedRO<L>> {
    /// A handle to this table, borrowed from the owner.
    pub fn as_table(&self) -> TableRef<'_, L> {
        TableRef {
            pfn: self.pfn(),
            _level: PhantomData,
        }
    }
}

impl core::fmt::Display for EntryError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::IndexOutOfRange(i) => write!(f, "entry index {i} is 512 or more"),
            Self::Occupied(i) => write!(f, "slot {i} already holds a present entry"),
            Self::BadLeaf(i) => write!(
                f,
                "slot {i}: a level-2/3 leaf without HUGE_PAGE, or a level-1 leaf with it"
            ),
            Self::NotPresent(i) => write!(f, "slot {i}: the entry is not present"),
        }
    }
}

impl core::error::Error for EntryError {}
