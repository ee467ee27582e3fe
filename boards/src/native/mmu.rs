//! The native board's MMU: `backend-native` storing through the boot identity map.

use backend_native::{HardwareCpu, Native, Window};
use hal_core::{Mmu, Pfn, PfnRange};

use super::NativeBoard;
use crate::{MmuPlatform, Phase};

/// The boot stub identity-maps this much: new page-table frames must lie below it.
pub const IDENTITY_END: u64 = 4 << 30;

/// The boot identity map as a backend window.
pub fn identity_window() -> Window {
    Window {
        va: 0,
        pfns: PfnRange::new(Pfn::new(0).expect("0"), IDENTITY_END >> 12).expect("in range"),
    }
}

impl MmuPlatform for NativeBoard {
    type Backend = Native<HardwareCpu>;

    fn mmu(&mut self) -> &mut Mmu<Self::Backend> {
        &mut self.mmu
    }

    fn mmu_and_root(&mut self) -> (&mut Mmu<Self::Backend>, &mut hal_core::LiveRoot) {
        (&mut self.mmu, &mut self.root)
    }

    fn table_limit(&self) -> u64 {
        IDENTITY_END
    }

    fn boot_window(&self) -> (u64, PfnRange) {
        let w = identity_window();
        (w.va, w.pfns)
    }

    fn set_phase(&mut self, _phase: Phase) {}

    fn set_seed_release(&mut self, _seed: bool) -> bool {
        false
    }

    fn log_counters(&mut self) {
        let c = self.mmu.raw().counters();
        defmt::info!(
            "native counters: {=u64} entries stored, {=u64} pins (no-op), {=u64} root switches, {=u64} TLB flushes; hypercalls: none on bare metal",
            c.entries_written,
            c.pins,
            c.root_switches,
            c.tlb_flushes
        );
    }
}
