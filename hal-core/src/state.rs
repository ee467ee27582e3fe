//! The states a page frame can be in, as zero-sized markers behind a sealed trait.
//!
//! | state | meaning | enters by | leaves by |
//! |---|---|---|---|
//! | [`Free`] | ordinary memory, owned by whoever holds the frame | memblock allocation, [`ReleasedRW`] → `into_free` | handing it to [`PgtBuf::new`](crate::pgt_buf::PgtBuf::new), freeing it |
//! | [`PgtReserved`] | set aside for page tables; no writable mapping exists (Xen PV) | [`PgtBuf::new`](crate::pgt_buf::PgtBuf::new) | becoming a table, or [`PgtBuf::finish`](crate::pgt_buf::PgtBuf::finish) releasing it |
//! | [`PinnedRO<L>`] | a level-`L` page table: read-only everywhere, changed only through the backend | [`Mmu::new_table`](crate::mmu::Mmu::new_table) | [`Mmu::retire`](crate::mmu::Mmu::retire) |
//! | [`ReleasedRW`] | was a page table or reserved for one; writable again everywhere | [`Mmu::retire`](crate::mmu::Mmu::retire), `finish` | `into_free` (pure) |
//!
//! Only [`Free`] frames are memory a caller may write or give back to the allocator. Every path
//! from [`PgtReserved`] or [`PinnedRO`] to [`Free`] goes through a backend operation that makes
//! the frame writable again ([`ReleasedRW`]).
//!
//! Two more typed forms sit beside the four states: a pinned table is a
//! [`Pinned<L>`](crate::root::Pinned) (made by [`Mmu::pin`](crate::mmu::Mmu::pin) from a
//! `Frame<PinnedRO<L>>`, so it cannot be pinned twice), and frames a backend operation left
//! half done (some mappings read-only, some writable) are
//! [`Unsettled`](crate::unsettled::Unsettled), which only
//! [`Mmu::settle`](crate::mmu::Mmu::settle) turns into [`ReleasedRW`].
//!
//! The whole machine (`hal-core/doc/states.svg`):
//!
#![doc = include_str!("../doc/states.svg")]

use core::convert::Infallible;
use core::marker::PhantomData;

use crate::level::{Level, TableLevel};

mod sealed {
    pub trait Sealed {}
}

/// A frame state. Sealed: the four states below are all there is.
pub trait State: sealed::Sealed + 'static {
    /// The state's run-time encoding, used by the erased form.
    const KIND: StateKind;
}

/// Ordinary memory.
pub enum Free {}
/// Reserved for page tables and already page-table-ready (read-only wherever mapped).
pub enum PgtReserved {}
/// A level-`L` page table, read-only everywhere.
pub struct PinnedRO<L: Level>(Infallible, PhantomData<L>);
/// No longer a page table; writable again. Turns into [`Free`] at no cost.
pub enum ReleasedRW {}

impl sealed::Sealed for Free {}
impl sealed::Sealed for PgtReserved {}
impl<L: Level> sealed::Sealed for PinnedRO<L> {}
impl sealed::Sealed for ReleasedRW {}

impl State for Free {
    const KIND: StateKind = StateKind::Free;
}
impl State for PgtReserved {
    const KIND: StateKind = StateKind::PgtReserved;
}
impl<L: Level> State for PinnedRO<L> {
    const KIND: StateKind = StateKind::PinnedRO(L::LEVEL);
}
impl State for ReleasedRW {
    const KIND: StateKind = StateKind::ReleasedRW;
}

/// A state at run time (see [`AnyFrame`](crate::erased::AnyFrame)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum StateKind {
    /// [`Free`].
    Free,
    /// [`PgtReserved`].
    PgtReserved,
    /// [`PinnedRO`] at the given level.
    PinnedRO(TableLevel),
    /// [`ReleasedRW`].
    ReleasedRW,
}
