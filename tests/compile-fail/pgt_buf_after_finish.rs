// finish is the pagetable_reserve hook: it consumes the buffer. Nothing can be taken from it
// afterwards (its tail belongs to memblock now).
use hal_core::memblock::Memblock;
use hal_core::{Mmu, PgtBuf, RawMmu};

fn late<B: RawMmu>(mmu: &mut Mmu<B>, mb: &mut Memblock<8>, mut buf: PgtBuf) {
    let _ = buf.finish(mmu, mb);
    let _ = buf.alloc();
}

fn main() {}
