//! A run-time mapper over a live root: map, unmap, change protection, translate and tear
//! down, with page tables taken from a frame source and given back through the frame states.
//!
//! ```text
//!  FrameSource ──alloc──▶ Frame<Free> ──Mmu::protect──▶ Frame<PgtReserved> ──new table──▶ Frame<PinnedRO<L>>
//!       ▲                                                                                   │ hooked: the tree
//!       │ give_back                                                                         │ owns it; the
//!  Frame<Free> ◀──into_free── Frame<ReleasedRW> ◀──Mmu::retire── unhooked when empty ◀─────┘ mapper records it
//! ```
//!
//! # Use
//! ```text
//! let mut m: Mapper<_> = Mapper::new(root.table(), mmu.caps(), MemblockSource::new(&mut mb, limit), EmptyTables::Free);
//! let f = unsafe { m.map(mmu, root.table(), va, phys, len, PageTableFlags::WRITABLE, PageSize::Auto) }?;
//! let f = f.join(unsafe { m.protect(mmu, root.table(), va, 4096, PageTableFlags::empty()) }?);
//! let f = f.join(unsafe { m.unmap(mmu, root.table(), va, len) }?);
//! m.flush(mmu, f)?;                          // one submission, invalidation riding on it
//! let report = unsafe { m.teardown(mmu, root.table()) }?;  // every table back to the source
//! ```
//! Safe use of owned memory: [`Mapper::map_frames`] takes a `FrameRange<Free>` and returns a
//! [`Mapping`] that holds it; [`Mapper::unmap_frames`] gives the frames back once the TLB no
//! longer maps them.
//!
//! # What the mapper owns
//! Only the tables it created (a fixed-capacity record, [`Mapper`]'s `N`): it writes leaves
//! only into those, and unhooks and retires only those (the contract of
//! [`Mmu::unhook`](crate::Mmu::unhook)). It creates tables under any table of the tree (the
//! root, the boot tables), but never writes a leaf into a table it did not create.
//!
//! A level-3 table it hooks into a root slot stays there, empty or not, until the end: no
//! unmap, rollback or [`teardown`](Mapper::teardown) frees it (it stays in the record, and
//! [`Teardown::tables_kept`] counts it). A new root made with the safe
//! [`Mmu::inherit_root`](crate::Mmu::inherit_root) shares the tables of the live root's slots;
//! freeing one would leave that root naming a frame handed out as memory. (Linux keeps the
//! kernel's top-level entries for the same reason.) Tables further down are shared through
//! the level-3 table, so unhooking one changes every root that shares it alike.
//!
//! # What it can and cannot know about page-table frames
//! A writable mapping of a page-table frame is refused ([`MapError::FrameIsTable`]) when the
//! frame is one of the mapper's own tables or one of the backend's
//! [`foreign_tables`](crate::RawMmu::foreign_tables) (Xen: the domain builder's). Tables made
//! elsewhere (the direct map's `pgt_buf`, another mapper) are unknown to it: the `unsafe`
//! contract of [`Mapper::map`] covers them, a backend with read-only tables writes such a
//! leaf read-only ([`RawMmu::write`](crate::RawMmu::write); Xen would refuse it, `-EBUSY`),
//! and the safe [`Mapper::map_frames`] only takes `Free` frames, which no table is.

//!
//! # What a page costs
//! The record of owned tables is an open-addressing table (one probe, usually) that keeps
//! each table's count of present entries, so emptiness is known without scanning it. The last
//! level-1 table used is cached: a map or unmap inside it skips the walk from the root and
//! reaches its slot with one [`RawMmu::update`](crate::RawMmu::update) (one load, a store only
//! when the slot changes); the cache is dropped whenever a table leaves the record. The checks
//! stay per call (range, flags, physical range, known tables, overlap); the walks, the rollback
//! of a refused `map` and the unhooking of emptied tables are out of line. On the host this
//! maps and unmaps 4 KiB pages faster than x86_64's `Mapper` (README, "Performance of the
//! run-time mapper").

mod error;
mod flush;
mod map;
mod mapping;
mod record;
mod source;
mod teardown;
mod walk;

pub use error::MapError;
pub use flush::{Flush, MapperStats};
pub use map::{EmptyTables, Mapper, PageSize};
pub use mapping::Mapping;
pub use record::OwnedTable;
pub use source::{FrameSource, MemblockSource};
pub use teardown::Teardown;
