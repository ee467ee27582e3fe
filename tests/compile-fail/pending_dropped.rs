// Queued updates are an obligation: dropping the Pending a hook returns, unflushed, is an
// error where unused_must_use is denied (it is a warning by default).
#![deny(unused_must_use)]
use hal_core::{Frame, Mmu, PinnedRO, RawMmu, TableRef};
use typenum::{U3, U4};

fn hook<B: RawMmu>(mmu: &mut Mmu<B>, root: TableRef<'_, U4>, l3: Frame<PinnedRO<U3>>) {
    mmu.hook(root, 300, l3).unwrap();
}

fn main() {}
