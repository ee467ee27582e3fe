//! [`Mmu<B>`]: the typed, safe face of a backend. Every state transition that needs a side
//! effect is a method here; it calls the backend and changes the frame's type only on `Ok`.
//!
//! # For application authors
//! ```text
//!  Frame<Free> ──PgtBuf / Mmu::protect──▶ Frame<PgtReserved> ──Mmu::new_table──▶ Frame<PinnedRO<L>> ◀─unpin── Pinned<L>
//!       ▲                                  │          │                            │      │ ──pin──────▶   │
//!       │ into_free (pure)   PgtBuf::finish│          │ failed part way            │      │ hook: the tree  │ switch_root:
//!       │                    Mmu::release  │          ▼                            │      ▼ owns it         ▼ LiveRoot owns it
//!       └──────────── Frame<ReleasedRW> ◀──┴──── Unsettled ◀── failed part way ────┴── Mmu::retire
//!                            ▲                     │ Mmu::settle
//!                            └─────────────────────┘
//! ```
//! Writes may be queued by the backend; the methods that queue return a [`Pending`] that must
//! be flushed (or joined into one that is). A method that hands back a typed frame flushes
//! first: `Ok` means done, so a `Frame<PinnedRO<L>>` is always a complete table.

use typenum::U4;

use crate::addr::{Mfn, Pfn};
use crate::backend::{Caps, RawMmu};
use crate::error::Failed;
use crate::frame::Frame;
use crate::level::{ChildOf, HasChild, Level, TableLevel};
use crate::pte::Pte;
use crate::range::FrameRange;
use crate::root::{LiveRoot, Pinned, PreviousRoot};
use crate::state::{Free, PgtReserved, PinnedRO, ReleasedRW};
use crate::table::{EntryError, LeafLevel, TableBuilder, TableRef, ENTRIES};
use crate::unsettled::Unsettled;

/// Queued page-table updates: they take effect when flushed.
///
/// Like `x86_64`'s `MapperFlush`, this is an obligation as a value. Join several with
/// [`join`](Pending::join), then [`flush`](Pending::flush) once.
#[must_use = "queued page-table updates take effect only when flushed"]
#[derive(Debug, PartialEq, Eq)]
pub struct Pending {
    ops: u64,
}

impl Pending {
    /// Nothing queued.
    pub const fn none() -> Self {
        Self { ops: 0 }
    }

    /// One obligation for both.
    pub const fn join(self, other: Pending) -> Self {
        Self {
            ops: self.ops.saturating_add(other.ops),
        }
    }

    /// Operations this stands for.
    pub const fn ops(&self) -> u64 {
        self.ops
    }

    /// Submits everything the backend has queued.
    pub fn flush<B: RawMmu>(self, mmu: &mut Mmu<B>) -> Result<(), B::Error> {
        mmu.raw.flush()
    }

    /// Drops the obligation without flushing: the updates take effect at the backend's next
    /// flush (every operation that needs them flushed first, such as `switch_root`, does so).
    pub fn defer(self) {}

    pub(crate) fn one() -> Self {
        Self { ops: 1 }
    }
}

/// Why an entry operation on a live table failed.
#[derive(Debug)]
pub enum WriteError<E> {
    /// The entry itself was refused before reaching the backend.
    Entry(EntryError),
    /// The backend refused it.
    Backend(E),
}

/// A backend, wrapped so that only typed transitions reach it.
pub struct Mmu<B: RawMmu> {
    raw: B,
}

impl<B: RawMmu> Mmu<B> {
    /// Wraps a backend.
    pub fn new(raw: B) -> Self {
        Self { raw }
    }

    /// The backend (its safe methods: counters, caps, flush).
    pub fn raw(&self) -> &B {
        &self.raw
    }

    /// The backend, mutably. Its state-changing methods and [`RawMmu::read`] are `unsafe`;
    /// calling them directly is the escape hatch around the type states, under their
    /// contracts. The safe methods left read the backend's own state or submit what is queued.
    pub fn raw_mut(&mut self) -> &mut B {
        &mut self.raw
    }

    /// Unwraps the backend.
    pub fn into_raw(self) -> B {
        self.raw
    }

    /// What the backend allows.
    pub fn caps(&self) -> Caps {
        self.raw.caps()
    }

    /// The frame the platform sees for `pfn`.
    pub fn machine_frame(&self, pfn: Pfn) -> Result<Mfn, B::Error> {
        self.raw.machine_frame(pfn)
    }

    /// `Free` → `PgtReserved`: makes frames page-table-ready (no writable mapping anywhere).
    ///
    /// On failure the frames come back [`Unsettled`]: some may be read-only already, so
    /// they must be [`settle`](Self::settle)d before they are memory again.
    pub fn protect(
        &mut self,
        frames: FrameRange<Free>,
    ) -> Result<FrameRange<PgtReserved>, Failed<Unsettled, B::Error>> {
        // SAFETY: we own the frames (the range is ours) and stop using them as memory: they
        // change type right here whatever the outcome.
        let res = unsafe { self.raw.protect(frames.pfns()) };
        let frames = frames.into_state::<PgtReserved>();
        match res {
            Ok(()) => Ok(frames),
            Err(error) => Err(Failed {
                error,
                value: Unsettled::new(frames),
            }),
        }
    }

    /// `PgtReserved` → `ReleasedRW`: writable again everywhere, in batches; flushes.
    ///
    /// On failure the frames come back [`Unsettled`] (part of a batch may have been applied).
    pub fn release(
        &mut self,
        frames: FrameRange<PgtReserved>,
    ) -> Result<FrameRange<ReleasedRW>, Failed<Unsettled, B::Error>> {
        self.release_frames(frames).map_err(|f| Failed {
            error: f.error,
            value: Unsettled::new(f.value),
        })
    }

    /// `Unsettled` → `ReleasedRW`: makes every mapping of the frames writable again (the same
    /// backend call as [`release`](Self::release); it is idempotent for mappings already
    /// writable). On failure they stay `Unsettled`.
    pub fn settle(
        &mut self,
        frames: Unsettled,
    ) -> Result<FrameRange<ReleasedRW>, Failed<Unsettled, B::Error>> {
        self.release(frames.into_inner())
    }

    fn release_frames(
        &mut self,
        frames: FrameRange<PgtReserved>,
    ) -> Result<FrameRange<ReleasedRW>, Failed<FrameRange<PgtReserved>, B::Error>> {
        // SAFETY: we own the frames; a PgtReserved (or Unsettled) frame was never made a table
        // (that would have turned it into PinnedRO) or was retired, so none is hooked or pinned.
        let res = unsafe { self.raw.release(frames.pfns()) }.and_then(|()| self.raw.flush());
        match res {
            Ok(()) => Ok(frames.into_state()),
            Err(error) => Err(Failed {
                error,
                value: frames,
            }),
        }
    }

    /// `PgtReserved` → `PinnedRO<L>`: writes the builder's 512 entries into its frame and
    /// flushes, so that on `Ok` the frame is a complete level-`L` table (owned by the caller,
    /// hooked nowhere yet). On failure the builder comes back (its frame still
    /// page-table-ready, its contents unspecified until written again).
    pub fn new_table<L: Level>(
        &mut self,
        builder: TableBuilder<L>,
    ) -> Result<Frame<PinnedRO<L>>, Failed<TableBuilder<L>, B::Error>> {
        let res = self.write_builder(&builder).and_then(|()| self.raw.flush());
        match res {
            Ok(()) => {
                let (frame, _) = builder.into_parts();
                Ok(frame.into_state())
            }
            Err(error) => Err(Failed {
                error,
                value: builder,
            }),
        }
    }

    /// Writes a builder's 512 entries into its frame, as runs of equally spaced entries.
    fn write_builder<L: Level>(&mut self, builder: &TableBuilder<L>) -> Result<(), B::Error> {
        let pfn = builder.pfn();
        let entries = builder.entries();
        let mut i = 0;
        while i < ENTRIES {
            let run = crate::backend::EntryRun::longest(&entries[i..]);
            // SAFETY: the frame is PgtReserved (protected, ours, never hooked or pinned: not
            // live) and becomes a level-L table here; the builder's entries are leaves the
            // caller vouched for (set_leaf/set_raw are unsafe) or adopted children of level
            // L-1, written once each.
            unsafe { self.raw.fill_fresh(pfn, L::LEVEL, i as u16, &run) }?;
            i += usize::from(run.count);
        }
        Ok(())
    }

    /// Pins a table as level `L` (Xen validates the tree under it; native: counted only).
    /// The table is consumed: a pinned table is a [`Pinned<L>`], which cannot be pinned again.
    pub fn pin<L: Level>(
        &mut self,
        table: Frame<PinnedRO<L>>,
    ) -> Result<Pinned<L>, Failed<Frame<PinnedRO<L>>, B::Error>> {
        // SAFETY: the frame is a complete level-L table we own (queued writes flushed first),
        // hooked nowhere (we own it) and not pinned (a pinned one would be a `Pinned`).
        let res = self
            .raw
            .flush()
            .and_then(|()| unsafe { self.raw.pin(table.pfn(), L::LEVEL) });
        match res {
            Ok(()) => Ok(Pinned::new(table)),
            Err(error) => Err(Failed {
                error,
                value: table,
            }),
        }
    }

    /// Unpins a table. The current root is never a `Pinned` the caller holds (the
    /// [`LiveRoot`] owns it), so it cannot be unpinned.
    pub fn unpin<L: Level>(
        &mut self,
        table: Pinned<L>,
    ) -> Result<Frame<PinnedRO<L>>, Failed<Pinned<L>, B::Error>> {
        // SAFETY: `table` was pinned by `pin` (only it makes a `Pinned`) and is not the root
        // (the root's `Pinned` lives in the `LiveRoot` until `switch_root` hands it back).
        match unsafe { self.raw.unpin(table.pfn(), L::LEVEL) } {
            Ok(()) => Ok(table.into_table()),
            Err(error) => Err(Failed {
                error,
                value: table,
            }),
        }
    }

    /// Makes the pinned level-4 table `new` the live root; the previous root comes back.
    ///
    /// `live` must be the handle to the root in use (a handle of another address space is
    /// refused, and `new` comes back).
    ///
    /// # Safety
    /// `new` maps the running code, stack and data at their current addresses (for example
    /// through entries inherited from the current root with
    /// [`inherit_root`](Self::inherit_root)).
    pub unsafe fn switch_root(
        &mut self,
        live: &mut LiveRoot,
        new: Pinned<U4>,
    ) -> Result<PreviousRoot, Failed<Pinned<U4>, SwitchError<B::Error>>> {
        if live.pfn() != self.raw.current_root() {
            return Err(Failed {
                error: SwitchError::NotLive,
                value: new,
            });
        }
        // SAFETY: the caller's promise above; the frame is a pinned level-4 table we own.
        let res = self
            .raw
            .flush()
            .and_then(|()| unsafe { self.raw.switch_root(new.pfn()) });
        match res {
            Ok(()) => Ok(live.replace(new)),
            Err(e) => Err(Failed {
                error: SwitchError::Backend(e),
                value: new,
            }),
        }
    }

    /// Copies the live root's present entries into `builder`, except the slots in `skip`
    /// (`[start, end)`) and the backend's reserved slots: the new root then maps the running
    /// kernel as the current one does, through the same tables (so it also sees what is mapped
    /// under them later). Returns how many were copied.
    pub fn inherit_root(
        &mut self,
        from: &LiveRoot,
        builder: &mut TableBuilder<U4>,
        skip: (u16, u16),
    ) -> Result<u16, WriteError<B::Error>> {
        let root = from.pfn();
        let reserved = self.caps().reserved_root_slots;
        let mut copied = 0;
        for i in 0..ENTRIES as u16 {
            let in_range = |r: (u16, u16)| i >= r.0 && i < r.1;
            if in_range(skip) || in_range(reserved) {
                continue;
            }
            // SAFETY: `root` is the level-4 table the `LiveRoot` owns (its boot tables, or a
            // root hal-core built and pinned): a table only the backend writes.
            let e =
                unsafe { self.raw.read(root, TableLevel::L4, i) }.map_err(WriteError::Backend)?;
            if e.is_present() {
                // SAFETY: the entry is live in the current root, which the platform accepted;
                // the tables it points at stay: a table in a root slot is never freed (the
                // boot tables are never retired, and the mapper keeps its level-3 tables).
                unsafe { builder.set_raw(i, e) }.map_err(WriteError::Entry)?;
                copied += 1;
            }
        }
        Ok(copied)
    }

    /// Reads entry `index` of a live table.
    pub fn entry<L: Level>(&mut self, table: TableRef<'_, L>, index: u16) -> Result<Pte, B::Error> {
        // SAFETY: a `TableRef` names a live level-L table for its lifetime: a table only the
        // backend writes.
        unsafe { self.raw.read(table.pfn(), L::LEVEL, index) }
    }

    /// Where `va` leads from the live root `root` (queued updates included): walks the tables
    /// with [`walk::translate`](crate::walk::translate). `Ok(None)` if it is not mapped.
    pub fn translate(
        &mut self,
        root: TableRef<'_, U4>,
        va: u64,
    ) -> Result<Option<crate::walk::Translation>, B::Error> {
        // SAFETY: `root` names a live level-4 table for the call (`TableRef`), and every table
        // the walk reaches is named by a present non-leaf entry of a live table, so it is a
        // table too (hal-core writes only tables there, `write`'s contract, and Xen validates).
        unsafe { crate::walk::translate(&mut self.raw, root.pfn(), va) }
    }

    /// The table behind entry `index` of `table`, if the entry points at one.
    pub fn child<'a, L: HasChild>(
        &mut self,
        table: TableRef<'a, L>,
        index: u16,
    ) -> Result<Option<TableRef<'a, ChildOf<L>>>, B::Error> {
        // SAFETY: a `TableRef` names a live level-L table: a table only the backend writes.
        let e = unsafe { self.raw.read(table.pfn(), L::LEVEL, index) }?;
        Ok((e.is_present() && !e.is_huge()).then(|| table.child(e.pfn())))
    }

    /// Hooks `child` under slot `index` of the live table `parent`; the tree owns the child
    /// from then on. On Xen, if `parent` is validated, Xen validates `child` (and everything
    /// under it) when the write is flushed. The child comes back if the slot is taken or the
    /// backend refuses at once; if the flush of the returned [`Pending`] fails, the child
    /// belongs to the tree or to nobody (leaked), never to two owners.
    #[allow(clippy::type_complexity)]
    pub fn hook<L: HasChild>(
        &mut self,
        parent: TableRef<'_, L>,
        index: u16,
        child: Frame<PinnedRO<ChildOf<L>>>,
    ) -> Result<Pending, Failed<Frame<PinnedRO<ChildOf<L>>>, WriteError<B::Error>>> {
        let fail = |error, value| Err(Failed { error, value });
        if usize::from(index) >= ENTRIES {
            return fail(WriteError::Entry(EntryError::IndexOutOfRange(index)), child);
        }
        // SAFETY: `parent` is a live level-L table (`TableRef`): a table only the backend
        // writes.
        match unsafe { self.raw.read(parent.pfn(), L::LEVEL, index) } {
            Ok(e) if e.is_present() => {
                return fail(WriteError::Entry(EntryError::Occupied(index)), child)
            }
            Ok(_) => {}
            Err(e) => return fail(WriteError::Backend(e), child),
        }
        let entry = [Pte::table(child.pfn())];
        // SAFETY: `parent` is a live level-L table (TableRef), `child` a level L-1 table we
        // own and hand to the tree.
        match unsafe { self.raw.write(parent.pfn(), L::LEVEL, index, &entry) } {
            Ok(()) => {
                crate::frame::handed_over(child);
                Ok(Pending::one())
            }
            Err(e) => fail(WriteError::Backend(e), child),
        }
    }

    /// Writes leaf entries into a live table from slot `first` on. Every target slot must be
    /// empty; nothing is written unless every entry is acceptable.
    ///
    /// # Safety
    /// The virtual pages the slots cover are not otherwise in use, and the frames may be mapped
    /// with the given flags.
    pub unsafe fn map_leaves<L: LeafLevel>(
        &mut self,
        table: TableRef<'_, L>,
        first: u16,
        entries: &[Pte],
    ) -> Result<Pending, WriteError<B::Error>> {
        let end = usize::from(first) + entries.len();
        if end > ENTRIES {
            let at = u16::try_from(end).unwrap_or(u16::MAX);
            return Err(WriteError::Entry(EntryError::IndexOutOfRange(at)));
        }
        for (i, e) in (first..).zip(entries) {
            let huge = e.is_huge();
            if !e.is_present() {
                return Err(WriteError::Entry(EntryError::NotPresent(i)));
            }
            if huge != (L::LEVEL != TableLevel::L1) {
                return Err(WriteError::Entry(EntryError::BadLeaf(i)));
            }
            // SAFETY: `table` is a live level-L table (`TableRef`): a table only the backend
            // writes.
            let old =
                unsafe { self.raw.read(table.pfn(), L::LEVEL, i) }.map_err(WriteError::Backend)?;
            if old.is_present() {
                return Err(WriteError::Entry(EntryError::Occupied(i)));
            }
        }
        // SAFETY: a live level-L table; the caller vouches for the mappings.
        unsafe { self.raw.write(table.pfn(), L::LEVEL, first, entries) }
            .map_err(WriteError::Backend)?;
        Ok(Pending::one())
    }

    /// Takes the child table behind slot `index` out of the tree and back into the caller's
    /// ownership (the slot becomes empty). `Ok(None)` if the slot holds no table.
    ///
    /// # Safety
    /// The subtree under the slot is the caller's: it was hooked through hal-core by the
    /// caller (not the boot tables, not the kernel's own mappings), nothing relies on any
    /// virtual address it maps from now on, and no [`TableRef`] into it is used afterwards.
    #[allow(clippy::type_complexity)]
    pub unsafe fn unhook<L: HasChild>(
        &mut self,
        parent: TableRef<'_, L>,
        index: u16,
    ) -> Result<Option<(Frame<PinnedRO<ChildOf<L>>>, Pending)>, B::Error> {
        // SAFETY: `parent` is a live level-L table (`TableRef`): a table only the backend
        // writes.
        let e = unsafe { self.raw.read(parent.pfn(), L::LEVEL, index) }?;
        if !e.is_present() || e.is_huge() {
            return Ok(None);
        }
        // SAFETY: the slot belongs to a live table; clearing an entry maps nothing.
        unsafe { self.raw.write(parent.pfn(), L::LEVEL, index, &[Pte::EMPTY]) }?;
        // SAFETY: the entry pointed at a level L-1 table owned by the tree (the caller's, by
        // this fn's contract); it is out of the tree now and ownership moves to the caller.
        let child = unsafe { Frame::from_pfn_unchecked(e.pfn()) };
        Ok(Some((child, Pending::one())))
    }

    /// `PinnedRO<L>` → `ReleasedRW`: makes an unpinned table writable again. Owning the frame
    /// proves it is hooked nowhere (hooking gives it to the tree) and unpinned (a pinned one is
    /// a [`Pinned`]: [`unpin`](Self::unpin) it first). A table that still points at child
    /// tables is refused (unhook and retire them first), and so is the current root; both come
    /// back unchanged. A backend failure part way leaves the frame [`Unsettled`].
    pub fn retire<L: Level>(
        &mut self,
        table: Frame<PinnedRO<L>>,
    ) -> Result<Frame<ReleasedRW>, RetireError<L, B::Error>> {
        if table.pfn() == self.raw.current_root() {
            return Err(RetireError::CurrentRoot(table));
        }
        if L::LEVEL != TableLevel::L1 {
            for index in 0..ENTRIES as u16 {
                // SAFETY: we own `table` as a complete level-L table (`Frame<PinnedRO<L>>`):
                // a table only the backend writes.
                match unsafe { self.raw.read(table.pfn(), L::LEVEL, index) } {
                    Ok(e) if e.is_present() && !e.is_huge() => {
                        return Err(RetireError::HasChild { index, table })
                    }
                    Ok(_) => {}
                    Err(error) => return Err(RetireError::Unreadable { error, table }),
                }
            }
        }
        if let Err(error) = self.raw.flush() {
            return Err(RetireError::Unreadable { error, table });
        }
        // SAFETY: we own the table, so it is hooked nowhere; it is not pinned (see above) and
        // not the current root; it has no children.
        let res = unsafe { self.raw.retire(table.pfn(), L::LEVEL) }.and_then(|()| self.raw.flush());
        let frames = FrameRange::from_frame(table).into_state::<PgtReserved>();
        match res {
            Ok(()) => {
                let mut r = frames.into_state::<ReleasedRW>();
                match r.pop_front() {
                    Some(f) => Ok(f),
                    None => unreachable!("a one-frame range"),
                }
            }
            Err(error) => Err(RetireError::Backend(Failed {
                error,
                value: Unsettled::new(frames),
            })),
        }
    }
}

/// Why a table could not be retired.
#[derive(Debug)]
pub enum RetireError<L: Level, E> {
    /// It is the live root; it comes back.
    CurrentRoot(Frame<PinnedRO<L>>),
    /// Entry `index` points at a child table; the table comes back unchanged.
    HasChild {
        /// The first slot that holds a table.
        index: u16,
        /// The table.
        table: Frame<PinnedRO<L>>,
    },
    /// The backend could not read the table or flush earlier work; nothing was changed.
    Unreadable {
        /// The backend's error.
        error: E,
        /// The table.
        table: Frame<PinnedRO<L>>,
    },
    /// The backend failed part way: the frame is no table any more, its mappings may be
    /// partly writable.
    Backend(Failed<Unsettled, E>),
}

/// Why [`Mmu::switch_root`] refused.
#[derive(Debug)]
pub enum SwitchError<E> {
    /// The [`LiveRoot`] given is not the root in use.
    NotLive,
    /// The backend refused.
    Backend(E),
}

impl<E: core::fmt::Display> core::fmt::Display for WriteError<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Entry(e) => write!(f, "entry refused before reaching the backend: {e}"),
            Self::Backend(e) => write!(f, "the backend refused the entry: {e}"),
        }
    }
}

/// The [`Display`](core::fmt::Display) wording, written by defmt.
#[cfg(feature = "defmt")]
impl<E: defmt::Format> defmt::Format for WriteError<E> {
    fn format(&self, f: defmt::Formatter<'_>) {
        match self {
            Self::Entry(e) => defmt::write!(f, "entry refused before reaching the backend: {}", e),
            Self::Backend(e) => defmt::write!(f, "the backend refused the entry: {}", e),
        }
    }
}

impl<E: core::error::Error + 'static> core::error::Error for WriteError<E> {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Entry(e) => Some(e),
            Self::Backend(e) => Some(e),
        }
    }
}

impl<L: Level, E: core::fmt::Display> core::fmt::Display for RetireError<L, E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::CurrentRoot(_) => f.write_str("the table is the live root"),
            Self::HasChild { index, .. } => {
                write!(f, "entry {index} of the table points at a child table")
            }
            Self::Unreadable { error, .. } => write!(
                f,
                "the backend could not read the table or flush earlier work: {error}"
            ),
            Self::Backend(e) => write!(
                f,
                "the backend failed part way (the frame's mappings may be partly writable): {}",
                e.error
            ),
        }
    }
}

impl<L: Level + core::fmt::Debug, E: core::error::Error + 'static> core::error::Error
    for RetireError<L, E>
{
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Unreadable { error, .. } => Some(error),
            Self::Backend(e) => Some(&e.error),
            _ => None,
        }
    }
}

impl<E: core::fmt::Display> core::fmt::Display for SwitchError<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NotLive => f.write_str("the LiveRoot given is not the root in use"),
            Self::Backend(e) => write!(f, "the backend refused the switch: {e}"),
        }
    }
}

/// The [`Display`](core::fmt::Display) wording, written by defmt.
#[cfg(feature = "defmt")]
impl<E: defmt::Format> defmt::Format for SwitchError<E> {
    fn format(&self, f: defmt::Formatter<'_>) {
        match self {
            Self::NotLive => defmt::write!(f, "the LiveRoot given is not the root in use"),
            Self::Backend(e) => defmt::write!(f, "the backend refused the switch: {}", e),
        }
    }
}

impl<E: core::error::Error + 'static> core::error::Error for SwitchError<E> {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::NotLive => None,
            Self::Backend(e) => Some(e),
        }
    }
}
