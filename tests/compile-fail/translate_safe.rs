// The walker over a backend reads the root it is given and every table its entries name: from a
// frame number it is unsafe (the caller vouches that the frame is a table). The safe walk starts
// at a typed root: `Mmu::translate(live.table(), va)`.
use hal_core::walk::{translate, Translation};
use hal_core::{Mmu, Pfn, RawMmu};

fn walk_from<B: RawMmu>(mmu: &mut Mmu<B>, memory: Pfn) -> Option<Translation> {
    translate(mmu.raw_mut(), memory, 0).ok().flatten()
}

fn main() {}
