#![no_std]
#![warn(missing_docs)]
//! pvmmu: a type-state HAL for paravirtual MMU backends, in one crate.
//!
//! ```toml
//! [dependencies]
//! pvmmu = { version = "0.1", features = ["xen-pv"] }   # or "native", or both
//! ```
//!
//! Everything of the HAL ([`hal_core`]) is here at the top level: frames and their states,
//! [`Mmu`], [`PgtBuf`], [`memblock`], [`direct_map`] (with [`direct_map::map_ram`], the whole
//! lifecycle in one call), [`LiveRoot`]. Each backend feature adds its backend as a module:
//!
//! | feature | module | backend |
//! |---|---|---|
//! | `native` | `native` (crate `backend-native`) | bare metal: plain stores, CR3, large pages |
//! | `xen-pv` | `xen_pv` (crate `backend-xen-pv`) | a 64-bit Xen PV guest: `mmu_update`, `mmuext_op`, the P2M |
//! | `defmt` | | `defmt::Format` for the public types |
//!
//! The features are additive: one kernel image may carry both backends and pick the one the
//! entry point it was booted through calls for.
//!
//! Start with the [`guide`]: the calls a kernel makes on each backend, in order, and what
//! each one guarantees.

pub use hal_core::*;

/// The bare-metal backend (feature `native`).
#[cfg(feature = "native")]
pub use backend_native as native;

/// The Xen PV backend (feature `xen-pv`).
#[cfg(feature = "xen-pv")]
pub use backend_xen_pv as xen_pv;

#[doc = include_str!("guide.md")]
pub mod guide {}
