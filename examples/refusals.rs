//! Refusals planted in the backend's batches on real Xen, at the positions the host names
//! (`refusals.at=P,...`): the typed error names the entry and Xen's errno, and the frames carry
//! on as their types say (see `pvmmu_examples::refusals`).
//!
//! `cargo run --example refusals --features xen-pv -- --mem 64M -- refusals.at=0,255,511`

#![no_std]
#![no_main]

use boards::Outcome;
use pvmmu_examples::refusals::{self, RefusalsBoard};

boards::entry!(main);

fn main<P: RefusalsBoard>(p: &mut P) -> Outcome {
    match refusals::run(p) {
        Ok(()) => Outcome::Pass,
        Err(e) => {
            defmt::error!("refusals: FAIL: {}", e);
            p.console_write("refusals: FAIL\n");
            Outcome::Fail
        }
    }
}
