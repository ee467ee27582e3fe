//! `Sim`: a host backend implementing `RawMmu` over simulated physical memory, the test
//! harness of hal-core's integration tests.
//!
//! The sim keeps its own memory (the tables hal-core writes, entries in pfns) and records what
//! hal-core asked of each frame (`Protected` after `protect`, `Table` after a `write`), as a
//! backend's records would. With read-only tables (`Caps::tables_read_only`: the Xen and
//! hybrid caps) it has no rules of Xen of its own: every change of a table entry, pin, unpin
//! and root change is also handed to backend-xen-pv's model of Xen (`model::Rules`, the model
//! the conformance corpus checks against real Xen; `xen_model`) in machine frames, and the model's verdict
//! (Xen's errno) is the sim's: type counts, validation of entries, the refusal of a writable
//! mapping of a page table, pins. What the sim checks itself is hal-core's side of
//! `RawMmu`'s contract, on every backend (bare metal too):
//!
//! - `write` only into a frame hal-core protected or wrote as a table of that level, pages of
//!   the sizes and flags the caps allow, no large leaf over a protected or table frame
//!   (`RawMmu::write`'s rule), `fill_fresh` only of fresh tables, no hook or pin of a fresh
//!   table before it is complete, `protect` only of frames not protected yet, `retire` only
//!   of an unpinned table that is not the root; on bare metal, where nobody else would
//!   notice, also table entries only to tables one level down, pins and unpins in order, a
//!   switch only to a pinned root and no release of a table;
//! - a *writable* 4 KiB leaf for a protected or table frame is written read-only (as
//!   `RawMmu::write` promises: the backend's job, which Xen then judges);
//! - `protect` / `release` / `retire` change the frame's record and, through the windows the
//!   caller registered with `add_window`, flip the direct-map leaves of the frames to read-only
//!   or back to writable (what Xen PV's `make_lowmem_page_readonly/readwrite` do);
//! - any operation can be made to fail on its n-th call, after applying part of a batch.
//!
//! Every refusal, the model's or the contract's, is also logged in `violations`, so a test
//! can assert that nothing was ever attempted.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::BuildHasherDefault;

use super::xen_model::{ChunkHasher, Rules};
use hal_core::backend::{Caps, EntryRun, PageSizes, RawMmu};
use hal_core::{BackendError, ErrorKind, Mfn, PageTableFlags, Pfn, PfnRange, Pte, TableLevel};

/// Maps with the model's multiplicative hasher: the default SipHash is slow in debug builds.
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<ChunkHasher>>;

/// The operations of `RawMmu`, for counters and fault injection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    Protect,
    Write,
    Read,
    Pin,
    Unpin,
    Retire,
    SwitchRoot,
    Release,
    AddWindow,
    Flush,
}

impl Op {
    pub const ALL: [Op; 10] = [
        Op::Protect,
        Op::Write,
        Op::Read,
        Op::Pin,
        Op::Unpin,
        Op::Retire,
        Op::SwitchRoot,
        Op::Release,
        Op::AddWindow,
        Op::Flush,
    ];
}

/// The sim's error: the kind, which operation, how much of a batch took effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimError {
    pub op: Op,
    pub kind: ErrorKind,
    /// Frames (protect/release) or entries (write) applied before the failure.
    pub applied: u64,
    pub why: &'static str,
}

impl std::fmt::Display for SimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sim {:?}: {} ({:?}, {} applied)",
            self.op, self.why, self.kind, self.applied
        )
    }
}

impl std::error::Error for SimError {}

impl BackendError for SimError {
    fn kind(&self) -> ErrorKind {
        self.kind
    }
}

/// What a frame is, for the sim. Frames not in the map are plain (writable) memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FState {
    Protected,
    Table { level: TableLevel, pinned: bool },
}

/// A fault to inject: the `nth` call (1-based, counted from when it was armed) of `op` fails
/// with `kind`, after applying `applied` frames of its batch (protect/release).
#[derive(Clone, Copy, Debug)]
pub struct Fault {
    pub op: Op,
    pub nth: u64,
    pub kind: ErrorKind,
    pub applied: u64,
}

/// Counters of calls (and entries written).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub calls: FastMap<&'static str, u64>,
    pub entries_written: u64,
    pub frames_protected: u64,
    pub frames_released: u64,
    /// `flush_tlb` calls, single pages they invalidated, full flushes among them.
    pub tlb_flushes: u64,
    pub invlpgs: u64,
    pub full_flushes: u64,
    /// Slots of fresh tables written again (by `fill_fresh`) before the table was complete.
    pub fresh_rewrites: u64,
    /// Writable 4 KiB leaves for protected or table frames written read-only.
    pub downgraded: u64,
}

impl Counts {
    pub fn get(&self, op: Op) -> u64 {
        self.calls.get(op_name(op)).copied().unwrap_or(0)
    }
}

fn op_name(op: Op) -> &'static str {
    match op {
        Op::Protect => "protect",
        Op::Write => "write",
        Op::Read => "read",
        Op::Pin => "pin",
        Op::Unpin => "unpin",
        Op::Retire => "retire",
        Op::SwitchRoot => "switch_root",
        Op::Release => "release",
        Op::AddWindow => "add_window",
        Op::Flush => "flush",
    }
}

/// The caps of the backends the tests play.
pub mod caps {
    use super::*;

    /// Bare metal: every page size, nothing read-only, no reserved slots.
    pub const NATIVE: Caps = Caps {
        page_sizes: PageSizes::all(),
        tables_read_only: false,
        reserved_root_slots: (0, 0),
        nx: true,
    };
    /// Bare metal without 1 GiB pages.
    pub const NATIVE_2M: Caps = Caps {
        page_sizes: PageSizes::SIZE_4K.union(PageSizes::SIZE_2M),
        tables_read_only: false,
        reserved_root_slots: (0, 0),
        nx: true,
    };
    /// 64-bit Xen PV: 4 KiB only, tables read-only, Xen's root slots 256..272.
    pub const XEN: Caps = Caps {
        page_sizes: PageSizes::SIZE_4K,
        tables_read_only: true,
        reserved_root_slots: (256, 272),
        nx: true,
    };
    /// A made-up backend with large pages *and* read-only tables, no NX: exercises large
    /// pages split around read-only frames. On Xen's rules otherwise (the model judges its
    /// 4 KiB entries and tables), so Xen's root slots are reserved as on Xen.
    pub const HYBRID: Caps = Caps {
        page_sizes: PageSizes::all(),
        tables_read_only: true,
        reserved_root_slots: (256, 272),
        nx: false,
    };
}

/// Where the sim's boot tables live: root (L4), kernel L3, kernel L2 (3 frames from `first`).
pub const BOOT_FRAMES: u64 = 3;
/// The root slot of the kernel image mapping (0xffffffff80000000).
pub const KERNEL_SLOT: u16 = 511;
/// The root slot the sim puts a Xen-owned entry in, when the caps reserve it.
pub const XEN_SLOT: u16 = 256;
/// The frame the Xen-owned entry points at (no table the sim holds: never walked).
pub const XEN_PFN: u64 = (1 << 40) - 16;

/// The simulated backend.
pub struct Sim {
    caps: Caps,
    mfn_offset: u64,
    tables: FastMap<u64, Box<[u64; 512]>>,
    state: BTreeMap<u64, FState>,
    root: u64,
    foreign: Vec<PfnRange>,
    windows: Vec<(u64, PfnRange)>,
    faults: Vec<Fault>,
    queued: u64,
    /// Entries of tables pointing at each frame (how often it is hooked).
    hooks: FastMap<u64, u32>,
    /// Tables being filled through `fill_fresh`: the slots written so far (a bitmap).
    fresh: FastMap<u64, [u64; 8]>,
    pub counts: Counts,
    pub violations: Vec<String>,
    /// The simulated CPU's TLB: leaf page base → (leaf entry, level). Filled by
    /// [`Sim::access`], emptied only by `flush_tlb` and `switch_root`.
    tlb: HashMap<u64, (u64, TableLevel)>,
    /// With read-only tables: Xen, as backend-xen-pv's model, which judges every table
    /// update, pin and root change. Its frames are numbered as the sim's (mfn = pfn): the
    /// sim's entries hold pfns, and the frames at the top of the address space stay
    /// addressable.
    xen: Option<Rules>,
}

impl fmt::Debug for Sim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sim")
            .field("caps", &self.caps)
            .field("root", &self.root)
            .field("tables", &self.tables.len())
            .field("violations", &self.violations)
            .finish()
    }
}

fn level_number(level: TableLevel) -> u8 {
    match level {
        TableLevel::L1 => 1,
        TableLevel::L2 => 2,
        TableLevel::L3 => 3,
        TableLevel::L4 => 4,
    }
}

fn entry_flags(e: u64) -> PageTableFlags {
    Pte::from_bits(e).flags()
}

impl Sim {
    /// A sim whose boot tables are the three frames from `boot` (root, kernel L3, kernel L2),
    /// which the caller reserved, over the RAM `ram`. The boot root is pinned and current.
    pub fn new(caps: Caps, boot: Pfn, ram: &[PfnRange]) -> Self {
        let b = boot.as_u64();
        let mut sim = Sim {
            caps,
            mfn_offset: if caps.tables_read_only { 0x10_0000 } else { 0 },
            tables: FastMap::default(),
            state: BTreeMap::new(),
            root: b,
            foreign: vec![PfnRange::new(boot, b + BOOT_FRAMES).unwrap()],
            windows: Vec::new(),
            faults: Vec::new(),
            queued: 0,
            hooks: FastMap::default(),
            fresh: FastMap::default(),
            counts: Counts::default(),
            violations: Vec::new(),
            tlb: HashMap::new(),
            xen: None,
        };
        for (i, level) in [TableLevel::L4, TableLevel::L3, TableLevel::L2]
            .into_iter()
            .enumerate()
        {
            sim.tables.insert(b + i as u64, Box::new([0; 512]));
            sim.state.insert(
                b + i as u64,
                FState::Table {
                    level,
                    pinned: level == TableLevel::L4,
                },
            );
        }
        let table = |pfn: u64| Pte::table(Pfn::new(pfn).unwrap()).bits();
        sim.tables.get_mut(&b).unwrap()[usize::from(KERNEL_SLOT)] = table(b + 1);
        sim.tables.get_mut(&(b + 1)).unwrap()[510] = table(b + 2);
        if (caps.reserved_root_slots.0..caps.reserved_root_slots.1).contains(&XEN_SLOT) {
            sim.tables.get_mut(&b).unwrap()[usize::from(XEN_SLOT)] = table(XEN_PFN);
        }
        if caps.tables_read_only {
            // Xen's domain: every frame the tests can name (the RAM, and the rest as dom0's
            // I/O memory, which it may map too: the tests' mapper maps any physical range),
            // and the boot tables, written and installed as the domain builder does (Xen
            // fills its own slots of the root itself).
            let _ = ram;
            let mut xen = Rules::new(0, true);
            xen.add_frames(0, 1 << 40);
            for (t, i) in [(b, KERNEL_SLOT), (b + 1, 510)] {
                let e = sim.tables[&t][usize::from(i)];
                xen.update(t, i, e)
                    .expect("Xen takes the boot tables' entries");
            }
            xen.boot_root(b).expect("the boot tables validate");
            sim.xen = Some(xen);
        }
        sim
    }

    /// Xen's model, when the caps have read-only tables.
    pub fn xen(&self) -> Option<&Rules> {
        self.xen.as_ref()
    }

    /// With read-only tables, Xen's bookkeeping recounted (`Rules::audit`) and its root the
    /// sim's; `Ok` on bare metal.
    pub fn xen_agrees(&self) -> Result<(), String> {
        let Some(xen) = &self.xen else {
            return Ok(());
        };
        xen.audit()?;
        if xen.root() != self.root {
            return Err(format!(
                "Xen's root {:#x}, the sim's {:#x}",
                xen.root(),
                self.root
            ));
        }
        Ok(())
    }

    /// Hands `f` to Xen's model (nothing on bare metal): its refusal becomes the sim's, with
    /// Xen's errno.
    fn ask_xen(
        &mut self,
        op: Op,
        detail: impl FnOnce() -> String,
        f: impl FnOnce(&mut Rules) -> Result<(), i64>,
    ) -> Result<(), SimError> {
        let Some(xen) = self.xen.as_mut() else {
            return Ok(());
        };
        f(xen).map_err(|errno| {
            let (kind, why) = match errno {
                16 => (ErrorKind::Busy, "Xen (model): -EBUSY"),
                22 => (ErrorKind::Refused, "Xen (model): -EINVAL"),
                _ => (ErrorKind::Other, "Xen (model): refused"),
            };
            let detail = detail();
            self.refuse(op, kind, why, detail)
        })
    }

    /// A CPU access at `va`: through the TLB when it holds the page, else a walk of the
    /// current root whose leaf the TLB keeps. `Ok(pfn)` of the 4 KiB frame reached, `Err` if
    /// the page is not mapped or (for a store) not writable; a fault drops the TLB entry.
    pub fn access(&mut self, va: u64, write: bool) -> Result<u64, &'static str> {
        let cached = [TableLevel::L1, TableLevel::L2, TableLevel::L3]
            .into_iter()
            .find_map(|l| {
                let base = va & !(l.entry_span() - 1);
                match self.tlb.get(&base) {
                    Some(&(e, lv)) if lv == l => Some((base, e, l)),
                    _ => None,
                }
            });
        let (base, e, level) = match cached {
            Some(c) => c,
            None => {
                let (_, _, e, level) = self.leaf_of(va).ok_or("not mapped")?;
                let base = va & !(level.entry_span() - 1);
                self.tlb.insert(base, (e, level));
                (base, e, level)
            }
        };
        if write && !entry_flags(e).contains(PageTableFlags::WRITABLE) {
            self.tlb.remove(&base);
            return Err("read-only");
        }
        let within = (va - base) >> 12;
        let _ = level;
        Ok(Pte::from_bits(e).pfn().as_u64() + within)
    }

    /// Pages the TLB holds.
    pub fn tlb_len(&self) -> usize {
        self.tlb.len()
    }

    /// Arms a fault.
    pub fn fail(&mut self, op: Op, nth: u64, kind: ErrorKind, applied: u64) {
        let already = self.counts.get(op);
        self.faults.push(Fault {
            op,
            nth: already + nth,
            kind,
            applied,
        });
    }

    /// Disarms every fault.
    pub fn clear_faults(&mut self) {
        self.faults.clear();
    }

    /// The sim's state of a frame (`None`: plain memory).
    pub fn state_of(&self, pfn: u64) -> Option<FState> {
        self.state.get(&pfn).copied()
    }

    /// Every frame the sim does not consider plain memory.
    pub fn states(&self) -> &BTreeMap<u64, FState> {
        &self.state
    }

    /// The root in use.
    pub fn root(&self) -> u64 {
        self.root
    }

    /// Entry `i` of table `t`, raw, without counting (for the tests' own walks).
    pub fn peek(&self, t: u64, i: u16) -> Option<u64> {
        self.tables.get(&t).map(|tb| tb[usize::from(i)])
    }

    /// Test setup: stores `bits` into slot `i` of table `t` (which the sim holds) directly,
    /// past every check, the counters and Xen's model, as firmware or a domain builder would
    /// have left it. Returns whether the sim holds `t`.
    pub fn poke(&mut self, t: u64, i: u16, bits: u64) -> bool {
        match self.tables.get_mut(&t) {
            Some(tb) => {
                tb[usize::from(i)] = bits;
                true
            }
            None => false,
        }
    }

    /// The windows registered, in order: `(va, frames)`.
    pub fn windows(&self) -> &[(u64, PfnRange)] {
        &self.windows
    }

    /// Operations queued and not flushed.
    pub fn queued(&self) -> u64 {
        self.queued
    }

    fn count(&mut self, op: Op) -> Result<(), SimError> {
        *self.counts.calls.entry(op_name(op)).or_default() += 1;
        let n = self.counts.get(op);
        if let Some(i) = self.faults.iter().position(|f| f.op == op && f.nth == n) {
            let f = self.faults.remove(i);
            return Err(SimError {
                op,
                kind: f.kind,
                applied: f.applied,
                why: "injected",
            });
        }
        Ok(())
    }

    fn refuse(&mut self, op: Op, kind: ErrorKind, why: &'static str, detail: String) -> SimError {
        self.violations.push(format!("{op:?}: {why}: {detail}"));
        SimError {
            op,
            kind,
            applied: 0,
            why,
        }
    }

    fn is_protected_or_table(&self, pfn: u64) -> bool {
        self.state.contains_key(&pfn)
    }

    fn any_protected_in(&self, start: u64, len: u64) -> Option<u64> {
        self.state.range(start..start + len).next().map(|(p, _)| *p)
    }

    /// The leaf mapping `va` in the current root: (table, index, entry, level).
    fn leaf_of(&self, va: u64) -> Option<(u64, u16, u64, TableLevel)> {
        let mut t = self.root;
        let mut level = TableLevel::L4;
        loop {
            let i = level.index_of(va);
            let e = self.tables.get(&t)?[usize::from(i)];
            let pte = Pte::from_bits(e);
            if !pte.is_present() {
                return None;
            }
            if level == TableLevel::L1 || (pte.is_huge() && level != TableLevel::L4) {
                return Some((t, i, e, level));
            }
            t = pte.pfn().as_u64();
            level = level.child()?;
        }
    }

    /// Through the windows: sets or clears WRITABLE on the 4 KiB leaves mapping `pfn`.
    /// A large page that maps it with the wrong protection cannot be changed: `Err`.
    fn flip(&mut self, pfn: u64, writable: bool) -> Result<(), &'static str> {
        let vas: Vec<u64> = self
            .windows
            .iter()
            .filter(|(_, r)| r.contains(Pfn::new(pfn).unwrap()))
            .map(|(va, r)| va + ((pfn - r.start().as_u64()) << 12))
            .collect();
        for va in vas {
            let Some((t, i, e, level)) = self.leaf_of(va) else {
                continue;
            };
            let is_w = entry_flags(e).contains(PageTableFlags::WRITABLE);
            if is_w == writable {
                continue;
            }
            if level != TableLevel::L1 {
                return Err("a large page maps the frame");
            }
            let e = if writable {
                e | PageTableFlags::WRITABLE.bits()
            } else {
                e & !PageTableFlags::WRITABLE.bits()
            };
            if let Some(xen) = self.xen.as_mut() {
                if xen.update(t, i, e).is_err() {
                    return Err("Xen (model) refused the remap");
                }
            }
            self.tables.get_mut(&t).unwrap()[usize::from(i)] = e;
        }
        Ok(())
    }

    fn check_entry(
        &self,
        level: TableLevel,
        e: u64,
        check_ro: bool,
    ) -> Result<bool, (ErrorKind, &'static str)> {
        let pte = Pte::from_bits(e);
        if !pte.is_present() {
            return Ok(false);
        }
        let f = pte.flags();
        if f.contains(PageTableFlags::NO_EXECUTE) && !self.caps.nx {
            return Err((ErrorKind::Unsupported, "NX without nx"));
        }
        let leaf = level == TableLevel::L1 || pte.is_huge();
        if !leaf {
            let child = pte.pfn().as_u64();
            let want = level.child().unwrap();
            if child == XEN_PFN || self.xen.is_some() {
                // With read-only tables, Xen's model judges what a table entry points at.
                return Ok(false);
            }
            return match self.state.get(&child) {
                Some(FState::Table { level: l, .. }) if *l == want => Ok(false),
                _ => Err((
                    ErrorKind::Refused,
                    "table entry to a non-table or wrong level",
                )),
            };
        }
        let frames = match level {
            TableLevel::L1 => 1,
            TableLevel::L2 => {
                if !self.caps.page_sizes.contains(PageSizes::SIZE_2M) {
                    return Err((ErrorKind::Unsupported, "2 MiB page"));
                }
                512
            }
            TableLevel::L3 => {
                if !self.caps.page_sizes.contains(PageSizes::SIZE_1G) {
                    return Err((ErrorKind::Unsupported, "1 GiB page"));
                }
                512 * 512
            }
            TableLevel::L4 => return Err((ErrorKind::Refused, "large page at L4")),
        };
        let start = pte.pfn().as_u64();
        if leaf && level != TableLevel::L1 && start % frames != 0 {
            return Err((ErrorKind::Refused, "misaligned large page"));
        }
        if self.caps.tables_read_only
            && check_ro
            && f.contains(PageTableFlags::WRITABLE)
            && self.any_protected_in(start, frames).is_some()
        {
            // A 4 KiB leaf is downgraded (RawMmu::write's promise); a large page cannot be.
            if level == TableLevel::L1 {
                return Ok(true);
            }
            return Err((
                ErrorKind::Busy,
                "writable large page over a page-table frame",
            ));
        }
        Ok(false)
    }
}

// SAFETY: the sim keeps every promise of `RawMmu` about its simulated memory: protect and
// release change the simulated mappings as documented, write stores exactly the entries, and
// caps are constant.
unsafe impl RawMmu for Sim {
    type Error = SimError;

    fn caps(&self) -> Caps {
        self.caps
    }

    fn name(&self) -> &'static str {
        "sim"
    }

    fn machine_frame(&self, pfn: Pfn) -> Result<Mfn, SimError> {
        Ok(Mfn(pfn.as_u64() + self.mfn_offset))
    }

    fn current_root(&self) -> Pfn {
        Pfn::new(self.root).unwrap()
    }

    fn foreign_tables(&self) -> &[PfnRange] {
        &self.foreign
    }

    unsafe fn protect(&mut self, frames: PfnRange) -> Result<(), SimError> {
        let injected = self.count(Op::Protect);
        for p in frames.iter() {
            if self.is_protected_or_table(p.as_u64()) {
                return Err(self.refuse(
                    Op::Protect,
                    ErrorKind::Busy,
                    "frame protected twice or a table",
                    format!("{p:?}"),
                ));
            }
        }
        let limit = match injected {
            Ok(()) => frames.len(),
            Err(e) => e.applied.min(frames.len()),
        };
        for (n, p) in frames.iter().enumerate() {
            if n as u64 >= limit {
                break;
            }
            if self.caps.tables_read_only {
                if let Err(why) = self.flip(p.as_u64(), false) {
                    return Err(self.refuse(Op::Protect, ErrorKind::Busy, why, format!("{p:?}")));
                }
            }
            self.state.insert(p.as_u64(), FState::Protected);
            self.counts.frames_protected += 1;
        }
        injected
    }

    unsafe fn write(
        &mut self,
        table: Pfn,
        level: TableLevel,
        first: u16,
        entries: &[Pte],
    ) -> Result<(), SimError> {
        self.count(Op::Write)?;
        let t = table.as_u64();
        if usize::from(first) + entries.len() > 512 {
            return Err(SimError {
                op: Op::Write,
                kind: ErrorKind::OutOfRange,
                applied: 0,
                why: "past the end of the table",
            });
        }
        match self.state.get(&t) {
            Some(FState::Protected) => {}
            Some(FState::Table { level: l, .. }) if *l == level => {}
            other => {
                let detail = format!("{table:?} as {level:?}, state {other:?}");
                return Err(self.refuse(
                    Op::Write,
                    ErrorKind::Refused,
                    "table frame not protected or of another level",
                    detail,
                ));
            }
        }
        // One range query for the whole batch when no page-table frame is anywhere near it.
        let span = entries
            .iter()
            .filter(|e| e.is_present())
            .map(|e| e.pfn().as_u64())
            .fold(None, |acc: Option<(u64, u64)>, p| {
                Some(acc.map_or((p, p), |(a, b)| (a.min(p), b.max(p))))
            });
        let check_ro = span.is_some_and(|(a, b)| {
            self.any_protected_in(a, b - a + level.entry_span() / 4096)
                .is_some()
        });
        let mut downgrade = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            match self.check_entry(level, e.bits(), check_ro) {
                Ok(d) => {
                    if d {
                        downgrade.push(i);
                    }
                }
                Err((kind, why)) => {
                    let detail = format!("{table:?}[{}] = {e:?}", usize::from(first) + i);
                    return Err(self.refuse(Op::Write, kind, why, detail));
                }
            }
        }
        self.counts.downgraded += downgrade.len() as u64;
        if self.state.get(&t) == Some(&FState::Protected) {
            self.state.insert(
                t,
                FState::Table {
                    level,
                    pinned: false,
                },
            );
        }
        if level != TableLevel::L1 {
            for e in entries.iter().filter(|e| e.is_present() && !e.is_huge()) {
                let child = e.pfn().as_u64();
                if self
                    .fresh
                    .get(&child)
                    .is_some_and(|m| m.iter().any(|w| *w != u64::MAX))
                {
                    let detail = format!("{table:?} -> {child:#x}");
                    return Err(self.refuse(
                        Op::Write,
                        ErrorKind::Refused,
                        "hook of a fresh table not written in full",
                        detail,
                    ));
                }
            }
        }
        let stored: Vec<u64> = entries
            .iter()
            .enumerate()
            .map(|(i, e)| {
                if downgrade.binary_search(&i).is_ok() {
                    e.bits() & !PageTableFlags::WRITABLE.bits()
                } else {
                    e.bits()
                }
            })
            .collect();
        if self.xen.is_some() {
            // Xen judges every entry; a refused one undoes those before it (the sim's write
            // applies all or nothing). A large leaf has no place on Xen: the model sees the
            // slot empty (the contract's checks above judged it).
            let old: Vec<u64> = (0..entries.len())
                .map(|i| self.peek(t, first + i as u16).unwrap_or(0))
                .collect();
            let machine = |e: u64| {
                if level != TableLevel::L1 && Pte::from_bits(e).is_huge() {
                    0
                } else {
                    e
                }
            };
            for (i, &e) in stored.iter().enumerate() {
                let new = machine(e);
                let slot = first + i as u16;
                let r = self.ask_xen(
                    Op::Write,
                    || format!("{table:?}[{slot}] = {:?}", entries[i]),
                    |x| x.update(t, slot, new),
                );
                if let Err(err) = r {
                    for (j, &o) in old.iter().enumerate().take(i).rev() {
                        let o = machine(o);
                        let xen = self.xen.as_mut().expect("checked");
                        xen.update(t, first + j as u16, o)
                            .expect("Xen takes back the entry it had");
                    }
                    return Err(err);
                }
            }
        }
        let tb = self.tables.entry(t).or_insert_with(|| Box::new([0; 512]));
        for (i, e) in entries.iter().enumerate() {
            let slot = &mut tb[usize::from(first) + i];
            if level != TableLevel::L1 {
                let old = Pte::from_bits(*slot);
                if old.is_present() && !old.is_huge() {
                    if let Some(n) = self.hooks.get_mut(&old.pfn().as_u64()) {
                        *n = n.saturating_sub(1);
                    }
                }
                if e.is_present() && !e.is_huge() {
                    let child = e.pfn().as_u64();
                    *self.hooks.entry(child).or_default() += 1;
                    self.fresh.remove(&child);
                }
            }
            *slot = stored[i];
        }
        self.counts.entries_written += entries.len() as u64;
        self.queued += 1;
        Ok(())
    }

    unsafe fn fill_fresh(
        &mut self,
        table: Pfn,
        level: TableLevel,
        first: u16,
        run: &EntryRun,
    ) -> Result<(), SimError> {
        let t = table.as_u64();
        let live = t == self.root
            || self.hooks.get(&t).is_some_and(|n| *n > 0)
            || matches!(self.state.get(&t), Some(FState::Table { pinned: true, .. }))
            || (matches!(self.state.get(&t), Some(FState::Table { .. }))
                && !self.fresh.contains_key(&t));
        if live {
            let detail = format!("{table:?} as {level:?}");
            return Err(self.refuse(
                Op::Write,
                ErrorKind::Refused,
                "fill_fresh of a live table",
                detail,
            ));
        }
        if usize::from(first) + usize::from(run.count) > 512 || !run.frames_in_range() {
            return Err(SimError {
                op: Op::Write,
                kind: ErrorKind::OutOfRange,
                applied: 0,
                why: "fresh run past the end of the table or of the frame numbers",
            });
        }
        let map = self.fresh.get(&t).copied().unwrap_or([0; 8]);
        let slots = usize::from(first)..usize::from(first) + usize::from(run.count);
        let rewrites = slots
            .clone()
            .filter(|&i| map[i / 64] & (1 << (i % 64)) != 0)
            .count();
        let entries: Vec<Pte> = (0..run.count).map(|i| run.entry(i)).collect();
        // SAFETY: the caller's contract, which is `write`'s and more.
        unsafe { self.write(table, level, first, &entries) }?;
        let mut map = map;
        for i in slots {
            map[i / 64] |= 1 << (i % 64);
        }
        self.fresh.insert(t, map);
        self.counts.fresh_rewrites += rewrites as u64;
        Ok(())
    }

    unsafe fn read(&mut self, table: Pfn, level: TableLevel, index: u16) -> Result<Pte, SimError> {
        self.count(Op::Read)?;
        let t = table.as_u64();
        match self.state.get(&t) {
            Some(FState::Table { level: l, .. }) if *l == level => {}
            other => {
                let detail = format!("{table:?} as {level:?}, state {other:?}");
                return Err(self.refuse(
                    Op::Read,
                    ErrorKind::NotMapped,
                    "read of a frame that is no table of that level",
                    detail,
                ));
            }
        }
        let tb = self.tables.get(&t).expect("a table has contents");
        let e = *tb.get(usize::from(index)).ok_or(SimError {
            op: Op::Read,
            kind: ErrorKind::OutOfRange,
            applied: 0,
            why: "index",
        })?;
        Ok(Pte::from_bits(e))
    }

    unsafe fn pin(&mut self, table: Pfn, level: TableLevel) -> Result<(), SimError> {
        self.count(Op::Pin)?;
        let t = table.as_u64();
        if self
            .fresh
            .get(&t)
            .is_some_and(|m| m.iter().any(|w| *w != u64::MAX))
        {
            let detail = format!("{table:?} as {level:?}");
            return Err(self.refuse(
                Op::Pin,
                ErrorKind::Refused,
                "pin of a fresh table not written in full",
                detail,
            ));
        }
        self.fresh.remove(&t);
        if self.xen.is_some() {
            let n = level_number(level);
            let state = self.state.get(&t).copied();
            self.ask_xen(
                Op::Pin,
                || format!("{table:?} as {level:?}, state {state:?}"),
                |x| x.pin(t, n),
            )?;
            self.state.insert(
                t,
                FState::Table {
                    level,
                    pinned: true,
                },
            );
            return Ok(());
        }
        match self.state.get_mut(&t) {
            Some(FState::Table { level: l, pinned }) if *l == level && !*pinned => {
                *pinned = true;
                Ok(())
            }
            other => {
                let detail = format!("{table:?} as {level:?}, state {other:?}");
                Err(self.refuse(Op::Pin, ErrorKind::Refused, "pin", detail))
            }
        }
    }

    unsafe fn unpin(&mut self, table: Pfn, level: TableLevel) -> Result<(), SimError> {
        self.count(Op::Unpin)?;
        let t = table.as_u64();
        if self.xen.is_some() {
            let state = self.state.get(&t).copied();
            self.ask_xen(
                Op::Unpin,
                || format!("{table:?} as {level:?}, state {state:?}"),
                |x| x.unpin(t),
            )?;
            if let Some(FState::Table { pinned, .. }) = self.state.get_mut(&t) {
                *pinned = false;
            }
            return Ok(());
        }
        if t == self.root {
            return Err(self.refuse(
                Op::Unpin,
                ErrorKind::Refused,
                "unpin of the current root",
                format!("{table:?}"),
            ));
        }
        match self.state.get_mut(&t) {
            Some(FState::Table { level: l, pinned }) if *l == level && *pinned => {
                *pinned = false;
                Ok(())
            }
            other => {
                let detail = format!("{table:?} as {level:?}, state {other:?}");
                Err(self.refuse(Op::Unpin, ErrorKind::Refused, "unpin", detail))
            }
        }
    }

    unsafe fn retire(&mut self, table: Pfn, level: TableLevel) -> Result<(), SimError> {
        let t = table.as_u64();
        if t == self.root {
            return Err(self.refuse(
                Op::Retire,
                ErrorKind::Busy,
                "retire of the current root",
                format!("{table:?}"),
            ));
        }
        match self.state.get(&t) {
            // hal-core unpins before it retires (RawMmu::retire's precondition).
            Some(FState::Table {
                level: l,
                pinned: false,
            }) if *l == level => {}
            other => {
                let detail = format!("{table:?} as {level:?}, state {other:?}");
                return Err(self.refuse(Op::Retire, ErrorKind::Refused, "retire", detail));
            }
        }
        // Hooked nowhere and unpinned (hal-core's promise): no table for the platform any
        // more, whether or not the rest of the retirement goes through (Xen: type count 0);
        // read-only until it does.
        self.state.insert(t, FState::Protected);
        self.count(Op::Retire)?;
        self.state.remove(&t);
        if self.caps.tables_read_only {
            if let Err(why) = self.flip(t, true) {
                return Err(self.refuse(Op::Retire, ErrorKind::Busy, why, format!("{table:?}")));
            }
        }
        Ok(())
    }

    unsafe fn switch_root(&mut self, root: Pfn) -> Result<(), SimError> {
        self.flush()?;
        self.tlb.clear();
        self.count(Op::SwitchRoot)?;
        if self.xen.is_some() {
            let r = root.as_u64();
            let state = self.state.get(&r).copied();
            self.ask_xen(
                Op::SwitchRoot,
                || format!("{root:?}, state {state:?}"),
                |x| x.new_baseptr(r),
            )?;
            self.root = r;
            return Ok(());
        }
        match self.state.get(&root.as_u64()) {
            Some(FState::Table {
                level: TableLevel::L4,
                pinned: true,
            }) => {
                self.root = root.as_u64();
                Ok(())
            }
            other => {
                let detail = format!("{root:?}, state {other:?}");
                Err(self.refuse(
                    Op::SwitchRoot,
                    ErrorKind::Refused,
                    "not a pinned L4",
                    detail,
                ))
            }
        }
    }

    unsafe fn release(&mut self, frames: PfnRange) -> Result<(), SimError> {
        let injected = self.count(Op::Release);
        // Releasing a frame that is plain memory already is harmless (a retry after a partial
        // failure does it); releasing a table is what Xen refuses.
        for p in frames.iter().filter(|_| self.xen.is_none()) {
            if let Some(FState::Table { .. }) = self.state.get(&p.as_u64()) {
                let detail = format!("{p:?}: {:?}", self.state.get(&p.as_u64()));
                return Err(self.refuse(
                    Op::Release,
                    ErrorKind::Busy,
                    "release of a page-table frame",
                    detail,
                ));
            }
        }
        let limit = match injected {
            Ok(()) => frames.len(),
            Err(e) => e.applied.min(frames.len()),
        };
        for (n, p) in frames.iter().enumerate() {
            if n as u64 >= limit {
                break;
            }
            if !self.state.contains_key(&p.as_u64()) {
                continue;
            }
            if self.caps.tables_read_only {
                if let Err(why) = self.flip(p.as_u64(), true) {
                    return Err(self.refuse(Op::Release, ErrorKind::Busy, why, format!("{p:?}")));
                }
            }
            self.state.remove(&p.as_u64());
            self.counts.frames_released += 1;
        }
        injected
    }

    unsafe fn add_window(&mut self, va: u64, pfns: PfnRange) -> Result<(), SimError> {
        self.count(Op::AddWindow)?;
        self.windows.push((va, pfns));
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SimError> {
        self.count(Op::Flush)?;
        self.queued = 0;
        Ok(())
    }

    unsafe fn flush_tlb(&mut self, tlb: &hal_core::TlbBatch) -> Result<(), SimError> {
        self.flush()?;
        self.counts.tlb_flushes += 1;
        if tlb.is_all() {
            self.counts.full_flushes += 1;
            self.tlb.clear();
        } else {
            for &va in tlb.pages() {
                self.counts.invlpgs += 1;
                for l in [TableLevel::L1, TableLevel::L2, TableLevel::L3] {
                    self.tlb.remove(&(va & !(l.entry_span() - 1)));
                }
            }
        }
        Ok(())
    }
}
