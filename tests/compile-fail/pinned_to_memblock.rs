// A live page table cannot be given to the allocator.
use hal_core::memblock::Memblock;
use hal_core::{Frame, PinnedRO};
use typenum::U2;

fn give_back(mb: &mut Memblock<8>, table: Frame<PinnedRO<U2>>) {
    let _ = mb.free_frame(table);
}

fn main() {}
