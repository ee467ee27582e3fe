// A pinned table is hooked nowhere and stays so: `hook` takes unpinned tables only.
use hal_core::{Frame, Mmu, Pinned, PinnedRO, RawMmu};
use typenum::{U1, U2};

fn hook<B: RawMmu>(mmu: &mut Mmu<B>, parent: &Frame<PinnedRO<U2>>, child: Pinned<U1>) {
    let _ = mmu.hook(parent.as_table(), 0, child);
}

fn main() {}
