//! [`PvPlatform`]: what the MMU backend needs from a Xen PV guest besides hypercalls, so that
//! the same backend runs on Xen and against the host model.

use crate::hypercall::{RawHypercall, XenHypercalls};

/// Where Xen maps its read-only machine-to-phys table (M2P) into every 64-bit PV guest: L4
/// slot 256, one `u64` pfn per machine frame (`RO_MPT_VIRT_START` in Xen's x86-64 layout).
pub const M2P_VIRT_START: u64 = 0xFFFF_8000_0000_0000;
/// Bytes Xen reserves for the read-only M2P (`RO_MPT_VIRT_END - RO_MPT_VIRT_START`, 256 GiB):
/// no machine frame number at or above `M2P_BYTES / 8` can have an entry.
pub const M2P_BYTES: u64 = 1 << 38;

/// A 64-bit Xen PV guest as the MMU backend sees it: the hypercalls, plus reads of guest
/// memory through the live page tables and Xen's machine-to-phys table.
///
/// # Safety
/// For implementers: [`read_u64`](Self::read_u64) returns what a load from that virtual
/// address returns in the current address space, [`mfn_to_pfn`](Self::mfn_to_pfn) what
/// Xen's M2P holds for the frame, and [`write_u64`](Self::write_u64), when
/// [`can_store`](Self::can_store) says so, is a plain store at that address. The backend trusts both when it decides which entries to
/// change.
pub unsafe trait PvPlatform: RawHypercall {
    /// Loads the `u64` at `va` through the current page tables.
    ///
    /// # Safety
    /// `va` is 8-byte aligned and mapped readable in the current root.
    unsafe fn read_u64(&self, va: u64) -> u64;

    /// The pseudo-physical frame Xen's M2P records for machine frame `mfn` (not validated:
    /// the caller checks it against the P2M).
    ///
    /// # Safety
    /// `mfn` is a RAM frame Xen knows (below its `max_page`), for example one named by a
    /// present entry of a page table of this domain that Xen validated. Other frames may have
    /// no M2P entry mapped, and the load would fault.
    unsafe fn mfn_to_pfn(&self, mfn: u64) -> u64;

    /// Whether [`write_u64`](Self::write_u64) stores (the host model does not: the backend
    /// then queues `mmu_update`s instead).
    fn can_store(&self) -> bool {
        false
    }

    /// Stores `val` at `va` through the current page tables (when
    /// [`can_store`](Self::can_store); otherwise nothing).
    ///
    /// # Safety
    /// `va` is 8-byte aligned and mapped writable in the current root, and nothing Rust
    /// relies on lives there.
    unsafe fn write_u64(&self, va: u64, val: u64) {
        let _ = (va, val);
    }
}

// SAFETY: `write_u64` is a plain store and the others plain loads in the guest's address
// space: `read_u64` and `write_u64` through the caller's mapping, `mfn_to_pfn` through the M2P that Xen keeps mapped read-only at `M2P_VIRT_START`
// in every 64-bit PV guest's kernel page tables (it fills the slot of every root it
// validates). A `XenHypercalls` exists only inside such a guest (its constructor's contract).
unsafe impl PvPlatform for XenHypercalls {
    unsafe fn read_u64(&self, va: u64) -> u64 {
        // SAFETY: the caller guarantees `va` is aligned and mapped readable.
        unsafe { core::ptr::read_volatile(va as *const u64) }
    }

    fn can_store(&self) -> bool {
        true
    }

    unsafe fn write_u64(&self, va: u64, val: u64) {
        // SAFETY: the caller guarantees `va` is aligned, mapped writable and nobody's else.
        unsafe { core::ptr::write_volatile(va as *mut u64, val) }
    }

    unsafe fn mfn_to_pfn(&self, mfn: u64) -> u64 {
        if mfn >= M2P_BYTES / 8 {
            return u64::MAX;
        }
        let entry = (M2P_VIRT_START + mfn * 8) as *const u64;
        // SAFETY: Xen maps the M2P entries of every frame below max_page read-only at this
        // address; the caller guarantees `mfn` is such a frame, and the bound above keeps the
        // address inside the M2P area.
        unsafe { core::ptr::read_volatile(entry) }
    }
}
