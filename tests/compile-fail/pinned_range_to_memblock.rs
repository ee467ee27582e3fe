// Nor a run of them.
use hal_core::memblock::Memblock;
use hal_core::{Frame, FrameRange, PinnedRO};
use typenum::U1;

fn give_back(mb: &mut Memblock<8>, table: Frame<PinnedRO<U1>>) {
    let _ = mb.free_frames(FrameRange::from_frame(table));
}

fn main() {}
