//! `flush_tlb`: the queued updates and the TLB invalidation they need, in as few hypercalls
//! as the pair allows.

use hal_core::tlb::TlbBatch;
use hal_core::tlb::TLB_SINGLE_PAGE_CEILING;

use crate::hypercall::abi::{mmuext, uvmf};
use crate::hypercall::MmuextOp;

use super::backend::{refused, XenPv};
use super::error::{Op, XenPvError};
use super::platform::PvPlatform;

impl<H: PvPlatform> XenPv<'_, H> {
    /// See [`RawMmu::flush_tlb`](hal_core::RawMmu::flush_tlb).
    pub(super) fn flush_with_tlb(&mut self, tlb: &TlbBatch) -> Result<(), XenPvError> {
        let op = Op::FlushTlb;
        if tlb.is_empty() {
            return self.submit();
        }
        // One entry for the one page: it rides on update_va_mapping's own invalidation.
        if !tlb.is_all() && tlb.pages().len() == 1 && self.st.queue.len() == 1 {
            let va = tlb.pages()[0];
            let req = self.st.queue.reqs()[0];
            if self.l1_entry(va, op)? == Some(req.ptr & !7) {
                self.st.queue.clear();
                // SAFETY: the request was queued by `write` under its caller's contract; it
                // is the L1 entry that maps `va` in the current root, so update_va_mapping
                // writes exactly it.
                let out = unsafe { self.calls().va(va, req.val, uvmf::INVLPG | uvmf::LOCAL) };
                if let Some((at, errno, call)) = out.failure {
                    self.st.queue.note_dropped();
                    self.forget_ptes(req.ptr & !7, (req.ptr & !7) + 8);
                    return Err(refused(op, &out, at, errno, call));
                }
                return Ok(());
            }
        }
        let mut ops = [MmuextOp::default(); TLB_SINGLE_PAGE_CEILING];
        let n = if tlb.is_all() {
            ops[0] = MmuextOp {
                cmd: mmuext::TLB_FLUSH_LOCAL,
                arg1: 0,
                arg2: 0,
            };
            1
        } else {
            for (o, &va) in ops.iter_mut().zip(tlb.pages()) {
                *o = MmuextOp {
                    cmd: mmuext::INVLPG_LOCAL,
                    arg1: va,
                    arg2: 0,
                };
            }
            tlb.pages().len()
        };
        let ops = &ops[..n];
        if self.st.queue.is_empty() {
            // SAFETY: TLB invalidations change no mapping.
            let out = unsafe { self.calls().ext(ops) };
            return match out.failure {
                Some((at, errno, call)) => Err(refused(op, &out, at, errno, call)),
                None => Ok(()),
            };
        }
        let len = self.st.queue.len();
        let mut calls = self.calls();
        // SAFETY: the queued requests were built by this backend's `unsafe` methods under
        // their callers' contracts (as in `submit_queue`); the commands only invalidate.
        let out = unsafe { calls.updates_then_ext(self.st.queue.reqs(), ops) };
        let result = match out.failure {
            None => Ok(()),
            Some((at, errno, call)) => {
                if (at as usize) < len {
                    self.st.queue.note_dropped();
                }
                let origin = self.st.queue.origin(at as usize);
                for i in (at as usize).min(len)..len {
                    let ptr = self.st.queue.reqs()[i].ptr & !7;
                    self.forget_ptes(ptr, ptr + 8);
                }
                let op = if (at as usize) < len { origin } else { op };
                Err(refused(op, &out, at, errno, call))
            }
        };
        self.st.queue.clear();
        result
    }
}
