// Nor adopted by an L1 table being built.
use hal_core::{Frame, PinnedRO, TableBuilder};
use typenum::U1;

fn adopt(l1: &mut TableBuilder<U1>, child: Frame<PinnedRO<U1>>) {
    let _ = l1.adopt(0, child);
}

fn main() {}
