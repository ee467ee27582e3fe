// A handle to the current root is borrowed from the Mmu: it cannot be kept across a switch
// to another root.
use hal_core::{Frame, Mmu, PinnedRO, RawMmu};
use typenum::U4;

fn stale<B: RawMmu>(mmu: &mut Mmu<B>, new_root: &Frame<PinnedRO<U4>>) {
    let old = mmu.current_root();
    let _ = unsafe { mmu.switch_root(new_root) };
    let _ = old.pfn();
}

fn main() {}
