//! The boot stack's guard page under Xen.
//!
//! Xen's domain builder maps the whole image writable, the page below the boot stack
//! (`__pvmmu_stack_guard`, see [`crate::common::stack`]) included. The board unmaps that page
//! before anything deep runs: an overflow then stores into a page that is not present. Xen
//! delivers the `#PF` of a PV kernel on its current stack, which is the guard page itself, so
//! it cannot write the exception frame and crashes the domain ("domain_crash_sync called from
//! entry.S", the guest's registers with its `rsp` in the guard page; dom0's crash reboots the
//! machine, a domU's is reported by the toolstack). Without the guard the stack would grow
//! down over the boot page tables and the rest of the image without a word.

use backend_xen_pv::hypercall::abi::uvmf;
use backend_xen_pv::{Counted, RawHypercall, XenErrno, XenHypercalls};

unsafe extern "C" {
    /// The page below the boot stack (both layouts: the native board's `pvh_stack_guard` in
    /// an image carrying both boards, the Xen board's own otherwise).
    static __pvmmu_stack_guard: u8;
}

/// The virtual address of the guard page.
pub fn page() -> u64 {
    &raw const __pvmmu_stack_guard as u64
}

/// Unmaps the guard page (one `update_va_mapping` to an empty entry, this vCPU's TLB entry
/// invalidated) and returns its address; Xen's errno if it refuses.
pub fn unmap(hv: &Counted<XenHypercalls>) -> Result<u64, XenErrno> {
    let va = page();
    // SAFETY: the guard page is a page of the image's `.bss` that nothing uses: no Rust
    // reference points into it, no code reads or writes it (in an image carrying both boards
    // it is the native board's guard page, which only the native entry's page tables know);
    // removing its mapping takes nothing from anyone. Xen lets a PV kernel clear an entry of
    // its own L1 tables.
    let ret = unsafe { hv.update_va_mapping(va, 0, uvmf::INVLPG | uvmf::LOCAL) };
    XenErrno::check(ret)?;
    Ok(va)
}
