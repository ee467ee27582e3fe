#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, clippy::undocumented_unsafe_blocks)]
//! The Xen PV backend: raw hypercalls, `start_info`, the P2M list, and the MMU backend
//! ([`XenPv`]) that implements hal-core's `RawMmu` on them. With the `model` feature (and in
//! its own unit tests) the crate also carries `model`, a host-side model of Xen's
//! page-table rules behind the same traits.

// The model keeps its simulated machine on the heap.
#[cfg(any(test, feature = "model"))]
extern crate std;

pub mod conformance;
pub mod hypercall;
pub mod mmu;
#[cfg(any(test, feature = "model"))]
pub mod model;
pub mod p2m;
#[cfg(test)]
mod scenarios;
pub mod start_info;

pub use hypercall::{Counted, RawHypercall, XenErrno, XenHypercalls};
pub use mmu::{
    Bootstrap, Counters, FillStrategy, Phase, PvPlatform, ReleaseStrategy, Storage, XenPv,
    XenPvError, MAX_SCRATCH,
};
pub use p2m::{Mfn, P2m, P2mError};
pub use start_info::{BootstrapLayout, DomUConsole, Peek, StartInfo, StartInfoError};
