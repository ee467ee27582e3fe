// The state is part of the type: a PgtReserved frame is no Free frame.
use hal_core::{Frame, Free, PgtReserved};

fn to_memory(frame: Frame<PgtReserved>) -> Frame<Free> {
    frame
}

fn main() {}
