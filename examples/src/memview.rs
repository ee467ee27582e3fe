//! memblock's view of the firmware map, shared by the examples.

use boards::{ClaimError, Platform};
use heapless::Vec;
use pvmmu::addr::{MAX_PFN, PAGE_SHIFT};
use pvmmu::memblock::{Memblock, MemblockError};
use pvmmu::PfnRange;

use crate::Failure;

/// Region capacity of the examples' memblock.
pub const REGIONS: usize = boards::MEMBLOCK_REGIONS;

/// memblock from the board's firmware map, with the board's reservations (in the board's
/// static storage).
pub fn memblock<P: Platform>(p: &mut P) -> Result<&'static mut Memblock<REGIONS>, Failure> {
    let (mb, report) = p.take_memblock().map_err(|e| match e {
        ClaimError::Map(e) => {
            defmt::error!("firmware memory map refused: {}", e);
            Failure::Map(e)
        }
        ClaimError::Reserve(e) => {
            defmt::error!("memblock: reserving a boot range failed: {}", e);
            Failure::Memblock(e)
        }
        ClaimError::AlreadyClaimed => {
            defmt::error!("memblock: the machine's RAM was claimed already");
            Failure::Claimed
        }
    })?;
    defmt::info!(
        "memblock: {=usize} RAM entries, {=u64} KiB RAM, {=u64} bytes trimmed to whole pages",
        report.ram_entries,
        report.ram_bytes >> 10,
        report.trimmed_bytes
    );
    if report.unaddressable_bytes != 0 {
        defmt::warn!(
            "memblock: {=u64} KiB of RAM dropped: at or above MAX_PFN, no page table can map it",
            report.unaddressable_bytes >> 10
        );
    }
    Ok(mb)
}

/// The RAM of `mb` as frame ranges (whole frames inside each region). RAM that no frame
/// number can name is refused, never dropped: memblock's firmware path already leaves it out
/// (and counts it), so such a region was added by hand.
pub fn ram_ranges(mb: &Memblock<REGIONS>) -> Result<Vec<PfnRange, REGIONS>, Failure> {
    let mut out = Vec::new();
    for r in mb.memory() {
        let unaddressable = || {
            defmt::error!(
                "memblock: RAM [{=u64:#x}, {=u64:#x}) is beyond the last frame number",
                r.start(),
                r.end()
            );
            Failure::Unaddressable {
                start: r.start(),
                end: r.end(),
            }
        };
        if r.end() > MAX_PFN << PAGE_SHIFT {
            return Err(unaddressable());
        }
        let pfns = PfnRange::inside_bytes(r.start(), r.end()).ok_or_else(unaddressable)?;
        if !pfns.is_empty() {
            // As many ranges as memblock has regions: this cannot fail.
            out.push(pfns)
                .map_err(|_| Failure::Memblock(MemblockError::Capacity))?;
        }
    }
    Ok(out)
}

/// Logs memory, reserved and free regions.
pub fn log(mb: &Memblock<REGIONS>) {
    defmt::info!("memblock.memory ({=usize}):", mb.memory().len());
    for r in mb.memory() {
        defmt::info!("  [{=u64:#x}, {=u64:#x})", r.start(), r.end());
    }
    defmt::info!("memblock.reserved ({=usize}):", mb.reserved().len());
    for r in mb.reserved() {
        defmt::info!("  [{=u64:#x}, {=u64:#x})", r.start(), r.end());
    }
    defmt::info!(
        "memblock: {=u64} KiB memory, {=u64} KiB free",
        mb.memory_bytes() >> 10,
        mb.free_bytes() >> 10
    );
}
