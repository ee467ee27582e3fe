// The one generic transition is private to hal-core: only named transitions, each with its
// backend operation, change a frame's state.
use hal_core::{Frame, Free, PinnedRO};
use typenum::U1;

fn to_memory(table: Frame<PinnedRO<U1>>) -> Frame<Free> {
    table.into_state::<Free>()
}

fn main() {}
