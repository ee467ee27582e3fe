// The states are sealed: no fifth state can be invented outside hal-core.
use hal_core::state::{State, StateKind};

enum Scratch {}

impl State for Scratch {
    const KIND: StateKind = StateKind::Free;
}

fn main() {}
