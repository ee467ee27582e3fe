#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, clippy::undocumented_unsafe_blocks)]
//! The bare-metal backend: page tables are ordinary memory the kernel stores into, the
//! hardware walks them through CR3, and large pages are allowed.
//!
//! "Page-table-ready" and "release" are the memblock reservation that hal-core's
//! [`PgtBuf`](hal_core::PgtBuf) already makes: on bare metal nothing needs remapping.

mod cpu;
mod error;
mod native;

pub use cpu::{Cpu, HardwareCpu};
pub use error::NativeError;
pub use hal_core::Window;
pub use native::{Counters, Native};
