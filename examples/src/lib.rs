#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
//! The board-agnostic programs behind the example kernels. Each runs unchanged on bare metal
//! and as a Xen PV guest; the files in this crate's root (`hello.rs`, `direct_map.rs`, ...)
//! only register them with their board.

#[cfg(feature = "xen-pv")]
pub mod conformance;
pub mod direct_map;
pub mod failure;
pub mod memview;
#[cfg(feature = "xen-pv")]
pub mod refusals;
pub mod report;
pub mod runtime_map;
pub mod seed_bug;
#[cfg(feature = "xen-pv")]
pub mod strategies;
pub mod verify;

pub use failure::Failure;

#[cfg(test)]
extern crate std;
#[cfg(test)]
mod tests;
