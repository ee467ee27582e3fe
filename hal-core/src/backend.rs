//! The interface a backend implements: the semantics of the hook, written down.
//!
//! # For backend authors
//! [`RawMmu`] speaks frame numbers, not typed frames; it is an `unsafe trait` because hal-core's
//! type states are only as true as the promises below. The typed layer
//! ([`Mmu`](crate::mmu::Mmu)) is hal-core's caller of the `unsafe fn`s and upholds their
//! preconditions; its safe methods move frames between states only after the backend has
//! returned `Ok`. A kernel that calls them on the backend itself (it holds it before
//! `Mmu::new`, or through [`Mmu::raw_mut`](crate::mmu::Mmu::raw_mut)) makes the same promises.
//!
//! Every method that reaches memory through the backend's mappings or changes page tables, the
//! TLB, the root or what the backend remembers of protected frames is `unsafe`, reading a slot
//! ([`read`](RawMmu::read)) included: the backend loads from whatever frame its windows reach,
//! so the caller says the frame is a table. What stays safe changes none of that:
//! [`caps`](RawMmu::caps), [`name`](RawMmu::name), [`machine_frame`](RawMmu::machine_frame),
//! [`current_root`](RawMmu::current_root), [`foreign_tables`](RawMmu::foreign_tables),
//! [`discarded`](RawMmu::discarded) and [`set_phase`](RawMmu::set_phase) read the backend's
//! own state or counters, and [`flush`](RawMmu::flush) submits what was queued under an
//! `unsafe` call's contract (as [`Pending::flush`](crate::mmu::Pending::flush) does). The safe
//! reads of tables are [`Mmu::entry`](crate::mmu::Mmu::entry),
//! [`Mmu::child`](crate::mmu::Mmu::child) and [`Mmu::translate`](crate::mmu::Mmu::translate),
//! on a typed [`TableRef`](crate::TableRef).
//!
//! Operations may be *queued*: a backend is free to collect writes and submit them in batches,
//! as long as (a) queued operations take effect in the order they were issued and (b) every
//! queued operation has taken effect when [`RawMmu::flush`] returns `Ok`. The typed layer hands
//! the caller a `#[must_use]` [`Pending`](crate::mmu::Pending) for that.
//!
//! | operation | bare metal (`backend-native`) | Xen PV (`backend-xen-pv`) |
//! |---|---|---|
//! | [`protect`](RawMmu::protect) | nothing: the memblock reservation hal-core made is all | every writable mapping of the frames becomes read-only (`mmu_update` batches) |
//! | [`write`](RawMmu::write) | stores through a mapping of the frame (volatile, noting entries the TLB may hold) | `mmu_update` entries, P2M-translated, 512 to a batch |
//! | [`read`](RawMmu::read) | a volatile load through a mapping of the frame | the queued value if any, else a load through a window; M2P-translated |
//! | [`update`](RawMmu::update) | one load and at most one store through the same mapping | `read`, then `write` (the default) |
//! | [`fill_fresh`](RawMmu::fill_fresh) | plain stores into a frame nobody walks yet | `mmu_update` entries generated straight into the queue |
//! | [`pin`](RawMmu::pin) | nothing | `MMUEXT_PIN_Ln_TABLE` (Xen validates the tree) |
//! | [`switch_root`](RawMmu::switch_root) | `mov cr3` | `MMUEXT_NEW_BASEPTR` |
//! | [`release`](RawMmu::release) | nothing | every read-only mapping becomes writable (`mmu_update` batches) |
//! | [`unpin`](RawMmu::unpin) | nothing | `MMUEXT_UNPIN_TABLE` |
//! | [`retire`](RawMmu::retire) | TLB flush if an entry changed since the last one | as `release` |
//! | [`flush_tlb`](RawMmu::flush_tlb) | `invlpg` per page, or a CR3 reload | the queue plus the invalidation in one hypercall (`update_va_mapping` + `UVMF_INVLPG`, or a `multicall` of `mmu_update` and `mmuext_op`) |

use crate::addr::{Mfn, Pfn, PfnRange};
use crate::error::BackendError;
use crate::level::TableLevel;
use crate::phase::Phase;
use crate::pte::Pte;
use crate::tlb::TlbBatch;

bitflags::bitflags! {
    /// Leaf page sizes a backend can map.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct PageSizes: u8 {
        /// 4 KiB pages (always).
        const SIZE_4K = 1;
        /// 2 MiB pages (L2 entries with PS).
        const SIZE_2M = 2;
        /// 1 GiB pages (L3 entries with PS).
        const SIZE_1G = 4;
    }
}

impl PageSizes {
    /// The sizes as text: `"4K+2M+1G"`, `"4K"`, or `"none"`.
    pub const fn as_str(self) -> &'static str {
        const NAMES: [&str; 8] = [
            "none", "4K", "2M", "4K+2M", "1G", "4K+1G", "2M+1G", "4K+2M+1G",
        ];
        NAMES[(self.bits() & 7) as usize]
    }
}

impl core::fmt::Display for PageSizes {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for PageSizes {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "{=str}", self.as_str())
    }
}

/// A run of entries for [`RawMmu::fill_fresh`]: `count` entries, entry `i` being `first` with
/// its frame number advanced by `i * step` (`step` 0: `count` copies, such as empty entries).
///
/// This is how a streaming builder hands a backend 512 leaves without staging them: the
/// backend generates them where they go (the frame on bare metal, the `mmu_update` queue on
/// Xen PV).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct EntryRun {
    /// The first entry.
    pub first: Pte,
    /// Frames between consecutive entries.
    pub step: u64,
    /// Entries in the run.
    pub count: u16,
}

impl EntryRun {
    /// `count` empty entries.
    pub const fn empty(count: u16) -> Self {
        Self {
            first: Pte::EMPTY,
            step: 0,
            count,
        }
    }

    /// One entry.
    pub const fn one(pte: Pte) -> Self {
        Self {
            first: pte,
            step: 0,
            count: 1,
        }
    }

    /// Entry `i` of the run (`i < count`), as raw bits: `first` plus `i * step` frames.
    #[inline]
    pub fn bits(&self, i: u16) -> u64 {
        self.first
            .bits()
            .wrapping_add(u64::from(i).wrapping_mul(self.step) << crate::addr::PAGE_SHIFT)
    }

    /// Entry `i` of the run.
    #[inline]
    pub fn entry(&self, i: u16) -> Pte {
        Pte::from_bits(self.bits(i))
    }

    /// The longest run at the start of `entries` (not empty): equal entries, or present
    /// entries with the same flags and frames equally spaced upward. At most one table's
    /// worth ([`ENTRIES`](crate::table::ENTRIES)): no table takes a longer run, and `count`
    /// could not say one past `u16::MAX`.
    pub fn longest(entries: &[Pte]) -> Self {
        const FLAGS: u64 = !0x000f_ffff_ffff_f000;
        let entries = &entries[..entries.len().min(crate::table::ENTRIES)];
        let Some(&first) = entries.first() else {
            return Self::empty(0);
        };
        let step = match entries.get(1) {
            Some(&next)
                if first.is_present()
                    && next.bits() > first.bits()
                    && (next.bits() ^ first.bits()) & FLAGS == 0 =>
            {
                (next.bits() - first.bits()) >> crate::addr::PAGE_SHIFT
            }
            _ => 0,
        };
        let mut count = 1u16;
        let mut prev = first.bits();
        for e in &entries[1..] {
            let want = prev.wrapping_add(step << crate::addr::PAGE_SHIFT);
            if e.bits() != want || (step != 0 && want < prev) {
                break;
            }
            prev = want;
            count += 1;
        }
        Self { first, step, count }
    }

    /// Whether every entry's frame number stays below [`MAX_PFN`](crate::addr::MAX_PFN) (so no
    /// frame number carries into the flag bits). Empty entries are fine.
    pub fn frames_in_range(&self) -> bool {
        if !self.first.is_present() || self.count == 0 {
            return self.first == Pte::EMPTY || self.count == 0;
        }
        let last = self
            .step
            .checked_mul(u64::from(self.count - 1))
            .and_then(|d| d.checked_add(self.first.pfn().as_u64()));
        last.is_some_and(|l| l < crate::addr::MAX_PFN)
    }
}

/// What a backend allows and requires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Caps {
    /// Leaf sizes the backend accepts. 64-bit Xen PV: 4 KiB only.
    pub page_sizes: PageSizes,
    /// Whether a page-table frame must have no writable mapping anywhere (Xen PV). When set,
    /// the backend writes every writable 4 KiB leaf for a protected or table frame read-only
    /// (see [`RawMmu::write`]), and the direct-map builder maps those frames with 4 KiB leaves.
    pub tables_read_only: bool,
    /// Root-table slots `[start, end)` the kernel may not use (Xen PV: 256..272).
    pub reserved_root_slots: (u16, u16),
    /// Whether the NX bit may be set in entries.
    pub nx: bool,
}

/// A backend: the primitive page-table operations of one platform.
///
/// # Safety
/// The implementer promises, for every method that returns `Ok` (for queued operations: once a
/// later [`flush`](RawMmu::flush) has returned `Ok`):
/// - [`protect`](RawMmu::protect): no writable mapping of any frame of the range exists, and
///   none is created until [`release`](RawMmu::release) is called for that frame (with
///   [`Caps::tables_read_only`]; without it, except through [`write`](RawMmu::write) entries
///   that the caller asked for);
/// - [`release`](RawMmu::release): every mapping of the frames that the backend made read-only
///   (in `protect`, or by downgrading a leaf in `write`) is writable again, every mapping the
///   caller wrote read-only stays read-only, and the frames are no page tables for the
///   hardware or hypervisor any more;
/// - [`write`](RawMmu::write) stores exactly the entries given, translated to the platform's
///   frame numbers, and nothing else, except that with [`Caps::tables_read_only`] a writable
///   4 KiB leaf for a protected or table frame is stored without `WRITABLE` (downgraded);
/// - [`caps`](RawMmu::caps) is constant and true;
/// - [`discarded`](RawMmu::discarded) changes whenever an operation whose call returned `Ok`
///   (a queued write) is dropped without taking effect, and a backend that can drop one sets
///   [`MAY_DISCARD`](RawMmu::MAY_DISCARD): hal-core's streaming tables
///   ([`FreshTable`](crate::FreshTable)) rely on both never to finish a table with a slot
///   unwritten;
/// - queued writes ([`write`](RawMmu::write), [`fill_fresh`](RawMmu::fill_fresh)) take effect
///   in the order they were made: when a submission is refused, those that take effect are a
///   prefix of those queued, so a write queued after another (an entry hooking a table after
///   the table's own slots) takes effect only if that one did. (A
///   [`release`](RawMmu::release) is one operation: on failure its own order does not matter,
///   as the frames come back unsettled.)
pub unsafe trait RawMmu {
    /// The backend's error, with its raw cause inside.
    type Error: BackendError;

    /// What the backend allows. Constant over the backend's life.
    fn caps(&self) -> Caps;

    /// A short name, for logs.
    fn name(&self) -> &'static str;

    /// The frame the hardware / hypervisor sees for `pfn` (native: the same; Xen: the P2M).
    fn machine_frame(&self, pfn: Pfn) -> Result<Mfn, Self::Error>;

    /// The root table in use now (CR3), as a frame number.
    fn current_root(&self) -> Pfn;

    /// Frames that are page tables already, not made by hal-core (Xen: the bootstrap tables the
    /// domain builder made). With [`Caps::tables_read_only`] they must only be mapped read-only.
    fn foreign_tables(&self) -> &[PfnRange];

    /// Makes `frames` page-table-ready: afterwards no writable mapping of them exists.
    ///
    /// Pre: the caller owns the frames and nothing else uses them.
    /// Post (native): nothing changes. Post (Xen PV): every mapping the backend knows of
    /// (the initial mapping, windows) is read-only; a later `write` of a writable leaf for one
    /// of these frames is downgraded to read-only and remembered, so `release` makes it
    /// writable again. A leaf the caller writes read-only is no business of `release`.
    ///
    /// # Safety
    /// The caller owns `frames` and stops using them as memory.
    unsafe fn protect(&mut self, frames: PfnRange) -> Result<(), Self::Error>;

    /// Queues writing `entries` into table `table` (of level `level`) from slot `first` on.
    ///
    /// Pre: `first + entries.len() <= 512`. `table` was protected (or is a foreign table); it
    /// is either not yet hooked anywhere (the write is a plain store) or live (the platform
    /// validates the entries). Leaf entries at level 2 or 3 have `HUGE_PAGE` and are allowed by
    /// [`Caps::page_sizes`].
    ///
    /// With [`Caps::tables_read_only`], a writable 4 KiB leaf for a frame that is protected
    /// (not released since) or a page table is written without `WRITABLE` and remembered;
    /// `release` of that frame makes it writable again. A leaf given read-only is written as
    /// given and stays read-only. A large leaf covering such a frame is the caller's error.
    ///
    /// # Safety
    /// The caller owns `table` as a page table of level `level`, and the entries map only
    /// memory the caller may map, pointing only at tables of level `level - 1`.
    unsafe fn write(
        &mut self,
        table: Pfn,
        level: TableLevel,
        first: u16,
        entries: &[Pte],
    ) -> Result<(), Self::Error>;

    /// Writes the entries of `run` into the *fresh* table `table` (of level `level`) from slot
    /// `first` on: the streaming form of [`write`](RawMmu::write) for a table that is not
    /// live yet.
    ///
    /// Pre: `first + run.count <= 512`; every entry is present, or empty (all zeros); frame
    /// numbers stay below `MAX_PFN` ([`EntryRun::frames_in_range`]). `table` is *not live*:
    /// protected, hooked nowhere, not pinned, not the current root, and no TLB holds a
    /// translation through it (it has not been a live table since it was protected, or was
    /// retired since), so nothing but the caller reads it until it is hooked or pinned. Every
    /// slot of the table is written by such calls before that (once, by hal-core's streaming
    /// builder; again only after a refused call).
    ///
    /// Post (once flushed): the slots hold exactly the entries, translated. Native: plain
    /// stores (no read-back, no TLB bookkeeping: nothing can have cached them). Xen PV: the
    /// entries go straight into the `mmu_update` queue (Xen applies them as plain writes: the
    /// frame has no page-table type yet). The default writes through [`write`](RawMmu::write)
    /// in chunks of 32 entries.
    ///
    /// # Safety
    /// As [`write`](RawMmu::write), and `table` is not live as said above.
    unsafe fn fill_fresh(
        &mut self,
        table: Pfn,
        level: TableLevel,
        first: u16,
        run: &EntryRun,
    ) -> Result<(), Self::Error> {
        let mut chunk = [Pte::EMPTY; 32];
        let mut done = 0u16;
        while done < run.count {
            let n = (run.count - done).min(32);
            for (i, slot) in chunk.iter_mut().enumerate().take(usize::from(n)) {
                *slot = run.entry(done + i as u16);
            }
            // SAFETY: the caller's contract, which is `write`'s and more.
            unsafe { self.write(table, level, first + done, &chunk[..usize::from(n)]) }?;
            done += n;
        }
        Ok(())
    }

    /// Reads entry `index` of table `table` (after any queued writes), in pseudo-physical terms.
    /// Fails with [`ErrorKind::NotMapped`](crate::error::ErrorKind::NotMapped) if the backend
    /// cannot reach the frame.
    ///
    /// The backend loads the slot through whatever mapping of the frame it has (a window, the
    /// direct map), so the caller says what the frame is: a load from memory that Rust code
    /// holds a reference to, or that something writes meanwhile without synchronising, is
    /// undefined behaviour. hal-core's safe layer reads typed tables only
    /// ([`Mmu::entry`](crate::Mmu::entry), [`Mmu::child`](crate::Mmu::child),
    /// [`Mmu::translate`](crate::Mmu::translate), ...).
    ///
    /// # Safety
    /// For the whole call, `table` is one of:
    /// - a page table the backend maintains: one hal-core made (a [`TableRef`](crate::TableRef),
    ///   a `Frame<PinnedRO<_>>`, a [`Pinned`](crate::Pinned), a [`FreshTable`](crate::FreshTable)
    ///   or a [`LiveRoot`](crate::LiveRoot) names it), a table a present non-leaf entry of such
    ///   a table names, or one of [`foreign_tables`](RawMmu::foreign_tables); such a frame is
    ///   written only through this backend's `&mut self` (and, for the accessed and dirty bits,
    ///   atomically by the processor or the hypervisor), and no Rust reference covers it;
    /// - or a frame the caller owns that no Rust reference covers and that nothing (no other
    ///   thread or CPU, no device) writes during the call.
    ///
    /// `level` and `index` need not be right for this: a wrong level reads the slot all the
    /// same, and an `index` of 512 or more is refused.
    unsafe fn read(
        &mut self,
        table: Pfn,
        level: TableLevel,
        index: u16,
    ) -> Result<Pte, Self::Error>;

    /// Reads entry `index` of table `table` (as [`read`](RawMmu::read)) and, if `change`
    /// returns an entry for what it read, queues writing that entry into the slot (as a
    /// one-entry [`write`](RawMmu::write)); returns the entry read. The read-then-write that
    /// the run-time mapper makes per page, in one call: a backend may reach the slot once.
    /// The default is `read`, then `write`.
    ///
    /// # Safety
    /// `table` may be read as [`read`](RawMmu::read) says (whatever `change` returns: with
    /// `None` the call is a read and nothing else), and, for the entry `change` returns, as
    /// [`write`](RawMmu::write) says (owning `table` as a page table of level `level`, which
    /// meets `read`'s contract too).
    #[inline]
    unsafe fn update<F: FnOnce(Pte) -> Option<Pte>>(
        &mut self,
        table: Pfn,
        level: TableLevel,
        index: u16,
        change: F,
    ) -> Result<Pte, Self::Error> {
        // SAFETY: the caller's contract names `read`'s.
        let old = unsafe { self.read(table, level, index) }?;
        if let Some(new) = change(old) {
            // SAFETY: the caller's contract.
            unsafe { self.write(table, level, index, &[new]) }?;
        }
        Ok(old)
    }

    /// Pins `table` as a table of `level` (Xen validates it and everything under it). Native:
    /// nothing.
    ///
    /// # Safety
    /// `table` is a complete, protected table of level `level` owned by the caller, not
    /// pinned yet.
    unsafe fn pin(&mut self, table: Pfn, level: TableLevel) -> Result<(), Self::Error>;

    /// Unpins `table` (Xen: `MMUEXT_UNPIN_TABLE`). Native: nothing.
    ///
    /// # Safety
    /// `table` was pinned by [`pin`](RawMmu::pin) as a table of `level`, is not the current
    /// root, and is hooked nowhere.
    unsafe fn unpin(&mut self, table: Pfn, level: TableLevel) -> Result<(), Self::Error>;

    /// Retires table `table`: makes every mapping of it writable again (a backend that finds
    /// it still pinned unpins it first). Post: the frame is ordinary memory.
    ///
    /// # Safety
    /// `table` is hooked nowhere, holds no child tables, is not pinned and is not the current
    /// root; nothing will use it as a table.
    unsafe fn retire(&mut self, table: Pfn, level: TableLevel) -> Result<(), Self::Error>;

    /// Switches to root `root` (flushes queued operations first).
    ///
    /// # Safety
    /// `root` is a pinned level-4 table that maps the running kernel (code, stack, data).
    unsafe fn switch_root(&mut self, root: Pfn) -> Result<(), Self::Error>;

    /// Makes `frames` writable again everywhere the backend mapped them read-only.
    ///
    /// Pre: none of the frames is a page table any more (never hooked, or unhooked and
    /// unpinned). Post: every mapping the backend made read-only (through `protect` or a
    /// downgraded leaf) is writable; leaves the caller wrote read-only stay as written; the
    /// frames are ordinary memory.
    ///
    /// # Safety
    /// The caller owns the frames, and no table hooked anywhere or pinned is among them.
    unsafe fn release(&mut self, frames: PfnRange) -> Result<(), Self::Error>;

    /// Tells the backend that `pfns` are mapped, contiguously, from virtual address `va` in the
    /// current root, so it can reach frames through that mapping (to read or write tables, or
    /// find mappings to protect or release).
    ///
    /// # Safety
    /// The mapping exists in the current root and stays for the backend's life.
    unsafe fn add_window(&mut self, va: u64, pfns: PfnRange) -> Result<(), Self::Error>;

    /// Submits every queued operation. `Ok` means all of them took effect.
    fn flush(&mut self) -> Result<(), Self::Error>;

    /// How many times so far queued operations were dropped without all of them taking
    /// effect (Xen PV: a refused `mmu_update` batch drops every entry after the refused one,
    /// whichever call submitted it). Never decreases. The default, 0, is right for a backend
    /// that applies every write when it is made (bare metal) or never drops one.
    fn discarded(&self) -> u64 {
        0
    }

    /// Whether [`discarded`](RawMmu::discarded) can ever change (a backend that queues writes
    /// and may drop them must say `true`). `false` (the default: every write applied when it
    /// is made) lets hal-core leave its checks out. hal-core compares the count's low 32 bits:
    /// a table open across 2^32 refused submissions is not told apart.
    const MAY_DISCARD: bool = false;

    /// The lifecycle enters `phase`: a backend that counts its work per phase (Xen PV counts
    /// hypercalls) counts what follows under it. Changes nothing else. Default: ignored.
    fn set_phase(&mut self, phase: Phase) {
        let _ = phase;
    }

    /// Submits every queued operation, as [`flush`](RawMmu::flush), and then invalidates this
    /// CPU's TLB for the pages of `tlb` (every page's entry and the paging-structure caches),
    /// or all of its non-global entries if [`TlbBatch::is_all`]. The backend may do more
    /// (a full flush instead of single pages) but never less.
    ///
    /// Native: `invlpg` per page, or a CR3 reload. Xen PV: the invalidation rides on the last
    /// hypercall: one queued entry for the one page becomes `update_va_mapping` with
    /// `UVMF_INVLPG`; otherwise the queued `mmu_update` batch and one `mmuext_op` of
    /// `INVLPG_LOCAL`s (or one `TLB_FLUSH_LOCAL`) go in one `multicall`.
    ///
    /// # Safety
    /// `tlb` names (or [`is_all`](TlbBatch::is_all) covers) every virtual page of the current
    /// address space whose translation changed through [`write`](RawMmu::write) since the
    /// last flush of either kind, including, for an unhooked table, one address it mapped: a
    /// backend may then forget any staleness it tracked itself.
    unsafe fn flush_tlb(&mut self, tlb: &TlbBatch) -> Result<(), Self::Error>;
}
