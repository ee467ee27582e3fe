// Only a level-4 table can become the root.
use hal_core::{LiveRoot, Mmu, Pinned, RawMmu};
use typenum::U1;

fn switch<B: RawMmu>(mmu: &mut Mmu<B>, live: &mut LiveRoot, l1: Pinned<U1>) {
    // SAFETY: a compile-fail case; it never runs.
    let _ = unsafe { mmu.switch_root(live, l1) };
}

fn main() {}
