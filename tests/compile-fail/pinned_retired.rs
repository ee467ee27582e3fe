// A pinned table must be unpinned before it is retired: `retire` takes unpinned tables only.
use hal_core::{Mmu, Pinned, RawMmu};
use typenum::U2;

fn retire<B: RawMmu>(mmu: &mut Mmu<B>, table: Pinned<U2>) {
    let _ = mmu.retire(table);
}

fn main() {}
