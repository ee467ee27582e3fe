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
//! [`pgt_buf`] (the buffer and its `finish` hook), [`direct_map`] and [`backend`] (what a
//! backend promises).

pub mod addr;
pub mod backend;
pub mod direct_map;
pub mod erased;
pub mod error;
pub mod frame;
pub mod level;
pub mod memblock;
pub mod memmap;
pub mod mmu;
pub mod pgt_buf;
pub mod phase;
pub mod pte;
pub mod range;
pub mod root;
pub mod state;
pub mod table;
pub mod unsettled;
pub mod walk;
pub mod window;

pub use addr::{Mfn, Pfn, PfnRange, PAGE_SIZE};
pub use backend::{Caps, PageSizes, RawMmu};
pub use erased::AnyFrame;
pub use error::{BackendError, ErrorKind, Failed};
pub use frame::Frame;
pub use level::{ChildOf, HasChild, Level, Root, TableLevel};
pub use mmu::{Mmu, Pending, RetireError, SwitchError, WriteError};
pub use pgt_buf::PgtBuf;
pub use phase::Phase;
pub use pte::Pte;
pub use range::FrameRange;
pub use root::{LiveRoot, Pinned, PreviousRoot};
pub use state::{Free, PgtReserved, PinnedRO, ReleasedRW, State, StateKind};
pub use table::{TableBuilder, TableRef};
pub use unsettled::Unsettled;
pub use window::Window;
pub use x86_64::structures::paging::PageTableFlags;
