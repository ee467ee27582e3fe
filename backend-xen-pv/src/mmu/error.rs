//! [`XenPvError`]: which backend operation failed, and Xen's own cause.

use core::fmt;

use hal_core::error::{BackendError, ErrorKind};

use super::{MAX_PINNED, MAX_PROTECTED, MAX_RO_RUNS, MAX_WINDOWS};

use crate::hypercall::XenErrno;
use crate::p2m::P2mError;

/// The backend operation during which an error happened.
///
/// Entries queued by one operation can be submitted by a later one (a full queue, or a
/// `flush`): a refusal names the operation that *queued* the refused entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Op {
    /// `XenPv::new`: checking the bootstrap tables against the P2M.
    New,
    /// `protect`: making mappings read-only.
    Protect,
    /// `write`: table entries.
    Write,
    /// `read`: a table entry.
    Read,
    /// `pin`.
    Pin,
    /// `unpin`.
    Unpin,
    /// `retire`: unpin, then writable again.
    Retire,
    /// `switch_root`: pin (if needed) and new base pointer.
    SwitchRoot,
    /// `release`: mappings writable again.
    Release,
    /// `add_window`.
    AddWindow,
    /// `machine_frame`: a P2M lookup.
    Translate,
    /// A rollback after a refused release (the read-only entries written back).
    Rollback,
    /// `flush_tlb`: the queue and a TLB invalidation.
    FlushTlb,
    /// `retarget_page`: one page of the caller's pointed at another frame.
    Retarget,
    /// `set_scratch`: the backend's own pages for writing fresh tables outside every window.
    Scratch,
}

/// The hypercall that carried a refused entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Call {
    /// `mmu_update`.
    MmuUpdate,
    /// `mmuext_op`.
    MmuextOp,
    /// `update_va_mapping`.
    UpdateVaMapping,
    /// `multicall` (the batch itself failed, not one of its entries).
    Multicall,
}

/// What happened to the entries of a refused submission besides the refused one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Rollback {
    /// Nothing to undo: entries not applied were dropped, applied ones stay applied, and the
    /// frames' type states say what that means (see [`Refusal`]).
    NotNeeded,
    /// The applied entries were undone: every mapping of the frames is read-only again.
    Done,
    /// Undoing failed too, with this errno: some mappings of the frames may be writable.
    Failed(XenErrno),
}

/// Xen refused an entry of a submission.
///
/// After a refusal the backend's queue is empty. Of the `submitted` entries, `applied` took
/// effect, entry number `failed_at` (counted from the first entry of the submission) was
/// refused with `errno`, and the others were dropped — except in a multicall, where Xen runs
/// the batches after a failing one too (their applied entries are counted in `applied`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Refusal {
    /// Xen's error number.
    pub errno: XenErrno,
    /// The hypercall that carried the refused entry.
    pub call: Call,
    /// Entries in the submission (mmu_update requests, mmuext ops, or 1 for update_va_mapping).
    pub submitted: u32,
    /// Entries Xen applied (its `success_count`s, summed).
    pub applied: u32,
    /// The refused entry's position in the submission.
    pub failed_at: u32,
    /// What the backend did about the applied entries.
    pub rollback: Rollback,
    /// The refused entry itself, for a page-table entry (`mmu_update`, `update_va_mapping`);
    /// `None` for an `mmuext_op` command.
    pub entry: Option<RefusedEntry>,
}

/// The page-table entry Xen refused, in the guest's frame numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RefusedEntry {
    /// The table that holds the entry (`u64::MAX` if the M2P does not know its frame).
    pub table: u64,
    /// The entry's index in the table.
    pub index: u16,
    /// The frame the new value names (`None` for a not-present value; `u64::MAX` if the
    /// M2P does not know it): for protect and release, the frame whose mapping it is.
    pub frame: Option<u64>,
}

/// Something the backend tracks in fixed-capacity storage ran out of room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Capacity {
    /// Windows ([`MAX_WINDOWS`](super::MAX_WINDOWS)).
    Windows,
    /// Runs of read-only mappings to release ([`MAX_RO_RUNS`](super::MAX_RO_RUNS)).
    ReadOnlyRuns,
    /// Protected frame ranges ([`MAX_PROTECTED`](super::MAX_PROTECTED)).
    Protected,
    /// Pinned tables ([`MAX_PINNED`](super::MAX_PINNED)).
    Pinned,
}

/// An entry or request the backend does not support.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Unsupported {
    /// A large page: 64-bit Xen PV has none (entry index).
    LargePage(u16),
    /// A non-present entry that is not all zeros (entry index): Xen's L1TF checks would
    /// treat it as a threat.
    NonZeroNotPresent(u16),
    /// A slot of the root that Xen owns (256..272).
    XenSlot(u16),
    /// A slot index of 512 or more, or a write running past slot 511 (the slot it would end
    /// before).
    Index(u64),
    /// A window that is not page aligned or wraps around.
    Window(u64),
    /// The operation is not allowed on the current root.
    CurrentRoot,
    /// A scratch page that is not a present, writable 4 KiB mapping of its own frame in the
    /// current root (its virtual address).
    Scratch(u64),
}

/// Why an operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Cause {
    /// Xen refused an entry.
    Refused(Refusal),
    /// A frame the P2M does not know.
    P2m(P2mError),
    /// No window maps this frame, so the backend cannot read it.
    NotMapped {
        /// The frame.
        pfn: u64,
    },
    /// A table entry names a machine frame that is not this domain's (the M2P and the P2M
    /// disagree), or that the M2P does not know.
    ForeignFrame {
        /// The machine frame.
        mfn: u64,
    },
    /// Out of fixed-capacity room; nothing was changed.
    Capacity(Capacity),
    /// An entry or request outside what Xen PV allows; nothing was changed.
    Unsupported(Unsupported),
    /// The bootstrap root is not one of the bootstrap page-table frames.
    RootOutsideTables {
        /// The root's pfn.
        root: u64,
    },
}

/// An error of the Xen PV backend: the operation, and the cause.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct XenPvError {
    /// What the backend was doing.
    pub op: Op,
    /// Why it failed.
    pub cause: Cause,
}

impl XenPvError {
    pub(crate) const fn new(op: Op, cause: Cause) -> Self {
        Self { op, cause }
    }

    /// Xen's errno, if Xen refused something.
    pub fn errno(&self) -> Option<XenErrno> {
        match self.cause {
            Cause::Refused(r) => Some(r.errno),
            _ => None,
        }
    }

    /// The refusal's details, if Xen refused something.
    pub fn refusal(&self) -> Option<&Refusal> {
        match &self.cause {
            Cause::Refused(r) => Some(r),
            _ => None,
        }
    }
}

impl BackendError for XenPvError {
    fn kind(&self) -> ErrorKind {
        match self.cause {
            Cause::Refused(r) => match r.errno {
                XenErrno::EINVAL | XenErrno::EPERM => ErrorKind::Refused,
                XenErrno::EBUSY => ErrorKind::Busy,
                XenErrno::ENOMEM => ErrorKind::Capacity,
                XenErrno::ENOSYS => ErrorKind::Unsupported,
                _ => ErrorKind::Other,
            },
            Cause::P2m(_) | Cause::ForeignFrame { .. } => ErrorKind::OutOfRange,
            Cause::NotMapped { .. } => ErrorKind::NotMapped,
            Cause::Capacity(_) => ErrorKind::Capacity,
            Cause::Unsupported(Unsupported::Index(_)) | Cause::RootOutsideTables { .. } => {
                ErrorKind::OutOfRange
            }
            Cause::Unsupported(_) => ErrorKind::Unsupported,
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::New => "starting the backend",
            Self::Protect => "protect",
            Self::Write => "write",
            Self::Read => "read",
            Self::Pin => "pin",
            Self::Unpin => "unpin",
            Self::Retire => "retire",
            Self::SwitchRoot => "switch_root",
            Self::Release => "release",
            Self::AddWindow => "add_window",
            Self::Translate => "P2M lookup",
            Self::Rollback => "rollback of a refused release",
            Self::FlushTlb => "flush_tlb",
            Self::Retarget => "retarget_page",
            Self::Scratch => "set_scratch",
        })
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::MmuUpdate => "mmu_update",
            Self::MmuextOp => "mmuext_op",
            Self::UpdateVaMapping => "update_va_mapping",
            Self::Multicall => "multicall",
        })
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Xen refused entry {} of {} in a {} with {} ({} applied",
            self.failed_at, self.submitted, self.call, self.errno, self.applied
        )?;
        match self.rollback {
            Rollback::NotNeeded => f.write_str(")"),
            Rollback::Done => f.write_str(", undone)"),
            Rollback::Failed(e) => write!(f, "; undoing them failed with {e})"),
        }
    }
}

impl fmt::Display for Capacity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Windows => write!(f, "no room for another window ({MAX_WINDOWS} at most)"),
            Self::ReadOnlyRuns => write!(
                f,
                "no room for more runs of read-only mappings ({MAX_RO_RUNS} at most)"
            ),
            Self::Protected => write!(
                f,
                "no room for more protected frame ranges ({MAX_PROTECTED} at most)"
            ),
            Self::Pinned => write!(f, "no room for more pinned tables ({MAX_PINNED} at most)"),
        }
    }
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LargePage(i) => write!(f, "entry {i} is a large page: 64-bit Xen PV has none"),
            Self::NonZeroNotPresent(i) => write!(
                f,
                "entry {i} is not present but not all zeros (Xen's L1TF checks refuse it)"
            ),
            Self::XenSlot(i) => write!(f, "root slot {i} belongs to Xen (256..272)"),
            Self::Index(i) => write!(f, "slot index {i} is 512 or more, or runs past slot 511"),
            Self::Window(va) => {
                write!(f, "window at {va:#x} is not page aligned or wraps around")
            }
            Self::CurrentRoot => f.write_str("not allowed on the current root"),
            Self::Scratch(va) => write!(
                f,
                "scratch page {va:#x} is not a writable 4 KiB mapping of its own frame"
            ),
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Refused(r) => r.fmt(f),
            Self::P2m(e) => e.fmt(f),
            Self::NotMapped { pfn } => {
                write!(
                    f,
                    "no window maps frame {pfn:#x}, so the backend cannot reach it"
                )
            }
            Self::ForeignFrame { mfn } => write!(
                f,
                "machine frame {mfn:#x} is not this domain's (the M2P and the P2M disagree)"
            ),
            Self::Capacity(c) => write!(f, "{c}; nothing was changed"),
            Self::Unsupported(u) => write!(f, "{u}; nothing was changed"),
            Self::RootOutsideTables { root } => {
                write!(
                    f,
                    "the bootstrap root {root:#x} is not a bootstrap table frame"
                )
            }
        }
    }
}

impl fmt::Display for XenPvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "xen-pv {}: {}", self.op, self.cause)
    }
}

impl core::error::Error for XenPvError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match &self.cause {
            Cause::Refused(r) => Some(&r.errno),
            Cause::P2m(e) => Some(e),
            _ => None,
        }
    }
}
