#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, clippy::undocumented_unsafe_blocks)]
//! The Xen PV backend: raw hypercalls, `start_info`, the P2M list.

pub mod hypercall;
pub mod p2m;
pub mod start_info;

pub use hypercall::{RawHypercall, XenErrno, XenHypercalls};
pub use p2m::{Mfn, P2m, P2mError};
pub use start_info::{BootstrapLayout, StartInfo, StartInfoError};
