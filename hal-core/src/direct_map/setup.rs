//! The whole lifecycle in one call: [`map_ram`] takes a memblock and a [`Setup`] (base, flags,
//! page sizes, headroom) to a live direct map of all its RAM.
//!
//! 1. **Sizing to a fixed point.** The exact table count depends on where `pgt_buf` lands:
//!    on a backend with read-only tables ([`Caps::tables_read_only`](crate::Caps::tables_read_only)) its own frames are
//!    mapped read-only, which can split a large page. memblock is deterministic, so a trial
//!    allocation of the size gives the placement, the placement gives the count, the count
//!    gives the size; [`map_ram`] repeats until the size no longer changes
//!    ([`MAX_SIZING_ROUNDS`] at most, else [`SetupError::SizeUnsettled`]).
//! 2. **The buffer**, made page-table-ready ([`PgtBuf::new`]: Xen PV maps it read-only
//!    everywhere before any table is built).
//! 3. **The build** ([`build`](super::build())): into a new root that inherits every present
//!    slot of the live root outside the direct map's ([`RootChoice::New`]), or straight under
//!    the live root ([`RootChoice::ExtendLive`]).
//! 4. **The switch**: the new root completed, pinned and made live through the board's
//!    [`LiveRoot`] (skipped when extending the live root).
//! 5. **Windows**: each RAM range is registered with the backend at its direct-map address, so
//!    the backend can reach any frame through the new map (and find the tail's mappings in
//!    it).
//! 6. **The hook**: [`PgtBuf::finish`] releases the unused tail (batched) and frees it in
//!    memblock.
//!
//! Each step enters its [`Phase`] through [`RawMmu::set_phase`], so a backend that counts its
//! work per phase (Xen PV) counts the lifecycle without the caller's help.
//!
//! The call is safe: what [`build`](super::build()) and [`Mmu::switch_root`] leave to their
//! callers is checked here. The direct map's root slots must be empty in the live root (so the
//! virtual range is used by nothing, and a new root that inherits every other present slot
//! maps the running kernel exactly as the live one does); the leaf flags are limited to
//! ordinary kernel memory (`PRESENT`, `WRITABLE`, `GLOBAL`, `NO_EXECUTE`, `ACCESSED`,
//! `DIRTY`); and the frames mapped are memblock's memory, which its `unsafe` constructors
//! claimed as RAM this kernel owns.

use core::fmt;

use heapless::Vec;
use x86_64::structures::paging::PageTableFlags;

use super::build::{build, BuildError, Target};
use super::plan::{count_tables, DirectMapSpec, PlanError, LINUX_PAGE_OFFSET};
use crate::addr::{Pfn, PfnRange, PAGE_SHIFT};
use crate::backend::{PageSizes, RawMmu};
use crate::error::{BackendError, ErrorKind};
use crate::fresh::FreshTable;
use crate::level::TableLevel;
use crate::memblock::{Direction, Memblock, MemblockError};
use crate::mmu::{Mmu, SwitchError, WriteError};
use crate::pgt_buf::{FinishError, Finished, NewError, PgtBuf};
use crate::phase::Phase;
use crate::root::{LiveRoot, PreviousRoot};

/// Trial placements [`map_ram`] makes before it gives up on a size that keeps changing.
pub const MAX_SIZING_ROUNDS: u32 = 8;

/// Read-only ranges the sizing tracks (the buffer, the backend's own tables).
const RO_RANGES: usize = 64;

/// The leaf flags [`map_ram`] accepts: ordinary, cacheable kernel memory.
pub const ALLOWED_FLAGS: PageTableFlags = PageTableFlags::PRESENT
    .union(PageTableFlags::WRITABLE)
    .union(PageTableFlags::GLOBAL)
    .union(PageTableFlags::NO_EXECUTE)
    .union(PageTableFlags::ACCESSED)
    .union(PageTableFlags::DIRTY);

/// Where the direct map's tables hang.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RootChoice {
    /// A new root (its frame from `pgt_buf`) that inherits every present slot of the live root
    /// outside the direct map's, pinned and switched to.
    New,
    /// The direct map's tables hooked under the live root itself (no switch).
    ExtendLive,
}

/// What [`map_ram`] is asked to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setup {
    /// The base and the page sizes to use (intersected with the backend's).
    pub spec: DirectMapSpec,
    /// Leaf flags: `PRESENT` and any of [`ALLOWED_FLAGS`]; frames that must be read-only lose
    /// `WRITABLE`.
    pub flags: PageTableFlags,
    /// Page-table frames must lie below this physical address (a board's `table_limit`).
    pub limit: u64,
    /// Frames `pgt_buf` holds beyond the exact count: the tail `finish` releases.
    pub headroom: u64,
    /// Which end of free memory the buffer comes from.
    pub direction: Direction,
    /// A new root, or the live one extended.
    pub root: RootChoice,
}

impl Setup {
    /// Linux's choices: the direct map at [`LINUX_PAGE_OFFSET`], every page size the backend
    /// allows, `PRESENT | WRITABLE`, no limit, no headroom, the buffer from the bottom of
    /// memory, a new root.
    pub const fn linux() -> Self {
        Self::at(LINUX_PAGE_OFFSET)
    }

    /// As [`linux`](Self::linux), at `base` (1 GiB aligned, canonical).
    pub const fn at(base: u64) -> Self {
        Self {
            spec: DirectMapSpec {
                base,
                page_sizes: PageSizes::all(),
            },
            flags: PageTableFlags::PRESENT.union(PageTableFlags::WRITABLE),
            limit: u64::MAX,
            headroom: 0,
            direction: Direction::BottomUp,
            root: RootChoice::New,
        }
    }

    /// With page-table frames below `limit`.
    pub const fn limit(mut self, limit: u64) -> Self {
        self.limit = limit;
        self
    }

    /// With `frames` of headroom.
    pub const fn headroom(mut self, frames: u64) -> Self {
        self.headroom = frames;
        self
    }

    /// With leaf flags `flags`.
    pub const fn flags(mut self, flags: PageTableFlags) -> Self {
        self.flags = flags;
        self
    }

    /// Using only `sizes` (with the backend's).
    pub const fn page_sizes(mut self, sizes: PageSizes) -> Self {
        self.spec.page_sizes = sizes;
        self
    }

    /// Building into `root`.
    pub const fn root(mut self, root: RootChoice) -> Self {
        self.root = root;
        self
    }

    /// Taking the buffer from `direction`.
    pub const fn direction(mut self, direction: Direction) -> Self {
        self.direction = direction;
        self
    }
}

/// What [`map_ram`] did, in numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Figures {
    /// Bytes of RAM mapped (memblock's memory, whole pages).
    pub ram_bytes: u64,
    /// Tables below the root the plan needs, exactly, for where the buffer landed.
    pub computed: u64,
    /// Frames taken from the buffer (tables, and the root if one was made).
    pub tables_used: u64,
    /// Tail frames released by `finish`.
    pub tail_released: u64,
    /// Pages mapped: 4 KiB, 2 MiB, 1 GiB.
    pub pages: [u64; 3],
    /// Tables the build made below the root (equal to `computed`, or the planner and the
    /// builder disagree).
    pub tables_made: u64,
    /// Root slots inherited from the live root (0 when extending it).
    pub inherited: u16,
    /// Frames mapped read-only (page tables, or reserved for them).
    pub read_only_frames: u64,
    /// Trial placements the sizing took (1 when the placement does not change the count).
    pub sizing_rounds: u32,
}

/// The live direct map [`map_ram`] made.
#[derive(Debug)]
pub struct DirectMap<const N: usize> {
    /// Where and how it maps.
    pub spec: DirectMapSpec,
    /// The RAM it maps, as frame ranges (sorted, disjoint), each at `base + pfn * 4096`.
    pub ranges: Vec<PfnRange, N>,
    /// The root it lives under (the live root).
    pub root: Pfn,
    /// What became of the buffer: `used` are page tables now (reserved), `released` is free.
    pub buffer: Finished,
    /// The root that was live before, when a new one was made: the boot tables (not hal-core's
    /// to free), or a root hal-core built (pinned, hooked nowhere; retire it, or it leaks).
    pub previous: Option<PreviousRoot>,
    /// The figures.
    pub figures: Figures,
}

impl<const N: usize> DirectMap<N> {
    /// The whole buffer, `[start, top)`: the used part then the released tail.
    pub fn pgt_buf(&self) -> PfnRange {
        PfnRange::new(self.buffer.used.start(), self.buffer.released.end())
            .unwrap_or(self.buffer.used)
    }

    /// The virtual address of `pfn` in the direct map, if the map covers it.
    pub fn va(&self, pfn: Pfn) -> Option<u64> {
        self.ranges
            .iter()
            .any(|r| r.contains(pfn))
            .then(|| self.spec.base + pfn.addr())
    }
}

/// Why [`map_ram`] failed, with the step that failed and its cause.
///
/// What each failure leaves: before the buffer exists, nothing has changed. Once it exists, a
/// failure of a new root's build or switch finishes the buffer on the way out (the tail is
/// released and freed; if that fails too, it stays reserved: leaked, never handed out) and the
/// live root is unchanged. A failed build under the live root ([`RootChoice::ExtendLive`])
/// leaves the tables hooked so far, and the buffer reserved (leaked: its frames may be mapped
/// read-only where the backend cannot find them). [`Window`](Self::Window) comes after the
/// switch: the map is live, the buffer reserved (leaked) for the same reason.
#[derive(Debug)]
pub enum SetupError<E> {
    /// The leaf flags are not `PRESENT` plus a subset of [`ALLOWED_FLAGS`], or ask for
    /// `NO_EXECUTE` on a backend without NX (the flags' bits).
    Flags(u64),
    /// memblock holds no RAM to map.
    NoRam,
    /// More RAM ranges than the map can track (`N`).
    TooManyRanges,
    /// Root slot `slot`, which the direct map needs, is in use in the live root.
    SlotInUse(u16),
    /// The ranges or the base cannot be mapped.
    Plan(PlanError),
    /// More read-only ranges (the buffer and the backend's own tables) than the sizing tracks.
    ReadOnlyRanges,
    /// The buffer of `frames` frames found no room in memblock (below the limit).
    Memblock {
        /// Frames asked for.
        frames: u64,
        /// memblock's answer.
        error: MemblockError,
    },
    /// The size did not settle: after [`MAX_SIZING_ROUNDS`] placements it still changed.
    SizeUnsettled {
        /// The last two sizes tried.
        sizes: (u64, u64),
    },
    /// Reading the live root failed.
    Read(E),
    /// The backend refused to make the buffer page-table-ready.
    Protect(E),
    /// Copying the live root's slots into the new root failed.
    Inherit(WriteError<E>),
    /// The build failed.
    Build(BuildError<E>),
    /// Completing, pinning or switching to the new root failed.
    Switch(SwitchError<E>),
    /// Releasing the tail failed (it is left reserved and read-only: leaked).
    Release(E),
    /// memblock could not take the tail back (it stays reserved).
    Free(MemblockError),
    /// The backend could not register a window over the new map (the map is live; the buffer
    /// stays reserved).
    Window(E),
}

impl<E: fmt::Display> fmt::Display for SetupError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Flags(bits) => write!(
                f,
                "leaf flags {bits:#x} are not PRESENT plus ordinary kernel-memory flags (WRITABLE, GLOBAL, NO_EXECUTE where the backend has NX, ACCESSED, DIRTY)"
            ),
            Self::NoRam => f.write_str("memblock holds no RAM to map"),
            Self::TooManyRanges => f.write_str("more RAM ranges than the direct map can track"),
            Self::SlotInUse(slot) => write!(
                f,
                "root slot {slot}, which the direct map needs, is in use in the live root"
            ),
            Self::Plan(e) => write!(f, "the direct map cannot be planned: {e}"),
            Self::ReadOnlyRanges => f.write_str("too many read-only ranges to size the buffer"),
            Self::Memblock { frames, error } => {
                write!(f, "pgt_buf: {frames} frames do not fit: {error}")
            }
            Self::SizeUnsettled { sizes } => write!(
                f,
                "pgt_buf's size did not settle in {MAX_SIZING_ROUNDS} placements (last {} then {} frames)",
                sizes.0, sizes.1
            ),
            Self::Read(e) => write!(f, "reading the live root failed: {e}"),
            Self::Protect(e) => write!(f, "making pgt_buf page-table-ready failed: {e}"),
            Self::Inherit(e) => write!(f, "inheriting the live root's slots failed: {e}"),
            Self::Build(e) => write!(f, "building the direct map failed: {e}"),
            Self::Switch(e) => write!(f, "switching to the new root failed: {e}"),
            Self::Release(e) => write!(f, "releasing pgt_buf's tail failed: {e}"),
            Self::Free(e) => write!(f, "memblock could not take pgt_buf's tail back: {e}"),
            Self::Window(e) => write!(f, "registering a window over the new map failed: {e}"),
        }
    }
}

impl<E: core::error::Error + 'static> core::error::Error for SetupError<E> {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Plan(e) => Some(e),
            Self::Memblock { error, .. } | Self::Free(error) => Some(error),
            Self::Read(e) | Self::Protect(e) | Self::Release(e) | Self::Window(e) => Some(e),
            Self::Inherit(e) => Some(e),
            Self::Build(e) => Some(e),
            Self::Switch(e) => Some(e),
            _ => None,
        }
    }
}

/// The [`Display`](fmt::Display) wording, written by defmt (no `core::fmt` in a kernel that
/// logs it); the inner errors as their own `defmt::Format` says.
#[cfg(feature = "defmt")]
impl<E: defmt::Format> defmt::Format for SetupError<E> {
    fn format(&self, f: defmt::Formatter<'_>) {
        match self {
            Self::Flags(bits) => defmt::write!(
                f,
                "leaf flags {=u64:#x} are not PRESENT plus ordinary kernel-memory flags (WRITABLE, GLOBAL, NO_EXECUTE where the backend has NX, ACCESSED, DIRTY)",
                bits
            ),
            Self::NoRam => defmt::write!(f, "memblock holds no RAM to map"),
            Self::TooManyRanges => {
                defmt::write!(f, "more RAM ranges than the direct map can track")
            }
            Self::SlotInUse(slot) => defmt::write!(
                f,
                "root slot {=u16}, which the direct map needs, is in use in the live root",
                slot
            ),
            Self::Plan(e) => defmt::write!(f, "the direct map cannot be planned: {}", e),
            Self::ReadOnlyRanges => {
                defmt::write!(f, "too many read-only ranges to size the buffer")
            }
            Self::Memblock { frames, error } => {
                defmt::write!(f, "pgt_buf: {=u64} frames do not fit: {}", frames, error)
            }
            Self::SizeUnsettled { sizes } => defmt::write!(
                f,
                "pgt_buf's size did not settle in {=u32} placements (last {=u64} then {=u64} frames)",
                MAX_SIZING_ROUNDS,
                sizes.0,
                sizes.1
            ),
            Self::Read(e) => defmt::write!(f, "reading the live root failed: {}", e),
            Self::Protect(e) => defmt::write!(f, "making pgt_buf page-table-ready failed: {}", e),
            Self::Inherit(e) => defmt::write!(f, "inheriting the live root's slots failed: {}", e),
            Self::Build(e) => defmt::write!(f, "building the direct map failed: {}", e),
            Self::Switch(e) => defmt::write!(f, "switching to the new root failed: {}", e),
            Self::Release(e) => defmt::write!(f, "releasing pgt_buf's tail failed: {}", e),
            Self::Free(e) => {
                defmt::write!(f, "memblock could not take pgt_buf's tail back: {}", e)
            }
            Self::Window(e) => {
                defmt::write!(f, "registering a window over the new map failed: {}", e)
            }
        }
    }
}

impl<E: BackendError> BackendError for SetupError<E> {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Read(e) | Self::Protect(e) | Self::Release(e) | Self::Window(e) => e.kind(),
            Self::Build(e) => e.kind(),
            Self::Inherit(WriteError::Backend(e)) => e.kind(),
            Self::Switch(SwitchError::Backend(e)) => e.kind(),
            Self::Memblock { .. } | Self::TooManyRanges | Self::ReadOnlyRanges => {
                ErrorKind::Capacity
            }
            Self::Free(_) => ErrorKind::Capacity,
            Self::Flags(_) | Self::Plan(_) | Self::SlotInUse(_) | Self::NoRam => {
                ErrorKind::OutOfRange
            }
            _ => ErrorKind::Other,
        }
    }
}

/// The buffer's frames, the backend's own tables, sorted and merged: what the builder will map
/// read-only for a buffer at `buf` (empty when the backend needs no read-only tables).
fn read_only_set<B: RawMmu>(mmu: &Mmu<B>, buf: PfnRange) -> Result<Vec<PfnRange, RO_RANGES>, ()> {
    let mut v: Vec<PfnRange, RO_RANGES> = Vec::new();
    if !mmu.caps().tables_read_only {
        return Ok(v);
    }
    for r in core::iter::once(&buf).chain(mmu.raw().foreign_tables()) {
        if !r.is_empty() {
            v.push(*r).map_err(|_| ())?;
        }
    }
    PfnRange::sort_by_start(&mut v);
    let mut out: Vec<PfnRange, RO_RANGES> = Vec::new();
    for r in v {
        match out.last_mut() {
            Some(last) if r.start().as_u64() <= last.end() => {
                let end = last.end().max(r.end());
                *last = PfnRange::from_raw(last.start().as_u64(), end).ok_or(())?;
            }
            _ => out.push(r).map_err(|_| ())?,
        }
    }
    Ok(out)
}

/// Sizes the buffer to its fixed point: `(frames, tables below the root, rounds)`.
fn size_buffer<B: RawMmu, const N: usize>(
    mmu: &Mmu<B>,
    memblock: &mut Memblock<N>,
    ranges: &[PfnRange],
    setup: &Setup,
    extra: u64,
) -> Result<(u64, u64, u32), SetupError<B::Error>> {
    let caps = mmu.caps();
    let count = |buf: PfnRange| -> Result<u64, SetupError<B::Error>> {
        let ro = read_only_set(mmu, buf).map_err(|()| SetupError::ReadOnlyRanges)?;
        let n = count_tables(ranges, &ro, &setup.spec, &caps).map_err(SetupError::Plan)?;
        Ok(n.total())
    };
    let nowhere = PfnRange::empty(ranges[0].start());
    let mut size = count(nowhere)?
        .checked_add(extra)
        .ok_or(SetupError::Memblock {
            frames: u64::MAX,
            error: MemblockError::Overflow,
        })?;
    let mut previous = size;
    for round in 1..=MAX_SIZING_ROUNDS {
        let trial = memblock
            .alloc_frames(size, setup.limit, setup.direction)
            .map_err(|error| SetupError::Memblock {
                frames: size,
                error,
            })?;
        let placed = trial.pfns();
        memblock
            .free_frames(trial)
            .map_err(|e| SetupError::Free(e.error))?;
        let tables = count(placed)?;
        let want = tables + extra;
        if want == size {
            return Ok((size, tables, round));
        }
        previous = size;
        size = want;
    }
    Err(SetupError::SizeUnsettled {
        sizes: (previous, size),
    })
}

/// Maps all of `memblock`'s RAM at `setup.spec.base` and makes the map live: the whole
/// lifecycle of `pgt_buf` (see the [module docs](self) for the steps and what they check).
///
/// On `Ok` the direct map is live under `live` (a new root was switched to, or the live root
/// extended), every RAM range is a window of the backend, the buffer's used frames are page
/// tables (reserved in `memblock`) and its tail is free in `memblock`.
///
/// Keep the direct map in any root made later: the backend reaches frames through the windows
/// registered here.
pub fn map_ram<B: RawMmu, const N: usize>(
    mmu: &mut Mmu<B>,
    live: &mut LiveRoot,
    memblock: &mut Memblock<N>,
    setup: &Setup,
) -> Result<DirectMap<N>, SetupError<B::Error>> {
    let caps = mmu.caps();
    let flags = setup.flags;
    if !flags.contains(PageTableFlags::PRESENT)
        || !ALLOWED_FLAGS.contains(flags)
        || (flags.contains(PageTableFlags::NO_EXECUTE) && !caps.nx)
    {
        return Err(SetupError::Flags(flags.bits()));
    }
    let mut ranges: Vec<PfnRange, N> = Vec::new();
    for r in memblock.memory() {
        if let Some(r) = PfnRange::inside_bytes(r.start(), r.end()).filter(|r| !r.is_empty()) {
            ranges.push(r).map_err(|_| SetupError::TooManyRanges)?;
        }
    }
    let (Some(first), Some(last)) = (ranges.first(), ranges.last()) else {
        return Err(SetupError::NoRam);
    };
    let mut figures = Figures {
        ram_bytes: ranges.iter().map(|r| r.len() << PAGE_SHIFT).sum(),
        ..Figures::default()
    };
    // The root slots the map covers must be empty in the live root: then the virtual range is
    // used by nothing, and a new root inheriting every other present slot maps the running
    // kernel as the live one does.
    count_tables(&ranges, &[], &setup.spec, &caps).map_err(SetupError::Plan)?;
    let base = setup.spec.base;
    let span = |pfn: u64| base.checked_add(pfn << PAGE_SHIFT);
    let (Some(lo), Some(hi)) = (span(first.start().as_u64()), span(last.end() - 1)) else {
        return Err(SetupError::Plan(PlanError::OutOfVirtualSpace {
            pfn: last.end(),
        }));
    };
    let slots = (TableLevel::L4.index_of(lo), TableLevel::L4.index_of(hi) + 1);
    for slot in slots.0..slots.1 {
        let e = mmu.entry(live.table(), slot).map_err(SetupError::Read)?;
        if e.is_present() {
            return Err(SetupError::SlotInUse(slot));
        }
    }

    // 1. Sizing, 2. the buffer.
    let new_root = setup.root == RootChoice::New;
    let extra = setup.headroom.saturating_add(u64::from(new_root));
    let (size, computed, rounds) = size_buffer(mmu, memblock, &ranges, setup, extra)?;
    figures.computed = computed;
    figures.sizing_rounds = rounds;
    mmu.raw_mut().set_phase(Phase::MakeReadOnly);
    let mut buf = match PgtBuf::new(mmu, memblock, size, setup.limit, setup.direction) {
        Ok(buf) => buf,
        Err(NewError::Memblock(error)) => {
            mmu.raw_mut().set_phase(Phase::Other);
            return Err(SetupError::Memblock {
                frames: size,
                error,
            });
        }
        Err(NewError::Protect(f)) => {
            // The frames are Unsettled: settle them (or leak them, reserved) before leaving.
            mmu.raw_mut().set_phase(Phase::Other);
            if let Ok(frames) = mmu.settle(f.value) {
                let _ = memblock.free_frames(frames.into_free());
            }
            return Err(SetupError::Protect(f.error));
        }
    };

    // 3. The build, 4. the switch.
    mmu.raw_mut().set_phase(Phase::FillInstall);
    let switched = build_and_switch(mmu, live, &mut buf, &ranges, setup, slots, &mut figures);
    mmu.raw_mut().set_phase(Phase::Other);
    figures.tables_used = buf.used();
    let previous = match switched {
        Ok(previous) => previous,
        Err(e) => {
            if setup.root == RootChoice::New {
                // Nothing went live: the tail's only mappings are the ones the backend made
                // read-only itself, which `finish` makes writable again.
                mmu.raw_mut().set_phase(Phase::Release);
                let _ = buf.finish(mmu, memblock);
                mmu.raw_mut().set_phase(Phase::Other);
            } else {
                // Tables hooked under the live root may map tail frames read-only where no
                // window lets the backend find them: the tail stays reserved (leaked).
                drop(buf);
            }
            return Err(e);
        }
    };

    // 5. Windows, before the hook: a backend may find the tail's read-only mappings through
    // them.
    for r in &ranges {
        // SAFETY: the direct map is live in the current root (switched to, or the live root
        // extended) and maps `r` linearly at `base + start`; it stays for the backend's life
        // as long as the caller keeps it in later roots (documented above).
        if let Err(e) = unsafe { mmu.raw_mut().add_window(base + r.start().addr(), *r) } {
            // Without the window the tail's mappings in the new map may stay read-only:
            // the tail stays reserved (leaked), never handed out.
            drop(buf);
            return Err(SetupError::Window(e));
        }
    }

    // 6. The hook: finish the buffer.
    mmu.raw_mut().set_phase(Phase::Release);
    let finished = buf.finish(mmu, memblock);
    mmu.raw_mut().set_phase(Phase::Other);
    let buffer = match finished {
        Ok(fin) => fin,
        Err(FinishError::Release(f)) => return Err(SetupError::Release(f.error)),
        Err(FinishError::Memblock(f)) => return Err(SetupError::Free(f.error)),
        Err(FinishError::WrongMemblock(_)) => unreachable!("the buffer came from `memblock`"),
    };
    figures.tail_released = buffer.released.len();

    Ok(DirectMap {
        spec: setup.spec,
        ranges,
        root: live.pfn(),
        buffer,
        previous,
        figures,
    })
}

/// Steps 3 and 4: the root (new or live), the build, and for a new root the switch. Returns
/// the previous root when one was replaced.
fn build_and_switch<B: RawMmu>(
    mmu: &mut Mmu<B>,
    live: &mut LiveRoot,
    buf: &mut PgtBuf,
    ranges: &[PfnRange],
    setup: &Setup,
    slots: (u16, u16),
    figures: &mut Figures,
) -> Result<Option<PreviousRoot>, SetupError<B::Error>> {
    if setup.root == RootChoice::ExtendLive {
        // SAFETY: the direct map's root slots are empty in the live root (checked by
        // `map_ram`), so its virtual range is used by nothing; the frames are memblock's RAM
        // (claimed by its unsafe constructors) and the flags are ordinary kernel memory.
        let built = unsafe {
            build(
                mmu,
                buf,
                Target::Live(live.table()),
                ranges,
                &[],
                &setup.spec,
                setup.flags,
            )
        }
        .map_err(SetupError::Build)?;
        note(figures, &built);
        built
            .pending
            .flush(mmu)
            .map_err(|e| SetupError::Build(BuildError::Backend(e)))?;
        return Ok(None);
    }

    let frame = buf.alloc().map_err(|e| SetupError::Build(e.into()))?;
    // The new root is written in place (a 16-byte FreshTable, not a 4 KiB staged table):
    // its slots in ascending order, the live root's below the direct map first, the direct
    // map, then the live root's above it.
    let mut root = FreshTable::new(frame);
    figures.inherited = mmu
        .inherit_root_fresh(live, &mut root, (0, slots.0))
        .map_err(SetupError::Inherit)?;
    // SAFETY: as above; the new root's direct-map slots are empty (not written yet, and
    // empty in the live root anyway).
    let built = unsafe {
        build(
            mmu,
            buf,
            Target::Fresh(&mut root),
            ranges,
            &[],
            &setup.spec,
            setup.flags,
        )
    }
    .map_err(SetupError::Build)?;
    note(figures, &built);
    figures.inherited += mmu
        .inherit_root_fresh(live, &mut root, (slots.1, 512))
        .map_err(SetupError::Inherit)?;
    // The root's last slots are written before the one flush of the tree, like every other
    // table's: a backend that holds protection back (Xen PV's default) still stores them.
    let (root, p) = mmu
        .finish_table_queued(root)
        .map_err(|f| SetupError::Switch(SwitchError::Backend(f.error)))?;
    built
        .pending
        .join(p)
        .flush(mmu)
        .map_err(|e| SetupError::Build(BuildError::Backend(e)))?;
    mmu.raw_mut().set_phase(Phase::Switch);
    let root = mmu
        .pin(root)
        .map_err(|f| SetupError::Switch(SwitchError::Backend(f.error)))?;
    // SAFETY: the new root inherited every present slot of the live root except the direct
    // map's (empty in the live root, checked) and the backend's reserved ones (the backend's
    // own), so the running code, stack and data are mapped where they are now.
    let previous =
        unsafe { mmu.switch_root(live, root) }.map_err(|f| SetupError::Switch(f.error))?;
    Ok(Some(previous))
}

fn note(figures: &mut Figures, built: &super::build::Built) {
    figures.pages = built.pages;
    figures.tables_made = built.made.total();
    figures.read_only_frames = built.read_only_frames;
}
