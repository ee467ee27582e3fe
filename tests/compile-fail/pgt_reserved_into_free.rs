// A pgt_buf frame may still be read-only (Xen PV): it becomes memory only through a backend
// release (PgtReserved -> ReleasedRW -> Free). There is no shortcut.
use hal_core::{Frame, Free, PgtReserved};

fn to_memory(frame: Frame<PgtReserved>) -> Frame<Free> {
    frame.into_free()
}

fn main() {}
