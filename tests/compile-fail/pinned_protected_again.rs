// Mmu::protect takes Free frames: a live table cannot be "protected" into a PgtReserved frame
// and then released as if it had never been a table (retire is the only way out).
use hal_core::{Frame, FrameRange, Mmu, PinnedRO, RawMmu};
use typenum::U3;

fn launder<B: RawMmu>(mmu: &mut Mmu<B>, table: Frame<PinnedRO<U3>>) {
    let _ = mmu.protect(FrameRange::from_frame(table));
}

fn main() {}
