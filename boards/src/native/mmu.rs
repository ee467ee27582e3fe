//! The native board's MMU: `backend-native` storing through the boot identity map.

use backend_native::{HardwareCpu, Native, Window};
use hal_core::{Mmu, Pfn, PfnRange};

use super::NativeBoard;
use crate::{AliasError, MmuPlatform};

/// The boot stub identity-maps this much: new page-table frames must lie below it.
pub const IDENTITY_END: u64 = 4 << 30;

/// The boot identity map as a backend window.
pub fn identity_window() -> Window {
    Window {
        va: 0,
        pfns: PfnRange::new(
            Pfn::new(0).unwrap_or_else(|| unreachable!(/* 0 is a pfn */)),
            IDENTITY_END >> 12,
        )
        .unwrap_or_else(|| unreachable!(/* in range */)),
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

    fn alias(&mut self, pfn: Pfn) -> Result<u64, AliasError> {
        let w = identity_window();
        if w.pfns.contains(pfn) {
            Ok(w.va + pfn.addr())
        } else {
            Err(AliasError::NoMapping { pfn: pfn.as_u64() })
        }
    }

    fn end_alias(&mut self) -> Result<(), AliasError> {
        Ok(())
    }
}
