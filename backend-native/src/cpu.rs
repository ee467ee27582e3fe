//! The processor operations the backend needs, behind a trait so the backend's logic also runs
//! on the host (with simulated memory). The real one goes through the `x86_64` crate; this is
//! the only module of the backend that touches control registers.

use hal_core::Pfn;
use x86_64::registers::control::{Cr3, Cr3Flags};
use x86_64::structures::paging::PhysFrame;
use x86_64::PhysAddr;

/// CR3 and TLB operations.
pub trait Cpu {
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

impl Cpu for HardwareCpu {
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
