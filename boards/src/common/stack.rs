//! The boot stack's paint: both boards' entry code fills the whole boot stack with
//! [`PAINT`] before the first push, so that whoever reads the stack later (the host at the
//! exit gate, `xtask`'s `stack` module) can tell how deep it was ever used: the bytes from
//! the bottom that still hold the paint were never written.
//!
//! The stack is `[__pvmmu_stack_bottom, __pvmmu_stack_top)` (ELF symbols of every image);
//! the page below the bottom, `__pvmmu_stack_guard`, is a guard page both boards leave
//! unmapped (the native board's boot page tables never map it; the Xen board unmaps it from
//! Xen's initial mapping first thing), so an overflow faults instead of writing what lies
//! below.

/// The 32-bit word the boot stack is filled with (bytes `0xa5`, unlikely in addresses and
/// small integers; the host counts untouched bytes, not words).
pub const PAINT: u32 = 0xa5a5_a5a5;
