//! Page-table levels as types.
//!
//! A level is a typenum unsigned integer, `U1` (page table, maps 4 KiB pages) to `U4` (the
//! root). [`Level`] is sealed and implemented for exactly those four; the level of a table's
//! children is computed at the type level ([`ChildOf`], typenum's `Sub1`), so an L1 table has
//! no child level at all and "hook an L2 under an L4" names a type that does not match.

use core::ops::Sub;
use typenum::{Sub1, Unsigned, B1, U1, U2, U3, U4};

mod sealed {
    pub trait Sealed {}
    impl Sealed for typenum::U1 {}
    impl Sealed for typenum::U2 {}
    impl Sealed for typenum::U3 {}
    impl Sealed for typenum::U4 {}
}

/// The root level of 4-level paging.
pub type Root = U4;

/// A page-table level, `U1`..=`U4`.
pub trait Level: sealed::Sealed + Unsigned + 'static {
    /// The runtime form.
    const LEVEL: TableLevel;
}

impl Level for U1 {
    const LEVEL: TableLevel = TableLevel::L1;
}
impl Level for U2 {
    const LEVEL: TableLevel = TableLevel::L2;
}
impl Level for U3 {
    const LEVEL: TableLevel = TableLevel::L3;
}
impl Level for U4 {
    const LEVEL: TableLevel = TableLevel::L4;
}

/// A level whose entries may point at tables one level down (L2..L4).
pub trait HasChild: Level {
    /// `Self - 1`, computed with typenum.
    type Child: Level;
}

impl<L> HasChild for L
where
    L: Level + Sub<B1>,
    Sub1<L>: Level,
{
    type Child = Sub1<L>;
}

/// The level of the tables that a level-`L` table points at.
pub type ChildOf<L> = <L as HasChild>::Child;

/// A page-table level at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum TableLevel {
    /// Page table: entries map 4 KiB pages.
    L1 = 1,
    /// Page directory: entries map 2 MiB pages or point at L1 tables.
    L2 = 2,
    /// Page-directory-pointer table: entries map 1 GiB pages or point at L2 tables.
    L3 = 3,
    /// PML4, the root.
    L4 = 4,
}

impl TableLevel {
    /// From a number 1..=4.
    #[inline]
    pub const fn from_u8(n: u8) -> Option<Self> {
        match n {
            1 => Some(Self::L1),
            2 => Some(Self::L2),
            3 => Some(Self::L3),
            4 => Some(Self::L4),
            _ => None,
        }
    }

    /// The level as a number 1..=4.
    #[inline]
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    /// log2 of the bytes one entry of this level covers (12, 21, 30, 39).
    #[inline]
    pub const fn entry_shift(self) -> u32 {
        12 + 9 * (self as u32 - 1)
    }

    /// Bytes one entry of this level covers.
    #[inline]
    pub const fn entry_span(self) -> u64 {
        1 << self.entry_shift()
    }

    /// The index of `va` in a table of this level.
    #[inline]
    pub const fn index_of(self, va: u64) -> u16 {
        ((va >> self.entry_shift()) & 0x1ff) as u16
    }

    /// One level down, if any.
    #[inline]
    pub const fn child(self) -> Option<Self> {
        Self::from_u8(self as u8 - 1)
    }
}
