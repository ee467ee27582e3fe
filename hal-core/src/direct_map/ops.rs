//! What the build's cursor asks of the typed layer, behind an object-safe interface: the
//! cursor (`build.rs`'s `Builder`) is compiled once for every backend, not once per backend
//! (in a kernel carrying two boards it was two copies of about 6 KiB).
//!
//! The operations are [`Mmu`]'s own, typed by level: [`LeafOps`], [`ParentOps`] and
//! [`MakeOps`], implemented once, generically, for [`Erased`]. [`Ops`] is one flat object-safe
//! trait with a method per operation and level that forwards to them (supertraits would cost
//! a vtable per trait and level), and `dyn Ops` implements the per-level traits again, so the
//! cursor's code stays generic over the level only. The backend's error does not cross the
//! interface: [`Erased`] keeps the first one aside and hands the cursor a [`Stashed`] in its
//! place, and the generic caller puts it back ([`Erased::restore`]).

use typenum::{U1, U2, U3, U4};

use super::build::BuildError;
use crate::backend::{EntryRun, PageSizes, RawMmu};
use crate::error::Failed;
use crate::fresh::FreshTable;
use crate::level::{ChildOf, HasChild, Level, TableLevel};
use crate::mmu::{Mmu, Pending, WriteError};
use crate::pte::Pte;
use crate::state::PinnedRO;
use crate::table::{EntryError, LeafLevel, TableRef};
use crate::Frame;

/// Stands for the backend's error, which [`Erased`] keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Stashed;

/// Leaves into a table of level `L`.
pub(super) trait LeafOps<L: LeafLevel> {
    /// [`Mmu::put_leaves`].
    ///
    /// # Safety
    /// As [`Mmu::put_leaves`].
    unsafe fn put_leaves(
        &mut self,
        table: &mut FreshTable<L>,
        first: u16,
        run: &EntryRun,
    ) -> Result<(), WriteError<Stashed>>;

    /// [`Mmu::map_leaves`].
    ///
    /// # Safety
    /// As [`Mmu::map_leaves`].
    unsafe fn map_leaves(
        &mut self,
        table: TableRef<'_, L>,
        first: u16,
        entries: &[Pte],
    ) -> Result<Pending, WriteError<Stashed>>;
}

/// Children of a table of level `L`.
pub(super) trait ParentOps<L: HasChild> {
    /// [`Mmu::entry`].
    fn entry(&mut self, table: TableRef<'_, L>, index: u16) -> Result<Pte, Stashed>;

    /// [`Mmu::child`].
    fn child<'a>(
        &mut self,
        table: TableRef<'a, L>,
        index: u16,
    ) -> Result<Option<TableRef<'a, ChildOf<L>>>, Stashed>;

    /// [`Mmu::put_child`].
    #[allow(clippy::type_complexity)]
    fn put_child(
        &mut self,
        table: &mut FreshTable<L>,
        index: u16,
        child: Frame<PinnedRO<ChildOf<L>>>,
    ) -> Result<(), Failed<Frame<PinnedRO<ChildOf<L>>>, WriteError<Stashed>>>;

    /// [`Mmu::hook`].
    #[allow(clippy::type_complexity)]
    fn hook(
        &mut self,
        parent: TableRef<'_, L>,
        index: u16,
        child: Frame<PinnedRO<ChildOf<L>>>,
    ) -> Result<Pending, Failed<Frame<PinnedRO<ChildOf<L>>>, WriteError<Stashed>>>;
}

/// Completing a table of level `L`.
pub(super) trait MakeOps<L: Level> {
    /// `Mmu::finish_table_queued`.
    #[allow(clippy::type_complexity)]
    fn finish(
        &mut self,
        table: FreshTable<L>,
    ) -> Result<(Frame<PinnedRO<L>>, Pending), Failed<FreshTable<L>, Stashed>>;
}

/// Submitting what is queued.
pub(super) trait FlushOps {
    /// `Pending::flush`.
    fn flush(&mut self, pending: Pending) -> Result<(), Stashed>;
}

/// Everything the cursor uses, at every level it uses it, as one flat object-safe trait (one
/// vtable per backend; supertraits would add one per trait and level). Each method is its
/// level's [`LeafOps`], [`ParentOps`] or [`MakeOps`] method; `dyn Ops` implements those
/// traits again by level, so the cursor's code stays generic over the level only.
#[allow(clippy::type_complexity, missing_docs)]
pub(super) trait Ops {
    unsafe fn put_leaves1(
        &mut self,
        t: &mut FreshTable<U1>,
        first: u16,
        run: &EntryRun,
    ) -> Result<(), WriteError<Stashed>>;
    unsafe fn put_leaves2(
        &mut self,
        t: &mut FreshTable<U2>,
        first: u16,
        run: &EntryRun,
    ) -> Result<(), WriteError<Stashed>>;
    unsafe fn put_leaves3(
        &mut self,
        t: &mut FreshTable<U3>,
        first: u16,
        run: &EntryRun,
    ) -> Result<(), WriteError<Stashed>>;
    unsafe fn map_leaves1(
        &mut self,
        t: TableRef<'_, U1>,
        first: u16,
        e: &[Pte],
    ) -> Result<Pending, WriteError<Stashed>>;
    unsafe fn map_leaves2(
        &mut self,
        t: TableRef<'_, U2>,
        first: u16,
        e: &[Pte],
    ) -> Result<Pending, WriteError<Stashed>>;
    unsafe fn map_leaves3(
        &mut self,
        t: TableRef<'_, U3>,
        first: u16,
        e: &[Pte],
    ) -> Result<Pending, WriteError<Stashed>>;
    fn entry4(&mut self, t: TableRef<'_, U4>, index: u16) -> Result<Pte, Stashed>;
    fn entry3(&mut self, t: TableRef<'_, U3>, index: u16) -> Result<Pte, Stashed>;
    fn entry2(&mut self, t: TableRef<'_, U2>, index: u16) -> Result<Pte, Stashed>;
    fn child4<'a>(
        &mut self,
        t: TableRef<'a, U4>,
        index: u16,
    ) -> Result<Option<TableRef<'a, U3>>, Stashed>;
    fn child3<'a>(
        &mut self,
        t: TableRef<'a, U3>,
        index: u16,
    ) -> Result<Option<TableRef<'a, U2>>, Stashed>;
    fn child2<'a>(
        &mut self,
        t: TableRef<'a, U2>,
        index: u16,
    ) -> Result<Option<TableRef<'a, U1>>, Stashed>;
    fn put_child4(
        &mut self,
        t: &mut FreshTable<U4>,
        index: u16,
        c: Frame<PinnedRO<U3>>,
    ) -> Result<(), Failed<Frame<PinnedRO<U3>>, WriteError<Stashed>>>;
    fn put_child3(
        &mut self,
        t: &mut FreshTable<U3>,
        index: u16,
        c: Frame<PinnedRO<U2>>,
    ) -> Result<(), Failed<Frame<PinnedRO<U2>>, WriteError<Stashed>>>;
    fn put_child2(
        &mut self,
        t: &mut FreshTable<U2>,
        index: u16,
        c: Frame<PinnedRO<U1>>,
    ) -> Result<(), Failed<Frame<PinnedRO<U1>>, WriteError<Stashed>>>;
    fn hook4(
        &mut self,
        t: TableRef<'_, U4>,
        index: u16,
        c: Frame<PinnedRO<U3>>,
    ) -> Result<Pending, Failed<Frame<PinnedRO<U3>>, WriteError<Stashed>>>;
    fn hook3(
        &mut self,
        t: TableRef<'_, U3>,
        index: u16,
        c: Frame<PinnedRO<U2>>,
    ) -> Result<Pending, Failed<Frame<PinnedRO<U2>>, WriteError<Stashed>>>;
    fn hook2(
        &mut self,
        t: TableRef<'_, U2>,
        index: u16,
        c: Frame<PinnedRO<U1>>,
    ) -> Result<Pending, Failed<Frame<PinnedRO<U1>>, WriteError<Stashed>>>;
    fn finish1(
        &mut self,
        t: FreshTable<U1>,
    ) -> Result<(Frame<PinnedRO<U1>>, Pending), Failed<FreshTable<U1>, Stashed>>;
    fn finish2(
        &mut self,
        t: FreshTable<U2>,
    ) -> Result<(Frame<PinnedRO<U2>>, Pending), Failed<FreshTable<U2>, Stashed>>;
    fn finish3(
        &mut self,
        t: FreshTable<U3>,
    ) -> Result<(Frame<PinnedRO<U3>>, Pending), Failed<FreshTable<U3>, Stashed>>;
    fn flush(&mut self, pending: Pending) -> Result<(), Stashed>;
}

/// [`Ops`] by forwarding to the per-level traits (implemented once, generically, for
/// [`Erased`]).
impl<T> Ops for T
where
    T: LeafOps<U1>
        + LeafOps<U2>
        + LeafOps<U3>
        + ParentOps<U4>
        + ParentOps<U3>
        + ParentOps<U2>
        + MakeOps<U1>
        + MakeOps<U2>
        + MakeOps<U3>
        + FlushOps,
{
    unsafe fn put_leaves1(
        &mut self,
        t: &mut FreshTable<U1>,
        first: u16,
        run: &EntryRun,
    ) -> Result<(), WriteError<Stashed>> {
        // SAFETY: the caller's promise is the same.
        unsafe { LeafOps::<U1>::put_leaves(self, t, first, run) }
    }
    unsafe fn put_leaves2(
        &mut self,
        t: &mut FreshTable<U2>,
        first: u16,
        run: &EntryRun,
    ) -> Result<(), WriteError<Stashed>> {
        // SAFETY: the caller's promise is the same.
        unsafe { LeafOps::<U2>::put_leaves(self, t, first, run) }
    }
    unsafe fn put_leaves3(
        &mut self,
        t: &mut FreshTable<U3>,
        first: u16,
        run: &EntryRun,
    ) -> Result<(), WriteError<Stashed>> {
        // SAFETY: the caller's promise is the same.
        unsafe { LeafOps::<U3>::put_leaves(self, t, first, run) }
    }
    unsafe fn map_leaves1(
        &mut self,
        t: TableRef<'_, U1>,
        first: u16,
        e: &[Pte],
    ) -> Result<Pending, WriteError<Stashed>> {
        // SAFETY: the caller's promise is the same.
        unsafe { LeafOps::<U1>::map_leaves(self, t, first, e) }
    }
    unsafe fn map_leaves2(
        &mut self,
        t: TableRef<'_, U2>,
        first: u16,
        e: &[Pte],
    ) -> Result<Pending, WriteError<Stashed>> {
        // SAFETY: the caller's promise is the same.
        unsafe { LeafOps::<U2>::map_leaves(self, t, first, e) }
    }
    unsafe fn map_leaves3(
        &mut self,
        t: TableRef<'_, U3>,
        first: u16,
        e: &[Pte],
    ) -> Result<Pending, WriteError<Stashed>> {
        // SAFETY: the caller's promise is the same.
        unsafe { LeafOps::<U3>::map_leaves(self, t, first, e) }
    }
    fn entry4(&mut self, t: TableRef<'_, U4>, index: u16) -> Result<Pte, Stashed> {
        ParentOps::<U4>::entry(self, t, index)
    }
    fn entry3(&mut self, t: TableRef<'_, U3>, index: u16) -> Result<Pte, Stashed> {
        ParentOps::<U3>::entry(self, t, index)
    }
    fn entry2(&mut self, t: TableRef<'_, U2>, index: u16) -> Result<Pte, Stashed> {
        ParentOps::<U2>::entry(self, t, index)
    }
    fn child4<'a>(
        &mut self,
        t: TableRef<'a, U4>,
        index: u16,
    ) -> Result<Option<TableRef<'a, U3>>, Stashed> {
        ParentOps::<U4>::child(self, t, index)
    }
    fn child3<'a>(
        &mut self,
        t: TableRef<'a, U3>,
        index: u16,
    ) -> Result<Option<TableRef<'a, U2>>, Stashed> {
        ParentOps::<U3>::child(self, t, index)
    }
    fn child2<'a>(
        &mut self,
        t: TableRef<'a, U2>,
        index: u16,
    ) -> Result<Option<TableRef<'a, U1>>, Stashed> {
        ParentOps::<U2>::child(self, t, index)
    }
    fn put_child4(
        &mut self,
        t: &mut FreshTable<U4>,
        index: u16,
        c: Frame<PinnedRO<U3>>,
    ) -> Result<(), Failed<Frame<PinnedRO<U3>>, WriteError<Stashed>>> {
        ParentOps::<U4>::put_child(self, t, index, c)
    }
    fn put_child3(
        &mut self,
        t: &mut FreshTable<U3>,
        index: u16,
        c: Frame<PinnedRO<U2>>,
    ) -> Result<(), Failed<Frame<PinnedRO<U2>>, WriteError<Stashed>>> {
        ParentOps::<U3>::put_child(self, t, index, c)
    }
    fn put_child2(
        &mut self,
        t: &mut FreshTable<U2>,
        index: u16,
        c: Frame<PinnedRO<U1>>,
    ) -> Result<(), Failed<Frame<PinnedRO<U1>>, WriteError<Stashed>>> {
        ParentOps::<U2>::put_child(self, t, index, c)
    }
    fn hook4(
        &mut self,
        t: TableRef<'_, U4>,
        index: u16,
        c: Frame<PinnedRO<U3>>,
    ) -> Result<Pending, Failed<Frame<PinnedRO<U3>>, WriteError<Stashed>>> {
        ParentOps::<U4>::hook(self, t, index, c)
    }
    fn hook3(
        &mut self,
        t: TableRef<'_, U3>,
        index: u16,
        c: Frame<PinnedRO<U2>>,
    ) -> Result<Pending, Failed<Frame<PinnedRO<U2>>, WriteError<Stashed>>> {
        ParentOps::<U3>::hook(self, t, index, c)
    }
    fn hook2(
        &mut self,
        t: TableRef<'_, U2>,
        index: u16,
        c: Frame<PinnedRO<U1>>,
    ) -> Result<Pending, Failed<Frame<PinnedRO<U1>>, WriteError<Stashed>>> {
        ParentOps::<U2>::hook(self, t, index, c)
    }
    fn finish1(
        &mut self,
        t: FreshTable<U1>,
    ) -> Result<(Frame<PinnedRO<U1>>, Pending), Failed<FreshTable<U1>, Stashed>> {
        MakeOps::<U1>::finish(self, t)
    }
    fn finish2(
        &mut self,
        t: FreshTable<U2>,
    ) -> Result<(Frame<PinnedRO<U2>>, Pending), Failed<FreshTable<U2>, Stashed>> {
        MakeOps::<U2>::finish(self, t)
    }
    fn finish3(
        &mut self,
        t: FreshTable<U3>,
    ) -> Result<(Frame<PinnedRO<U3>>, Pending), Failed<FreshTable<U3>, Stashed>> {
        MakeOps::<U3>::finish(self, t)
    }
    fn flush(&mut self, pending: Pending) -> Result<(), Stashed> {
        FlushOps::flush(self, pending)
    }
}

/// `dyn Ops` by level, for the cursor's level-generic code.
macro_rules! by_level {
    ($(leaf $leaf:ident: $put:ident, $map:ident;)* $(parent $p:ident: $entry:ident, $child:ident, $put_child:ident, $hook:ident;)* $(make $m:ident: $finish:ident;)*) => {
        $(impl LeafOps<$leaf> for dyn Ops + '_ {
            unsafe fn put_leaves(&mut self, table: &mut FreshTable<$leaf>, first: u16, run: &EntryRun) -> Result<(), WriteError<Stashed>> {
                // SAFETY: the caller's promise is the same.
                unsafe { self.$put(table, first, run) }
            }
            unsafe fn map_leaves(&mut self, table: TableRef<'_, $leaf>, first: u16, entries: &[Pte]) -> Result<Pending, WriteError<Stashed>> {
                // SAFETY: the caller's promise is the same.
                unsafe { self.$map(table, first, entries) }
            }
        })*
        $(impl ParentOps<$p> for dyn Ops + '_ {
            fn entry(&mut self, table: TableRef<'_, $p>, index: u16) -> Result<Pte, Stashed> {
                self.$entry(table, index)
            }
            fn child<'a>(&mut self, table: TableRef<'a, $p>, index: u16) -> Result<Option<TableRef<'a, ChildOf<$p>>>, Stashed> {
                self.$child(table, index)
            }
            fn put_child(&mut self, table: &mut FreshTable<$p>, index: u16, child: Frame<PinnedRO<ChildOf<$p>>>) -> Result<(), Failed<Frame<PinnedRO<ChildOf<$p>>>, WriteError<Stashed>>> {
                self.$put_child(table, index, child)
            }
            fn hook(&mut self, parent: TableRef<'_, $p>, index: u16, child: Frame<PinnedRO<ChildOf<$p>>>) -> Result<Pending, Failed<Frame<PinnedRO<ChildOf<$p>>>, WriteError<Stashed>>> {
                self.$hook(parent, index, child)
            }
        })*
        $(impl MakeOps<$m> for dyn Ops + '_ {
            fn finish(&mut self, table: FreshTable<$m>) -> Result<(Frame<PinnedRO<$m>>, Pending), Failed<FreshTable<$m>, Stashed>> {
                self.$finish(table)
            }
        })*
    };
}

by_level! {
    leaf U1: put_leaves1, map_leaves1;
    leaf U2: put_leaves2, map_leaves2;
    leaf U3: put_leaves3, map_leaves3;
    parent U4: entry4, child4, put_child4, hook4;
    parent U3: entry3, child3, put_child3, hook3;
    parent U2: entry2, child2, put_child2, hook2;
    make U1: finish1;
    make U2: finish2;
    make U3: finish3;
}

/// [`Ops`] over an [`Mmu`], with the backend's first error kept aside.
pub(super) struct Erased<'m, B: RawMmu> {
    mmu: &'m mut Mmu<B>,
    error: Option<B::Error>,
}

impl<'m, B: RawMmu> Erased<'m, B> {
    pub(super) fn new(mmu: &'m mut Mmu<B>) -> Self {
        Self { mmu, error: None }
    }

    /// Keeps `e` (the first one: the cursor stops at an error) and stands in for it.
    fn stash(&mut self, e: B::Error) -> Stashed {
        self.error.get_or_insert(e);
        Stashed
    }

    fn stash_write(&mut self, e: WriteError<B::Error>) -> WriteError<Stashed> {
        match e {
            WriteError::Entry(e) => WriteError::Entry(e),
            WriteError::Backend(e) => WriteError::Backend(self.stash(e)),
        }
    }

    /// The cursor's error with the backend's own put back.
    pub(super) fn restore(self, e: BuildError<Stashed>) -> BuildError<B::Error> {
        match e {
            BuildError::Plan(e) => BuildError::Plan(e),
            BuildError::Exhausted { needed, remaining } => {
                BuildError::Exhausted { needed, remaining }
            }
            BuildError::BadFlags => BuildError::BadFlags,
            BuildError::Capacity => BuildError::Capacity,
            BuildError::AlreadyMapped(va) => BuildError::AlreadyMapped(va),
            BuildError::Backend(Stashed) => match self.error {
                Some(e) => BuildError::Backend(e),
                // Every `Stashed` is made by `stash`, which keeps the error first.
                None => unreachable!(/* a stashed error is kept */),
            },
        }
    }
}

impl<B: RawMmu> Erased<'_, B> {
    /// Whether the backend maps leaves at level `L` at all. The cursor only asks for sizes the
    /// plan took from the backend's caps, so this never refuses; with the caps a constant of
    /// the backend it leaves the large-leaf paths out of a backend that has none (Xen PV).
    fn leaves_at<L: LeafLevel>(&self) -> bool {
        let size = match L::LEVEL {
            TableLevel::L2 => PageSizes::SIZE_2M,
            TableLevel::L3 => PageSizes::SIZE_1G,
            _ => return true,
        };
        self.mmu.caps().page_sizes.contains(size)
    }
}

impl<B: RawMmu, L: LeafLevel> LeafOps<L> for Erased<'_, B> {
    unsafe fn put_leaves(
        &mut self,
        table: &mut FreshTable<L>,
        first: u16,
        run: &EntryRun,
    ) -> Result<(), WriteError<Stashed>> {
        if !self.leaves_at::<L>() {
            return Err(WriteError::Entry(EntryError::BadLeaf(first)));
        }
        // SAFETY: the caller's promise is `put_leaves`' own.
        unsafe { self.mmu.put_leaves(table, first, run) }.map_err(|e| self.stash_write(e))
    }

    unsafe fn map_leaves(
        &mut self,
        table: TableRef<'_, L>,
        first: u16,
        entries: &[Pte],
    ) -> Result<Pending, WriteError<Stashed>> {
        if !self.leaves_at::<L>() {
            return Err(WriteError::Entry(EntryError::BadLeaf(first)));
        }
        // SAFETY: the caller's promise is `map_leaves`' own.
        unsafe { self.mmu.map_leaves(table, first, entries) }.map_err(|e| self.stash_write(e))
    }
}

impl<B: RawMmu, L: HasChild> ParentOps<L> for Erased<'_, B> {
    fn entry(&mut self, table: TableRef<'_, L>, index: u16) -> Result<Pte, Stashed> {
        self.mmu.entry(table, index).map_err(|e| self.stash(e))
    }

    fn child<'a>(
        &mut self,
        table: TableRef<'a, L>,
        index: u16,
    ) -> Result<Option<TableRef<'a, ChildOf<L>>>, Stashed> {
        self.mmu.child(table, index).map_err(|e| self.stash(e))
    }

    fn put_child(
        &mut self,
        table: &mut FreshTable<L>,
        index: u16,
        child: Frame<PinnedRO<ChildOf<L>>>,
    ) -> Result<(), Failed<Frame<PinnedRO<ChildOf<L>>>, WriteError<Stashed>>> {
        self.mmu.put_child(table, index, child).map_err(|f| Failed {
            error: self.stash_write(f.error),
            value: f.value,
        })
    }

    fn hook(
        &mut self,
        parent: TableRef<'_, L>,
        index: u16,
        child: Frame<PinnedRO<ChildOf<L>>>,
    ) -> Result<Pending, Failed<Frame<PinnedRO<ChildOf<L>>>, WriteError<Stashed>>> {
        self.mmu.hook(parent, index, child).map_err(|f| Failed {
            error: self.stash_write(f.error),
            value: f.value,
        })
    }
}

impl<B: RawMmu, L: Level> MakeOps<L> for Erased<'_, B> {
    fn finish(
        &mut self,
        table: FreshTable<L>,
    ) -> Result<(Frame<PinnedRO<L>>, Pending), Failed<FreshTable<L>, Stashed>> {
        self.mmu.finish_table_queued(table).map_err(|f| Failed {
            error: self.stash(f.error),
            value: f.value,
        })
    }
}

impl<B: RawMmu> FlushOps for Erased<'_, B> {
    fn flush(&mut self, pending: Pending) -> Result<(), Stashed> {
        pending.flush(self.mmu).map_err(|e| self.stash(e))
    }
}
