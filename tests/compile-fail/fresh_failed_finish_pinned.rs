// A `finish_table` that failed gives the table back unfinished (a `FreshTable`, its slots to
// be written again), not as a table: it cannot be pinned.
use hal_core::{FreshTable, Mmu, RawMmu};
use typenum::U4;

fn pin<B: RawMmu>(mmu: &mut Mmu<B>, root: FreshTable<U4>) {
    if let Err(failed) = mmu.finish_table(root) {
        let _ = mmu.pin(failed.value);
    }
}

fn main() {}
