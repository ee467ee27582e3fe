// Claiming a frame out of thin air is unsafe: the caller vouches for ownership and state.
use hal_core::{Frame, Free, Pfn};

fn forge() -> Frame<Free> {
    Frame::from_pfn_unchecked(Pfn::new(0x1000).unwrap())
}

fn main() {}
