//! The Xen PV MMU backend: hal-core's [`RawMmu`](hal_core::RawMmu) through `mmu_update`,
//! `mmuext_op`, `update_va_mapping` and `multicall`.
//!
//! # For board authors
//! ```text
//! let boot = Bootstrap::from_start_info(&start_info, &layout)?;      // root, tables, window
//! let storage = Storage::take_static().unwrap();                       // 25 KiB, in .bss
//! static HV: Counted<XenHypercalls> = Counted::new(unsafe { XenHypercalls::new(page) });
//! let raw  = unsafe { XenPv::new(&HV, p2m, &boot, storage) }?;         // exclusive control
//! let mut mmu = hal_core::Mmu::new(raw);
//! mmu.raw_mut().set_phase(Phase::MakeReadOnly);                        // count per phase
//                                              (hal_core::direct_map::map_ram does this)
//! ... PgtBuf::new, direct_map::build, new_table(root), switch_root ...
//! unsafe { mmu.raw_mut().add_window(PAGE_OFFSET, ram) }?;              // the new direct map
//! mmu.raw().counters().get(Phase::Release).hypercalls
//! ```
//!
//! # What each operation costs
//! Counted by [`Counted`](crate::hypercall::Counted), the wrapper every hypercall goes through
//! (the backend holds nothing else), so these are the figures [`XenPv::counters`] reports.
//!
//! | operation | hypercalls |
//! |---|---|
//! | `protect(K frames)` | `ceil(m * K / 512)` `mmu_update`s, `m` = writable mappings per frame in the windows, then one `mmuext_op` (`TLB_FLUSH_LOCAL`) if any entry changed |
//! | `write` (a table of 512 entries) | one `mmu_update` per 512 queued entries (queued across calls) |
//! | `fill_fresh` ([`FillStrategy::StoreThenProtect`], the default) | none through a window that maps the table; one `update_va_mapping` for a table reached through a scratch page (when the page maps another frame), and one per moved scratch page when the held-back protections are applied; otherwise as `write` |
//! | held-back `protect` | as `protect`, when applied (by the next `write`, `pin`, `flush`, ...), counted under the phase `protect` was called in |
//! | `pin` | one `mmuext_op` (after submitting the queue) |
//! | `switch_root` | one `mmuext_op`: `PIN_L4_TABLE` (if not pinned yet) + `NEW_BASEPTR` |
//! | `release(K frames)` | at most `ceil(m * K / 1024) + 1`: the queue if it holds entries (one hypercall), then `ceil(m * K / 1024)`: multicalls of two 512-entry batches, the last one a single `mmu_update` if it has at most 512 entries; with an empty queue exactly `ceil(m * K / 1024)` |
//! | `retire` | `UNPIN` (if pinned) + a release of one frame |
//! | `flush_tlb` | one queued entry for the one page: one `update_va_mapping` with `UVMF_INVLPG`; otherwise one `multicall` of the queued `mmu_update` batch (at most 511 entries: full ones went already) and one `mmuext_op` of `INVLPG_LOCAL`s or a `TLB_FLUSH_LOCAL`; an empty queue: one `mmuext_op` |
//!
//! # State after a refusal
//! The queue is always empty after a submission, successful or not; [`Refusal`] says how many
//! entries were applied and which one was refused. Mappings remembered for release that a
//! refused `protect` or `write` submission did not make are forgotten. A refused `release`
//! writes every remembered mapping of its range read-only again ([`Rollback`]), so the frames
//! are `PgtReserved` as hal-core's `Failed` value says; releasing them again resumes.

mod backend;
mod counters;
mod error;
mod platform;
mod queue;
mod records;
mod release;
mod report;
mod scratch;
mod storage;
mod tlb;
mod walk;

pub use backend::{Bootstrap, FillStrategy, ReleaseStrategy, XenPv, MAX_DEFERRED, MAX_WINDOWS};
pub use counters::{Counters, Phase, PhaseCount};
pub use error::{
    Call, Capacity, Cause, Op, Refusal, RefusedEntry, Rollback, Unsupported, XenPvError,
};
pub use hal_core::Window;
pub use platform::{PvPlatform, M2P_BYTES, M2P_VIRT_START};
pub use queue::{BATCH, QUEUE_CAP, RELEASE_BATCHES};
pub use records::{MAX_PINNED, MAX_PROTECTED, MAX_RO_RUNS};
pub use report::PER_PAGE_RELEASE;
pub use scratch::MAX_SCRATCH;
pub use storage::Storage;
