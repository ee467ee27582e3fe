//! Building the direct map through the typed layer.
//!
//! Tables are opened as the (ascending) runs reach them and closed when the runs leave them;
//! a table that did not exist is a [`FreshTable`]: each run of leaves is streamed into it at
//! once (one backend call per run: plain stores on bare metal, the `mmu_update` queue on Xen
//! PV), the slots no run covers are written empty, every slot exactly once. When it is closed
//! it becomes a `Frame<PinnedRO<L>>` and is written into its parent (or hooked, if the parent
//! is live). Children are therefore complete before any parent points at them, and on
//! Xen PV a subtree is validated once, when it is hooked under the live root (or when the new
//! root is pinned). A fresh root with no frame that must be read-only (bare metal) skips the
//! cursor: nothing exists below it to look up, so it is written in one descent (`descent.rs`).

use heapless::Vec;
use typenum::{U1, U2, U3, U4};
use x86_64::structures::paging::PageTableFlags;

use super::descent::Descent;
use super::ops::{Erased, LeafOps, MakeOps, Ops, ParentOps, Stashed};
use super::plan::{count_runs, DirectMapSpec, PageSize, PlanError, Runs, TableCount};
use crate::addr::{Pfn, PfnRange};
use crate::backend::{EntryRun, RawMmu};
use crate::error::{BackendError, ErrorKind, Failed};
use crate::fresh::FreshTable;
use crate::level::{ChildOf, HasChild, Level, TableLevel};
use crate::mmu::{Mmu, Pending, WriteError};
use crate::pgt_buf::{Exhausted, PgtBuf};
use crate::pte::Pte;
use crate::state::PinnedRO;
use crate::table::{EntryError, LeafLevel, TableBuilder, TableRef};
use crate::Frame;

/// Where the direct map goes.
pub enum Target<'r, 'b> {
    /// A root being built in memory (not live yet): its slots are filled in the builder. A
    /// subtree goes into the builder only once its writes are submitted (one flush per root
    /// slot the map fills, on a queuing backend): the builder, unlike a [`FreshTable`], is
    /// not checked for slots a refused submission dropped.
    New(&'b mut TableBuilder<U4>),
    /// A root being written in place (not live yet): the direct map's slots are streamed into
    /// it, so they must lie at or above its [`next_slot`](FreshTable::next_slot).
    Fresh(&'b mut FreshTable<U4>),
    /// A live root: existing tables under it are reused.
    Live(TableRef<'r, U4>),
}

/// What [`build`] did.
#[derive(Debug)]
#[must_use = "the Pending inside must be flushed"]
pub struct Built {
    /// Tables made, per level.
    pub made: TableCount,
    /// Existing tables reused.
    pub reused: u64,
    /// Pages mapped: 4 KiB, 2 MiB, 1 GiB.
    pub pages: [u64; 3],
    /// Frames mapped read-only (page tables, or reserved for them).
    pub read_only_frames: u64,
    /// The queued writes.
    pub pending: Pending,
}

/// Why the direct map could not be built.
#[derive(Debug)]
pub enum BuildError<E> {
    /// The ranges or the base are unusable.
    Plan(PlanError),
    /// The buffer cannot cover the tables: checked before anything is touched.
    Exhausted {
        /// Tables the ranges need (exact for an empty target).
        needed: u64,
        /// Frames left in the buffer.
        remaining: u64,
    },
    /// Leaf flags must contain `PRESENT` and not `HUGE_PAGE` (added where needed), and `NO_EXECUTE`
    /// only where the backend allows it.
    BadFlags,
    /// Too many read-only ranges to track.
    Capacity,
    /// Something is mapped already where the direct map goes (virtual address).
    AlreadyMapped(u64),
    /// The backend refused. Tables made so far stay in the used part of the buffer (reserved,
    /// read-only): nothing is handed out as memory.
    Backend(E),
}

impl<E: BackendError> BackendError for BuildError<E> {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Backend(e) => e.kind(),
            Self::Exhausted { .. } | Self::Capacity => ErrorKind::Capacity,
            Self::Plan(_) | Self::BadFlags | Self::AlreadyMapped(_) => ErrorKind::OutOfRange,
        }
    }
}

impl<E> From<PlanError> for BuildError<E> {
    fn from(e: PlanError) -> Self {
        Self::Plan(e)
    }
}

impl<E> From<Exhausted> for BuildError<E> {
    fn from(e: Exhausted) -> Self {
        Self::Exhausted {
            needed: e.capacity + 1,
            remaining: 0,
        }
    }
}

impl<T, E> From<Failed<T, E>> for BuildError<E> {
    fn from(f: Failed<T, E>) -> Self {
        Self::Backend(f.error)
    }
}

impl<E> BuildError<E> {
    /// The error for a refused write of the entry covering `va`.
    pub(super) fn at(va: u64, e: WriteError<E>) -> Self {
        match e {
            WriteError::Backend(e) => Self::Backend(e),
            WriteError::Entry(EntryError::Occupied(_)) => Self::AlreadyMapped(va),
            WriteError::Entry(_) => Self::BadFlags,
        }
    }
}

/// The read-only set: the buffer, the backend's own tables and the caller's extra ranges,
/// sorted and merged. Empty when the backend does not need read-only tables.
pub fn read_only_set<B: RawMmu>(
    mmu: &Mmu<B>,
    buf: &PgtBuf,
    extra: &[PfnRange],
) -> Result<Vec<PfnRange, 64>, BuildError<B::Error>> {
    let mut v = Vec::new();
    read_only_into(&mut v, mmu, buf, extra)?;
    Ok(v)
}

/// [`read_only_set`] into `out` (empty on entry), sorted and merged in place: the set is
/// 1 KiB, and [`build`] does not move it around.
fn read_only_into<B: RawMmu>(
    out: &mut Vec<PfnRange, 64>,
    mmu: &Mmu<B>,
    buf: &PgtBuf,
    extra: &[PfnRange],
) -> Result<(), BuildError<B::Error>> {
    if !mmu.caps().tables_read_only {
        return Ok(());
    }
    for r in core::iter::once(&buf.range())
        .chain(mmu.raw().foreign_tables())
        .chain(extra)
    {
        if !r.is_empty() {
            out.push(*r).map_err(|_| BuildError::Capacity)?;
        }
    }
    PfnRange::sort_by_start(out);
    // Merge in place: `out[..kept]` is the merged prefix.
    let mut kept = 0usize;
    for i in 0..out.len() {
        let r = out[i];
        match kept.checked_sub(1).map(|k| &mut out[k]) {
            Some(last) if r.start().as_u64() <= last.end() => {
                *last = PfnRange::new(last.start(), last.end().max(r.end()))
                    .unwrap_or_else(|| unreachable!(/* ordered */));
            }
            _ => {
                out[kept] = r;
                kept += 1;
            }
        }
    }
    out.truncate(kept);
    Ok(())
}

/// Builds the direct map of `ranges` (sorted, disjoint) at `spec.base` under `target`,
/// taking new tables from `buf`. `flags` are the leaf flags (`PRESENT | WRITABLE`, plus
/// `NO_EXECUTE` or `GLOBAL` as wanted). Frames that must be read-only get 4 KiB leaves: the
/// buffer's and the backend's own tables get the caller's flags, which a backend with
/// [`Caps::tables_read_only`](crate::backend::Caps) writes read-only until it releases them;
/// `extra_read_only` (frames the caller knows are or will be tables, outside the buffer) get
/// read-only leaves for good (no backend will make them writable on a release).
///
/// Before touching anything it checks that `buf` holds the exact number of tables needed.
///
/// # Safety
/// The virtual range `[spec.base, spec.base + end of the last range)` is used by nothing else,
/// and every frame of `ranges` may be mapped with `flags`.
pub unsafe fn build<B: RawMmu>(
    mmu: &mut Mmu<B>,
    buf: &mut PgtBuf,
    target: Target<'_, '_>,
    ranges: &[PfnRange],
    extra_read_only: &[PfnRange],
    spec: &DirectMapSpec,
    flags: PageTableFlags,
) -> Result<Built, BuildError<B::Error>> {
    let caps = mmu.caps();
    if !flags.contains(PageTableFlags::PRESENT)
        || flags.contains(PageTableFlags::HUGE_PAGE)
        || (flags.contains(PageTableFlags::NO_EXECUTE) && !caps.nx)
    {
        return Err(BuildError::BadFlags);
    }
    let mut ro = Vec::new();
    read_only_into(&mut ro, mmu, buf, extra_read_only)?;
    // The ranges are checked once; the count walks a copy of the runs the build walks.
    let mut runs = Runs::new(ranges, &ro, spec, &caps)?;
    let first = runs.next();
    let needed = count_runs(first.into_iter().chain(runs.clone()), spec.base).total();
    if needed > buf.remaining() {
        return Err(BuildError::Exhausted {
            needed,
            remaining: buf.remaining(),
        });
    }
    let target = match target {
        // No table exists below a fresh root and no leaf is read-only: one descent. Only for
        // a backend whose tables stay writable: one whose tables are read-only always has
        // its buffer in the read-only set (unless the buffer is empty, where the cursor is
        // as right), so its build never takes this path, and with the caps a constant of
        // the backend the descent is left out of its code.
        Target::Fresh(root) if !caps.tables_read_only && ro.is_empty() => {
            let mut d = Descent {
                mmu,
                buf,
                base: spec.base,
                flags,
                runs,
                cur: first,
                made: TableCount::default(),
                pages: [0; 3],
                pending: Pending::none(),
            };
            d.root(root)?;
            return Ok(Built {
                made: d.made,
                reused: 0,
                pages: d.pages,
                read_only_frames: 0,
                pending: d.pending,
            });
        }
        other => other,
    };
    let buf_range = buf.range();
    let mut ops = Erased::new(mmu);
    let mut b = Builder {
        mmu: &mut ops,
        buf,
        target,
        flags,
        l3: None,
        l2: None,
        l1: None,
        made: TableCount::default(),
        reused: 0,
        pending: Pending::none(),
    };
    let built = cursor(&mut b, first, runs, extra_read_only, buf_range, spec);
    built.map_err(|e| ops.restore(e))
}

/// The cursor over the runs: not generic over the backend (see `ops.rs`).
fn cursor(
    b: &mut Builder<'_, '_, '_>,
    first: Option<super::plan::Run>,
    runs: Runs<'_>,
    extra_read_only: &[PfnRange],
    buf_range: PfnRange,
    spec: &DirectMapSpec,
) -> Result<Built, BuildError<Stashed>> {
    let mut pages = [0u64; 3];
    let mut read_only_frames = 0;
    for run in first.into_iter().chain(runs) {
        let mut pfn = run.pfn;
        let end = run.pfn + run.pages * run.size.frames();
        if run.read_only {
            read_only_frames += run.pages;
        }
        while pfn < end {
            let va = spec.base + (pfn << 12);
            // The caller's extra read-only frames (outside the buffer) are written read-only
            // here, for good: the backend downgrades and later restores only the leaves of
            // frames it protects itself, and knows nothing of the caller's.
            let (stop, strip) = if run.read_only && !extra_read_only.is_empty() {
                caller_read_only(extra_read_only, buf_range, pfn, end)
            } else {
                (end, false)
            };
            let n = b.map_chunk(va, pfn, stop, run.size, strip)?;
            pages[run.size as usize] += n;
            pfn += n * run.size.frames();
        }
    }
    b.close_l3()?;
    Ok(Built {
        made: b.made,
        reused: b.reused,
        pages,
        read_only_frames,
        pending: core::mem::replace(&mut b.pending, Pending::none()),
    })
}

/// From `pfn` (below `end`): whether it is one of the caller's extra read-only frames outside
/// the buffer, and where that answer may change (at most `end`).
fn caller_read_only(extra: &[PfnRange], buf: PfnRange, pfn: u64, end: u64) -> (u64, bool) {
    let inside = |r: &PfnRange| r.start().as_u64() <= pfn && pfn < r.end();
    let strip = !inside(&buf) && extra.iter().any(inside);
    let stop = extra
        .iter()
        .chain(core::iter::once(&buf))
        .flat_map(|r| [r.start().as_u64(), r.end()])
        .filter(|&b| b > pfn)
        .fold(end, u64::min);
    (stop, strip)
}

/// A table the cursor has open: made here (written in place as the runs reach it) or found
/// live. Either is a few words: nothing is staged.
enum Open<'r, L: Level> {
    New { key: u64, table: FreshTable<L> },
    Live { key: u64, table: TableRef<'r, L> },
}

impl<L: Level> Open<'_, L> {
    fn key(&self) -> u64 {
        match self {
            Self::New { key, .. } | Self::Live { key, .. } => *key,
        }
    }
}

struct Builder<'m, 'r, 'b> {
    mmu: &'m mut dyn Ops,
    buf: &'m mut PgtBuf,
    target: Target<'r, 'b>,
    flags: PageTableFlags,
    l3: Option<Open<'r, U3>>,
    l2: Option<Open<'r, U2>>,
    l1: Option<Open<'r, U1>>,
    made: TableCount,
    reused: u64,
    pending: Pending,
}

/// The key of the table of level `L` that covers `va`: va >> (span of an entry one level up).
fn key_of(level: TableLevel, va: u64) -> u64 {
    va >> (level.entry_shift() + 9)
}

impl<'m, 'r> Builder<'m, 'r, '_> {
    /// Maps pages of `size` from `pfn` (at `va`) up to `end` or the end of the table they fall
    /// in; returns how many pages it mapped.
    fn map_chunk(
        &mut self,
        va: u64,
        pfn: u64,
        end: u64,
        size: PageSize,
        strip: bool,
    ) -> Result<u64, BuildError<Stashed>> {
        let level = size.level();
        let first = level.index_of(va);
        let room = 512 - u64::from(first);
        let n = ((end - pfn) / size.frames()).min(room);
        // Read-only frames get 4 KiB leaves with the caller's flags: the backend writes a
        // writable leaf for a protected or table frame read-only and makes it writable again
        // on release (`RawMmu::write`); a leaf written read-only here (`strip`: the caller's
        // extra read-only frames) stays so.
        debug_assert!(!strip || size == PageSize::Size4K);
        let mut flags = self.flags;
        if strip {
            flags.remove(PageTableFlags::WRITABLE);
        }
        if size != PageSize::Size4K {
            flags.insert(PageTableFlags::HUGE_PAGE);
        }
        let run = EntryRun {
            first: Pte::new(Pfn::new(pfn).ok_or(BuildError::BadFlags)?, flags),
            step: size.frames(),
            count: n as u16,
        };
        match size {
            PageSize::Size4K => {
                self.open_l1(va)?;
                let slot = self
                    .l1
                    .as_mut()
                    .unwrap_or_else(|| unreachable!(/* opened */));
                fill(self.mmu, slot, first, &run, va)?;
            }
            PageSize::Size2M => {
                // The L1 below comes first in the L2 (runs ascend): finish it before the leaves.
                self.close_l1()?;
                self.open_l2(va)?;
                let slot = self
                    .l2
                    .as_mut()
                    .unwrap_or_else(|| unreachable!(/* opened */));
                fill(self.mmu, slot, first, &run, va)?;
            }
            PageSize::Size1G => {
                self.close_l2()?;
                self.open_l3(va)?;
                let slot = self
                    .l3
                    .as_mut()
                    .unwrap_or_else(|| unreachable!(/* opened */));
                fill(self.mmu, slot, first, &run, va)?;
            }
        }
        Ok(n)
    }

    fn open_l3(&mut self, va: u64) -> Result<(), BuildError<Stashed>> {
        let key = key_of(TableLevel::L3, va);
        if self.l3.as_ref().is_some_and(|o| o.key() == key) {
            return Ok(());
        }
        self.close_l3()?;
        let idx = TableLevel::L4.index_of(va);
        let existing = match &mut self.target {
            Target::New(root) => match root.entry(idx) {
                Some(e) if e.is_present() && !e.is_huge() => {
                    // SAFETY: the root builder's entries are tables the caller vouched for.
                    Some(unsafe { TableRef::<U3>::from_pfn(e.pfn()) })
                }
                Some(e) if e.is_present() => return Err(BuildError::AlreadyMapped(va)),
                _ => None,
            },
            // A slot behind the cursor of a fresh root is written already (inherited, or an
            // earlier table): a fresh root is not read back.
            Target::Fresh(root) if idx < root.next_slot() => {
                return Err(BuildError::AlreadyMapped(va))
            }
            Target::Fresh(_) => None,
            Target::Live(root) => live_child(self.mmu, *root, idx, va)?,
        };
        self.l3 = Some(self.open_at(key, existing)?);
        Ok(())
    }

    fn open_l2(&mut self, va: u64) -> Result<(), BuildError<Stashed>> {
        let key = key_of(TableLevel::L2, va);
        if self.l2.as_ref().is_some_and(|o| o.key() == key) {
            return Ok(());
        }
        self.close_l2()?;
        self.open_l3(va)?;
        let idx = TableLevel::L3.index_of(va);
        let existing = match self
            .l3
            .as_ref()
            .unwrap_or_else(|| unreachable!(/* opened */))
        {
            Open::New { table, .. } if idx < table.next_slot() => {
                return Err(BuildError::AlreadyMapped(va))
            }
            Open::New { .. } => None,
            Open::Live { table, .. } => live_child(self.mmu, *table, idx, va)?,
        };
        self.l2 = Some(self.open_at(key, existing)?);
        Ok(())
    }

    fn open_l1(&mut self, va: u64) -> Result<(), BuildError<Stashed>> {
        let key = key_of(TableLevel::L1, va);
        if self.l1.as_ref().is_some_and(|o| o.key() == key) {
            return Ok(());
        }
        self.close_l1()?;
        self.open_l2(va)?;
        let idx = TableLevel::L2.index_of(va);
        let existing = match self
            .l2
            .as_ref()
            .unwrap_or_else(|| unreachable!(/* opened */))
        {
            Open::New { table, .. } if idx < table.next_slot() => {
                return Err(BuildError::AlreadyMapped(va))
            }
            Open::New { .. } => None,
            Open::Live { table, .. } => live_child(self.mmu, *table, idx, va)?,
        };
        self.l1 = Some(self.open_at(key, existing)?);
        Ok(())
    }

    fn open_at<L: Level>(
        &mut self,
        key: u64,
        existing: Option<TableRef<'r, L>>,
    ) -> Result<Open<'r, L>, BuildError<Stashed>> {
        Ok(match existing {
            Some(table) => {
                self.reused += 1;
                Open::Live { key, table }
            }
            None => Open::New {
                key,
                table: FreshTable::new(self.buf.alloc()?),
            },
        })
    }

    fn close_l1(&mut self) -> Result<(), BuildError<Stashed>> {
        let Some(open) = self.l1.take() else {
            return Ok(());
        };
        let Some((frame, va)) = self.make(open, TableLevel::L1)? else {
            return Ok(());
        };
        self.made.l1 += 1;
        let idx = TableLevel::L2.index_of(va);
        let parent = self
            .l2
            .as_mut()
            .unwrap_or_else(|| unreachable!(/* a child's parent stays open */));
        attach(self.mmu, &mut self.pending, parent, idx, frame, va)
    }

    fn close_l2(&mut self) -> Result<(), BuildError<Stashed>> {
        self.close_l1()?;
        let Some(open) = self.l2.take() else {
            return Ok(());
        };
        let Some((frame, va)) = self.make(open, TableLevel::L2)? else {
            return Ok(());
        };
        self.made.l2 += 1;
        let idx = TableLevel::L3.index_of(va);
        let parent = self
            .l3
            .as_mut()
            .unwrap_or_else(|| unreachable!(/* a child's parent stays open */));
        attach(self.mmu, &mut self.pending, parent, idx, frame, va)
    }

    fn close_l3(&mut self) -> Result<(), BuildError<Stashed>> {
        self.close_l2()?;
        let Some(open) = self.l3.take() else {
            return Ok(());
        };
        let Some((frame, va)) = self.make(open, TableLevel::L3)? else {
            return Ok(());
        };
        self.made.l3 += 1;
        let idx = TableLevel::L4.index_of(va);
        match &mut self.target {
            Target::New(root) => {
                // The caller's builder is covered by no check of dropped slots (a fresh
                // table's is): the subtree goes into it only once it is written. A refused
                // submission may have dropped slots queued for it, so it stays out (in the
                // buffer's used part, read-only), and the refusal is the build's.
                let p = core::mem::replace(&mut self.pending, Pending::none());
                if let Err(e) = self.mmu.flush(p) {
                    crate::frame::handed_over(frame);
                    return Err(BuildError::Backend(e));
                }
                root.adopt(idx, frame).map_err(|(e, f)| {
                    crate::frame::handed_over(f);
                    BuildError::at(va, WriteError::<Stashed>::Entry(e))
                })
            }
            Target::Fresh(root) => {
                ParentOps::<U4>::put_child(self.mmu, root, idx, frame).map_err(|f| {
                    crate::frame::handed_over(f.value);
                    BuildError::at(va, f.error)
                })
            }
            Target::Live(root) => {
                let p = ParentOps::<U4>::hook(self.mmu, *root, idx, frame).map_err(|f| {
                    crate::frame::handed_over(f.value);
                    BuildError::at(va, f.error)
                })?;
                self.pending = core::mem::replace(&mut self.pending, Pending::none()).join(p);
                Ok(())
            }
        }
    }

    /// Finishes a table made here; returns it with a virtual address it covers. Live tables
    /// need nothing.
    #[allow(clippy::type_complexity)]
    fn make<L: Level>(
        &mut self,
        open: Open<'r, L>,
        level: TableLevel,
    ) -> Result<Option<(Frame<PinnedRO<L>>, u64)>, BuildError<Stashed>>
    where
        dyn Ops + 'm: MakeOps<L>,
    {
        let Open::New { key, table } = open else {
            return Ok(None);
        };
        let va = key << (level.entry_shift() + 9);
        let (frame, p) = MakeOps::<L>::finish(self.mmu, table).map_err(|f| {
            // The frame stays in the buffer's used part, read-only: nothing is handed out.
            let _ = f.value.into_frame();
            BuildError::Backend(f.error)
        })?;
        self.pending = core::mem::replace(&mut self.pending, Pending::none()).join(p);
        Ok(Some((frame, sign_extend(va))))
    }
}

fn sign_extend(va: u64) -> u64 {
    if va & (1 << 47) != 0 {
        va | 0xffff_0000_0000_0000
    } else {
        va
    }
}

fn live_child<'r, L: HasChild, M: ParentOps<L> + ?Sized>(
    mmu: &mut M,
    table: TableRef<'r, L>,
    idx: u16,
    va: u64,
) -> Result<Option<TableRef<'r, ChildOf<L>>>, BuildError<Stashed>> {
    let e = mmu.entry(table, idx).map_err(BuildError::Backend)?;
    if e.is_present() && e.is_huge() {
        return Err(BuildError::AlreadyMapped(va));
    }
    mmu.child(table, idx).map_err(BuildError::Backend)
}

fn attach<L: HasChild, M: ParentOps<L> + ?Sized>(
    mmu: &mut M,
    pending: &mut Pending,
    parent: &mut Open<'_, L>,
    idx: u16,
    frame: Frame<PinnedRO<ChildOf<L>>>,
    va: u64,
) -> Result<(), BuildError<Stashed>> {
    match parent {
        Open::New { table, .. } => mmu.put_child(table, idx, frame).map_err(|f| {
            crate::frame::handed_over(f.value);
            BuildError::at(va, f.error)
        }),
        Open::Live { table, .. } => {
            let p = mmu.hook(*table, idx, frame).map_err(|f| {
                crate::frame::handed_over(f.value);
                BuildError::at(va, f.error)
            })?;
            *pending = core::mem::replace(pending, Pending::none()).join(p);
            Ok(())
        }
    }
}

/// Entries staged per call when leaves go into a live table (which is checked slot by slot).
const LIVE_CHUNK: usize = 32;

/// Writes the leaves of `run` from slot `first` into an open table.
fn fill<L: LeafLevel, M: LeafOps<L> + ?Sized>(
    mmu: &mut M,
    open: &mut Open<'_, L>,
    first: u16,
    run: &EntryRun,
    va: u64,
) -> Result<(), BuildError<Stashed>> {
    match open {
        Open::New { table, .. } => {
            // SAFETY: the caller of `build` vouched for the virtual range and the frames.
            unsafe { mmu.put_leaves(table, first, run) }.map_err(|e| BuildError::at(va, e))
        }
        Open::Live { table, .. } => {
            let mut chunk = [Pte::EMPTY; LIVE_CHUNK];
            let mut done = 0u16;
            while done < run.count {
                let n = (run.count - done).min(LIVE_CHUNK as u16);
                for (i, slot) in chunk.iter_mut().enumerate().take(usize::from(n)) {
                    *slot = run.entry(done + i as u16);
                }
                // SAFETY: as above.
                let p = unsafe { mmu.map_leaves(*table, first + done, &chunk[..usize::from(n)]) }
                    .map_err(|e| BuildError::at(va, e))?;
                p.defer();
                done += n;
            }
            Ok(())
        }
    }
}

impl<E: core::fmt::Display> core::fmt::Display for BuildError<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Plan(e) => write!(f, "the ranges or the base cannot be mapped: {e}"),
            Self::Exhausted { needed, remaining } => write!(
                f,
                "the buffer cannot cover the tables: {needed} needed, {remaining} left"
            ),
            Self::BadFlags => f.write_str(
                "leaf flags must contain PRESENT, not HUGE_PAGE, and NO_EXECUTE only where the backend allows it",
            ),
            Self::Capacity => f.write_str("too many read-only ranges to track"),
            Self::AlreadyMapped(va) => {
                write!(f, "something is mapped already at {va:#x}, where the direct map goes")
            }
            Self::Backend(e) => write!(f, "the backend refused: {e}"),
        }
    }
}

/// The [`Display`](core::fmt::Display) wording, written by defmt.
#[cfg(feature = "defmt")]
impl<E: defmt::Format> defmt::Format for BuildError<E> {
    fn format(&self, f: defmt::Formatter<'_>) {
        match self {
            Self::Plan(e) => defmt::write!(f, "the ranges or the base cannot be mapped: {}", e),
            Self::Exhausted { needed, remaining } => defmt::write!(
                f,
                "the buffer cannot cover the tables: {=u64} needed, {=u64} left",
                needed,
                remaining
            ),
            Self::BadFlags => defmt::write!(
                f,
                "leaf flags must contain PRESENT, not HUGE_PAGE, and NO_EXECUTE only where the backend allows it"
            ),
            Self::Capacity => defmt::write!(f, "too many read-only ranges to track"),
            Self::AlreadyMapped(va) => defmt::write!(
                f,
                "something is mapped already at {=u64:#x}, where the direct map goes",
                va
            ),
            Self::Backend(e) => defmt::write!(f, "the backend refused: {}", e),
        }
    }
}

impl<E: core::error::Error + 'static> core::error::Error for BuildError<E> {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Plan(e) => Some(e),
            Self::Backend(e) => Some(e),
            _ => None,
        }
    }
}
