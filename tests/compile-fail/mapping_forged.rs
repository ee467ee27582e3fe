// A `Mapping` is the mapper's receipt for frames it mapped; `unmap_frames` turns it back into
// `Free` frames, so safe code cannot make one up.
use hal_core::mapper::Mapping;
use hal_core::{FrameRange, Free, Pfn};

fn forge(frames: FrameRange<Free>, root: Pfn) -> Mapping {
    Mapping {
        va: 0x4000_0000_0000,
        root,
        frames,
    }
}

fn main() {}
