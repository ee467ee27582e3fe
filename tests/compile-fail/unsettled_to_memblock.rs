// Unsettled frames may still be read-only somewhere: they are no memory until settled.
use hal_core::memblock::Memblock;
use hal_core::Unsettled;

fn give_back(mb: &mut Memblock<8>, frames: Unsettled) {
    let _ = mb.free_frames(frames);
}

fn main() {}
