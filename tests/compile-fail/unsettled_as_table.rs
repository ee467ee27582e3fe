// Frames a failed protect left half done may still be writable somewhere: they are
// `Unsettled`, not `PgtReserved`, and cannot become a table.
use hal_core::{Mmu, RawMmu, TableBuilder, FrameRange, Free};
use typenum::U1;

fn table<B: RawMmu>(mmu: &mut Mmu<B>, frames: FrameRange<Free>) {
    if let Err(failed) = mmu.protect(frames) {
        let mut rest = failed.value;
        let _ = TableBuilder::<U1>::new(rest.pop_front().unwrap());
    }
}

fn main() {}
