// A table being written in place is no table yet: only `Mmu::finish_table` makes it a
// `Frame<PinnedRO<L>>`, so an unfinished one cannot be hooked into a live tree.
use hal_core::{FreshTable, Mmu, RawMmu, TableRef};
use typenum::{U1, U2};

fn hook<B: RawMmu>(mmu: &mut Mmu<B>, parent: TableRef<'_, U2>, fresh: FreshTable<U1>) {
    let _ = mmu.hook(parent, 0, fresh);
}

fn main() {}
