#![no_std]
//! Boards: what a kernel image is built for.
//!
//! - `native` (bare metal, QEMU booting the ELF through the PVH entry note);
//! - `xen-pv` (a 64-bit Xen PV guest, booted by Xen as dom0).
//!
//! Features are additive: with both, one image carries both entry notes and the entry that
//! runs decides the board.

pub mod platform;

pub use platform::{Outcome, Platform};
