//! Ending a run: QEMU's isa-debug-exit device (port 0xf4), or a board's own exit.
//!
//! QEMU exits with status `(v << 1) | 1` when `v` is written to the port, so
//! [`Outcome::Pass`] (0x10) gives 33 and [`Outcome::Fail`] (0x11) gives 35. The runner maps 33
//! to success and everything else (35, 0 after a triple fault or reset, a timeout) to failure.
//!
//! Before the exit the board stops at the *exit gate* once: it prints [`GATE_MARKER`] on the
//! console and waits until the host writes [`GATE_OPEN`] into [`PVMMU_EXIT_GATE`] (or about
//! [`GATE_TIMEOUT_CYCLES`] TSC cycles pass, when no host is watching). Meanwhile the host
//! (`xtask boot`) stops the machine, reads CR3 from QEMU's monitor and the page tables from
//! guest memory, and judges them with its own walker: a verdict from outside the guest.

use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};

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

/// The exit gate: the host finds it by this symbol name in the ELF and writes [`GATE_OPEN`]
/// into it through guest memory.
#[unsafe(no_mangle)]
pub static PVMMU_EXIT_GATE: AtomicU64 = AtomicU64::new(0);

/// What the host writes into [`PVMMU_EXIT_GATE`] to let the guest exit ("GATEOPEN").
pub const GATE_OPEN: u64 = 0x4e45_504f_4554_4147;

/// The console line that tells the host the guest waits at the gate.
pub const GATE_MARKER: &str = "pvmmu: at the exit gate\n";

/// How long the gate waits for a host that never opens it (about 30 s at 2 GHz). Long: the
/// host must see the marker and stop the machine over QMP before it runs out, and on a loaded
/// machine (QEMU and the runner starved of CPU) that took more than the 5 s this once was.
pub const GATE_TIMEOUT_CYCLES: u64 = 60_000_000_000;

/// Set once the gate was passed: a second exit (a fault while exiting) does not wait again.
static GATE_PASSED: AtomicBool = AtomicBool::new(false);

/// Waits at the exit gate (see the module docs), once per run.
fn exit_gate() {
    if GATE_PASSED.swap(true, Ordering::AcqRel) {
        return;
    }
    super::console::write(GATE_MARKER);
    // SAFETY: RDTSC only reads the time-stamp counter (both boards allow it).
    let mut last = unsafe { core::arch::x86_64::_rdtsc() };
    let mut waited = 0u64;
    while PVMMU_EXIT_GATE.load(Ordering::Acquire) != GATE_OPEN {
        // SAFETY: as above.
        let now = unsafe { core::arch::x86_64::_rdtsc() };
        waited = waited.saturating_add(forward(last, now));
        last = now;
        if waited > GATE_TIMEOUT_CYCLES {
            break;
        }
        core::hint::spin_loop();
    }
}

/// The cycles from `last` to `now`, 0 if the counter went backwards: a vCPU moved between
/// host CPUs whose counters disagree slightly can read a TSC below the one before, and
/// `now - last` wrapped would end the wait at once.
fn forward(last: u64, now: u64) -> u64 {
    now.saturating_sub(last)
}

/// Ends the run with `outcome`, through the board's hook if one is registered, after the
/// exit gate.
pub fn exit(outcome: Outcome) -> ! {
    exit_gate();
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

#[cfg(test)]
mod tests {
    use super::forward;

    #[test]
    fn a_counter_that_goes_backwards_waits_no_less() {
        assert_eq!(forward(100, 250), 150);
        assert_eq!(
            forward(250, 100),
            0,
            "backwards: no time passed, not 2^64 - 150"
        );
        assert_eq!(forward(u64::MAX - 1, u64::MAX), 1);
    }
}
