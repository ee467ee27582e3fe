// A copy of a memblock would hand out the frames the original hands out.
use hal_core::memblock::Memblock;

fn copy(mb: &Memblock<8>) -> Memblock<8> {
    mb.clone()
}

fn main() {}
