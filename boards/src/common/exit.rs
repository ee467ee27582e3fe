//! Ending a run: QEMU's isa-debug-exit device (port 0xf4), or a board's own exit.
//!
//! QEMU exits with status `(v << 1) | 1` when `v` is written to the port, so
//! [`Outcome::Pass`] (0x10) gives 33 and [`Outcome::Fail`] (0x11) gives 35. The runner maps 33
//! to success and everything else (35, 0 after a triple fault or reset, a timeout) to failure.

use core::sync::atomic::{AtomicPtr, Ordering};

use x86_64::instructions::port::Port;

use crate::Outcome;

/// I/O port of QEMU's `-device isa-debug-exit,iobase=0xf4,iosize=0x04`.
pub const ISA_DEBUG_EXIT_PORT: u16 = 0xf4;

/// The value written to the port for `outcome`.
pub const fn code(outcome: Outcome) -> u32 {
    match outcome {
        Outcome::Pass => 0x10,
        Outcome::Fail => 0x11,
    }
}

/// The value written when the guest refuses how it was started (an unknown `pvmmu.*`
/// argument, a bad test-hook value): status 37, which the runner reports as a setup error,
/// not as the example's failure.
pub const SETUP_ERROR: u32 = 0x12;

/// Ends the run as a setup error (see [`SETUP_ERROR`]). Through isa-debug-exit when the board
/// has I/O privilege (bare metal; a Xen dom0 after `set_iopl`); otherwise as [`Outcome::Fail`]
/// through the board's exit.
pub fn setup_error(io_privilege: bool) -> ! {
    if io_privilege {
        // SAFETY: as in `isa_debug_exit`: the debug-exit device's port, no effect on memory.
        unsafe { Port::<u32>::new(ISA_DEBUG_EXIT_PORT).write(SETUP_ERROR) };
    }
    exit(Outcome::Fail)
}

/// A board-specific exit registered with [`set_hook`]; null means isa-debug-exit.
static HOOK: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// Registers the board's exit, used by [`exit`] instead of the bare port write (e.g. a Xen PV
/// guest without I/O privilege yet).
pub fn set_hook(exit: fn(Outcome) -> !) {
    HOOK.store(exit as *mut (), Ordering::Release);
}

/// Ends the run with `outcome`, through the board's hook if one is registered.
pub fn exit(outcome: Outcome) -> ! {
    let p = HOOK.load(Ordering::Acquire);
    if !p.is_null() {
        // SAFETY: the only non-null value ever stored is a `fn(Outcome) -> !` (see `set_hook`).
        let hook = unsafe { core::mem::transmute::<*mut (), fn(Outcome) -> !>(p) };
        hook(outcome);
    }
    isa_debug_exit(outcome)
}

/// Writes `outcome`'s code to the isa-debug-exit port, then spins if QEMU did not exit (no such
/// device). Needs I/O privilege (always on bare metal; after `set_iopl` under Xen).
pub fn isa_debug_exit(outcome: Outcome) -> ! {
    // SAFETY: the port belongs to the debug-exit device (or nothing); writing it has no effect
    // on memory. Without I/O privilege the write faults, which the board's fault path reports.
    unsafe { Port::<u32>::new(ISA_DEBUG_EXIT_PORT).write(code(outcome)) };
    loop {
        core::hint::spin_loop();
    }
}
