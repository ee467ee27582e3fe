//! Scenario tests on the model: the whole direct-map build of `XenPv<Model>`, the refusals
//! that show the seed's bug, and the per-phase hypercall report. In-crate (not `tests/`), so
//! the std-using model is never enabled through a dev-dependency that cargo would unify into
//! the kernel images.

mod backend;
mod common;
mod direct_map;
mod full_records;
mod mapper;
mod refusals;
mod report;
mod start;
mod stores;
