// The level is part of the table's type: an L1 table cannot be pinned as an L4.
use hal_core::{Frame, Mmu, PinnedRO, RawMmu};
use typenum::{U1, U4};

fn pin<B: RawMmu>(mmu: &mut Mmu<B>, l1: Frame<PinnedRO<U1>>) {
    let _ = mmu.pin::<U4>(l1);
}

fn main() {}
