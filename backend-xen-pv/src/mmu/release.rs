//! Release: the remembered read-only mappings of a range of frames made writable again,
//! batched or one page at a time; on a refusal, every mapping of the range is made read-only
//! again so that the frames are what their type (`PgtReserved`) says.

use hal_core::PfnRange;

use crate::hypercall::abi::{mmu, uvmf};
use crate::hypercall::MmuUpdate;

use super::backend::{err, refused, ReleaseStrategy, XenPv, RW};
use super::error::{Capacity, Cause, Op, Rollback, XenPvError};
use super::platform::PvPlatform;
use super::queue::{Outcome, QUEUE_CAP};

/// Entries submitted and applied so far in one release.
#[derive(Default)]
struct Progress {
    submitted: u32,
    applied: u32,
}

impl<H: PvPlatform> XenPv<'_, H> {
    /// Makes every remembered read-only mapping of `range` writable; forgets them and the
    /// protection on success.
    pub(super) fn release_range(&mut self, range: PfnRange, op: Op) -> Result<(), XenPvError> {
        let (lo, hi) = (range.start().as_u64(), range.end());
        if self.st.records.room() < self.st.records.splits_for_pfns(lo, hi) {
            return Err(err(op, Cause::Capacity(Capacity::ReadOnlyRuns)));
        }
        // A frame left in the protected set would have later writable leaves downgraded:
        // the set must shrink, so check before anything is released.
        if !self.protected.can_remove(lo, hi) {
            return Err(err(op, Cause::Capacity(Capacity::Protected)));
        }
        self.submit()?;
        let mut progress = Progress::default();
        let res = match self.strategy {
            ReleaseStrategy::Batched => self.release_batched(lo, hi, op, &mut progress),
            ReleaseStrategy::PerPage => self.release_per_page(lo, hi, op, &mut progress),
        };
        match res {
            Ok(()) => {
                // `panic!` with a message only: `expect` would bring `Full`'s `Debug` along.
                if self.st.records.remove_pfns(lo, hi).is_err() {
                    panic!("room checked above");
                }
                if self.protected.remove(lo, hi).is_err() {
                    panic!("room checked above");
                }
                Ok(())
            }
            Err(mut e) => {
                self.st.queue.clear();
                let rollback = if progress.applied == 0 {
                    Rollback::NotNeeded
                } else {
                    self.rollback(lo, hi)
                };
                if let Cause::Refused(r) = &mut e.cause {
                    r.rollback = rollback;
                }
                Err(e)
            }
        }
    }

    fn release_batched(
        &mut self,
        lo: u64,
        hi: u64,
        op: Op,
        progress: &mut Progress,
    ) -> Result<(), XenPvError> {
        let mut i = 0;
        while let Some(run) = self.st.records.get(i) {
            i += 1;
            let Some(part) = run.clip_pfns(lo, hi) else {
                continue;
            };
            for k in 0..part.len {
                let val = (self.mfn(part.pfn + k, op)? << 12) | part.flags | RW;
                self.st.queue.push(
                    MmuUpdate {
                        ptr: (part.pte + 8 * k) | mmu::NORMAL_PT_UPDATE,
                        val,
                    },
                    op,
                );
                if self.st.queue.len() == QUEUE_CAP {
                    self.release_submit(op, progress)?;
                }
            }
        }
        self.release_submit(op, progress)
    }

    fn release_per_page(
        &mut self,
        lo: u64,
        hi: u64,
        op: Op,
        progress: &mut Progress,
    ) -> Result<(), XenPvError> {
        for pfn in lo..hi {
            let mut i = 0;
            while let Some(run) = self.st.records.get(i) {
                i += 1;
                let Some(part) = run.clip_pfns(pfn, pfn + 1) else {
                    continue;
                };
                let val = (self.mfn(pfn, op)? << 12) | part.flags | RW;
                let mut via = None;
                for w in self.windows.clone().iter() {
                    if let Some(va) = w.va_of(pfn) {
                        if self.l1_entry(va, op)? == Some(part.pte) {
                            via = Some(va);
                            break;
                        }
                    }
                }
                if let Some(va) = via {
                    // SAFETY: the entry maps a frame the caller of `release` owns and that is
                    // no page table; making it writable changes no mapping Rust relies on.
                    let out = unsafe { self.calls().va(va, val, uvmf::INVLPG | uvmf::LOCAL) };
                    let req = MmuUpdate { ptr: part.pte, val };
                    self.account(op, &out, progress)
                        .map_err(|e| self.naming(e, Some(req)))?;
                } else {
                    self.st.queue.push(
                        MmuUpdate {
                            ptr: part.pte | mmu::NORMAL_PT_UPDATE,
                            val,
                        },
                        op,
                    );
                    if self.st.queue.len() == QUEUE_CAP {
                        self.release_submit(op, progress)?;
                    }
                }
            }
        }
        self.release_submit(op, progress)
    }

    /// Submits the queued release entries (one mmu_update, or one multicall of batches).
    fn release_submit(&mut self, op: Op, progress: &mut Progress) -> Result<(), XenPvError> {
        if self.st.queue.is_empty() {
            return Ok(());
        }
        let out = self.submit_queue();
        let req = out
            .failure
            .and_then(|(at, _, _)| self.st.queue.reqs().get(at as usize).copied());
        self.st.queue.clear();
        self.account(op, &out, progress)
            .map_err(|e| self.naming(e, req))
    }

    fn account(
        &mut self,
        op: Op,
        out: &Outcome,
        progress: &mut Progress,
    ) -> Result<(), XenPvError> {
        let before = progress.submitted;
        progress.submitted += out.submitted;
        progress.applied += out.applied;
        match out.failure {
            None => Ok(()),
            Some((at, errno, call)) => {
                let total = Outcome {
                    submitted: progress.submitted,
                    applied: progress.applied,
                    failure: None,
                };
                Err(refused(op, &total, before + at, errno, call))
            }
        }
    }

    /// Writes every remembered mapping of `[lo, hi)` read-only again.
    fn rollback(&mut self, lo: u64, hi: u64) -> Rollback {
        let op = Op::Rollback;
        let mut progress = Progress::default();
        let mut i = 0;
        while let Some(run) = self.st.records.get(i) {
            i += 1;
            let Some(part) = run.clip_pfns(lo, hi) else {
                continue;
            };
            for k in 0..part.len {
                let Ok(mfn) = self.mfn(part.pfn + k, op) else {
                    continue;
                };
                self.st.queue.push(
                    MmuUpdate {
                        ptr: (part.pte + 8 * k) | mmu::NORMAL_PT_UPDATE,
                        val: (mfn << 12) | part.flags,
                    },
                    op,
                );
                if self.st.queue.len() == QUEUE_CAP {
                    if let Err(e) = self.release_submit(op, &mut progress) {
                        return Rollback::Failed(e.errno().unwrap_or(crate::XenErrno(0)));
                    }
                }
            }
        }
        match self.release_submit(op, &mut progress) {
            Ok(()) => Rollback::Done,
            Err(e) => Rollback::Failed(e.errno().unwrap_or(crate::XenErrno(0))),
        }
    }
}
