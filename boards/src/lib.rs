#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
//! Boards: what a kernel image is built for.
//!
//! - `native` (bare metal, QEMU booting the ELF through the PVH entry note);
//! - `xen-pv` (a 64-bit Xen PV guest, booted by Xen as dom0).
//!
//! Features are additive: with both, one image carries both entry notes and the entry that
//! runs decides the board.
//!
//! An example is written once against [`Platform`] and registered with [`entry!`]:
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//! boards::entry!(main);
//! fn main<P: boards::Platform>(p: &mut P) -> boards::Outcome {
//!     p.console_write("hello\n");
//!     boards::Outcome::Pass
//! }
//! ```

pub mod common;
mod entry;
#[cfg(feature = "native")]
pub mod native;
pub mod platform;
#[cfg(feature = "xen-pv")]
pub mod xen;

pub use common::console::PlatformWriter;
pub use platform::{
    AliasError, BoardMemblock, ClaimError, MmuPlatform, Outcome, Platform, MEMBLOCK_REGIONS,
};
