// Pinning is a state: `pin` consumes the table, so it cannot be pinned twice.
use hal_core::{Frame, Mmu, PinnedRO, RawMmu};
use typenum::U4;

fn twice<B: RawMmu>(mmu: &mut Mmu<B>, root: Frame<PinnedRO<U4>>) {
    let _ = mmu.pin(root);
    let _ = mmu.pin(root);
}

fn main() {}
