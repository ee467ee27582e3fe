//! The direct map: all RAM mapped linearly at a virtual base (Linux's `init_memory_mapping`).
//!
//! - [`plan`]: split physical ranges by alignment into 1 GiB / 2 MiB / 4 KiB runs (large pages
//!   only where the backend allows them and no frame in the page must be read-only), and count
//!   *exactly* how many table frames that needs, so `pgt_buf` is sized by computation.
//! - [`build`](mod@build): take the tables from [`PgtBuf`](crate::pgt_buf::PgtBuf), fill each one
//!   completely before it exists for the platform, and install them through [`Mmu`](crate::mmu::Mmu),
//!   reusing tables that already exist (a fresh root with no read-only frame is written in one
//!   descent, `descent.rs`; the other targets by a cursor over the runs).
//! - [`setup`]: the whole lifecycle in one call, [`map_ram`]: the buffer sized to a fixed
//!   point, made page-table-ready, the build, the new root pinned and switched to (or the live
//!   root extended), the buffer finished, the windows registered.

pub mod build;
mod descent;
mod ops;
pub mod plan;
pub mod setup;

pub use build::{build, BuildError, Built, Target};
pub use plan::{count_tables, DirectMapSpec, PageSize, PlanError, Run, Runs, TableCount};
pub use setup::{map_ram, DirectMap, Figures, RootChoice, Setup, SetupError};
