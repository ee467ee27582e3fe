//! The direct map built five ways in one boot on real Xen (pvmmu's, Linux's, Mini-OS's,
//! trap-and-emulate and the validation floor), each phase counted with the TSC, each tree
//! checked (see `pvmmu_examples::strategies`). `cargo xtask xen-strategies` runs it under
//! `-icount` at 64M and 1G and prints the table.
//!
//! `cargo run --release --example strategies --features xen-pv -- --mem 64M --qemu-arg -icount --qemu-arg shift=0`

#![no_std]
#![no_main]

use boards::Outcome;
use pvmmu_examples::strategies::{self, StrategiesBoard};

boards::entry!(main);

fn main<P: StrategiesBoard>(p: &mut P) -> Outcome {
    match strategies::run(p) {
        Ok(()) => {
            p.console_write("strategies: PASS\n");
            Outcome::Pass
        }
        Err(e) => {
            defmt::error!("strategies: FAIL: {}", e);
            p.console_write("strategies: FAIL\n");
            Outcome::Fail
        }
    }
}
