// A table handed to the tree (hooked) belongs to the tree: it cannot be retired, or given
// back to a frame source, afterwards.
use hal_core::{Frame, Mmu, PinnedRO, RawMmu, TableRef};
use typenum::{U3, U4};

fn hook_then_retire<B: RawMmu>(mmu: &mut Mmu<B>, root: TableRef<'_, U4>, l3: Frame<PinnedRO<U3>>) {
    mmu.hook(root, 300, l3).unwrap().defer();
    let _ = mmu.retire(l3);
}

fn main() {}
