//! The guest-side page-table walker, over any way of reading an entry (a backend's
//! [`RawMmu::read`](crate::RawMmu::read), a backend's own machine-level reads, or plain loads
//! from tables the caller can read): a point walk ([`walk`], and [`translate`] on top of it)
//! and a visit of every present entry over a virtual range ([`visit`], with a [`Visitor`]). It
//! is the one walk of the guest side: the backends, the run-time mapper's unmap, protect and
//! teardown, the Xen board's check of its bootstrap tables and the examples go through it.
//!
//! Host-side checks (the model's walk, the tests' oracle, the runner's walker) stay separate
//! on purpose: they check this one.

mod point;
mod visit;

pub use point::{is_leaf, translate, walk, Reached, Translation};
pub use visit::{visit, InTable, Slot, Step, Visitor};

#[cfg(test)]
mod tests;
