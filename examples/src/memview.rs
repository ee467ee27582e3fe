//! memblock's view of the firmware map, shared by the examples.

use boards::{ClaimError, Platform};
use heapless::Vec;
use pvmmu::memblock::Memblock;
use pvmmu::PfnRange;

use crate::Failure;

/// Region capacity of the examples' memblock.
pub const REGIONS: usize = boards::MEMBLOCK_REGIONS;

/// memblock from the board's firmware map, with the board's reservations.
pub fn memblock<P: Platform>(p: &mut P) -> Result<Memblock<REGIONS>, Failure> {
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
    Ok(mb)
}

/// The RAM of `mb` as frame ranges.
pub fn ram_ranges(mb: &Memblock<REGIONS>) -> Vec<PfnRange, REGIONS> {
    mb.memory()
        .iter()
        .filter_map(|r| PfnRange::inside_bytes(r.start(), r.end()))
        .filter(|r| !r.is_empty())
        .collect()
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
