//! Why an example failed: every check has its own variant, so the log says which.

use pvmmu::direct_map::PlanError;
use pvmmu::memblock::{MapError, MemblockError};
use pvmmu::ErrorKind;

/// A failed step or check.
#[derive(Debug, defmt::Format)]
pub enum Failure {
    /// The firmware memory map was refused.
    Map(MapError),
    /// memblock refused an operation.
    Memblock(MemblockError),
    /// The machine's RAM was claimed already (one memblock per boot).
    Claimed,
    /// memblock holds RAM `[start, end)` that no frame number can name (at or above
    /// `MAX_PFN`), so no page table can map it.
    Unaddressable {
        /// Start of the memory region.
        start: u64,
        /// Its end.
        end: u64,
    },
    /// The P2M has no usable machine frame for `pfn` (the log line before says why).
    P2mLookup {
        /// The pfn looked up.
        pfn: u64,
    },
    /// The direct map cannot be planned.
    Plan(PlanError),
    /// `map_ram` failed (the log line before says which step and why).
    Setup(ErrorKind),
    /// The buffer cannot hold the tables.
    Exhausted {
        /// Tables needed.
        needed: u64,
        /// Frames left.
        remaining: u64,
    },
    /// The backend refused a step (the log line before says which and why).
    Backend(&'static str, ErrorKind),
    /// The tables used differ from the computed count.
    CountMismatch {
        /// Computed.
        computed: u64,
        /// Used.
        used: u64,
    },
    /// A virtual address translated wrongly (or not at all).
    Translation {
        /// The address.
        va: u64,
        /// The frame it should reach.
        expected: u64,
        /// The frame it reached (`u64::MAX`: not mapped).
        got: u64,
    },
    /// A mapping has the wrong page size or protection.
    Mapping {
        /// The address.
        va: u64,
    },
    /// What was written to a frame did not read back.
    Pattern {
        /// The frame.
        pfn: u64,
    },
    /// A frame seen through two mappings differs.
    Alias {
        /// The frame.
        pfn: u64,
    },
    /// The board has no second mapping of a frame to cross-check it through.
    NoAlias {
        /// The frame.
        pfn: u64,
    },
    /// A raw hypercall returned something other than what the demonstration expects.
    Hypercall {
        /// Which call.
        what: &'static str,
        /// What it returned.
        ret: i64,
    },
    /// A store that must fault did not.
    NoFault {
        /// The address stored to.
        va: u64,
    },
    /// A run-time mapping check failed (`what` says which, at `va`, in operation `op`).
    Runtime {
        /// Which check.
        what: &'static str,
        /// The address.
        va: u64,
        /// The operation's number.
        op: u64,
    },
}
