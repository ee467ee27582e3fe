//! The backend's own figures ([`Report`]), logged line by line through defmt.

use core::fmt::{self, Write};

use boards::MmuPlatform;
use heapless::String;
use pvmmu::Report;

/// Collects text and logs each finished line.
struct Lines(String<256>);

impl Write for Lines {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            if c == '\n' {
                defmt::info!("{=str}", self.0.as_str());
                self.0.clear();
            } else if self.0.push(c).is_err() {
                defmt::info!("{=str}", self.0.as_str());
                self.0.clear();
                let _ = self.0.push(c);
            }
        }
        Ok(())
    }
}

/// Logs what the board's backend counted (Xen PV: hypercalls per phase; bare metal: entries
/// stored, switches, flushes).
pub fn backend_report<P: MmuPlatform>(p: &mut P) {
    let mut out = Lines(String::new());
    let _ = p.mmu().raw().report(&mut out);
    if !out.0.is_empty() {
        defmt::info!("{=str}", out.0.as_str());
    }
}
