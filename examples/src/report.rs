//! The backend's own figures ([`Report`]), logged line by line through defmt.

use boards::MmuPlatform;
use pvmmu::Report;

/// Logs what the board's backend counted (Xen PV: hypercalls per phase; bare metal: entries
/// stored, switches, flushes).
pub fn backend_report<P: MmuPlatform>(p: &mut P) {
    p.mmu().raw().log();
}
