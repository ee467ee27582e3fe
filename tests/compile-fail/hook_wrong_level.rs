// A root's children are L3 tables: hooking an L1 table under the root does not type-check
// (the child's level is computed from the parent's with typenum).
use hal_core::{Frame, Mmu, PinnedRO, RawMmu, TableRef};
use typenum::{U1, U4};

fn hook<B: RawMmu>(mmu: &mut Mmu<B>, root: TableRef<'_, U4>, l1: Frame<PinnedRO<U1>>) {
    let _ = mmu.hook(root, 0, l1);
}

fn main() {}
