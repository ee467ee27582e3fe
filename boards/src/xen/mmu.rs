//! The Xen PV board's MMU: `backend-xen-pv`'s [`XenPv`] over the hypercall page, its buffers in
//! the backend crate's static [`Storage`](backend_xen_pv::Storage).

use backend_xen_pv::{XenHypercalls, XenPv};
use hal_core::{Mmu, Pfn, PfnRange};

use super::XenBoard;
use crate::{AliasError, MmuPlatform};

/// The board's backend.
pub type Backend = XenPv<'static, XenHypercalls>;

#[repr(C, align(4096))]
struct Page([u8; 4096]);

// In an image carrying both boards, the pages below are the native board's boot page tables
// (`boards/src/native/boot.rs`: its PD, four pages, and its PT), which only the native entry
// ever fills: only one board runs per boot, so under Xen they are free `.bss` of the image,
// mapped writable by the initial mapping like the rest of it. An image of the Xen board alone
// has pages of its own.
#[cfg(feature = "native")]
unsafe extern "C" {
    /// The native board's boot PD: four page-aligned pages.
    #[cfg(all(panic = "abort", not(test)))]
    static mut pvh_pd: [Page; 4];
    /// The native board's boot PT: one page-aligned page.
    static mut pvh_pt: Page;
}

/// The page [`MmuPlatform::alias`] points at a frame the initial mapping does not cover.
#[cfg(not(feature = "native"))]
static mut ALIAS_PAGE: Page = Page([0; 4096]);

fn alias_page() -> u64 {
    #[cfg(feature = "native")]
    {
        &raw mut pvh_pt as u64
    }
    #[cfg(not(feature = "native"))]
    {
        &raw mut ALIAS_PAGE as u64
    }
}

/// The backend's scratch pages ([`XenPv::set_scratch`]): one per table level, through which
/// it stores into fresh tables the initial mapping does not cover.
#[cfg(all(panic = "abort", not(test), not(feature = "native")))]
static mut SCRATCH_PAGES: [Page; backend_xen_pv::MAX_SCRATCH] =
    [const { Page([0; 4096]) }; backend_xen_pv::MAX_SCRATCH];

#[cfg(all(panic = "abort", not(test)))]
fn scratch_pages() -> u64 {
    #[cfg(feature = "native")]
    {
        const _: () = assert!(backend_xen_pv::MAX_SCRATCH <= 4, "pvh_pd holds four pages");
        &raw mut pvh_pd as u64
    }
    #[cfg(not(feature = "native"))]
    {
        &raw mut SCRATCH_PAGES as u64
    }
}

/// Gives `raw` the board's scratch pages (once, at boot).
#[cfg(all(panic = "abort", not(test)))]
pub(super) fn give_scratch(raw: &mut Backend, layout: &backend_xen_pv::BootstrapLayout) {
    let va = scratch_pages();
    let Some(own) = layout
        .va_to_pfn(va)
        .and_then(|p| PfnRange::new(Pfn::new(p)?, p + backend_xen_pv::MAX_SCRATCH as u64))
    else {
        defmt::warn!("scratch pages outside the initial mapping: every table outside it is queued");
        return;
    };
    // SAFETY: the scratch pages are `.bss` of the image that nothing else reads, writes or
    // takes a reference to under Xen (only their address is taken, here; the native entry that
    // would fill `pvh_pd` does not run in a Xen boot), mapped by the initial mapping's L1
    // entries, which every root the board switches to inherits; the backend checks that each
    // page maps its own frame writable.
    if let Err(e) = unsafe { raw.set_scratch(va, own) } {
        defmt::warn!(
            "scratch pages refused, tables outside the initial mapping are queued: {}",
            e
        );
    }
}

impl XenBoard {
    /// Points the alias page at `pfn` (`None`: back at its own frame).
    fn retarget_alias(&mut self, pfn: Option<Pfn>) -> Result<(), AliasError> {
        let va = alias_page();
        let own = self
            .layout
            .va_to_pfn(va)
            .and_then(Pfn::new)
            .ok_or(AliasError::NoMapping { pfn: u64::MAX })?;
        let (target, writable) = match pfn {
            Some(pfn) => (pfn, false),
            None => (own, true),
        };
        // SAFETY: ALIAS_PAGE is a page of the image's `.bss` that nothing reads or writes (only
        // its address is taken), so retargeting its mapping invalidates nothing; the new mapping
        // is read-only, or writable of the page's own frame, which is the image's.
        unsafe { self.mmu.raw_mut().retarget_page(va, target, writable) }.map_err(|e| {
            defmt::error!("alias page to {=u64:#x}: {}", target.as_u64(), e);
            AliasError::Backend(hal_core::BackendError::kind(&e))
        })?;
        self.aliased = pfn.is_some();
        Ok(())
    }
}

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
        let pfns = PfnRange::new(
            Pfn::new(0).unwrap_or_else(|| unreachable!(/* 0 is a pfn */)),
            self.layout.mapped_pages(),
        )
        .unwrap_or_else(|| unreachable!(/* validated layout */));
        (self.layout.virt_base, pfns)
    }

    fn alias(&mut self, pfn: Pfn) -> Result<u64, AliasError> {
        let (va, boot) = self.boot_window();
        if boot.contains(pfn) {
            self.end_alias()?;
            return Ok(va + (pfn.as_u64() - boot.start().as_u64()) * 4096);
        }
        self.retarget_alias(Some(pfn))?;
        Ok(alias_page())
    }

    fn end_alias(&mut self) -> Result<(), AliasError> {
        if self.aliased {
            self.retarget_alias(None)?;
        }
        Ok(())
    }
}
