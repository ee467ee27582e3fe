// "Writing a page table as plain memory": hal-core has no API that turns any frame into a
// pointer or a byte slice (Free frames are handed to their users as owned values, and
// writing them is the user's business). The nearest operation is handing the frame to an API
// that takes memory, Free frames only: here, giving a live table back to memblock.
use hal_core::memblock::Memblock;
use hal_core::{Frame, PinnedRO};
use typenum::U1;

fn reuse(mb: &mut Memblock<8>, table: Frame<PinnedRO<U1>>) {
    let _ = mb.free_frame(table);
}

fn main() {}
