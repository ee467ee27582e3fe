// A memblock built from a map claims its RAM: a second one over the same map would hand out
// the same frames. `from_firmware` is unsafe.
use hal_core::memblock::Memblock;
use hal_core::memmap::MemRegion;

fn twice(map: &[MemRegion]) {
    let _ = Memblock::<8>::from_firmware(map);
}

fn main() {}
