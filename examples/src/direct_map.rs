//! The seed's scenario as a kernel writes it: the machine's memblock, then one call maps all
//! RAM at Linux's base with the largest pages the backend allows, sizes `pgt_buf` exactly
//! (plus the headroom, which becomes the tail), makes it page-table-ready, builds, pins and
//! switches to the new root and finishes the buffer. The checks that follow are the example's
//! own, independent of the call ([`verify::direct_map`]); the backend reports its own figures.

use boards::MmuPlatform;
use pvmmu::direct_map::{map_ram, Setup};
use pvmmu::BackendError;
use pvmmu_figures::{Figures, DIRECT_MAP_HEADROOM};

use crate::{memview, report, verify, Failure};

/// Runs the scenario: the map, then its checks; logs the figures.
pub fn run<P: MmuPlatform>(p: &mut P) -> Result<Figures, Failure> {
    let memblock = memview::memblock(p)?;
    let setup = Setup::linux()
        .limit(p.table_limit())
        .headroom(DIRECT_MAP_HEADROOM);

    let start = p.cycles();
    let (mmu, live) = p.mmu_and_root();
    let map = map_ram(mmu, live, memblock, &setup).map_err(|e| {
        defmt::error!("direct_map: {}", e);
        Failure::Setup(e.kind())
    })?;
    let cycles = p.cycles() - start;
    defmt::info!("map_ram: {} in {=u64} cycles", map.figures, cycles);
    defmt::info!("pgt_buf = {}", map.pgt_buf());

    let figures = verify::direct_map(p, memblock, &map)?;
    defmt::info!("RESULT direct_map {}", figures);
    report::backend_report(p);
    Ok(figures)
}
