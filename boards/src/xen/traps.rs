//! Exceptions under Xen PV: the trap table and the report every exception ends in.
//!
//! Xen delivers an exception to the handler the trap table names, on the current stack, with
//! event upcalls masked (our entries ask for it). For a #PF the faulting address is not in a
//! register: Xen stores it in vCPU 0's `vcpu_info.arch.cr2` in shared_info (read through
//! [`super::shared`]). The handler reports vector, error code, rip, rsp and that address with
//! the boards' shared exception report (console and defmt), then exits with `Outcome::Fail`,
//! unless an example armed that very exception with
//! [`expect_fault`](crate::common::expect::expect_fault): then it logs `expected fault caught`
//! and exits with `Outcome::Pass`. A `#PF` of the probing store ([`super::probe`]) is no
//! report: the probe returns the fault instead.
//!
//! A fault Xen cannot deliver (no stack to push the frame on, a fault before the trap table is
//! set, a double fault) still crashes the domain; Xen then reboots the machine after 5 seconds
//! (QEMU with `-no-reboot` exits 0, which the runner counts as a failure).

use core::sync::atomic::{AtomicBool, Ordering};

use backend_xen_pv::{Counted, RawHypercall, XenErrno, XenHypercalls};

use super::shared;
use crate::common::fault::{report_exception, ExceptionReport, PAGE_FAULT};
use crate::common::{exit, expect};
use crate::Outcome;

/// Installs the trap table the entry stubs emitted.
pub fn install(hv: &Counted<XenHypercalls>) -> Result<(), XenErrno> {
    // SAFETY: every entry points at a stub in `entry.rs`, written for the frame Xen builds,
    // that never returns.
    let ret = unsafe { hv.set_trap_table(super::entry::trap_table()) };
    XenErrno::check(ret).map(|_| ())
}

/// Set by the first exception: a fault while reporting one exits at once.
static IN_TRAP: AtomicBool = AtomicBool::new(false);

/// Called by the stubs: `frame` points at `rip, cs, rflags, rsp, ss`; `error` is `!0` for
/// vectors without an error code.
///
/// # Safety
/// Only the stubs in `entry.rs` call this, with `frame` pointing at the frame Xen pushed.
#[unsafe(no_mangle)]
unsafe extern "C" fn __pvmmu_xen_trap(vector: u64, error: u64, frame: *const [u64; 5]) -> ! {
    // SAFETY: the stub passes the address of the five words Xen pushed.
    let [rip, _cs, _rflags, rsp, _ss] = unsafe { frame.read() };
    if vector == u64::from(PAGE_FAULT) && rip == super::entry::probe_insn() {
        let code = super::probe::fault_code(error);
        // SAFETY: the fault is the probing store's: resuming returns from that probe with
        // its registers and stack as they were; nothing of this handler is needed after.
        unsafe { super::entry::__pvmmu_xen_probe_resume(code) };
    }
    let vector = vector as u8;
    let report = ExceptionReport {
        vector,
        error_code: if error == !0 { 0 } else { error },
        rip,
        rsp,
        cr2: if vector == PAGE_FAULT {
            shared::fault_address()
        } else {
            None
        },
    };
    // A probe's expected #PF resumes the probe (no return). Xen delivered the fault as a
    // bounce onto this stack with events masked; leaving without HYPERVISOR_iret keeps them
    // masked, which is how the board runs anyway.
    expect::resume_probe(&report);
    if IN_TRAP.swap(true, Ordering::Relaxed) {
        exit::exit(Outcome::Fail);
    }
    if expect::take_matching(&report) {
        exit::exit(Outcome::Pass);
    }
    report_exception(&report);
    exit::exit(Outcome::Fail)
}
