// "Writing a page table as plain memory": hal-core has no API that turns any frame into a
// pointer or a byte slice (Free frames are handed to their users as owned values, and
// writing them is the user's business). The nearest operation is handing the frame to an API
// that takes memory, Free frames only: here, using a live table as a new pgt_buf.
use hal_core::{Frame, FrameRange, Mmu, PgtBuf, PinnedRO, RawMmu};
use typenum::U1;

fn reuse<B: RawMmu>(mmu: &mut Mmu<B>, table: Frame<PinnedRO<U1>>) {
    let _ = PgtBuf::new(mmu, FrameRange::from_frame(table));
}

fn main() {}
