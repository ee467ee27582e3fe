//! Stores that may fault, and report it instead of ending the run: for examples that check
//! which stores Xen's page tables allow (the `conformance` kernel).
//!
//! [`store`] runs the board's probing store; a `#PF` on that one instruction is turned by the
//! trap handler into a return with the fault's kind (from the error code's bit 0). Any other
//! exception is reported and ends the run as before.

/// How a probing store ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// It took effect.
    Stored,
    /// `#PF` on a present, read-only mapping.
    ReadOnly,
    /// `#PF` on a not-present entry.
    NotPresent,
}

const READ_ONLY: u32 = 1;
const NOT_PRESENT: u32 = 2;

/// The probe's return code for a `#PF` with `error` code.
pub const fn fault_code(error: u64) -> u32 {
    if error & 1 != 0 {
        READ_ONLY
    } else {
        NOT_PRESENT
    }
}

/// Stores `value` at `va` (8-byte aligned), or reports the page fault that stopped it.
///
/// # Safety
/// If the store takes effect, nothing Rust relies on is overwritten. Only in kernel images of
/// the Xen board (elsewhere it reports `NotPresent` without storing).
pub unsafe fn store(va: u64, value: u64) -> Probe {
    #[cfg(all(panic = "abort", not(test)))]
    // SAFETY: the caller's contract; the probe saves and restores what a fault skips.
    let code = unsafe { super::entry::__pvmmu_xen_probe_store(va, value) };
    #[cfg(not(all(panic = "abort", not(test))))]
    let code = {
        let _ = (va, value);
        NOT_PRESENT
    };
    match code {
        0 => Probe::Stored,
        READ_ONLY => Probe::ReadOnly,
        _ => Probe::NotPresent,
    }
}
