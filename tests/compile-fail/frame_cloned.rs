// Frames are not Clone: one frame cannot be in two states at once.
use hal_core::{Frame, PgtReserved};

fn duplicate(frame: &Frame<PgtReserved>) -> Frame<PgtReserved> {
    Clone::clone(frame)
}

fn main() {}
