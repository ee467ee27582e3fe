// An L1 table maps pages; it has no child level (HasChild is not implemented for U1), so
// nothing can be hooked under it.
use hal_core::{Frame, Mmu, PinnedRO, RawMmu, TableRef};
use typenum::U1;

fn hook<B: RawMmu>(mmu: &mut Mmu<B>, parent: TableRef<'_, U1>, child: Frame<PinnedRO<U1>>) {
    let _ = mmu.hook(parent, 0, child);
}

fn main() {}
