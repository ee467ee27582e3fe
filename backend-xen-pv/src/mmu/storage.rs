//! [`Storage`]: the backend's large buffers, kept apart from [`XenPv`](super::XenPv) so that
//! they can live in a static while the backend itself moves freely (a board's boot stack is
//! small).

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

use super::queue::Queue;
use super::records::RoRuns;

/// The update queue ([`QUEUE_CAP`](super::QUEUE_CAP) requests) and the remembered read-only
/// runs ([`MAX_RO_RUNS`](super::MAX_RO_RUNS)): about 25 KiB, all zeros when empty (a static
/// of it lands in `.bss`).
pub struct Storage {
    pub(super) queue: Queue,
    pub(super) records: RoRuns,
}

impl Storage {
    /// Empty storage.
    pub const fn new() -> Self {
        Self {
            queue: Queue::new(),
            records: RoRuns::new(),
        }
    }

    /// Empties the queue and forgets every run, in place (no 25 KiB temporary on the stack).
    pub(super) fn reset(&mut self) {
        self.queue.clear();
        self.records.clear();
    }

    /// The crate's one static storage: `Some` the first time, `None` after.
    pub fn take_static() -> Option<&'static mut Storage> {
        if TAKEN.swap(true, Ordering::AcqRel) {
            return None;
        }
        // SAFETY: `TAKEN` makes this the only reference ever created to the slot's contents.
        Some(unsafe { &mut *SLOT.0.get() })
    }
}

impl Default for Storage {
    fn default() -> Self {
        Self::new()
    }
}

struct Slot(UnsafeCell<Storage>);

// SAFETY: the contents are reached only through the single `&'static mut` that
// `take_static` hands out (guarded by `TAKEN`), never through `&Slot`.
unsafe impl Sync for Slot {}

static SLOT: Slot = Slot(UnsafeCell::new(Storage::new()));
static TAKEN: AtomicBool = AtomicBool::new(false);
