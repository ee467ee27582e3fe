//! Pieces shared by both boards: the serial UART, the console registry, the defmt logger on
//! COM2, the isa-debug-exit device, exception reports, expected faults (a test facility), the panic handler, the boot stack's paint, and the `mem*`
//! symbols `core` needs.
//!
//! The kernel-only items (`#[panic_handler]`, `#[defmt::global_logger]`, `memcpy` & co.) exist
//! only in `panic = "abort"` builds outside `cfg(test)`: `cargo test` builds everything with
//! `panic = "unwind"` and links `std`, which brings its own.

pub mod args;
pub mod console;
pub mod exit;
pub mod expect;
pub mod fault;
pub mod logger;
#[cfg(all(panic = "abort", not(test)))]
mod mem;
#[cfg(all(panic = "abort", not(test)))]
mod panic;
pub mod racy_cell;
pub mod stack;
pub mod uart;
