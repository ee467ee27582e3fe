// The seed's bug: handing the unused tail of pgt_buf to the allocator while it is still
// read-only. memblock only takes Free frames; the tail must be released first
// (PgtBuf::finish does both, in that order).
use hal_core::memblock::Memblock;
use hal_core::{FrameRange, PgtReserved};

fn give_back(mb: &mut Memblock<8>, tail: FrameRange<PgtReserved>) {
    let _ = mb.free_frames(tail);
}

fn main() {}
