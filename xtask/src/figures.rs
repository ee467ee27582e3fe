//! The `direct_map` example's verification result, as it logs it via defmt:
//! `RESULT direct_map Figures { ram_bytes: .., computed: .., tables_used: .., tail_released: ..,
//! pages: [.., .., ..], leaves_checked: .., pages_touched: .., cross_checked: .. }`.
//!
//! The type, its marker and its parser are the examples' own (`pvmmu-figures`, shared with
//! the kernels): one definition on both sides.

pub use pvmmu_figures::{Figures, ParseError, MARKER};
