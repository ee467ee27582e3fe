// Only a level-4 table can become the root.
use hal_core::{Frame, Mmu, PinnedRO, RawMmu};
use typenum::U1;

fn switch<B: RawMmu>(mmu: &mut Mmu<B>, l1: &Frame<PinnedRO<U1>>) {
    let _ = unsafe { mmu.switch_root(l1) };
}

fn main() {}
