//! The conformance corpus (the multiboot module after the kernel) replayed on real Xen, one
//! result line per sequence, for `cargo xtask conformance` to compare with the model (see
//! `pvmmu_examples::conformance`).
//!
//! `cargo xtask conformance [--sequences N] [--seed S]`

#![no_std]
#![no_main]

use boards::Outcome;
use pvmmu_examples::conformance::{self, ConformanceBoard};

boards::entry!(main);

fn main<P: ConformanceBoard>(p: &mut P) -> Outcome {
    match conformance::run(p) {
        Ok(()) => Outcome::Pass,
        Err(e) => {
            defmt::error!("conformance: FAIL: {}", e);
            p.console_write("conformance: FAIL\n");
            Outcome::Fail
        }
    }
}
