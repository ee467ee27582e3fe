//! A test facility: one CPU exception an example *expects*, turned into a `Pass` exit.
//!
//! An example that demonstrates a fault (e.g. `seed_bug`: a store to a frame Xen keeps
//! read-only) arms the expectation with [`expect_fault`] right before the faulting access.
//! The boards' trap paths call [`take_matching`] first: if the exception matches, the
//! expectation is consumed (one-shot), the board logs `expected fault caught: #PF at ADDR`
//! (console and defmt) and exits with [`Outcome::Pass`](crate::Outcome::Pass). Any other
//! exception, or a second one, is reported and fails the run as before.
//!
//! Matching: the vector must be equal; for `#PF` (vector 14) the faulting address (CR2) must
//! equal `addr`; for other vectors `addr` is compared with RIP.

use core::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};

use super::console;
use super::fault::{exception_name, ExceptionReport};
use super::logger;

static ARMED: AtomicBool = AtomicBool::new(false);
static VECTOR: AtomicU8 = AtomicU8::new(0);
static ADDR: AtomicU64 = AtomicU64::new(0);

/// Arms a one-shot expectation: the next exception with this `vector` at `addr` (CR2 for
/// `#PF`, RIP otherwise) ends the run with `Pass` instead of `Fail`.
///
/// # Safety
/// The caller turns a fault into a successful run: it must be about to raise exactly this
/// exception on purpose, and nothing after the faulting access may be needed for the run to be
/// correct (the handler exits; the interrupted code never resumes).
pub unsafe fn expect_fault(vector: u8, addr: u64) {
    VECTOR.store(vector, Ordering::Relaxed);
    ADDR.store(addr, Ordering::Relaxed);
    ARMED.store(true, Ordering::Release);
}

/// Whether an expectation is armed (not yet consumed).
pub fn is_armed() -> bool {
    ARMED.load(Ordering::Acquire)
}

/// Called by the boards' trap paths before reporting: if `r` is the armed expectation,
/// consumes it, logs `expected fault caught: ...` and returns `true` (the caller then exits
/// with `Pass`). Otherwise returns `false` and leaves the expectation as it was.
pub fn take_matching(r: &ExceptionReport) -> bool {
    if !ARMED.load(Ordering::Acquire) {
        return false;
    }
    let vector = VECTOR.load(Ordering::Relaxed);
    let addr = ADDR.load(Ordering::Relaxed);
    let at = r.cr2.unwrap_or(r.rip);
    if r.vector != vector || at != addr {
        return false;
    }
    if !ARMED.swap(false, Ordering::AcqRel) {
        return false;
    }
    // The name up to its first space (`#PF page fault`: `#PF`), without `str::split`'s
    // pattern machinery.
    let name = exception_name(vector);
    let mnemonic = name
        .bytes()
        .position(|b| b == b' ')
        .and_then(|end| name.get(..end))
        .unwrap_or(name);
    console::text()
        .str("expected fault caught: ")
        .str(mnemonic)
        .str(" at ")
        .hex(at)
        .str(" (error code ")
        .hex(r.error_code)
        .str(", RIP ")
        .hex(r.rip)
        .str(")\n");
    if !logger::is_busy() {
        defmt::info!(
            "expected fault caught: {=str} at {=u64:#x} (error code {=u64:#x}, RIP {=u64:#x})",
            mnemonic,
            at,
            r.error_code,
            r.rip
        );
    }
    true
}

static PROBE_ARMED: AtomicBool = AtomicBool::new(false);
static PROBE_ADDR: AtomicU64 = AtomicU64::new(0);
static PROBES_CAUGHT: AtomicU64 = AtomicU64::new(0);

unsafe extern "C" {
    fn pvmmu_probe_store(addr: u64, value: u64) -> u64;
    static pvmmu_probe_insn: u8;
    fn pvmmu_probe_recover() -> !;
}

/// Catch and continue: stores `value` at `addr` and says whether the store took effect
/// (`true`) or raised `#PF` at `addr` (`false`: the board's trap path recognised the probe's
/// store and resumed after it; nothing is reported and the run goes on).
///
/// # Safety
/// If `addr` is mapped writable, the store is one the caller may make (the 8 bytes are its
/// memory); any other fault than a `#PF` at `addr` from the probe's store is reported and ends
/// the run as usual.
pub unsafe fn probe_store(addr: u64, value: u64) -> bool {
    PROBE_ADDR.store(addr, Ordering::Relaxed);
    PROBE_ARMED.store(true, Ordering::Release);
    // SAFETY: the caller's contract for the store; a fault in it comes back through
    // `resume_probe`, which restores the probe's stack and registers.
    let stored = unsafe { pvmmu_probe_store(addr, value) } == 1;
    PROBE_ARMED.store(false, Ordering::Release);
    stored
}

/// `#PF`s caught by [`probe_store`] so far.
pub fn probes_caught() -> u64 {
    PROBES_CAUGHT.load(Ordering::Relaxed)
}

/// Called by the boards' trap paths first: if `r` is a `#PF` at the armed probe's address,
/// raised by the probe's own store, resumes the probe (does not return). Otherwise returns.
pub fn resume_probe(r: &ExceptionReport) {
    if !PROBE_ARMED.load(Ordering::Acquire) {
        return;
    }
    let insn = (&raw const pvmmu_probe_insn) as u64;
    if r.vector != super::fault::PAGE_FAULT
        || r.rip != insn
        || r.cr2 != Some(PROBE_ADDR.load(Ordering::Relaxed))
    {
        return;
    }
    PROBE_ARMED.store(false, Ordering::Release);
    PROBES_CAUGHT.fetch_add(1, Ordering::Relaxed);
    // SAFETY: the fault is the probe's store, so the probe's frame (its saved stack pointer
    // and registers) is live below us: the recovery point returns from `pvmmu_probe_store`
    // with 0. Nothing of the trap frame is needed: the interrupted code is the probe.
    unsafe { pvmmu_probe_recover() }
}
