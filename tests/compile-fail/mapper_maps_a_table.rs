// The safe mapping call takes owned Free frames: a page table cannot be mapped through it.
use hal_core::mapper::{FrameSource, Mapper};
use hal_core::range::FrameRange;
use hal_core::{Mmu, PageTableFlags, PinnedRO, RawMmu, TableRef};
use typenum::{U1, U4};

fn map_table<B: RawMmu, S: FrameSource>(
    m: &mut Mapper<S>,
    mmu: &mut Mmu<B>,
    root: TableRef<'_, U4>,
    tables: FrameRange<PinnedRO<U1>>,
) {
    let _ = m.map_frames(mmu, root, 0x4000_0000_0000, tables, PageTableFlags::WRITABLE);
}

fn main() {}
