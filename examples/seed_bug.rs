//! What the types prevent, committed on purpose (see `pvmmu_examples::seed_bug`): on Xen, a
//! pin of a writable frame (refused with -EINVAL), the same pin once the frame is read-only
//! (accepted), and last the seed's crash, a store to a read-only `pgt_buf` frame, which the
//! board catches as the expected page fault and turns into Pass. On bare metal nothing refuses:
//! the example says so and passes.
//!
//! `cargo run --example seed_bug --features xen-pv -- --mem 64M`

#![no_std]
#![no_main]

use boards::Outcome;
use pvmmu_examples::seed_bug::{self, SeedBugBoard};

boards::entry!(main);

fn main<P: SeedBugBoard>(p: &mut P) -> Outcome {
    match seed_bug::run(p) {
        Ok(()) => {
            p.console_write("seed_bug: PASS\n");
            Outcome::Pass
        }
        Err(e) => {
            defmt::error!("seed_bug: FAIL: {}", e);
            p.console_write("seed_bug: FAIL\n");
            Outcome::Fail
        }
    }
}
