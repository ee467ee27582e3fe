//! The seed's scenario end to end (see `pvmmu_examples::direct_map`).
//!
//! `cargo run --example direct_map [-- --mem 6G]`, `--features xen-pv` to run it under Xen.

#![no_std]
#![no_main]

use boards::{MmuPlatform, Outcome};

boards::entry!(main);

fn main<P: MmuPlatform>(p: &mut P) -> Outcome {
    match pvmmu_examples::direct_map::run(p) {
        Ok(_) => {
            p.console_write("direct_map: PASS\n");
            Outcome::Pass
        }
        Err(e) => {
            defmt::error!("direct_map: FAIL: {}", e);
            p.console_write("direct_map: FAIL\n");
            Outcome::Fail
        }
    }
}
