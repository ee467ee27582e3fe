//! hal-core's [`Report`] for Xen PV: hypercalls per phase, and the tail released the seed's
//! way for comparison.

use core::fmt;

use hal_core::{Failed, FrameRange, Free, Mmu, Report, Unsettled};

use super::backend::{ReleaseStrategy, XenPv};
use super::counters::{Phase, PhaseCount};
use super::error::XenPvError;
use super::platform::PvPlatform;

/// The report's name for the per-page releases (the phases use [`Phase::name`]).
pub const PER_PAGE_RELEASE: &str = "release (per page, seed)";

/// One report line: `xen-pv hypercalls, NAME: N carrying E entries (...)`.
fn line(out: &mut dyn fmt::Write, name: &str, c: &PhaseCount) -> fmt::Result {
    writeln!(
        out,
        "xen-pv hypercalls, {name}: {} carrying {} entries ({} mmu_update, {} mmuext_op, {} update_va_mapping, {} multicall)",
        c.hypercalls, c.entries, c.mmu_update, c.mmuext_op, c.update_va_mapping, c.multicall
    )
}

/// [`line`] through defmt.
#[cfg(feature = "defmt")]
fn log_line(name: &str, c: &PhaseCount) {
    defmt::info!(
        "xen-pv hypercalls, {=str}: {=u64} carrying {=u64} entries ({=u64} mmu_update, {=u64} mmuext_op, {=u64} update_va_mapping, {=u64} multicall)",
        name,
        c.hypercalls,
        c.entries,
        c.mmu_update,
        c.mmuext_op,
        c.update_va_mapping,
        c.multicall
    );
}

impl<H: PvPlatform> Report for XenPv<'_, H> {
    fn hypercalls(&self) -> Option<(u64, u64)> {
        let t = self.counters().total();
        Some((t.hypercalls, t.entries))
    }

    /// One line per phase that made hypercalls, one for the per-page releases if any were
    /// made, the total, and the hypercalls that change no page table.
    fn report(&self, out: &mut dyn fmt::Write) -> fmt::Result {
        let c = self.counters();
        for phase in Phase::ALL {
            let count = c.get(phase);
            if count.hypercalls != 0 {
                line(out, phase.name(), count)?;
            }
        }
        if c.per_page_release().hypercalls != 0 {
            line(out, PER_PAGE_RELEASE, c.per_page_release())?;
        }
        for phase in Phase::ALL {
            let cycles = c.get(phase).cycles;
            if cycles != 0 && phase != Phase::Other {
                writeln!(out, "xen-pv cycles, {}: {cycles}", phase.name())?;
            }
        }
        let t = c.total();
        writeln!(
            out,
            "xen-pv hypercalls, total: {} carrying {} entries",
            t.hypercalls, t.entries
        )?;
        writeln!(
            out,
            "xen-pv hypercalls changing no page table (console, scheduler, boot): {}",
            c.not_mmu
        )
    }

    /// [`report`](Report::report)'s lines, word for word, logged by defmt.
    #[cfg(feature = "defmt")]
    fn log(&self) {
        let c = self.counters();
        for phase in Phase::ALL {
            let count = c.get(phase);
            if count.hypercalls != 0 {
                log_line(phase.name(), count);
            }
        }
        if c.per_page_release().hypercalls != 0 {
            log_line(PER_PAGE_RELEASE, c.per_page_release());
        }
        for phase in Phase::ALL {
            let cycles = c.get(phase).cycles;
            if cycles != 0 && phase != Phase::Other {
                defmt::info!("xen-pv cycles, {=str}: {=u64}", phase.name(), cycles);
            }
        }
        let t = c.total();
        defmt::info!(
            "xen-pv hypercalls, total: {=u64} carrying {=u64} entries",
            t.hypercalls,
            t.entries
        );
        defmt::info!(
            "xen-pv hypercalls changing no page table (console, scheduler, boot): {=u64}",
            c.not_mmu
        );
    }

    /// Protects `frames` again (counted under [`Phase::Other`], so the make-read-only figure
    /// stays the buffer's), then releases them with [`ReleaseStrategy::PerPage`] (counted
    /// apart, as [`PER_PAGE_RELEASE`]). The phase and the strategy are restored afterwards,
    /// on failure too.
    fn compare_release(
        mmu: &mut Mmu<Self>,
        frames: FrameRange<Free>,
    ) -> Result<FrameRange<Free>, Failed<Unsettled, XenPvError>> {
        let (phase, strategy) = (mmu.raw().phase(), mmu.raw().release_strategy());
        mmu.raw_mut().set_phase(Phase::Other);
        let res = mmu.protect(frames).and_then(|again| {
            mmu.raw_mut().set_release_strategy(ReleaseStrategy::PerPage);
            mmu.release(again)
        });
        mmu.raw_mut().set_release_strategy(strategy);
        mmu.raw_mut().set_phase(phase);
        res.map(|released| released.into_free())
    }
}
