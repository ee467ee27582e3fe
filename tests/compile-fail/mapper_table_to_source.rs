// A frame source takes back only Free frames: a page table (PinnedRO) cannot be handed back
// to it without being retired.
use hal_core::mapper::FrameSource;
use hal_core::{Frame, PinnedRO};
use typenum::U1;

fn give_back<S: FrameSource>(source: &mut S, table: Frame<PinnedRO<U1>>) {
    let _ = source.give_back(table);
}

fn main() {}
