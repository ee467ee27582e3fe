//! Pinned tables and the live root: [`Pinned<L>`] (a table the platform holds as a table on
//! its own, Xen's pin) and [`LiveRoot`] (the one owned handle to the root in use).

use core::fmt;

use typenum::U4;

use crate::addr::Pfn;
use crate::backend::RawMmu;
use crate::frame::Frame;
use crate::level::Level;
use crate::mmu::Mmu;
use crate::state::PinnedRO;
use crate::table::TableRef;

/// A level-`L` table that is pinned (Xen: `MMUEXT_PIN_Ln_TABLE`; bare metal: counted only).
///
/// Pinning is a state of its own: only [`Mmu::pin`] makes one, from an unpinned
/// `Frame<PinnedRO<L>>` it consumes, so a table cannot be pinned twice; only
/// [`Mmu::unpin`] turns it back. A pinned table is hooked
/// nowhere. Not `Copy`, not `Clone`.
#[must_use = "dropping a Pinned table leaks it (it stays pinned)"]
pub struct Pinned<L: Level> {
    table: Frame<PinnedRO<L>>,
}

impl<L: Level> Pinned<L> {
    pub(crate) fn new(table: Frame<PinnedRO<L>>) -> Self {
        Self { table }
    }

    pub(crate) fn into_table(self) -> Frame<PinnedRO<L>> {
        self.table
    }

    /// The table's frame.
    pub fn pfn(&self) -> Pfn {
        self.table.pfn()
    }

    /// A handle to the table, borrowed from this owner.
    pub fn as_table(&self) -> TableRef<'_, L> {
        self.table.as_table()
    }
}

impl<L: Level> fmt::Debug for Pinned<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pinned<L{}>({:?})", L::LEVEL.as_u8(), self.table.pfn())
    }
}

#[cfg(feature = "defmt")]
impl<L: Level> defmt::Format for Pinned<L> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "Pinned<L{=u8}>({})", L::LEVEL.as_u8(), self.table.pfn())
    }
}

/// Who owns the root in use.
enum Owner {
    /// The tables the boot environment built (bare metal: the board's boot stub; Xen PV: the
    /// domain builder). hal-core never retires them.
    Boot,
    /// A root built through hal-core and pinned.
    Owned(Pinned<U4>),
}

/// The root table in use, as one owned handle.
///
/// A board makes it once, from the root the CPU runs on at boot
/// ([`LiveRoot::adopt_boot_root`], `unsafe` there); from then on reading and extending the live
/// tables is safe: [`table`](Self::table) gives a [`TableRef`] to hand to
/// [`Mmu::hook`], [`Mmu::entry`] or [`Mmu::child`], and
/// [`Mmu::switch_root`] moves a new pinned root in (handing the previous one back if hal-core
/// built it). Not `Copy`, not `Clone`, no `Default`: there is one per address space.
pub struct LiveRoot {
    pfn: Pfn,
    owner: Owner,
}

/// What [`Mmu::switch_root`] hands back: the root that was live before.
#[derive(Debug)]
#[must_use = "a previous root built by hal-core must be unpinned and retired, or it leaks"]
pub enum PreviousRoot {
    /// The boot tables: not hal-core's to free.
    Boot(Pfn),
    /// A root hal-core built: still pinned, hooked nowhere, no longer in use by the CPU.
    Owned(Pinned<U4>),
}

impl LiveRoot {
    /// The handle to the root the CPU runs on now, as the backend reports it.
    ///
    /// # Safety
    /// Called once per address space (no other `LiveRoot` for it exists while this one
    /// lives), and the tables reachable from the root are changed only through hal-core from
    /// now on: the caller gives up any other way of writing them.
    pub unsafe fn adopt_boot_root<B: RawMmu>(mmu: &Mmu<B>) -> Self {
        Self {
            pfn: mmu.raw().current_root(),
            owner: Owner::Boot,
        }
    }

    /// The root's frame.
    pub fn pfn(&self) -> Pfn {
        self.pfn
    }

    /// Whether the live root is still the boot tables' root.
    pub fn is_boot_root(&self) -> bool {
        matches!(self.owner, Owner::Boot)
    }

    /// A handle to the live root, valid while this handle is borrowed (switching needs
    /// `&mut self`).
    pub fn table(&self) -> TableRef<'_, U4> {
        // SAFETY: `pfn` is the root in use (the constructor's contract, kept by
        // `Mmu::switch_root`, the only thing that changes it); it stays a level-4 table while
        // `self` is borrowed shared.
        unsafe { TableRef::from_pfn(self.pfn) }
    }

    pub(crate) fn replace(&mut self, new: Pinned<U4>) -> PreviousRoot {
        let pfn = new.pfn();
        let old = core::mem::replace(&mut self.owner, Owner::Owned(new));
        let old_pfn = core::mem::replace(&mut self.pfn, pfn);
        match old {
            Owner::Boot => PreviousRoot::Boot(old_pfn),
            Owner::Owned(p) => PreviousRoot::Owned(p),
        }
    }
}

impl fmt::Debug for LiveRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = if self.is_boot_root() { "boot" } else { "owned" };
        write!(f, "LiveRoot({:?}, {who})", self.pfn)
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for LiveRoot {
    fn format(&self, f: defmt::Formatter<'_>) {
        let who = if self.is_boot_root() { "boot" } else { "owned" };
        defmt::write!(f, "LiveRoot({}, {=str})", self.pfn, who)
    }
}
