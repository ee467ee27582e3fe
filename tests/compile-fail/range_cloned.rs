// Nor are runs of frames, nor the buffer.
use hal_core::{FrameRange, Free, PgtBuf};

fn duplicate(frames: &FrameRange<Free>, buf: &PgtBuf) -> (FrameRange<Free>, PgtBuf) {
    (Clone::clone(frames), Clone::clone(buf))
}

fn main() {}
