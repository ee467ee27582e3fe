//! Helpers shared by the fuzz targets: a reader that turns fuzzer bytes into structured
//! values, and a Xen PV guest booted on backend-xen-pv's model the way the Xen board boots.

pub mod guest;
pub mod input;
