//! What every board gives an example: the memory map, a console, cycles, and an exit.

use hal_core::memblock::{MapError, MapReport, Memblock, MemblockError};
use hal_core::memmap::MemRegion;

use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::common::racy_cell::RacyCell;

/// Region capacity of the memblock a board hands out.
pub const MEMBLOCK_REGIONS: usize = 128;

/// The memblock a board hands out.
pub type BoardMemblock = Memblock<MEMBLOCK_REGIONS>;

/// Why [`Platform::take_memblock`] gave nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, defmt::Format)]
pub enum ClaimError {
    /// The machine's RAM was handed out already: there is one memblock per boot.
    AlreadyClaimed,
    /// The firmware map was refused.
    Map(MapError),
    /// Reserving one of the board's boot ranges failed.
    Reserve(MemblockError),
}

impl core::fmt::Display for ClaimError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::AlreadyClaimed => f.write_str(
                "the machine's RAM was handed out already: there is one memblock per boot",
            ),
            Self::Map(e) => write!(f, "firmware memory map refused: {e}"),
            Self::Reserve(e) => write!(f, "reserving one of the board's boot ranges failed: {e}"),
        }
    }
}

impl core::error::Error for ClaimError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::AlreadyClaimed => None,
            Self::Map(e) => Some(e),
            Self::Reserve(e) => Some(e),
        }
    }
}

/// The machine's one memblock, built in place by [`claim_memblock`]: static storage, not the
/// boot stack (it is over 4 KiB, and moving it out of a function copies it).
#[cfg_attr(not(any(feature = "native", feature = "xen-pv")), allow(dead_code))]
static MACHINE_MEMBLOCK: RacyCell<MaybeUninit<BoardMemblock>> =
    RacyCell::new(MaybeUninit::uninit());

/// Set once [`MACHINE_MEMBLOCK`] was handed out (or while it is being built).
#[cfg_attr(not(any(feature = "native", feature = "xen-pv")), allow(dead_code))]
static CLAIMED: AtomicBool = AtomicBool::new(false);

/// Builds the one memblock of the machine from `map`, with `reserved` kept out, in its
/// static storage, unless it was handed out before. A claim that failed can be made again.
///
/// # Safety
/// `map` is this machine's memory map (or memory the caller owns) and `reserved` covers
/// every part of its RAM that is in use.
#[cfg_attr(not(any(feature = "native", feature = "xen-pv")), allow(dead_code))]
pub(crate) unsafe fn claim_memblock(
    map: &[MemRegion],
    reserved: &[(u64, u64)],
) -> Result<(&'static mut BoardMemblock, MapReport), ClaimError> {
    if CLAIMED.swap(true, Ordering::AcqRel) {
        return Err(ClaimError::AlreadyClaimed);
    }
    // SAFETY: `CLAIMED` was clear, so no reference to the storage was ever handed out, and
    // only this call (it set the flag) touches it now.
    let slot = unsafe { &mut *MACHINE_MEMBLOCK.get() };
    // SAFETY: the caller's contract: the map is the machine's, claimed once (`CLAIMED`).
    let built = unsafe { build(slot, map, reserved) };
    if built.is_err() {
        // Nothing was handed out: the storage may be built again.
        CLAIMED.store(false, Ordering::Release);
    }
    built
}

/// [`claim_memblock`]'s building, into `slot`.
///
/// # Safety
/// As [`claim_memblock`], and the RAM is claimed for this memblock alone.
#[cfg_attr(not(any(feature = "native", feature = "xen-pv")), allow(dead_code))]
unsafe fn build<'a>(
    slot: &'a mut MaybeUninit<BoardMemblock>,
    map: &[MemRegion],
    reserved: &[(u64, u64)],
) -> Result<(&'a mut BoardMemblock, MapReport), ClaimError> {
    // SAFETY: the caller's contract.
    let (mb, report) =
        unsafe { BoardMemblock::init_from_firmware(slot, map) }.map_err(ClaimError::Map)?;
    for &(s, e) in reserved {
        mb.reserve(s, e).map_err(ClaimError::Reserve)?;
    }
    Ok((mb, report))
}

/// How a run ends; the runner maps it to the process exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, defmt::Format)]
pub enum Outcome {
    /// Every check of the example passed.
    Pass,
    /// A check failed (or a panic / fault happened).
    Fail,
}

impl Outcome {
    /// The variant's name, as `{:?}` writes it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Pass => "Pass",
            Self::Fail => "Fail",
        }
    }
}

/// The surface a board offers to board-agnostic examples.
///
/// Implemented once per board (bare metal through PVH, Xen PV). An example is written as
/// `fn main<P: Platform>(p: &mut P) -> Outcome` and registered with [`crate::entry!`].
pub trait Platform {
    /// The board's name, e.g. `"native-pvh"` or `"xen-pv"`.
    fn name(&self) -> &'static str;
    /// The firmware memory map as the board read it, unvalidated.
    fn memory_map(&self) -> &[MemRegion];
    /// Physical ranges `[start, end)` in bytes that the image and the boot data occupy (kernel
    /// image, boot page tables, boot stack, start_info, P2M list, ...): reserved in memblock.
    fn reserved(&self) -> &[(u64, u64)];
    /// Writes text to the human-readable console.
    fn console_write(&mut self, s: &str);
    /// The time-stamp counter.
    fn cycles(&self) -> u64;
    /// The guest command line (bare metal: QEMU's `-append`; Xen PV: `start_info.cmd_line`).
    fn cmdline(&self) -> &str;
    /// memblock over the machine's RAM (from [`memory_map`](Self::memory_map)) with
    /// [`reserved`](Self::reserved) kept out, in the board's static storage (not on the boot
    /// stack). The RAM is claimed once: a second call says [`ClaimError::AlreadyClaimed`], so
    /// no two memblocks hand out the same frames.
    fn take_memblock(&mut self) -> Result<(&'static mut BoardMemblock, MapReport), ClaimError>;
}

/// Why [`MmuPlatform::alias`] gave no second mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq, defmt::Format)]
pub enum AliasError {
    /// The board has no mapping of this frame besides the kernel's own.
    NoMapping {
        /// The frame.
        pfn: u64,
    },
    /// The backend refused to map it (the board logged why).
    Backend(hal_core::ErrorKind),
}

/// A board with an MMU backend: what the page-table examples need beyond [`Platform`].
///
/// Backend-specific figures (Xen PV's hypercalls per phase, the seed's per-page release for
/// comparison) are not the board's: the backend reports them through
/// [`hal_core::Report`], which every backend implements.
pub trait MmuPlatform: Platform {
    /// The board's backend; its errors are logged through defmt.
    type Backend: hal_core::RawMmu<Error: defmt::Format> + hal_core::Report;

    /// The backend, wrapped in hal-core's typed layer.
    fn mmu(&mut self) -> &mut hal_core::Mmu<Self::Backend>;

    /// The backend and the one handle to the live root, together: hook into the live
    /// tables with `mmu.hook(root.table(), ..)`, switch with `mmu.switch_root(root, ..)`.
    fn mmu_and_root(&mut self) -> (&mut hal_core::Mmu<Self::Backend>, &mut hal_core::LiveRoot);

    /// New page-table frames must lie below this physical address (bare metal: the end of the
    /// boot identity map, through which the backend stores into them; Xen PV: no limit).
    fn table_limit(&self) -> u64;

    /// The boot mapping of physical memory: `(va, frames)`, frames mapped contiguously from
    /// `va`, writable (bare metal: the identity map; Xen PV: the domain builder's mapping).
    fn boot_window(&self) -> (u64, hal_core::PfnRange);

    /// A second mapping of frame `pfn`, independent of any table a kernel built: the virtual
    /// address at which the frame can be read, valid until the next call to `alias` or
    /// [`end_alias`](Self::end_alias). Bare metal: the boot identity map; Xen PV: the domain
    /// builder's initial mapping where it covers the frame, elsewhere a page of the board's own
    /// pointed at the frame, read-only. [`AliasError::NoMapping`] where the board has none.
    fn alias(&mut self, pfn: hal_core::Pfn) -> Result<u64, AliasError>;

    /// Ends the mapping [`alias`](Self::alias) gave (a page of the board's own maps its own
    /// frame again). Nothing to do if there is none.
    fn end_alias(&mut self) -> Result<(), AliasError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use hal_core::memblock::MapError;

    fn is_error<T: core::error::Error>() {}

    /// Every public error type of the boards built here implements `Error`, and the claim's
    /// message names the firmware map's own cause.
    #[test]
    fn errors_are_errors_and_say_why() {
        is_error::<ClaimError>();
        is_error::<crate::common::args::UnknownKey<'static>>();
        #[cfg(feature = "native")]
        {
            is_error::<crate::native::start_info::StartInfoError>();
            is_error::<crate::native::test_memmap::UnknownPerturbation>();
        }
        #[cfg(feature = "xen-pv")]
        is_error::<crate::xen::bootstrap::MappingError>();
        let c = ClaimError::Map(MapError::Overlap { index: 2 });
        let text = std::format!("{c}");
        assert!(
            text.contains("firmware memory map refused: Overlap"),
            "{text}"
        );
        assert!(text.contains("entry 2"), "{text}");
    }
}
