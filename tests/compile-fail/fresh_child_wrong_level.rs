// A table written in place takes children one level down only: an L1 table under a fresh
// L3 does not type-check.
use hal_core::{Frame, FreshTable, Mmu, PinnedRO, RawMmu};
use typenum::{U1, U3};

fn child<B: RawMmu>(mmu: &mut Mmu<B>, l3: &mut FreshTable<U3>, l1: Frame<PinnedRO<U1>>) {
    let _ = mmu.put_child(l3, 0, l1);
}

fn main() {}
