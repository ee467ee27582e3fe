// A mapper's queued updates are an obligation: dropping the Flush an unmap returns, unflushed,
// is an error where unused_must_use is denied (a warning by default).
#![deny(unused_must_use)]
use hal_core::mapper::{FrameSource, Mapper};
use hal_core::{Mmu, RawMmu, TableRef};
use typenum::U4;

fn unmap<B: RawMmu, S: FrameSource>(m: &mut Mapper<S>, mmu: &mut Mmu<B>, root: TableRef<'_, U4>) {
    // SAFETY: a compile-fail case; it never runs.
    unsafe { m.unmap(mmu, root, 0x4000_0000_0000, 4096) }.unwrap();
}

fn main() {}
