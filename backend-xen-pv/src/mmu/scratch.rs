//! Scratch pages: the backend's own writable view of a fresh table that no window maps.
//!
//! [`FillStrategy::StoreThenProtect`](super::FillStrategy) fills a fresh table by plain stores
//! while its protection is held back. A window reaches only the frames it maps (at boot, the
//! domain builder's initial mapping: past about 1.2 GiB of dom0 memory most of `pgt_buf` lies
//! beyond it). For such a table the backend points one of its scratch pages at the frame,
//! writable (one `update_va_mapping`), and stores through it: one hypercall per table instead
//! of one `mmu_update` entry per table entry (512 for a full table). One page per level
//! (`L1`, `L2`, `L3`, `L4`, as many as the board gave), so that a parent's entries written
//! between its children's fills do not move the page back and forth. Before any held-back
//! protection is applied, every scratch page points at its own frame again: a table-to-be has
//! no writable mapping left but the windows' ones, which the protection makes read-only.

use hal_core::{PfnRange, TableLevel};

use super::backend::{err, refused, XenPv, ADDR, P, RW};
use super::error::{Cause, Op, Unsupported, XenPvError};
use super::platform::PvPlatform;
use crate::hypercall::abi::uvmf;

/// Scratch pages the backend uses at most: one per table level.
pub const MAX_SCRATCH: usize = 4;

/// The scratch pages and what each maps now.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Scratch {
    /// The first page.
    va: u64,
    /// The pages' own frames (`own + i` for page `i`).
    own: u64,
    /// Pages (0: no scratch pages).
    len: usize,
    /// The flags of the pages' own mappings (kept when a page is pointed elsewhere).
    flags: u64,
    /// The frame each page maps now, when not its own.
    now: [Option<u64>; MAX_SCRATCH],
}

impl Scratch {
    /// Whether some page maps a frame other than its own.
    pub(super) fn moved(&self) -> bool {
        self.now.iter().any(Option::is_some)
    }
}

impl<H: PvPlatform> XenPv<'_, H> {
    /// Gives the backend scratch pages: the 4 KiB pages from `va`, mapping the frames `own`
    /// one to one (the first [`MAX_SCRATCH`] are used). With them,
    /// [`FillStrategy::StoreThenProtect`](super::FillStrategy) fills fresh tables that no
    /// window maps by plain stores too (one `update_va_mapping` per table, see the module
    /// docs of `scratch`). Each page must be a present, writable mapping of its own frame in
    /// the current root; refused (nothing changed) otherwise. Replaces earlier scratch pages
    /// (which point at their own frames again first). An empty `own` takes them away.
    ///
    /// # Safety
    /// The pages belong to the backend from now on: nothing reads or writes them or relies
    /// on what they map (no reference points into them), in this root and in every root the
    /// caller switches to, which must map them through the same L1 entries (a new root that
    /// inherits the kernel's slots does).
    pub unsafe fn set_scratch(&mut self, va: u64, own: PfnRange) -> Result<(), XenPvError> {
        self.apply_deferred()?;
        let op = Op::Scratch;
        let len = (own.len() as usize).min(MAX_SCRATCH);
        if len == 0 {
            self.scratch = Scratch::default();
            return Ok(());
        }
        let bad = |at: u64| err(op, Cause::Unsupported(Unsupported::Scratch(at)));
        Self::check_window(va, own).map_err(|_| bad(va))?;
        let mut flags = None;
        for i in 0..len as u64 {
            let at = va + 4096 * i;
            let l1 = self.l1_table(at, op)?.ok_or(bad(at))?;
            // SAFETY: `l1` is the L1 table that maps `at` in the current root (`l1_table`).
            let raw = unsafe { self.read_machine(l1, TableLevel::L1.index_of(at), op) }?;
            let mfn = self.mfn(own.start().as_u64() + i, op)?;
            let f = raw & !ADDR;
            if raw & P == 0
                || raw & RW == 0
                || (raw & ADDR) >> 12 != mfn
                || *flags.get_or_insert(f) != f
            {
                return Err(bad(at));
            }
        }
        self.scratch = Scratch {
            va,
            own: own.start().as_u64(),
            len,
            flags: flags.unwrap_or(P | RW),
            now: [None; MAX_SCRATCH],
        };
        Ok(())
    }

    /// The scratch pages: the first one's address and how many.
    pub fn scratch(&self) -> (u64, usize) {
        (self.scratch.va, self.scratch.len)
    }

    /// A writable address of fresh table `table` (level `level`) through a scratch page,
    /// pointing the level's page at it first if it maps another frame; `None` without
    /// scratch pages.
    ///
    /// # Safety
    /// `table` is a fresh table whose protection is held back (no table yet, the caller's).
    pub(super) unsafe fn scratch_va(
        &mut self,
        table: u64,
        level: TableLevel,
    ) -> Result<Option<u64>, XenPvError> {
        let s = self.scratch;
        if s.len == 0 {
            return Ok(None);
        }
        let slot = usize::from(level.as_u8() - 1).min(s.len - 1);
        let va = s.va + 4096 * slot as u64;
        if s.now[slot] == Some(table) {
            return Ok(Some(va));
        }
        let mfn = self.mfn(table, Op::Write)?;
        // SAFETY: the page is the backend's (`set_scratch`'s contract), and `table` is a fresh
        // frame of the caller's that is no table yet (this function's contract), so a
        // writable mapping of it is memory nobody else uses; Xen refuses it otherwise.
        let out = unsafe {
            self.calls()
                .va(va, s.flags | (mfn << 12), uvmf::INVLPG | uvmf::LOCAL)
        };
        if let Some((at, errno, call)) = out.failure {
            return Err(refused(Op::Write, &out, at, errno, call));
        }
        self.scratch.now[slot] = Some(table);
        Ok(Some(va))
    }

    /// Points every scratch page that maps another frame back at its own (one
    /// `update_va_mapping` each).
    pub(super) fn restore_scratch(&mut self) -> Result<(), XenPvError> {
        for slot in 0..self.scratch.len {
            if self.scratch.now[slot].is_none() {
                continue;
            }
            let s = self.scratch;
            let va = s.va + 4096 * slot as u64;
            let mfn = self.mfn(s.own + slot as u64, Op::Protect)?;
            // SAFETY: the page is the backend's and its own frame is the board's memory it
            // mapped writable when given (`set_scratch`'s check).
            let out = unsafe {
                self.calls()
                    .va(va, s.flags | (mfn << 12), uvmf::INVLPG | uvmf::LOCAL)
            };
            if let Some((at, errno, call)) = out.failure {
                return Err(refused(Op::Protect, &out, at, errno, call));
            }
            self.scratch.now[slot] = None;
        }
        Ok(())
    }
}
