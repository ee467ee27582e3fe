// There are no level-4 leaves: a root cannot map memory directly.
use hal_core::{Pte, TableBuilder};
use typenum::U4;

fn map(root: &mut TableBuilder<U4>, pte: Pte) {
    // SAFETY: a compile-fail case; it never runs.
    let _ = unsafe { root.set_leaf(0, pte) };
}

fn main() {}
