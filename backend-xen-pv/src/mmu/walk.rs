//! Reading tables through the windows, in machine terms, and walking the current root.

use hal_core::walk::{walk, Reached};
use hal_core::{PageTableFlags, Pfn, Pte, TableLevel};

use super::backend::{err, XenPv, ADDR, P, PSE};
use super::error::{Cause, Op, XenPvError};
use super::platform::PvPlatform;

impl<H: PvPlatform> XenPv<'_, H> {
    /// The virtual address of frame `pfn` in some window.
    pub(super) fn window_va(&self, pfn: u64) -> Option<u64> {
        self.windows.iter().find_map(|w| w.va_of(pfn))
    }

    /// Entry `idx` of table `table` as Xen will see it once the queue is submitted (machine
    /// frame numbers).
    ///
    /// # Safety
    /// `table` may be read as [`RawMmu::read`](hal_core::RawMmu::read) says: a page table (of
    /// the current root's tree, hal-core's, or the domain builder's), or a frame of the
    /// caller's that no reference covers and nothing writes meanwhile.
    pub(super) unsafe fn read_machine(
        &self,
        table: u64,
        idx: u16,
        op: Op,
    ) -> Result<u64, XenPvError> {
        let maddr = (self.mfn(table, op)? << 12) + 8 * u64::from(idx);
        if let Some(v) = self.st.queue.pending(maddr) {
            return Ok(v);
        }
        let va = self
            .window_va(table)
            .ok_or(err(op, Cause::NotMapped { pfn: table }))?;
        // SAFETY: windows are mapped readable in the current root (the contracts of
        // `new` and `add_window`), and `va + 8 * idx` is 8-aligned inside the frame; the
        // frame may be read (this fn's contract): no reference covers it and only Xen (on this
        // backend's requests, and for the accessed and dirty bits) writes it meanwhile.
        Ok(unsafe { self.hv.read_u64(va + 8 * u64::from(idx)) })
    }

    /// The pfn of machine frame `mfn`, checked against the P2M.
    pub(super) fn pfn_of(&self, mfn: u64, op: Op) -> Result<u64, XenPvError> {
        let foreign = err(op, Cause::ForeignFrame { mfn });
        if mfn < self.mfn_span.0 || mfn > self.mfn_span.1 {
            return Err(foreign);
        }
        // SAFETY: `mfn` lies within the span of the domain's own frames and comes from a
        // present entry of one of its page tables (validated by Xen, or written by this
        // backend from the P2M), so it is RAM that Xen's M2P covers.
        let pfn = unsafe { self.hv.mfn_to_pfn(mfn) };
        match self.p2m.pfn_to_mfn(pfn) {
            Ok(m) if m.0 == mfn => Ok(pfn),
            _ => Err(foreign),
        }
    }

    /// The L1 table that maps `va` in the current root, if any (`None` also for a large
    /// page, which a 64-bit PV guest cannot have): hal-core's walker, over machine-level
    /// reads (the queue's pending entries included) translated through the M2P.
    pub(super) fn l1_table(&self, va: u64, op: Op) -> Result<Option<u64>, XenPvError> {
        let read = |table: Pfn, level: TableLevel, idx: u16| -> Result<Pte, XenPvError> {
            // SAFETY: the walk reads the current root (a table: `new`'s contract, then roots
            // `switch_root` was promised are tables) and the tables that present non-leaf
            // entries on its path name, which Xen validated as tables.
            let e = unsafe { self.read_machine(table.as_u64(), idx, op) }?;
            let flags = PageTableFlags::from_bits_truncate(e & !ADDR);
            if e & P == 0 {
                return Ok(Pte::EMPTY);
            }
            if level != TableLevel::L4 && e & PSE != 0 {
                // A leaf for the walker; no frame of ours to name.
                return Ok(Pte::new(
                    Pfn::new(0).unwrap_or_else(|| unreachable!(/* 0 is a pfn */)),
                    flags,
                ));
            }
            let pfn = self.pfn_of((e & ADDR) >> 12, op)?;
            let pfn = Pfn::new(pfn).ok_or(err(
                op,
                Cause::ForeignFrame {
                    mfn: (e & ADDR) >> 12,
                },
            ))?;
            Ok(Pte::new(pfn, flags))
        };
        Ok(match walk(self.root, va, Some(TableLevel::L1), read)? {
            Reached::Table(l1) => Some(l1.as_u64()),
            Reached::Leaf(_) | Reached::NotMapped => None,
        })
    }

    /// The machine address of the L1 entry that maps `va` in the current root, if any.
    pub(super) fn l1_entry(&self, va: u64, op: Op) -> Result<Option<u64>, XenPvError> {
        Ok(match self.l1_table(va, op)? {
            Some(l1) => {
                Some((self.mfn(l1, op)? << 12) + 8 * u64::from(TableLevel::L1.index_of(va)))
            }
            None => None,
        })
    }
}
