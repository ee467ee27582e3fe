//! The shared_info page: Xen gives only its machine address; the board maps it over a page of
//! its own `.bss` (as Mini-OS does) to read vCPU 0's event mask and the fault address of a #PF.
//!
//! The pfn that backed that `.bss` page loses its only mapping; it lies inside the kernel
//! image, which is reserved anyway.

use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};

use backend_xen_pv::hypercall::abi::{shared_info_off as off, uvmf};
use backend_xen_pv::{Counted, RawHypercall, XenErrno, XenHypercalls};

use crate::common::logger::IrqMask;

#[repr(C, align(4096))]
struct Page([u8; 4096]);

/// The virtual page shared_info is mapped over.
static mut WINDOW: Page = Page([0; 4096]);
/// `WINDOW` once shared_info is mapped there; null before.
static SHARED_INFO: AtomicPtr<u8> = AtomicPtr::new(ptr::null_mut());

/// PTE bits for the mapping: present, writable (Xen adds `_PAGE_USER` for the ring-3 kernel).
const PTE_PRESENT_RW: u64 = 0b11;

/// Maps the shared_info page (machine address `maddr`) and returns its virtual address.
pub fn map(hv: &Counted<XenHypercalls>, maddr: u64) -> Result<u64, XenErrno> {
    let va = &raw mut WINDOW as u64;
    // SAFETY: WINDOW is a page of our own `.bss` that no Rust reference points into (it is
    // only ever accessed through the raw pointer published below), so retargeting its
    // mapping invalidates nothing; shared_info belongs to this domain and Xen lets it map it.
    let ret =
        unsafe { hv.update_va_mapping(va, maddr | PTE_PRESENT_RW, uvmf::INVLPG | uvmf::LOCAL) };
    XenErrno::check(ret)?;
    SHARED_INFO.store(va as *mut u8, Ordering::Release);
    Ok(va)
}

fn vcpu0_field(offset: usize) -> Option<*mut u8> {
    let p = SHARED_INFO.load(Ordering::Acquire);
    (!p.is_null()).then(|| p.wrapping_add(offset))
}

/// vCPU 0's `arch.cr2`: the address of the last page fault Xen delivered (None before
/// shared_info is mapped).
pub fn fault_address() -> Option<u64> {
    let p = vcpu0_field(off::ARCH_CR2)?;
    // SAFETY: shared_info is mapped at the window for the rest of the run; the field is an
    // aligned u64 that Xen writes, hence the volatile read.
    Some(unsafe { ptr::read_volatile(p.cast::<u64>()) })
}

/// vCPU 0's `evtchn_upcall_mask` (None before shared_info is mapped).
pub fn upcall_mask() -> Option<u8> {
    let p = vcpu0_field(off::UPCALL_MASK)?;
    // SAFETY: as in `fault_address`, for a u8 field.
    Some(unsafe { ptr::read_volatile(p) })
}

fn set_upcall_mask(masked: bool) -> bool {
    let Some(p) = vcpu0_field(off::UPCALL_MASK) else {
        return false;
    };
    // SAFETY: as in `fault_address`; the guest owns this byte (Xen only reads it, and sets it
    // when it delivers an event, which cannot happen while it is set).
    unsafe {
        let was = ptr::read_volatile(p);
        ptr::write_volatile(p, u8::from(masked));
        was == 0
    }
}

fn mask_events() -> bool {
    set_upcall_mask(true)
}

fn restore_events(was_enabled: bool) {
    if was_enabled {
        // Nothing in this board ever unmasks events, so this does not run today. A kernel
        // that does must also check `evtchn_upcall_pending` afterwards.
        set_upcall_mask(false);
    }
}

/// The defmt logger's critical section on Xen PV: the event upcall mask, not RFLAGS.IF
/// (`cli`/`sti` are no-ops for a PV kernel with I/O privilege, and fault without it).
pub static EVENT_MASK: IrqMask = IrqMask {
    disable: mask_events,
    restore: restore_events,
};
