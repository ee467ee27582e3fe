//! backend-xen-pv's model of Xen's page-table rules (`backend_xen_pv::model::Rules`, the
//! model the conformance corpus checks against real Xen), compiled into these tests from its
//! own source files: one copy of the rules. Not a dev-dependency on backend-xen-pv with its
//! `model` feature: in a `cargo test --workspace` build that feature (and the `std` it brings)
//! would be unified into the example kernels, which then link `std`'s panic handler next to
//! their own.
#![allow(dead_code, unused_imports)]

#[path = "../../../backend-xen-pv/src/model/errno.rs"]
mod errno;
#[path = "../../../backend-xen-pv/src/model/machine.rs"]
mod machine;
#[path = "../../../backend-xen-pv/src/model/rules.rs"]
mod rules;

pub use machine::{ChunkHasher, FrameState, PageType};
pub use rules::Rules;
