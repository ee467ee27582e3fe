//! The Xen PV board's MMU: `backend-xen-pv`'s [`XenPv`] over the hypercall page, its buffers in
//! the backend crate's static [`Storage`](backend_xen_pv::Storage).

use backend_xen_pv::{XenHypercalls, XenPv};
use hal_core::{Mmu, Pfn, PfnRange};

use super::XenBoard;
use crate::MmuPlatform;

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
}
