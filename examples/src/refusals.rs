//! Refusals planted at every position the host asks for, in the backend's batched operations,
//! on real Xen: the typed error must name the refused entry and carry Xen's errno, and every
//! frame must afterwards be in the state its type says, shown by carrying on with the frames.
//!
//! Positions come from the guest argument `refusals.at=P,P,...` (entries of a 512-entry
//! batch). For each position `p`:
//!
//! - **release** (`Mmu::release` of 512 protected frames, one `mmu_update`): frame `p` is made
//!   a page table behind hal-core's back (a raw pin as L1), so Xen refuses its writable
//!   mapping with -EBUSY. Expected: `Op::Release`, errno 16, `failed_at = applied = p`, the
//!   refused entry naming frame `p`, the applied entries rolled back. Then: every other frame
//!   still read-only (a store faults), the misdeed undone (unpin, retire), `settle` makes all
//!   512 writable (every store lands and reads back), and the frames serve as tables again
//!   (protect, pin frame `p` as an L1, unpin, release) before going back to memblock.
//! - **fill** (512 entries written into a pinned L1 table `T` in one `mmu_update`): entry `p`
//!   maps writable a frame `X` that was made a page table behind hal-core's back (its one
//!   mapping written read-only, then a raw pin as L1), which Xen refuses with -EBUSY. (A
//!   writable leaf for a table the backend knows, such as `T` itself, is no mistake: the
//!   backend writes it read-only.) Expected: `Op::Write`, errno 16, `failed_at = applied =
//!   p`, the entry named as `T`'s slot `p` mapping `X`. Then: entries below `p` hold what was
//!   written, the others are empty; the corrected entries are accepted; emptied, unpinned and
//!   retired, `T` is memory again (a store lands); `X` unpinned and writable again.
//! - **map** (the run-time mapper mapping the 512 frames writable at a window of its own,
//!   4 KiB pages, one flush): frame `p` is `X` as above, so Xen refuses its leaf with -EBUSY.
//!   Expected: a `MapError::Backend` whose refusal is errno 16 and names the mapper's L1, slot
//!   `p`, frame `X`. Then: no page of the window is mapped (the refused batch is undone, read
//!   back from the tables Xen keeps), the mapper tears down and gives back every table it
//!   made (the row reports the pages still mapped after the refusal, the tables the teardown
//!   did not give back, and the frames memblock is short of afterwards), `X` is unpinned and writable again, a second mapper maps all 512 frames
//!   elsewhere, every store through it lands (read back through the frames' own window), and
//!   it tears down: memblock's free bytes are what they were before it.
//!
//! `make read-only` (protect) has no row: Xen accepts every read-only remap of a frame the
//! guest owns, whatever its type, so no entry of a protect batch can be refused (the backend
//! skips entries that are read-only already or do not map the frame).
//!
//! Output: one `RESULT refusals op=.. at=..` line per run, then `RESULT refusals done rows=N`.

use boards::MmuPlatform;
use pvmmu::mapper::{EmptyTables, MapError, Mapper, MemblockSource, PageSize};
use pvmmu::memblock::Direction;
use pvmmu::xen_pv::mmu::{Op, Refusal, Rollback};
use pvmmu::{FrameRange, Free, PageTableFlags, Pfn, Pte, RawMmu, TableLevel, TlbBatch};

use crate::{memview, Failure};

/// Entries in one batch.
pub const BATCH: u64 = 512;
/// Positions one run may plant at.
pub const MAX_POSITIONS: usize = 32;

/// What the board offers for the demonstration.
pub trait RefusalsBoard: MmuPlatform {
    /// Under Xen: the guest command line. `None` without a hypervisor.
    fn xen_cmdline(&self) -> Option<&[u8]>;
    /// The refusal inside a backend error, if Xen refused something.
    fn refusal(e: &<Self::Backend as RawMmu>::Error) -> Option<(Op, Refusal)>;
    /// A store of `val` at `va`: whether it took effect (`false`: it faulted).
    ///
    /// # Safety
    /// If it takes effect, nothing Rust relies on is overwritten.
    unsafe fn probe(&self, va: u64, val: u64) -> bool;
}

#[cfg(feature = "native")]
impl RefusalsBoard for boards::native::NativeBoard {
    fn xen_cmdline(&self) -> Option<&[u8]> {
        None
    }
    fn refusal(_: &<Self::Backend as RawMmu>::Error) -> Option<(Op, Refusal)> {
        None
    }
    unsafe fn probe(&self, _: u64, _: u64) -> bool {
        false
    }
}

#[cfg(feature = "xen-pv")]
impl RefusalsBoard for boards::xen::XenBoard {
    fn xen_cmdline(&self) -> Option<&[u8]> {
        Some(self.start_info().cmd_line())
    }
    fn refusal(e: &<Self::Backend as RawMmu>::Error) -> Option<(Op, Refusal)> {
        match e.cause {
            pvmmu::xen_pv::mmu::Cause::Refused(r) => Some((e.op, r)),
            _ => None,
        }
    }
    unsafe fn probe(&self, va: u64, val: u64) -> bool {
        // SAFETY: the caller's contract.
        unsafe { boards::xen::probe::store(va, val) == boards::xen::probe::Probe::Stored }
    }
}

fn failed(what: &'static str, ret: i64) -> Failure {
    defmt::error!("refusals: {=str} ({=i64})", what, ret);
    Failure::Hypercall { what, ret }
}

/// The positions of `refusals.at=...`.
fn positions(cmdline: &[u8]) -> Result<heapless::Vec<u64, MAX_POSITIONS>, Failure> {
    let text = core::str::from_utf8(cmdline).map_err(|_| failed("command line not UTF-8", 0))?;
    let list = text
        .split_ascii_whitespace()
        .find_map(|w| w.strip_prefix("refusals.at="))
        .ok_or_else(|| failed("no refusals.at= on the command line", 0))?;
    let mut out = heapless::Vec::new();
    for p in list.split(',') {
        let p: u64 = p
            .parse()
            .map_err(|_| failed("refusals.at: not a number", 0))?;
        if p >= BATCH {
            return Err(failed("refusals.at: a position beyond the batch", p as i64));
        }
        out.push(p)
            .map_err(|_| failed("refusals.at: too many", 0))?;
    }
    Ok(out)
}

fn rollback_name(r: Rollback) -> &'static str {
    match r {
        Rollback::NotNeeded => "not-needed",
        Rollback::Done => "done",
        Rollback::Failed(_) => "failed",
    }
}

fn backend<E: defmt::Format>(what: &'static str) -> impl FnOnce(E) -> Failure {
    move |e| {
        defmt::error!("refusals: {=str}: {}", what, e);
        failed(what, 0)
    }
}

/// Runs every row.
pub fn run<P: RefusalsBoard>(p: &mut P) -> Result<(), Failure> {
    let Some(cmdline) = p.xen_cmdline() else {
        defmt::info!("refusals: nothing to demonstrate: no hypervisor refuses");
        p.console_write("refusals: nothing to demonstrate: no hypervisor refuses\n");
        return Ok(());
    };
    let at = positions(cmdline)?;
    let mb = memview::memblock(p)?;
    let (win_va, win) = p.boot_window();
    let limit = win.end() << 12;
    let va = |pfn: u64| win_va + pfn * 4096;
    let mut rows = 0u32;

    // 512 frames, mapped writable in a window of their own (the initial mapping is too small
    // for them): one L1 of ours under the first empty slot of the live tables' first L2.
    let frames = mb
        .alloc_frames(BATCH, u64::MAX, Direction::TopDown)
        .map_err(Failure::Memblock)?;
    let (fw_va, first, fw_l1) = window(p, mb, frames.pfns(), limit)?;
    let fva = |pfn: u64| fw_va + (pfn - first) * 4096;
    let mut frames = Some(frames);
    for &pos in &at {
        let f = frames.take().ok_or_else(|| failed("frames lost", 0))?;
        frames = Some(release_row(p, f, pos, &fva)?);
        rows += 1;
    }
    // The 512 frames, free, zero and mapped writable only by the window's L1: each row below
    // makes frame `pos` a table behind hal-core's back.
    let plant = Plant {
        l1: fw_l1,
        first,
        va: fw_va,
    };
    // The entries' targets need no mapping of ours (only the table does).
    let targets = mb
        .alloc_frames(BATCH, u64::MAX, Direction::TopDown)
        .map_err(Failure::Memblock)?;
    let t = mb
        .alloc_frames(1, limit, Direction::TopDown)
        .map_err(Failure::Memblock)?;
    let mut t = Some(t);
    for &pos in &at {
        let table = t.take().ok_or_else(|| failed("table frame lost", 0))?;
        t = Some(fill_row(p, table, targets.pfns(), pos, &va, &plant)?);
        rows += 1;
    }
    for (row, &pos) in at.iter().enumerate() {
        map_row(p, mb, limit, pos, row, &plant)?;
        rows += 1;
    }
    defmt::info!("RESULT refusals done rows={=u32}", rows);
    p.console_write("refusals: done\n");
    Ok(())
}

/// Maps `pfns` (512 frames) writable at a virtual address of their own and tells the backend:
/// a fresh L1 (from memblock, below `limit`) hooked into the first empty slot of the live
/// root's first L2. Returns the address and the first pfn.
fn window<P: RefusalsBoard>(
    p: &mut P,
    mb: &mut pvmmu::memblock::Memblock<{ memview::REGIONS }>,
    pfns: pvmmu::PfnRange,
    limit: u64,
) -> Result<(u64, u64, Pfn), Failure> {
    let l1 = mb
        .alloc_frames(1, limit, Direction::TopDown)
        .map_err(Failure::Memblock)?;
    let l1_pfn = l1.pfns().start();
    // The frame becomes a table of the live tree for good (never given back).
    let reserved = p
        .mmu()
        .protect(l1)
        .map_err(|f| backend("protect L1")(f.error))?;
    let _ = reserved;
    let rw = PageTableFlags::PRESENT | PageTableFlags::WRITABLE;
    let mut entries = [Pte::EMPTY; BATCH as usize];
    for (k, e) in entries.iter_mut().enumerate() {
        *e = Pte::new(
            Pfn::new(pfns.start().as_u64() + k as u64).ok_or_else(|| failed("pfn", 0))?,
            rw,
        );
    }
    // SAFETY: a frame of ours that is no table yet: a plain write of writable mappings of
    // frames we own.
    unsafe { p.mmu().raw_mut().write(l1_pfn, TableLevel::L1, 0, &entries) }
        .and_then(|()| p.mmu().raw_mut().flush())
        .map_err(backend("fill window L1"))?;
    let (mmu, live) = p.mmu_and_root();
    // The L2 that covers address 0, through the live tree's handles.
    const WALK: &str = "walk to the L2 of address 0";
    let l3 = mmu.child(live.table(), 0).map_err(backend(WALK))?;
    let l2 = match l3 {
        Some(l3) => mmu.child(l3, 0).map_err(backend(WALK))?,
        None => None,
    }
    .ok_or_else(|| failed("no L2 table covers address 0", 0))?;
    let mut slot = None;
    for i in 0..512u16 {
        if !mmu.entry(l2, i).map_err(backend("read L2"))?.is_present() {
            slot = Some(i);
            break;
        }
    }
    let slot = slot.ok_or_else(|| failed("no empty L2 slot", 0))?;
    let (raw, l2) = (mmu.raw_mut(), l2.pfn());
    // SAFETY: hooks a complete L1 (writable mappings of our frames only) into an empty slot
    // of the live tree; nothing else uses the addresses it maps.
    unsafe { raw.write(l2, TableLevel::L2, slot, &[Pte::new(l1_pfn, rw)]) }
        .and_then(|()| raw.flush())
        .map_err(backend("hook window L1"))?;
    let va = u64::from(slot) << 21;
    // SAFETY: the mapping exists in the current root (just hooked) and is never removed.
    unsafe { raw.add_window(va, pfns) }.map_err(backend("add window"))?;
    Ok((va, pfns.start().as_u64(), l1_pfn))
}

/// The window of the 512 frames: its L1 (slot `k` maps frame `first + k`) and address.
struct Plant {
    l1: Pfn,
    first: u64,
    va: u64,
}

impl Plant {
    /// Makes frame `first + pos` a page table behind hal-core's back: its one mapping (the
    /// window's) written read-only, then a raw pin as an L1 (the frame is all zeros).
    fn pin<P: RefusalsBoard>(&self, p: &mut P, pos: u64) -> Result<Pfn, Failure> {
        let x = Pfn::new(self.first + pos).ok_or_else(|| failed("pfn", 0))?;
        self.remap(p, pos, PageTableFlags::PRESENT)?;
        // SAFETY: deliberately wrong, the mistake under test: a free frame of ours, all zeros
        // and mapped nowhere writable, made a page table without hal-core knowing.
        unsafe { p.mmu().raw_mut().pin(x, TableLevel::L1) }.map_err(backend("plant pin"))?;
        Ok(x)
    }

    /// Undoes [`pin`](Self::pin): unpinned, writable again in the window (a store lands).
    fn unpin<P: RefusalsBoard>(&self, p: &mut P, pos: u64) -> Result<bool, Failure> {
        let x = Pfn::new(self.first + pos).ok_or_else(|| failed("pfn", 0))?;
        // SAFETY: pinned by `pin`, hooked nowhere, not the root.
        unsafe { p.mmu().raw_mut().unpin(x, TableLevel::L1) }.map_err(backend("plant unpin"))?;
        self.remap(p, pos, PageTableFlags::PRESENT | PageTableFlags::WRITABLE)?;
        let va = self.va + pos * 4096;
        // SAFETY: our frame, writable again; a store of 0 into a zero frame.
        Ok(unsafe { p.probe(va, 0) })
    }

    fn remap<P: RefusalsBoard>(
        &self,
        p: &mut P,
        pos: u64,
        flags: PageTableFlags,
    ) -> Result<(), Failure> {
        let x = Pfn::new(self.first + pos).ok_or_else(|| failed("pfn", 0))?;
        let mut tlb = TlbBatch::new();
        tlb.add(self.va + pos * 4096);
        let raw = p.mmu().raw_mut();
        // SAFETY: the window's own slot for its own frame, which nothing uses meanwhile; the
        // flush invalidates the page.
        unsafe { raw.write(self.l1, TableLevel::L1, pos as u16, &[Pte::new(x, flags)]) }
            // SAFETY: `tlb` names the one page whose translation changed.
            .and_then(|()| unsafe { raw.flush_tlb(&tlb) })
            .map_err(backend("window remap"))
    }
}

/// The release row at `pos`; gives the frames back as memory.
fn release_row<P: RefusalsBoard>(
    p: &mut P,
    frames: FrameRange<Free>,
    pos: u64,
    va: &dyn Fn(u64) -> u64,
) -> Result<FrameRange<Free>, Failure> {
    let range = frames.pfns();
    let base = range.start().as_u64();
    let bad = base + pos;
    let bad_pfn = Pfn::new(bad).ok_or_else(|| failed("pfn", 0))?;
    let reserved = p
        .mmu()
        .protect(frames)
        .map_err(|f| backend("protect")(f.error))?;
    // SAFETY: deliberately wrong, the mistake under test: a reserved frame (read-only
    // everywhere, all zeros, so Xen accepts it) made a page table behind hal-core's back.
    unsafe { p.mmu().raw_mut().pin(bad_pfn, TableLevel::L1) }.map_err(backend("plant pin"))?;
    let failed_release = match p.mmu().release(reserved) {
        Ok(_) => {
            return Err(failed(
                "release with a pinned frame was accepted",
                pos as i64,
            ))
        }
        Err(f) => f,
    };
    let Some((op, r)) = P::refusal(&failed_release.error) else {
        return Err(backend("release: not a refusal")(failed_release.error));
    };
    let named = r.entry.and_then(|e| e.frame).unwrap_or(u64::MAX);
    // The state the types say: Unsettled, rolled back, so every frame read-only (frame `pos`
    // is a pinned L1, whose stores Xen emulates: not probed).
    let mut read_only = 0u64;
    for pfn in range.iter().map(Pfn::as_u64).filter(|&f| f != bad) {
        // SAFETY: our frame; a store that lands writes 0 into memory we own.
        if !unsafe { p.probe(va(pfn), 0) } {
            read_only += 1;
        }
    }
    // Carry on: undo the misdeed, settle, and use the frames as memory and as tables.
    // SAFETY: pinned just now as an L1, hooked nowhere, not the root, all zeros.
    unsafe { p.mmu().raw_mut().unpin(bad_pfn, TableLevel::L1) }.map_err(backend("unpin"))?;
    // SAFETY: as above, unpinned now.
    unsafe { p.mmu().raw_mut().retire(bad_pfn, TableLevel::L1) }.map_err(backend("retire"))?;
    let released = p
        .mmu()
        .settle(failed_release.value)
        .map_err(|f| backend("settle")(f.error))?;
    let mut writable = 0u64;
    for pfn in range.iter().map(Pfn::as_u64) {
        let pattern = 0x5eed_0000_0000 | pfn;
        // SAFETY: our frame, writable again (ReleasedRW).
        let ok = unsafe { p.probe(va(pfn) + 8, pattern) }
            // SAFETY: as above; a load.
            && unsafe { core::ptr::read_volatile((va(pfn) + 8) as *const u64) } == pattern;
        // SAFETY: as above: the frame is ours and writable; zero it again for its next use.
        unsafe { core::ptr::write_bytes(va(pfn) as *mut u8, 0, 4096) };
        writable += u64::from(ok);
    }
    let again = p
        .mmu()
        .protect(released.into_free())
        .map_err(|f| backend("protect again")(f.error))?;
    // SAFETY: read-only everywhere and all zeros: a valid empty L1, hooked nowhere.
    unsafe { p.mmu().raw_mut().pin(bad_pfn, TableLevel::L1) }.map_err(backend("pin again"))?;
    // SAFETY: pinned just now, hooked nowhere.
    unsafe { p.mmu().raw_mut().unpin(bad_pfn, TableLevel::L1) }.map_err(backend("unpin again"))?;
    // SAFETY: unpinned, hooked nowhere, empty.
    unsafe { p.mmu().raw_mut().retire(bad_pfn, TableLevel::L1) }
        .map_err(backend("retire again"))?;
    let back = p
        .mmu()
        .release(again)
        .map_err(|f| backend("release again")(f.error))?;
    let after = read_only == BATCH - 1 && writable == BATCH;
    defmt::info!(
        "RESULT refusals op=release at={=u64} op_named={=?} errno={=i64} submitted={=u32} applied={=u32} failed_at={=u32} planted={=u64} named={=u64} rollback={=str} read_only={=u64} writable={=u64} after={=str}",
        pos,
        op,
        i64::from(r.errno.0),
        r.submitted,
        r.applied,
        r.failed_at,
        bad,
        named,
        rollback_name(r.rollback),
        read_only,
        writable,
        if after { "ok" } else { "wrong" }
    );
    Ok(back.into_free())
}

/// The fill row at `pos`, with `table` (one free frame) as the L1 and `targets` the frames
/// its entries map read-only; gives the table frame back as memory.
fn fill_row<P: RefusalsBoard>(
    p: &mut P,
    table: FrameRange<Free>,
    targets: pvmmu::PfnRange,
    pos: u64,
    va: &dyn Fn(u64) -> u64,
    plant: &Plant,
) -> Result<FrameRange<Free>, Failure> {
    let t = table.pfns().start();
    let x = plant.pin(p, pos)?;
    let reserved = p
        .mmu()
        .protect(table)
        .map_err(|f| backend("protect table")(f.error))?;
    // SAFETY: read-only everywhere and all zeros: a valid empty L1, hooked nowhere.
    unsafe { p.mmu().raw_mut().pin(t, TableLevel::L1) }.map_err(backend("pin table"))?;
    let ro = PageTableFlags::PRESENT;
    let target = |k: u64| Pfn::new(targets.start().as_u64() + k).map(|f| Pte::new(f, ro));
    let mut entries = [Pte::EMPTY; BATCH as usize];
    for (k, e) in entries.iter_mut().enumerate() {
        *e = target(k as u64).ok_or_else(|| failed("pfn", 0))?;
    }
    entries[pos as usize] = Pte::new(x, PageTableFlags::PRESENT | PageTableFlags::WRITABLE);
    // SAFETY: deliberately wrong at `pos` (a writable mapping of a frame that is a table,
    // which Xen must refuse); the other entries map frames we own read-only, in a table
    // hooked nowhere.
    let res = unsafe { p.mmu().raw_mut().write(t, TableLevel::L1, 0, &entries) }
        .and_then(|()| p.mmu().raw_mut().flush());
    let Err(e) = res else {
        return Err(failed(
            "a writable mapping of a table was accepted",
            pos as i64,
        ));
    };
    let Some((op, r)) = P::refusal(&e) else {
        return Err(backend("fill: not a refusal")(e));
    };
    let entry = r
        .entry
        .ok_or_else(|| failed("fill: the refusal names no entry", 0))?;
    // The state: entries below `pos` applied, the others not.
    let mut as_written = 0u64;
    for k in 0..BATCH {
        // SAFETY: `t` is the pinned L1 this row filled (a table), hooked nowhere.
        let got = unsafe { p.mmu().raw_mut().read(t, TableLevel::L1, k as u16) }
            .map_err(backend("read back"))?;
        let want_present = k < pos;
        let ok = if want_present {
            got.is_present() && got.pfn() == entries[k as usize].pfn()
        } else {
            !got.is_present()
        };
        as_written += u64::from(ok);
    }
    // Carry on: the corrected entries, then empty, unpin, retire: memory again.
    entries[pos as usize] = target(pos).ok_or_else(|| failed("pfn", 0))?;
    // SAFETY: read-only mappings of frames we own, in a table hooked nowhere.
    unsafe {
        p.mmu()
            .raw_mut()
            .write(t, TableLevel::L1, pos as u16, &entries[pos as usize..])
    }
    .and_then(|()| p.mmu().raw_mut().flush())
    .map_err(backend("corrected entries"))?;
    let empty = [Pte::EMPTY; BATCH as usize];
    // SAFETY: emptying a table hooked nowhere.
    unsafe { p.mmu().raw_mut().write(t, TableLevel::L1, 0, &empty) }
        .and_then(|()| p.mmu().raw_mut().flush())
        .map_err(backend("emptying"))?;
    // SAFETY: pinned above, hooked nowhere, not the root.
    unsafe { p.mmu().raw_mut().unpin(t, TableLevel::L1) }.map_err(backend("unpin table"))?;
    // SAFETY: unpinned, hooked nowhere, empty.
    unsafe { p.mmu().raw_mut().retire(t, TableLevel::L1) }.map_err(backend("retire table"))?;
    let back = p
        .mmu()
        .release(reserved)
        .map_err(|f| backend("release table")(f.error))?;
    // SAFETY: our frame, writable again.
    let stored = unsafe { p.probe(va(t.as_u64()), 0) };
    let named_ok = entry.table == t.as_u64()
        && u64::from(entry.index) == pos
        && entry.frame == Some(x.as_u64());
    let x_writable = plant.unpin(p, pos)?;
    let after = as_written == BATCH && stored && x_writable;
    defmt::info!(
        "RESULT refusals op=fill at={=u64} op_named={=?} errno={=i64} submitted={=u32} applied={=u32} failed_at={=u32} index={=u16} entry_named={=str} as_written={=u64} stored={=bool} after={=str}",
        pos,
        op,
        i64::from(r.errno.0),
        r.submitted,
        r.applied,
        r.failed_at,
        entry.index,
        if named_ok { "ok" } else { "wrong" },
        as_written,
        stored,
        if after { "ok" } else { "wrong" }
    );
    Ok(back.into_free())
}

/// Where the map rows' refused mappers map: one L4 slot per row from slot 64 on, away from
/// everything else.
const MAP_VA: u64 = 64 << 39;
/// Where the map rows map again after the refusal: one L4 slot per row from slot 8 on.
const AGAIN_VA: u64 = 8 << 39;

/// The map row at `pos`: the run-time mapper maps the window's 512 frames writable at
/// [`MAP_VA`] while frame `pos` is a table behind hal-core's back.
fn map_row<P: RefusalsBoard>(
    p: &mut P,
    mb: &mut pvmmu::memblock::Memblock<{ memview::REGIONS }>,
    limit: u64,
    pos: u64,
    row: usize,
    plant: &Plant,
) -> Result<(), Failure> {
    let x = plant.pin(p, pos)?;
    let again = AGAIN_VA + (row as u64) * (1 << 39);
    let map_va = MAP_VA + (row as u64) * (1 << 39);
    let phys = plant.first << 12;
    let len = BATCH * 4096;
    let rw = PageTableFlags::WRITABLE;
    let free_refused = mb.free_bytes();
    let (refusal, mapped_after, leaked, kept) = {
        let (mmu, root) = p.mmu_and_root();
        let caps = mmu.caps();
        let mut m: Mapper<_, 8> = Mapper::new(
            root.table(),
            caps,
            MemblockSource::new(mb, limit),
            EmptyTables::Free,
        );
        // SAFETY: the frames are ours (free), the window at `map_va` is this row's alone.
        let res = unsafe { m.map(mmu, root.table(), map_va, phys, len, rw, PageSize::Size4K) }
            .and_then(|f| m.flush(mmu, f));
        let e = match res {
            Err(MapError::Backend(e)) => e,
            Err(other) => {
                defmt::error!("refusals: map: {}", other);
                return Err(failed("map: not a backend refusal", pos as i64));
            }
            Ok(()) => {
                return Err(failed(
                    "a writable mapping of a table was accepted",
                    pos as i64,
                ))
            }
        };
        let refusal = P::refusal(&e).ok_or_else(|| failed("map: not a refusal", pos as i64))?;
        // Carry on: tear down (whatever the refusal left mapped), every table back but the
        // level-3 one in the row's root slot, which stays.
        let mut mapped = 0u64;
        for k in 0..BATCH {
            mapped += u64::from(
                m.translate(mmu, root.table(), map_va + k * 4096)
                    .map_err(|e| Failure::Backend("walk", e.kind()))?
                    .is_some(),
            );
        }
        // SAFETY: everything this mapper mapped is this row's.
        let td = unsafe { m.teardown(mmu, root.table()) }
            .map_err(|e| Failure::Backend("teardown", e.kind()))?;
        let leaked = td.tables_allocated - td.tables_freed_total - td.tables_kept;
        (refusal, mapped, leaked, td.tables_kept)
    };
    let frames_kept = free_refused.saturating_sub(mb.free_bytes()) / 4096;
    let x_writable = plant.unpin(p, pos)?;
    // Again, with every frame ordinary memory: all 512 stores land.
    let free0 = mb.free_bytes();
    let (landed, freed_again, kept_again) = {
        let (mmu, root) = p.mmu_and_root();
        let caps = mmu.caps();
        let mut m: Mapper<_, 8> = Mapper::new(
            root.table(),
            caps,
            MemblockSource::new(mb, limit),
            EmptyTables::Free,
        );
        // SAFETY: as above.
        let f = unsafe { m.map(mmu, root.table(), again, phys, len, rw, PageSize::Size4K) }
            .map_err(|e| {
                defmt::error!("refusals: map again: {}", e);
                Failure::Backend("map again", e.kind())
            })?;
        m.flush(mmu, f)
            .map_err(|e| Failure::Backend("flush again", e.kind()))?;
        let mut landed = 0u64;
        for k in 0..BATCH {
            let pattern = 0x3a9_0000_0000 | k;
            // SAFETY: our frame, mapped writable at `again` just now.
            let ok = unsafe { p.probe(again + k * 4096 + 16, pattern) }
                // SAFETY: the same frame through its window; a load.
                && unsafe { core::ptr::read_volatile((plant.va + k * 4096 + 16) as *const u64) }
                    == pattern;
            landed += u64::from(ok);
        }
        let (mmu, root) = p.mmu_and_root();
        // SAFETY: everything this mapper mapped is this row's.
        let td = unsafe { m.teardown(mmu, root.table()) }
            .map_err(|e| Failure::Backend("teardown again", e.kind()))?;
        let freed = td.tables_freed_total + td.tables_kept == td.tables_allocated;
        (landed, freed, td.tables_kept)
    };
    for k in 0..BATCH {
        // SAFETY: our frames, writable in their window: zero again for the next row.
        unsafe { core::ptr::write_volatile((plant.va + k * 4096 + 16) as *mut u64, 0) };
    }
    let (op, r) = refusal;
    let named_ok = r
        .entry
        .is_some_and(|e| u64::from(e.index) == pos && e.frame == Some(x.as_u64()));
    let index = r.entry.map_or(u16::MAX, |e| e.index);
    let after = x_writable
        && landed == BATCH
        && freed_again
        && mb.free_bytes() + 4096 * kept_again == free0;
    defmt::info!(
        "RESULT refusals op=map at={=u64} op_named={=?} errno={=i64} submitted={=u32} applied={=u32} failed_at={=u32} index={=u16} entry_named={=str} mapped_after={=u64} leaked_tables={=u64} tables_kept={=u64} frames_kept={=u64} landed={=u64} after={=str}",
        pos,
        op,
        i64::from(r.errno.0),
        r.submitted,
        r.applied,
        r.failed_at,
        index,
        if named_ok { "ok" } else { "wrong" },
        mapped_after,
        leaked,
        kept,
        frames_kept,
        landed,
        if after { "ok" } else { "wrong" }
    );
    Ok(())
}
