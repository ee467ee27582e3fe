//! The update queue and the submission of its contents as hypercalls.
//!
//! Entries are queued in order; [`BATCH`] of them fill one `mmu_update` hypercall. Ordinary
//! operations submit the queue as soon as it holds a full batch (so every hypercall carries 512
//! entries except the last), and before anything that needs their effect (pin, switch, reads
//! by Xen). A release fills up to [`QUEUE_CAP`] entries and submits them as one `multicall`
//! of [`RELEASE_BATCHES`] `mmu_update` batches: its entries are independent of each other, so
//! Xen running the batches after a failing one (as multicall does) does no harm.

use crate::hypercall::abi::{nr, DOMID_SELF};
use crate::hypercall::{MmuUpdate, MmuextOp, MulticallEntry, RawHypercall, XenErrno};

use super::error::{Call, Op};

/// Entries in one `mmu_update` hypercall.
pub const BATCH: usize = 512;
/// `mmu_update` batches a release puts into one `multicall`. Two: a release costs at most
/// `ceil(m * K / 1024) + 1` hypercalls, and exactly `ceil(m * K / 1024)` when nothing else is
/// queued, the documented promise the tests hold it to (one batch would save 8.5 KiB of `.bss`
/// and double the release's hypercalls).
pub const RELEASE_BATCHES: usize = 2;
/// Entries the queue holds: one multicall's worth.
pub const QUEUE_CAP: usize = BATCH * RELEASE_BATCHES;

/// Queued `mmu_update` requests, each tagged with the operation that queued it.
pub(crate) struct Queue {
    reqs: [MmuUpdate; QUEUE_CAP],
    origin: [Op; QUEUE_CAP],
    len: usize,
    /// Submissions refused so far, each of which may have dropped queued entries.
    dropped: u64,
}

impl Queue {
    pub(crate) const fn new() -> Self {
        Self {
            reqs: [MmuUpdate { ptr: 0, val: 0 }; QUEUE_CAP],
            // Only `origin[..len]` is ever read. `Op::New` is the variant whose discriminant is
            // 0, so an empty queue is all zeros and the static `Storage` lands in `.bss`
            // instead of taking 25 KiB of the image's loaded bytes.
            origin: [Op::New; QUEUE_CAP],
            len: 0,
            dropped: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends; the caller submits before the queue is full.
    pub(crate) fn push(&mut self, req: MmuUpdate, op: Op) {
        self.reqs[self.len] = req;
        self.origin[self.len] = op;
        self.len += 1;
    }

    pub(crate) fn reqs(&self) -> &[MmuUpdate] {
        &self.reqs[..self.len]
    }

    pub(crate) fn origin(&self, i: usize) -> Op {
        self.origin[i.min(self.len.saturating_sub(1))]
    }

    pub(crate) fn clear(&mut self) {
        self.len = 0;
    }

    /// Counts a refused submission: entries queued (by calls that returned `Ok`) may not have
    /// been applied ([`RawMmu::discarded`](hal_core::RawMmu::discarded)).
    pub(crate) fn note_dropped(&mut self) {
        self.dropped += 1;
    }

    /// Refused submissions so far.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The value the queue will write to the entry at machine address `maddr`, if any (the
    /// last one queued wins).
    pub(crate) fn pending(&self, maddr: u64) -> Option<u64> {
        self.reqs()
            .iter()
            .rev()
            .find(|r| r.ptr & !7 == maddr)
            .map(|r| r.val)
    }
}

/// What a submission did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// Entries submitted.
    pub submitted: u32,
    /// Entries applied.
    pub applied: u32,
    /// The first refusal: entry position, errno, hypercall.
    pub failure: Option<(u32, XenErrno, Call)>,
}

impl Outcome {
    pub(crate) const NOTHING: Self = Self {
        submitted: 0,
        applied: 0,
        failure: None,
    };

    /// A multicall Xen refused as a whole: nothing of its `submitted` entries applied.
    const fn multicall_refused(submitted: u32, errno: XenErrno) -> Self {
        Self {
            submitted,
            applied: 0,
            failure: Some((0, errno, Call::Multicall)),
        }
    }
}

/// The backend's submissions, made through `hv` (the backend's [`Counted`], which counts them:
/// nothing here does).
///
/// [`Counted`]: crate::hypercall::Counted
pub(crate) struct Calls<'a, H: RawHypercall> {
    pub hv: &'a H,
}

fn check(ret: i64) -> Result<(), XenErrno> {
    XenErrno::check(ret).map(|_| ())
}

impl<H: RawHypercall> Calls<'_, H> {
    /// Submits `reqs`: one `mmu_update` for up to [`BATCH`] entries, otherwise one multicall of
    /// `mmu_update` batches.
    ///
    /// # Safety
    /// As [`RawHypercall::mmu_update`], for every request.
    pub(crate) unsafe fn updates(&mut self, reqs: &[MmuUpdate]) -> Outcome {
        let submitted = reqs.len() as u32;
        if reqs.is_empty() {
            return Outcome::NOTHING;
        }
        if reqs.len() <= BATCH {
            let mut done = 0u32;
            // SAFETY: the caller's contract.
            let ret = unsafe { self.hv.mmu_update(reqs, &mut done, DOMID_SELF) };
            return Outcome {
                submitted,
                applied: done,
                failure: check(ret).err().map(|e| (done, e, Call::MmuUpdate)),
            };
        }
        assert!(reqs.len() <= QUEUE_CAP, "one multicall's worth at most");
        let mut done = [0u32; RELEASE_BATCHES];
        let mut entries = [MulticallEntry::default(); RELEASE_BATCHES];
        let chunks = reqs.chunks(BATCH);
        let n = chunks.len();
        for ((e, chunk), d) in entries.iter_mut().zip(chunks).zip(done.iter_mut()) {
            e.op = u64::from(nr::MMU_UPDATE);
            e.args = [
                chunk.as_ptr() as u64,
                chunk.len() as u64,
                d as *mut u32 as u64,
                u64::from(DOMID_SELF),
                0,
                0,
            ];
        }
        // SAFETY: every entry is an mmu_update of a chunk of `reqs` with a live success
        // counter in `done`, both outliving the call; the requests are the caller's contract.
        let ret = unsafe { self.hv.multicall(&mut entries[..n]) };
        if let Err(e) = check(ret) {
            return Outcome::multicall_refused(submitted, e);
        }
        let mut out = Outcome {
            submitted,
            applied: 0,
            failure: None,
        };
        for (b, (e, d)) in entries[..n].iter().zip(done).enumerate() {
            out.applied += d;
            if let (Err(errno), None) = (check(e.result as i64), out.failure) {
                out.failure = Some(((b * BATCH) as u32 + d, errno, Call::MmuUpdate));
            }
        }
        out
    }

    /// Submits `reqs` (at most [`BATCH`]) and then `ops` in one `multicall` of an
    /// `mmu_update` and an `mmuext_op`. The failure reported is the first one, in order.
    ///
    /// # Safety
    /// As [`RawHypercall::mmu_update`] and [`RawHypercall::mmuext_op`].
    pub(crate) unsafe fn updates_then_ext(
        &mut self,
        reqs: &[MmuUpdate],
        ops: &[MmuextOp],
    ) -> Outcome {
        assert!(reqs.len() <= BATCH, "one mmu_update batch");
        let mut done = [0u32; 2];
        let [d0, d1] = &mut done;
        let mut entries = [
            MulticallEntry {
                op: u64::from(nr::MMU_UPDATE),
                result: 0,
                args: [
                    reqs.as_ptr() as u64,
                    reqs.len() as u64,
                    d0 as *mut u32 as u64,
                    u64::from(DOMID_SELF),
                    0,
                    0,
                ],
            },
            MulticallEntry {
                op: u64::from(nr::MMUEXT_OP),
                result: 0,
                args: [
                    ops.as_ptr() as u64,
                    ops.len() as u64,
                    d1 as *mut u32 as u64,
                    u64::from(DOMID_SELF),
                    0,
                    0,
                ],
            },
        ];
        // SAFETY: both entries point at the caller's arrays and at live success counters,
        // all outliving the call; the requests and commands are the caller's contract.
        let ret = unsafe { self.hv.multicall(&mut entries) };
        let submitted = (reqs.len() + ops.len()) as u32;
        if let Err(e) = check(ret) {
            return Outcome::multicall_refused(submitted, e);
        }
        let mut out = Outcome {
            submitted,
            applied: done[0] + done[1],
            failure: None,
        };
        if let Err(errno) = check(entries[0].result as i64) {
            out.failure = Some((done[0], errno, Call::MmuUpdate));
        } else if let Err(errno) = check(entries[1].result as i64) {
            out.failure = Some((reqs.len() as u32 + done[1], errno, Call::MmuextOp));
        }
        out
    }

    /// Submits `ops` in one `mmuext_op`.
    ///
    /// # Safety
    /// As [`RawHypercall::mmuext_op`].
    pub(crate) unsafe fn ext(&mut self, ops: &[MmuextOp]) -> Outcome {
        let mut done = 0u32;
        // SAFETY: the caller's contract.
        let ret = unsafe { self.hv.mmuext_op(ops, &mut done, DOMID_SELF) };
        Outcome {
            submitted: ops.len() as u32,
            applied: done,
            failure: check(ret).err().map(|e| (done, e, Call::MmuextOp)),
        }
    }

    /// One `update_va_mapping`.
    ///
    /// # Safety
    /// As [`RawHypercall::update_va_mapping`].
    pub(crate) unsafe fn va(&mut self, va: u64, pte: u64, flags: u64) -> Outcome {
        // SAFETY: the caller's contract.
        let ret = unsafe { self.hv.update_va_mapping(va, pte, flags) };
        let failure = check(ret).err().map(|e| (0, e, Call::UpdateVaMapping));
        Outcome {
            submitted: 1,
            applied: u32::from(failure.is_none()),
            failure,
        }
    }
}
