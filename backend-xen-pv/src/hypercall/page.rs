//! [`XenHypercalls`]: calls through the hypercall page. This is the only inline assembly of the
//! crate; it compiles on any x86-64 target (host tests build it but never call it).

use core::arch::asm;

use super::abi::{
    self, nr, EvtchnSend, MmuUpdate, MmuextOp, MulticallEntry, PhysdevSetIopl, SchedShutdown,
};
use super::{RawHypercall, TrapInfo, XenErrno};

/// The real hypercalls of a 64-bit PV guest: `call hypercall_page + nr * 32`.
///
/// Xen fills the page named by the guest's `XEN_ELFNOTE_HYPERCALL_PAGE` note before the guest
/// starts; each 32-byte stub loads the number into `rax` and enters Xen. Arguments go in `rdi`,
/// `rsi`, `rdx`, `r10`, `r8`, the result comes back in `rax`; the asm below treats every
/// caller-saved register as clobbered (Xen preserves more, but a debug hypervisor poisons the
/// argument registers, and `rcx` / `r11` are the `syscall` registers).
#[derive(Clone, Copy, Debug)]
pub struct XenHypercalls {
    page: *const u8,
}

// SAFETY: the value is only the address of a page of code that nobody writes after Xen filled
// it; calling it from any thread is what the hypercall ABI expects.
unsafe impl Send for XenHypercalls {}
// SAFETY: as for `Send`; `&XenHypercalls` gives no access but calls.
unsafe impl Sync for XenHypercalls {}

impl XenHypercalls {
    /// A guest makes one and wraps it in a [`Counted`](super::Counted) that everything calls
    /// through (the Xen board's is a `static`): calls made on another one are not counted.
    ///
    /// # Safety
    /// The program runs as a 64-bit Xen PV guest and `page` is the address its
    /// `XEN_ELFNOTE_HYPERCALL_PAGE` note names (a page-aligned, executable 4 KiB page that Xen
    /// has filled), mapped for the whole life of the value.
    pub const unsafe fn new(page: *const u8) -> Self {
        Self { page }
    }

    /// The hypercall page this value calls through.
    pub const fn page(&self) -> *const u8 {
        self.page
    }

    /// # Safety
    /// `nr` and the arguments form a hypercall whose contract the caller upholds.
    unsafe fn call(&self, nr: u32, a1: u64, a2: u64, a3: u64, a4: u64) -> i64 {
        let stub = self
            .page
            .wrapping_add(nr as usize * abi::HYPERCALL_STUB_SIZE);
        let ret: i64;
        // SAFETY: `new`'s contract makes `stub` the Xen-filled entry for hypercall `nr`;
        // the stub follows the hypercall ABI (arguments in rdi/rsi/rdx/r10, result in rax,
        // returns with `ret`), so calling it as a function that clobbers every caller-saved
        // register is sound. The stack is not marked `nostack`: `call` pushes a return
        // address. What the hypercall does to memory is the caller's contract.
        unsafe {
            asm!(
                "call {stub}",
                stub = in(reg) stub,
                inlateout("rdi") a1 => _,
                inlateout("rsi") a2 => _,
                inlateout("rdx") a3 => _,
                inlateout("r10") a4 => _,
                lateout("rax") ret,
                clobber_abi("C"),
            );
        }
        ret
    }

    /// `HYPERVISOR_event_channel_op(EVTCHNOP_send, &{port})`: notifies the remote end of the
    /// local `port` (a domU's console and xenstore channels are bound by the toolstack before
    /// the guest starts). Not on [`RawHypercall`]: only the board's console uses it, and it
    /// touches no page table.
    pub fn event_channel_send(&self, port: u32) -> i64 {
        let arg = EvtchnSend { port };
        // SAFETY: Xen only reads the 4-byte argument; a notification changes no memory of
        // this guest.
        unsafe {
            self.call(
                nr::EVENT_CHANNEL_OP,
                u64::from(abi::EVTCHNOP_SEND),
                &raw const arg as u64,
                0,
                0,
            )
        }
    }

    /// `HYPERVISOR_sched_op(SCHEDOP_yield, NULL)`: lets other vCPUs (dom0's console daemon)
    /// run; returns 0.
    pub fn sched_yield(&self) -> i64 {
        // SAFETY: SCHEDOP_yield takes a null argument and changes no memory.
        unsafe { self.call(nr::SCHED_OP, u64::from(abi::SCHEDOP_YIELD), 0, 0, 0) }
    }
}

/// Xen takes the element count of an array argument as `unsigned int`.
fn count(len: usize) -> Option<u64> {
    u32::try_from(len).ok().map(u64::from)
}

const EINVAL: i64 = -(XenErrno::EINVAL.0 as i64);

// SAFETY: every method issues exactly the hypercall it documents, with Xen's argument order,
// through the page Xen filled (the contract of `XenHypercalls::new`).
unsafe impl RawHypercall for XenHypercalls {
    fn clock(&self) -> u64 {
        // SAFETY: RDTSC reads the time-stamp counter and has no other effect; every x86-64
        // CPU has it, and a PV guest may execute it.
        unsafe { core::arch::x86_64::_rdtsc() }
    }

    unsafe fn mmu_update(&self, reqs: &[MmuUpdate], success_count: &mut u32, domid: u16) -> i64 {
        let Some(n) = count(reqs.len()) else {
            return EINVAL;
        };
        let done: *mut u32 = success_count;
        // SAFETY: Xen reads `n` requests from `reqs` and writes one u32 to `done`, both valid;
        // the effect of the updates is the caller's contract.
        unsafe {
            self.call(
                nr::MMU_UPDATE,
                reqs.as_ptr() as u64,
                n,
                done as u64,
                u64::from(domid),
            )
        }
    }

    unsafe fn mmuext_op(&self, ops: &[MmuextOp], success_count: &mut u32, domid: u16) -> i64 {
        let Some(n) = count(ops.len()) else {
            return EINVAL;
        };
        let done: *mut u32 = success_count;
        // SAFETY: as for `mmu_update`, with `ops`.
        unsafe {
            self.call(
                nr::MMUEXT_OP,
                ops.as_ptr() as u64,
                n,
                done as u64,
                u64::from(domid),
            )
        }
    }

    unsafe fn update_va_mapping(&self, va: u64, pte: u64, flags: u64) -> i64 {
        // SAFETY: no pointer arguments; the effect is the caller's contract.
        unsafe { self.call(nr::UPDATE_VA_MAPPING, va, pte, flags, 0) }
    }

    unsafe fn multicall(&self, entries: &mut [MulticallEntry]) -> i64 {
        let Some(n) = count(entries.len()) else {
            return EINVAL;
        };
        // SAFETY: Xen reads and writes back `n` entries, all within the exclusive borrow; the
        // sub-calls are the caller's contract.
        unsafe { self.call(nr::MULTICALL, entries.as_mut_ptr() as u64, n, 0, 0) }
    }

    unsafe fn set_trap_table(&self, table: &[TrapInfo]) -> i64 {
        if table.last().is_none_or(|t| t.address != 0) {
            return EINVAL; // Xen would read past the end looking for the terminator.
        }
        // SAFETY: Xen reads entries up to the terminator, which lies inside `table`; the
        // handlers are the caller's contract.
        unsafe { self.call(nr::SET_TRAP_TABLE, table.as_ptr() as u64, 0, 0, 0) }
    }

    fn console_write(&self, bytes: &[u8]) -> i64 {
        let Some(n) = count(bytes.len()) else {
            return EINVAL;
        };
        // SAFETY: Xen only reads `n` bytes from `bytes`.
        unsafe {
            self.call(
                nr::CONSOLE_IO,
                u64::from(abi::CONSOLEIO_WRITE),
                n,
                bytes.as_ptr() as u64,
                0,
            )
        }
    }

    fn sched_shutdown(&self, reason: u32) -> i64 {
        let arg = SchedShutdown { reason };
        // SAFETY: Xen only reads the 4-byte argument.
        unsafe {
            self.call(
                nr::SCHED_OP,
                u64::from(abi::SCHEDOP_SHUTDOWN),
                &raw const arg as u64,
                0,
                0,
            )
        }
    }

    fn physdev_set_iopl(&self, iopl: u32) -> i64 {
        let arg = PhysdevSetIopl { iopl };
        // SAFETY: Xen only reads the 4-byte argument; a new I/O privilege level changes no
        // memory (port accesses stay `unsafe` at their call sites).
        unsafe {
            self.call(
                nr::PHYSDEV_OP,
                u64::from(abi::PHYSDEVOP_SET_IOPL),
                &raw const arg as u64,
                0,
                0,
            )
        }
    }

    fn vm_assist(&self, cmd: u32, assist: u32) -> i64 {
        // SAFETY: no pointer arguments; an assist changes how Xen treats later operations,
        // not any mapping.
        unsafe { self.call(nr::VM_ASSIST, u64::from(cmd), u64::from(assist), 0, 0) }
    }

    fn xen_version(&self) -> i64 {
        // SAFETY: XENVER_version takes a null argument and only returns a value.
        unsafe { self.call(nr::XEN_VERSION, u64::from(abi::XENVER_VERSION), 0, 0, 0) }
    }
}
