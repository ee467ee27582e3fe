#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs, clippy::undocumented_unsafe_blocks)]
// Typed transitions spell out the states they return, and a failed one hands its input back
// (a 4 KiB table builder included): both are the point, not accidents.
#![allow(clippy::type_complexity, clippy::result_large_err)]
//! pvmmu's portable core: page frames with type states, the `pgt_buf` lifecycle, memblock and
//! an exact direct-map builder, over a backend trait that bare metal and Xen PV implement.
//!
//! Start with [`state`] (the state machine), [`mmu`] (the typed transitions),
//! [`pgt_buf`] (the buffer and its `finish` hook), [`root`] (pinned tables and the live
//! root), [`direct_map`] and [`backend`] (what a backend promises).
//!
//! # Promises, and what proves each
//! What safe code cannot do with hal-core, and where the proof lives (`tests/` is the
//! workspace's compile-fail and static checks; `hal-core/tests/` runs on a simulated backend
//! that reports every breach of the platform's rules, Xen's judged by backend-xen-pv's model
//! of Xen, the one checked against real Xen):
//!
//! | promise | how | proved by |
//! |---|---|---|
//! | A frame is owned once: no copy, no clone of anything that owns or hands out frames | no `Copy`/`Clone` on `Frame`, `FrameRange`, `AnyFrame`, `TableBuilder`, [`FreshTable`], `PgtBuf`, [`Memblock`](memblock::Memblock), [`Pinned`], [`LiveRoot`], [`Unsettled`], the mapper's `Mapping` and `OwnedTable`, nor on [`Mmu`] and the backends (`Native`, `XenPv`, its `Storage`) | `tests/tests/static_props.rs`; compile-fail `frame_cloned`, `frame_copied`, `range_cloned`, `memblock_cloned`, `live_root_cloned`, `mapping_forged` |
//! | No frame is conjured from an address in safe code | `Frame::from_pfn_unchecked`, `FrameRange::from_pfns_unchecked`, `TableRef::from_pfn`, memblock's `add_memory`/`from_firmware`, `LiveRoot::adopt_boot_root`, backend constructors and windows are `unsafe` claims | compile-fail `frame_forged`, `memblock_add_memory_safe`, `memblock_from_firmware_safe`, `live_root_forged` |
//! | A backend's promises rest on `unsafe` code only | [`RawMmu`] is an `unsafe trait`, and so is everything a backend trusts for them: backend-native's `Cpu` (the current root, the TLB flushes), backend-xen-pv's `RawHypercall` and `PvPlatform` | compile-fail `native_cpu_safe_impl` |
//! | Nothing safe un-reserves memory someone holds | frames go back to memblock only as owned `Free` frames; `Memblock::unreserve` is `unsafe` | compile-fail `memblock_unreserve_safe`, `pgt_reserved_tail_to_memblock`, `pinned_to_memblock`, `pinned_range_to_memblock`, `unsettled_to_memblock`, `direct_map_tail_to_memblock` |
//! | A buffer's tail goes back to the memblock it came from, and no other | `PgtBuf` records the memblock's id; `finish` checks it | `hal-core/tests/edges.rs` `finish_refuses_another_memblock_and_changes_nothing` |
//! | No path from a page-table state to `Free` skips the backend's release | `into_free` exists on `ReleasedRW` only | compile-fail `pgt_reserved_as_free`, `pgt_reserved_into_free`, `pinned_into_free`, `pinned_as_memory`, `state_changed_directly` |
//! | A `PgtReserved` frame has no writable mapping; a frame that may still have one is `Unsettled` | failed protect, release and retire return [`Unsettled`], which only [`Mmu::settle`] turns into `ReleasedRW` | compile-fail `unsettled_as_table`; `hal-core/tests/faults.rs` `protect_refused_frames_come_back_unsettled`, `release_refused_then_retried`, `finish_with_release_refused` |
//! | A `Frame<PinnedRO<L>>` is a complete level-`L` table | `new_table` flushes before it hands the frame out; a [`FreshTable`] becomes one only through `finish_table`, and starts over after a refusal that may have dropped its queued slots ([`RawMmu::discarded`]); `direct_map::build` puts a subtree into a staged `TableBuilder` root only once its writes are submitted; levels are types | `faults.rs` `new_table_refused_builder_comes_back`, `a_fresh_table_refused_where_nothing_is_dropped_keeps_its_slots`, `a_staged_root_takes_a_subtree_only_once_its_writes_are_applied`, `a_fresh_root_whose_subtree_a_refusal_dropped_is_finished_empty` (over a queuing sim that drops its queue on a refusal); backend-xen-pv `slots_a_refused_batch_dropped_are_written_again_before_a_fresh_table_is_finished`; compile-fail `adopt_*`, `hook_*`, `leaf_in_root`, `pin_wrong_level`, `switch_root_l1`, `fresh_table_from_free`, `fresh_table_hooked_unfinished`, `fresh_child_wrong_level`, `fresh_failed_finish_pinned` |
//! | A table is pinned at most once, and a pinned table is not hooked or retired | `pin` consumes the table into [`Pinned`] | compile-fail `pin_twice`, `pinned_pinned_again`, `pinned_hooked`, `pinned_retired` |
//! | `retire` never leaks a subtree nor frees the live root | it refuses a table with child tables and the current root; the live root is owned by the [`LiveRoot`] | `faults.rs` `pin_and_switch_refused` (`HasChild`), `hook_refused_child_comes_back` |
//! | The live root can be read and extended in safe code, and no handle to it outlives a switch | one owned [`LiveRoot`] per address space; `TableRef`s borrow it; `switch_root` takes it `&mut` | compile-fail `root_ref_outlives_switch`; `hal-core/tests/live.rs` (builds into the live root) |
//! | The mapper gives `Free` frames back only once no translation to them is left | a [`Mapping`](mapper::Mapping) is refused by a mapper of another root; a refused `map_frames` keeps frames it may still map; a table another mapper hooked a table under is not unhooked | `hal-core/tests/mapper.rs` `a_mapping_comes_back_only_from_the_mapper_that_made_it`, `frames_whose_mapping_could_not_be_rolled_back_are_not_given_back`, `a_mapper_leaves_a_table_another_mapper_hooked_a_table_under`; compile-fail `mapper_maps_a_table` |
//! | A root never names a freed table: roots made by `inherit_root` share the live root's tables | a table in a root slot is never freed: the boot tables are never retired, a root's subtrees have no safe handle, and the mapper keeps the level-3 tables it makes in root slots ([`Teardown::tables_kept`](mapper::Teardown)) | `hal-core/tests/mapper.rs` `a_root_that_inherited_a_mappers_slot_keeps_its_tables` |
//! | Safe code reads no memory through a backend's mappings but page tables | `RawMmu::read` and `walk::translate` (a walk from a frame number) are `unsafe`: the caller names a table; the safe reads take a typed table ([`Mmu::entry`], [`Mmu::child`], [`Mmu::translate`], `inherit_root` from the [`LiveRoot`]); every other safe backend method reads only the backend's own state, or submits what an `unsafe` call queued (`flush`) | compile-fail `native_read_safe`, `raw_mut_read_safe`, `translate_safe` |
//! | Unhooking a subtree is the owner's call | `Mmu::unhook` is `unsafe`: the caller must own the subtree | compile-fail `unhook_safe` |
//! | Queued updates are flushed or deliberately deferred | [`Pending`] is `#[must_use]` | compile-fail `pending_dropped` |
//! | No panic on input, `MAX_PFN` edges included; a refused call changes nothing | typed errors; checked arithmetic; plain-data helpers whose fields are public (`Window`, `walk::Slot`, `EntryRun`) never overflow | `hal-core/tests/bad_input.rs`, `edges.rs` (`longest_run_never_passes_one_table`, `window_addresses_never_wrap`, `a_slot_ends_where_its_entry_ends`), `firmware_edges.rs` (an entry ending at 2^64 exactly), `memblock.rs` (properties); backend-xen-pv `a_layout_built_by_hand_never_panics`, `the_total_wraps_as_the_counters_do` |
//! | The direct map is exact: every page once, the largest page alignment allows, tables read-only where the backend needs it, the buffer sized exactly | the planner's exact count; the builder | `hal-core/tests/lifecycle.rs` and `live.rs` against an independent oracle; on real machines, the runner's own walker over guest memory |

pub mod addr;
pub mod backend;
pub mod direct_map;
pub mod erased;
pub mod error;
pub mod frame;
pub mod fresh;
pub mod level;
pub mod mapper;
pub mod memblock;
pub mod memmap;
pub mod mmu;
pub mod pgt_buf;
pub mod phase;
pub mod pte;
pub mod range;
pub mod report;
pub mod root;
pub mod state;
pub mod table;
pub mod tlb;
pub mod unsettled;
pub mod walk;
pub mod window;

pub use addr::{Mfn, Pfn, PfnRange, PAGE_SIZE};
pub use backend::{Caps, EntryRun, PageSizes, RawMmu};
pub use erased::AnyFrame;
pub use error::{BackendError, ErrorKind, Failed};
pub use frame::Frame;
pub use fresh::FreshTable;
pub use level::{ChildOf, HasChild, Level, Root, TableLevel};
pub use mmu::{Mmu, Pending, RetireError, SwitchError, WriteError};
pub use pgt_buf::PgtBuf;
pub use phase::Phase;
pub use pte::Pte;
pub use range::FrameRange;
pub use report::Report;
pub use root::{LiveRoot, Pinned, PreviousRoot};
pub use state::{Free, PgtReserved, PinnedRO, ReleasedRW, State, StateKind};
pub use table::{TableBuilder, TableRef};
pub use tlb::TlbBatch;
pub use unsettled::Unsettled;
pub use window::Window;
pub use x86_64::structures::paging::PageTableFlags;
