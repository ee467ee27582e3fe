//! What every board gives an example: the memory map, a console, cycles, and an exit.

use hal_core::memmap::MemRegion;

/// How a run ends; the runner maps it to the process exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, defmt::Format)]
pub enum Outcome {
    /// Every check of the example passed.
    Pass,
    /// A check failed (or a panic / fault happened).
    Fail,
}

/// The surface a board offers to board-agnostic examples.
///
/// Implemented once per board (bare metal through PVH, Xen PV). An example is written as
/// `fn main<P: Platform>(p: &mut P) -> Outcome` and registered with [`crate::entry!`].
pub trait Platform {
    /// The board's name, e.g. `"native-pvh"` or `"xen-pv"`.
    fn name(&self) -> &'static str;
    /// The firmware memory map as the board read it, unvalidated.
    fn memory_map(&self) -> &[MemRegion];
    /// Physical ranges `[start, end)` in bytes that the image and the boot data occupy (kernel
    /// image, boot page tables, boot stack, start_info, P2M list, ...): reserved in memblock.
    fn reserved(&self) -> &[(u64, u64)];
    /// Writes text to the human-readable console.
    fn console_write(&mut self, s: &str);
    /// The time-stamp counter.
    fn cycles(&self) -> u64;
}
