//! The processor operations the backend needs, behind a trait so the backend's logic also runs
//! on the host (with simulated memory). The real one goes through the `x86_64` crate; this is
//! the only module of the backend that touches control registers.

use hal_core::Pfn;
use x86_64::registers::control::{Cr3, Cr3Flags};
use x86_64::structures::paging::PhysFrame;
use x86_64::PhysAddr;

/// CR3 and TLB operations.
///
/// # Safety
/// For implementers: [`Native`](crate::Native)'s promises to hal-core (the current root it
/// reports, the TLB entries it drops) are only as true as these. [`root`](Self::root)
/// returns the root the processor translates through now; after
/// [`set_root`](Self::set_root) that root is `root`; [`flush_tlb`](Self::flush_tlb) and
/// [`invalidate_page`](Self::invalidate_page) drop what they say from every cache of
/// translations the processor keeps. A stand-in for a processor that walks no tables (a host
/// test's) keeps `root` and `set_root` consistent and has nothing to drop. A safe trait let
/// safe code break them: a `root` that names another frame lets `Mmu::retire` free the
/// tables in use, a `flush_tlb` that does nothing leaves a retired table cached.
pub unsafe trait Cpu {
    /// The frame of the current root table.
    fn root(&self) -> Pfn;
    /// Loads a new root.
    ///
    /// # Safety
    /// `root` is a complete level-4 table that maps the running code, stack and data.
    unsafe fn set_root(&mut self, root: Pfn);
    /// Flushes the TLB (non-global entries).
    fn flush_tlb(&mut self);
    /// Invalidates the TLB entry of the page containing `va` and every paging-structure
    /// cache entry (`invlpg`).
    fn invalidate_page(&mut self, va: u64);
}

/// The real processor.
#[derive(Debug, Default)]
pub struct HardwareCpu;

// SAFETY: CR3 is the root the processor translates through; `mov cr3` loads it (and drops
// the non-global TLB entries); `invlpg` drops the page's entry and the paging-structure caches.
unsafe impl Cpu for HardwareCpu {
    fn root(&self) -> Pfn {
        let (frame, _) = Cr3::read();
        Pfn::containing(frame.start_address().as_u64())
            .unwrap_or_else(|| unreachable!(/* CR3 holds a physical address */))
    }

    unsafe fn set_root(&mut self, root: Pfn) {
        let frame = PhysFrame::containing_address(PhysAddr::new(root.addr()));
        // SAFETY: the caller promises `root` maps everything the running code uses.
        unsafe { Cr3::write(frame, Cr3Flags::empty()) };
    }

    fn flush_tlb(&mut self) {
        x86_64::instructions::tlb::flush_all();
    }

    fn invalidate_page(&mut self, va: u64) {
        // A non-canonical address names no page (invlpg of it does nothing useful): flush all.
        match x86_64::VirtAddr::try_new(va) {
            Ok(a) => x86_64::instructions::tlb::flush(a),
            Err(_) => x86_64::instructions::tlb::flush_all(),
        }
    }
}
