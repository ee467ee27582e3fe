//! The run-time mapper under a seeded random sequence (see `pvmmu_examples::runtime_map`).
//!
//! `cargo run --example runtime_map [-- -- runtime_map.seed=N runtime_map.ops=N]`,
//! `--features xen-pv` to run it under Xen.

#![no_std]
#![no_main]

use boards::{MmuPlatform, Outcome};

boards::entry!(main);

fn main<P: MmuPlatform>(p: &mut P) -> Outcome {
    match pvmmu_examples::runtime_map::run(p) {
        Ok(_) => {
            p.console_write("runtime_map: PASS\n");
            Outcome::Pass
        }
        Err(e) => {
            defmt::error!("runtime_map: FAIL: {}", e);
            p.console_write("runtime_map: FAIL\n");
            Outcome::Fail
        }
    }
}
