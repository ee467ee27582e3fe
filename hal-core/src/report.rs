//! [`Report`]: what a backend says about its own work, beyond what the portable layer knows.
//!
//! hal-core counts tables and pages; a backend counts what only it can see (Xen PV:
//! hypercalls per [`Phase`](crate::Phase), and the tail released the 2011 seed's way for
//! comparison; bare metal: entries stored, TLB flushes). A board-agnostic program calls these
//! through the board's backend type and never names the backend, so no board has to stub
//! anything: each backend implements the trait once.

use core::fmt;

use crate::backend::RawMmu;
use crate::error::Failed;
use crate::mmu::Mmu;
use crate::range::FrameRange;
use crate::state::Free;
use crate::unsettled::Unsettled;

/// A backend's own figures.
pub trait Report: RawMmu + Sized {
    /// Writes the backend's counters since it was made, one figure per line (each line ends
    /// with `\n`), in words a log reader understands.
    fn report(&self, out: &mut dyn fmt::Write) -> fmt::Result;

    /// The same lines as [`report`](Self::report), logged through defmt, one `info` line each.
    /// A backend overrides it to log its figures with defmt's own formatting, so that a kernel
    /// that logs its report carries no `core::fmt`; the default collects
    /// [`report`](Self::report)'s text line by line.
    #[cfg(feature = "defmt")]
    fn log(&self) {
        let mut out = Lines(heapless::String::new());
        let _ = self.report(&mut out);
        if !out.0.is_empty() {
            defmt::info!("{=str}", out.0.as_str());
        }
    }

    /// Hypercalls the backend made since it was made, and the entries they carried (page-table
    /// updates and commands); `None` for a backend that makes none (bare metal).
    fn hypercalls(&self) -> Option<(u64, u64)> {
        None
    }

    /// A backend-specific comparison on `frames`, free memory the caller owns: they come back
    /// free, writable and unchanged in content. Xen PV protects them again and releases them
    /// the 2011 seed's way (one `update_va_mapping` per mapping), counted apart from the
    /// lifecycle's own phases, so that [`report`](Self::report) can set the two side by side.
    /// Default (nothing to compare): the frames come back untouched.
    ///
    /// On failure the frames are [`Unsettled`], as after a failed release.
    fn compare_release(
        mmu: &mut Mmu<Self>,
        frames: FrameRange<Free>,
    ) -> Result<FrameRange<Free>, Failed<Unsettled, Self::Error>> {
        let _ = mmu;
        Ok(frames)
    }
}

/// Collects text and logs each finished line (lines longer than its buffer in pieces).
#[cfg(feature = "defmt")]
struct Lines(heapless::String<256>);

#[cfg(feature = "defmt")]
impl fmt::Write for Lines {
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
