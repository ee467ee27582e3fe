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

use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};

use super::console::Console;
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
    let mnemonic = exception_name(vector)
        .split(' ')
        .next()
        .unwrap_or("exception");
    let _ = writeln!(
        Console,
        "expected fault caught: {mnemonic} at {at:#x} (error code {:#x}, RIP {:#x})",
        r.error_code, r.rip
    );
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
