//! Conformance of the model (`backend_xen_pv::model`) with real Xen: a corpus of raw operation
//! sequences over a few frames ([`corpus`]), replayed by the same code ([`replay`]) on real Xen
//! (the `conformance` example kernel) and on the model (with the `model` feature, `gen` also
//! generates corpora and computes the model's answers); the host compares the two.

pub mod corpus;
#[cfg(any(test, feature = "model"))]
pub mod gen;
pub mod replay;
#[cfg(test)]
mod tests;

pub use corpus::{Code, Corpus, CorpusError, Op, StoreOutcome};
pub use replay::{FrameAt, Guest, Replayer, Setup};
