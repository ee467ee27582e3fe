// Unhooking takes a subtree out of the tree: the caller must own it (not the kernel's own
// mappings, not the boot tables), so `unhook` is unsafe even on the live root's handle.
use hal_core::{LiveRoot, Mmu, RawMmu};

fn steal<B: RawMmu>(mmu: &mut Mmu<B>, live: &LiveRoot) {
    let _ = mmu.unhook(live.table(), 0);
}

fn main() {}
