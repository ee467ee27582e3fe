// A pinned table is a `Pinned<L>`, not a `Frame<PinnedRO<L>>`: `pin` does not take it.
use hal_core::{Mmu, Pinned, RawMmu};
use typenum::U1;

fn again<B: RawMmu>(mmu: &mut Mmu<B>, table: Pinned<U1>) {
    let _ = mmu.pin(table);
}

fn main() {}
