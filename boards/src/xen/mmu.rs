//! The Xen PV board's MMU: `backend-xen-pv`'s [`XenPv`] over the hypercall page, its buffers in
//! the backend crate's static [`Storage`](backend_xen_pv::Storage).

use backend_xen_pv::mmu::PhaseCount;
use backend_xen_pv::{ReleaseStrategy, XenHypercalls, XenPv};
use hal_core::{Mmu, Pfn, PfnRange};

use super::XenBoard;
use crate::{MmuPlatform, Phase};

/// The board's backend.
pub type Backend = XenPv<'static, XenHypercalls>;

impl MmuPlatform for XenBoard {
    type Backend = Backend;

    fn mmu(&mut self) -> &mut Mmu<Backend> {
        &mut self.mmu
    }

    fn mmu_and_root(&mut self) -> (&mut Mmu<Backend>, &mut hal_core::LiveRoot) {
        (&mut self.mmu, &mut self.root)
    }

    /// No limit: the backend writes tables through `mmu_update` (machine addresses), never
    /// through a mapping.
    fn table_limit(&self) -> u64 {
        u64::MAX
    }

    fn boot_window(&self) -> (u64, PfnRange) {
        let pfns = PfnRange::new(Pfn::new(0).expect("0"), self.layout.mapped_pages())
            .expect("validated layout");
        (self.layout.virt_base, pfns)
    }

    fn set_phase(&mut self, phase: Phase) {
        self.mmu.raw_mut().set_phase(phase);
    }

    fn set_seed_release(&mut self, seed: bool) -> bool {
        let strategy = if seed {
            ReleaseStrategy::PerPage
        } else {
            ReleaseStrategy::Batched
        };
        self.mmu.raw_mut().set_release_strategy(strategy);
        true
    }

    fn log_counters(&mut self) {
        let counters = *self.mmu.raw().counters();
        for phase in Phase::ALL {
            let c: &PhaseCount = counters.get(phase);
            if c.hypercalls == 0 {
                continue;
            }
            defmt::info!(
                "xen-pv hypercalls, {=str}: {=u64} carrying {=u64} entries ({=u64} mmu_update, {=u64} mmuext_op, {=u64} update_va_mapping, {=u64} multicall)",
                phase.name(),
                c.hypercalls,
                c.entries,
                c.mmu_update,
                c.mmuext_op,
                c.update_va_mapping,
                c.multicall
            );
        }
        let t = counters.total();
        defmt::info!(
            "xen-pv hypercalls, total: {=u64} carrying {=u64} entries",
            t.hypercalls,
            t.entries
        );
    }
}
