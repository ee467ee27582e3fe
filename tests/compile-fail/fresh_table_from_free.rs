// A table is written in place only into a frame made page-table-ready (`PgtReserved`, no
// writable mapping left): a `Free` frame cannot become a `FreshTable`.
use hal_core::{Frame, Free, FreshTable};
use typenum::U1;

fn in_place(frame: Frame<Free>) {
    let _ = FreshTable::<U1>::new(frame);
}

fn main() {}
