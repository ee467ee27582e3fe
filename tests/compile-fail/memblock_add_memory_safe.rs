// Adding memory claims it: in safe code, a memblock over any range would turn any frame
// number into an owned `Frame<Free>`. `add_memory` is unsafe.
use hal_core::memblock::Memblock;

fn forge() {
    let mut mb = Memblock::<8>::new();
    let _ = mb.add_memory(0x1000, 0x2000);
}

fn main() {}
