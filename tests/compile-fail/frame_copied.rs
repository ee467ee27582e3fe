// A frame is an owned capability: using it twice is a use after move.
use hal_core::memblock::Memblock;
use hal_core::{Frame, Free};

fn twice(mb: &mut Memblock<8>, frame: Frame<Free>) {
    let _ = mb.free_frame(frame);
    let _ = mb.free_frame(frame);
}

fn main() {}
