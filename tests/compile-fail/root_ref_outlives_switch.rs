// A handle to the live root is borrowed from the `LiveRoot`: it cannot be kept across a
// switch to another root (the switch needs the `LiveRoot` mutably).
use hal_core::{LiveRoot, Mmu, Pinned, RawMmu};
use typenum::U4;

fn stale<B: RawMmu>(mmu: &mut Mmu<B>, live: &mut LiveRoot, new_root: Pinned<U4>) {
    let old = live.table();
    // SAFETY: a compile-fail case; it never runs.
    let _ = unsafe { mmu.switch_root(live, new_root) };
    let _ = old.pfn();
}

fn main() {}
