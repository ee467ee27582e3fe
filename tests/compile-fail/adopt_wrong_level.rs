// The same when building a table in memory: a new root adopts L3 tables, not L2 ones.
use hal_core::{Frame, PinnedRO, TableBuilder};
use typenum::{U2, U4};

fn adopt(root: &mut TableBuilder<U4>, l2: Frame<PinnedRO<U2>>) {
    let _ = root.adopt(0, l2);
}

fn main() {}
