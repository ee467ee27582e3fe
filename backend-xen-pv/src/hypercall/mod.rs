//! The raw hypercall layer: the ABI ([`abi`]), the [`RawHypercall`] trait that everything above
//! it calls through, its real implementation [`XenHypercalls`] (the only inline assembly of
//! this crate), and [`Counted`], the wrapper every call goes through so that it is counted.
//!
//! # Why a trait
//! The backend never calls Xen directly: it is generic over (or holds a `&dyn`) [`RawHypercall`].
//! On a Xen PV guest that is [`XenHypercalls`]; in host tests it is a model of Xen's page-type
//! rules that answers the same calls with the same error numbers.
//!
//! # Return values
//! Every method returns Xen's raw `long`: `>= 0` on success, `-errno` on failure
//! ([`XenErrno::check`] decodes it).

pub mod abi;
mod counted;
mod errno;
mod page;

pub use abi::{MmuUpdate, MmuextOp, MulticallEntry, TrapInfo};
pub use counted::{Counted, Slot};
pub use errno::XenErrno;
pub use page::XenHypercalls;

/// The hypercalls the PV backend and the Xen board use.
///
/// # Safety
/// For implementers:
/// The implementer performs each call as Xen defines it for a 64-bit PV guest (the ABI in
/// [`abi`]): same effects on page tables, mappings, the trap table and the domain, same
/// results, and `success_count` / multicall `result` fields written as Xen writes them. Callers
/// rely on this for memory safety, e.g. that a call which returned an error changed nothing
/// beyond the entries `success_count` reports.
///
/// The trait is object safe; every method takes `&self`.
pub unsafe trait RawHypercall {
    /// `HYPERVISOR_mmu_update(reqs, reqs.len(), success_count, domid)`: applies the requests in
    /// order and stops at the first failure; `*success_count` is set to how many were applied.
    ///
    /// # Safety
    /// The updates change live page tables: the caller guarantees that no mapping which Rust
    /// code still relies on (code, stack, statics, live references) is removed or retargeted.
    unsafe fn mmu_update(&self, reqs: &[MmuUpdate], success_count: &mut u32, domid: u16) -> i64;

    /// `HYPERVISOR_mmuext_op(ops, ops.len(), success_count, domid)`: pin / unpin tables, switch
    /// the base pointer, flush TLBs; `*success_count` as for [`Self::mmu_update`].
    ///
    /// # Safety
    /// As for [`Self::mmu_update`]; in particular a `NEW_BASEPTR` must switch to tables that
    /// map everything the running code uses, at the same virtual addresses.
    unsafe fn mmuext_op(&self, ops: &[MmuextOp], success_count: &mut u32, domid: u16) -> i64;

    /// `HYPERVISOR_update_va_mapping(va, pte, flags)`: replaces the PTE that maps `va` (in the
    /// current page tables) with `pte` (which holds a machine address), flushing per `flags`.
    ///
    /// # Safety
    /// As for [`Self::mmu_update`], for the page at `va`.
    unsafe fn update_va_mapping(&self, va: u64, pte: u64, flags: u64) -> i64;

    /// A counter that only moves forward, to time the phases with: the TSC in a guest (an
    /// instruction count under QEMU's `-icount`), nothing (0) where there is none.
    fn clock(&self) -> u64 {
        0
    }

    /// `HYPERVISOR_multicall(entries, entries.len())`: runs each entry's hypercall and writes
    /// its return value into `result`. A failing entry does not stop the batch: the caller
    /// checks every `result`. The return value is only about the batch itself.
    ///
    /// # Safety
    /// Each entry is a hypercall with raw arguments (pointers included): the caller upholds,
    /// for every entry, the contract of the corresponding call.
    unsafe fn multicall(&self, entries: &mut [MulticallEntry]) -> i64;

    /// `HYPERVISOR_set_trap_table(table)`: installs the virtual IDT. The table ends with an
    /// entry whose `address` is 0.
    ///
    /// # Safety
    /// Every non-zero `address` is the entry of a handler that can run with the frame Xen
    /// builds (`rcx`, `r11`, \[error code\], `rip`, `cs`, `rflags`, `rsp`, `ss` on the stack).
    unsafe fn set_trap_table(&self, table: &[TrapInfo]) -> i64;

    /// `HYPERVISOR_console_io(CONSOLEIO_write, bytes.len(), bytes)`: writes to Xen's console
    /// (allowed for dom0, or with a debug hypervisor).
    fn console_write(&self, bytes: &[u8]) -> i64;

    /// `HYPERVISOR_sched_op(SCHEDOP_shutdown, &{reason})`: does not return on success.
    fn sched_shutdown(&self, reason: u32) -> i64;

    /// `HYPERVISOR_physdev_op(PHYSDEVOP_set_iopl, &{iopl})`: with level 1 the kernel may use
    /// the I/O ports its domain is allowed (Xen emulates each access).
    fn physdev_set_iopl(&self, iopl: u32) -> i64;

    /// `HYPERVISOR_vm_assist(cmd, type)`: enables or disables an assist (see [`abi::vmasst`]).
    fn vm_assist(&self, cmd: u32, assist: u32) -> i64;

    /// `HYPERVISOR_xen_version(XENVER_version, NULL)`: `major << 16 | minor`.
    fn xen_version(&self) -> i64;
}

#[cfg(test)]
mod tests {
    use core::cell::Cell;

    use super::abi::{mmuext, DOMID_SELF};
    use super::*;

    /// A stand-in for the host model: counts calls, fails pins with -EINVAL.
    #[derive(Default)]
    struct Fake {
        calls: Cell<u32>,
    }

    // SAFETY: test double; nothing relies on its effects.
    unsafe impl RawHypercall for Fake {
        unsafe fn mmu_update(&self, reqs: &[MmuUpdate], done: &mut u32, _: u16) -> i64 {
            self.calls.set(self.calls.get() + 1);
            *done = reqs.len() as u32;
            0
        }
        unsafe fn mmuext_op(&self, _: &[MmuextOp], done: &mut u32, _: u16) -> i64 {
            self.calls.set(self.calls.get() + 1);
            *done = 0;
            -(XenErrno::EINVAL.0 as i64)
        }
        unsafe fn update_va_mapping(&self, _: u64, _: u64, _: u64) -> i64 {
            0
        }
        unsafe fn multicall(&self, _: &mut [MulticallEntry]) -> i64 {
            0
        }
        unsafe fn set_trap_table(&self, _: &[TrapInfo]) -> i64 {
            0
        }
        fn console_write(&self, bytes: &[u8]) -> i64 {
            bytes.len() as i64
        }
        fn sched_shutdown(&self, _: u32) -> i64 {
            0
        }
        fn physdev_set_iopl(&self, _: u32) -> i64 {
            0
        }
        fn vm_assist(&self, _: u32, _: u32) -> i64 {
            0
        }
        fn xen_version(&self) -> i64 {
            0x4_0011
        }
    }

    #[test]
    fn the_trait_works_as_a_trait_object() {
        let fake = Fake::default();
        let hv: &dyn RawHypercall = &fake;
        let mut done = 7;
        let pin = MmuextOp {
            cmd: mmuext::PIN_L1_TABLE,
            arg1: 0x1234,
            arg2: 0,
        };
        // SAFETY: the fake changes no mapping.
        let ret = unsafe { hv.mmuext_op(&[pin], &mut done, DOMID_SELF) };
        assert_eq!((XenErrno::check(ret), done), (Err(XenErrno::EINVAL), 0));
        // SAFETY: as above.
        let ret = unsafe { hv.mmu_update(&[MmuUpdate::default(); 3], &mut done, DOMID_SELF) };
        assert_eq!((ret, done), (0, 3));
        assert_eq!(XenErrno::check(hv.xen_version()), Ok(0x4_0011));
        assert_eq!(fake.calls.get(), 2);
    }
}
