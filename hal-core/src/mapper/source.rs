//! [`FrameSource`]: where the mapper's page-table frames come from and go back to.

use crate::frame::Frame;
use crate::memblock::{Direction, Memblock};
use crate::state::Free;

/// An allocator of single frames for page tables.
pub trait FrameSource {
    /// One free frame, or `None` when there is none left.
    fn alloc(&mut self) -> Option<Frame<Free>>;
    /// Takes a frame back. A source that cannot (its bookkeeping is full) hands it back.
    fn give_back(&mut self, frame: Frame<Free>) -> Result<(), Frame<Free>>;
}

/// Frames from a memblock, below `limit` (the backend must reach table frames: bare metal
/// through the boot identity map, Xen PV through a window), top-down.
#[derive(Debug)]
pub struct MemblockSource<'a, const N: usize> {
    memblock: &'a mut Memblock<N>,
    limit: u64,
}

impl<'a, const N: usize> MemblockSource<'a, N> {
    /// Frames from `memblock`, below physical address `limit`.
    pub fn new(memblock: &'a mut Memblock<N>, limit: u64) -> Self {
        Self { memblock, limit }
    }

    /// The memblock.
    pub fn memblock(&self) -> &Memblock<N> {
        self.memblock
    }
}

impl<const N: usize> FrameSource for MemblockSource<'_, N> {
    fn alloc(&mut self) -> Option<Frame<Free>> {
        self.memblock
            .alloc_frame(self.limit, Direction::TopDown)
            .ok()
    }

    fn give_back(&mut self, frame: Frame<Free>) -> Result<(), Frame<Free>> {
        self.memblock.free_frame(frame).map_err(|f| f.value)
    }
}
