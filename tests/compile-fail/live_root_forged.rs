// The handle to the live root is made once, by the board, through an unsafe promise.
use hal_core::{LiveRoot, Mmu, RawMmu};

fn forge<B: RawMmu>(mmu: &Mmu<B>) -> LiveRoot {
    LiveRoot::adopt_boot_root(mmu)
}

fn main() {}
