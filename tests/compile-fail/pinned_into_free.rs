// A page table becomes memory only after Mmu::retire (unhook, unpin, writable again).
use hal_core::{Frame, Free, PinnedRO};
use typenum::U1;

fn to_memory(table: Frame<PinnedRO<U1>>) -> Frame<Free> {
    table.into_free()
}

fn main() {}
