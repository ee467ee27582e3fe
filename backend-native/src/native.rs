//! [`Native`]: `RawMmu` with direct stores into table frames.

use core::sync::atomic::{compiler_fence, Ordering};

use hal_core::backend::{Caps, EntryRun, PageSizes, RawMmu};
use hal_core::{Mfn, Pfn, PfnRange, Pte, TableLevel};
use heapless::Vec;

use crate::cpu::Cpu;
use crate::error::NativeError;
use hal_core::Window;

/// What the backend did, for reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Counters {
    /// Entries stored.
    pub entries_written: u64,
    /// Tables pinned (a no-op here, counted for comparison).
    pub pins: u64,
    /// Tables unpinned (a no-op here, counted).
    pub unpins: u64,
    /// Root switches.
    pub root_switches: u64,
    /// TLB flushes.
    pub tlb_flushes: u64,
    /// Single pages invalidated (`invlpg`).
    pub invlpgs: u64,
}

/// The bare-metal backend.
pub struct Native<C: Cpu> {
    cpu: C,
    windows: Vec<Window, 8>,
    /// A present entry was changed since the last flush: the TLB may hold it.
    stale_tlb: bool,
    counters: Counters,
}

impl<C: Cpu> Native<C> {
    /// A backend storing into table frames through `windows`.
    ///
    /// # Safety
    /// Every window maps its frames writable at its address, for the backend's whole life, and
    /// the caller gives the backend the exclusive right to change page tables.
    pub unsafe fn new(cpu: C, windows: &[Window]) -> Result<Self, NativeError> {
        Ok(Self {
            cpu,
            windows: Vec::from_slice(windows).map_err(|()| NativeError::TooManyWindows)?,
            stale_tlb: false,
            counters: Counters::default(),
        })
    }

    /// What the backend did so far.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// The windows the backend stores through.
    pub fn windows(&self) -> &[Window] {
        &self.windows
    }

    #[inline(always)]
    fn table_ptr(&self, table: Pfn) -> Result<*mut u64, NativeError> {
        // The first window (usually the only one, the direct map) without a loop.
        if let Some(va) = self.windows.first().and_then(|w| w.address_of(table)) {
            return Ok(va as *mut u64);
        }
        self.windows
            .iter()
            .skip(1)
            .find_map(|w| w.address_of(table))
            .map(|va| va as *mut u64)
            .ok_or(NativeError::NotMapped(table))
    }
}

// SAFETY: `protect`/`release` have nothing to do on bare metal (no frame needs to be unmapped
// to be a page table); `write` stores exactly the entries given (pfn == machine frame), at
// once (nothing is queued, so nothing is dropped and every write takes effect in order); caps
// are constant.
unsafe impl<C: Cpu> RawMmu for Native<C> {
    type Error = NativeError;

    fn caps(&self) -> Caps {
        Caps {
            page_sizes: PageSizes::all(),
            tables_read_only: false,
            reserved_root_slots: (0, 0),
            nx: false,
        }
    }

    fn name(&self) -> &'static str {
        "native"
    }

    fn machine_frame(&self, pfn: Pfn) -> Result<Mfn, NativeError> {
        Ok(Mfn(pfn.as_u64()))
    }

    fn current_root(&self) -> Pfn {
        self.cpu.root()
    }

    fn foreign_tables(&self) -> &[PfnRange] {
        &[]
    }

    unsafe fn protect(&mut self, _frames: PfnRange) -> Result<(), NativeError> {
        Ok(())
    }

    #[inline]
    unsafe fn write(
        &mut self,
        table: Pfn,
        _level: TableLevel,
        first: u16,
        entries: &[Pte],
    ) -> Result<(), NativeError> {
        let end = usize::from(first) + entries.len();
        if end > 512 {
            return Err(NativeError::BadIndex(first));
        }
        let base = self.table_ptr(table)?;
        // Plain stores made by `fill_fresh` into tables this write may hook reach memory first.
        compiler_fence(Ordering::Release);
        for (i, e) in (usize::from(first)..).zip(entries) {
            // SAFETY: the window maps the table frame writable (constructor's promise) and
            // `i < 512` keeps the store inside the frame; the caller owns the table.
            let slot = unsafe { base.add(i) };
            // SAFETY: as above; volatile because the hardware, not the compiler, reads it.
            let old = unsafe { slot.read_volatile() };
            if old & 1 != 0 && old != e.bits() {
                self.stale_tlb = true;
            }
            // SAFETY: as above.
            unsafe { slot.write_volatile(e.bits()) };
        }
        self.counters.entries_written += entries.len() as u64;
        Ok(())
    }

    #[inline]
    unsafe fn fill_fresh(
        &mut self,
        table: Pfn,
        _level: TableLevel,
        first: u16,
        run: &EntryRun,
    ) -> Result<(), NativeError> {
        let start = usize::from(first);
        let count = usize::from(run.count);
        if start + count > 512 {
            return Err(NativeError::BadIndex(first));
        }
        let base = self.table_ptr(table)?;
        // SAFETY: the window maps the table frame writable (constructor's promise) and
        // `start + count <= 512` keeps the slice inside the frame; the caller owns the table
        // and nobody reads it (not live: no walker, no TLB entry), so plain stores are enough.
        let slots = unsafe { core::slice::from_raw_parts_mut(base.add(start), count) };
        let step = run.step << hal_core::addr::PAGE_SHIFT;
        let mut bits = run.first.bits();
        if bits == 0 && step == 0 {
            // The empty slots of a table: one `memset` (`rep stos` or the widest stores the
            // platform's memset has; the counting loop below makes two 8-byte entries per
            // 16-byte store at best).
            slots.fill(0);
        } else {
            for slot in slots {
                *slot = bits;
                bits = bits.wrapping_add(step);
            }
        }
        self.counters.entries_written += u64::from(run.count);
        Ok(())
    }

    #[inline]
    unsafe fn read(
        &mut self,
        table: Pfn,
        _level: TableLevel,
        index: u16,
    ) -> Result<Pte, NativeError> {
        if index >= 512 {
            return Err(NativeError::BadIndex(index));
        }
        let base = self.table_ptr(table)?;
        // SAFETY: the window maps the frame (constructor's promise) and `index < 512` keeps
        // the load inside it; the caller promises the frame is a table only this backend
        // writes (the processor's accessed and dirty bits aside), or memory of its own that no
        // reference covers and nothing writes meanwhile (`read`'s contract). Volatile: the
        // processor, not the compiler, may have set those bits.
        Ok(Pte::from_bits(unsafe {
            base.add(usize::from(index)).read_volatile()
        }))
    }

    #[inline(always)]
    unsafe fn update<F: FnOnce(Pte) -> Option<Pte>>(
        &mut self,
        table: Pfn,
        _level: TableLevel,
        index: u16,
        change: F,
    ) -> Result<Pte, NativeError> {
        if index >= 512 {
            return Err(NativeError::BadIndex(index));
        }
        // SAFETY: the window maps the table frame writable (constructor's promise) and
        // `index < 512` keeps the pointer inside the frame.
        let slot = unsafe { self.table_ptr(table)?.add(usize::from(index)) };
        // SAFETY: as above, and the caller promises the frame may be read (`update`'s
        // contract names `read`'s); volatile because the hardware, not the compiler, reads it.
        let old = unsafe { slot.read_volatile() };
        if let Some(new) = change(Pte::from_bits(old)) {
            // As in `write`: earlier plain stores reach memory first.
            compiler_fence(Ordering::Release);
            if old & 1 != 0 && old != new.bits() {
                self.stale_tlb = true;
            }
            // SAFETY: as above; the caller owns the table (`write`'s contract).
            unsafe { slot.write_volatile(new.bits()) };
            self.counters.entries_written += 1;
        }
        Ok(Pte::from_bits(old))
    }

    unsafe fn pin(&mut self, _table: Pfn, _level: TableLevel) -> Result<(), NativeError> {
        self.counters.pins += 1;
        Ok(())
    }

    unsafe fn unpin(&mut self, _table: Pfn, _level: TableLevel) -> Result<(), NativeError> {
        self.counters.unpins += 1;
        Ok(())
    }

    unsafe fn retire(&mut self, _table: Pfn, _level: TableLevel) -> Result<(), NativeError> {
        // The table is hooked nowhere (caller's promise): once the TLB forgets it, it is memory.
        // Unhooking it changed a present entry, which left the TLB stale until a flush of
        // either kind (`flush_tlb` covers it by its contract): flush only if still stale.
        self.flush()
    }

    unsafe fn switch_root(&mut self, root: Pfn) -> Result<(), NativeError> {
        self.flush()?;
        // Every store into the new tables happens before the CPU may walk them.
        compiler_fence(Ordering::SeqCst);
        // SAFETY: the caller promises `root` maps the running kernel.
        unsafe { self.cpu.set_root(root) };
        self.counters.root_switches += 1;
        self.stale_tlb = false;
        Ok(())
    }

    unsafe fn release(&mut self, _frames: PfnRange) -> Result<(), NativeError> {
        Ok(())
    }

    unsafe fn add_window(&mut self, va: u64, pfns: PfnRange) -> Result<(), NativeError> {
        self.windows
            .push(Window { va, pfns })
            .map_err(|_| NativeError::TooManyWindows)
    }

    unsafe fn flush_tlb(&mut self, tlb: &hal_core::TlbBatch) -> Result<(), NativeError> {
        if tlb.is_all() {
            self.cpu.flush_tlb();
            self.counters.tlb_flushes += 1;
        } else {
            for &va in tlb.pages() {
                self.cpu.invalidate_page(va);
            }
            self.counters.invlpgs += tlb.pages().len() as u64;
        }
        // The caller's contract: `tlb` covers every entry changed since the last flush.
        self.stale_tlb = false;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), NativeError> {
        if self.stale_tlb {
            self.cpu.flush_tlb();
            self.counters.tlb_flushes += 1;
            self.stale_tlb = false;
        }
        Ok(())
    }
}

impl<C: Cpu> hal_core::Report for Native<C> {
    /// One line: entries stored, pins and unpins (no-ops here), root switches, TLB flushes.
    /// Nothing to compare (`compare_release` is the default): bare metal releases nothing.
    fn report(&self, out: &mut dyn core::fmt::Write) -> core::fmt::Result {
        let c = &self.counters;
        writeln!(
            out,
            "native: {} entries stored, {} pins and {} unpins (no-ops), {} root switches, {} TLB flushes; no hypercalls on bare metal",
            c.entries_written, c.pins, c.unpins, c.root_switches, c.tlb_flushes
        )
    }

    /// [`report`](hal_core::Report::report)'s line, word for word, logged by defmt.
    #[cfg(feature = "defmt")]
    fn log(&self) {
        let c = &self.counters;
        defmt::info!(
            "native: {=u64} entries stored, {=u64} pins and {=u64} unpins (no-ops), {=u64} root switches, {=u64} TLB flushes; no hypercalls on bare metal",
            c.entries_written,
            c.pins,
            c.unpins,
            c.root_switches,
            c.tlb_flushes
        );
    }
}
