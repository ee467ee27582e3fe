//! The simulated machine: frames with contents, Xen's per-frame type bookkeeping, and the
//! checked operations built on it (`mod_lN_entry`, type references, validation).
//!
//! Modelled on Xen's x86 memory code (`xen/arch/x86/mm.c`): a frame has a type (none, writable,
//! L1..L4 page table) and a type count; the type can change only while the count is 0; a
//! page-table type is *validated* when its count goes 0 → 1 (every entry takes a reference on
//! what it points at) and *devalidated* when it drops back to 0. What the model leaves out:
//! general (non-type) references, segment-descriptor and shared types, linear page tables,
//! preemption, `_PAGE_USER` adjustment of guest entries, MMIO.

use std::boxed::Box;
use std::vec::Vec;

use super::errno::{EBUSY, EINVAL};

/// Entry bits the model looks at.
pub mod bits {
    /// Present.
    pub const P: u64 = 1 << 0;
    /// Writable.
    pub const RW: u64 = 1 << 1;
    /// User.
    pub const USER: u64 = 1 << 2;
    /// Write-through.
    pub const PWT: u64 = 1 << 3;
    /// Cache disable.
    pub const PCD: u64 = 1 << 4;
    /// Accessed.
    pub const A: u64 = 1 << 5;
    /// Dirty.
    pub const D: u64 = 1 << 6;
    /// PSE at L2/L3, PAT at L1.
    pub const PSE: u64 = 1 << 7;
    /// Global.
    pub const GLOBAL: u64 = 1 << 8;
    /// Software bits 9..11.
    pub const AVAIL: u64 = 0x7 << 9;
    /// Software bits 52..62.
    pub const AVAIL_HIGH: u64 = 0x7ff << 52;
    /// Xen's `_PAGE_GUEST_KERNEL` (bit 52 of the entry): a kernel mapping of a 64-bit PV
    /// guest, which Xen runs in ring 3 (added to L1 entries that lack `USER`).
    pub const GUEST_KERNEL: u64 = 1 << 52;
    /// Xen's `_PAGE_GNTTAB` (bit 62): refused in L1 entries by debug builds of Xen only.
    pub const GNTTAB: u64 = 1 << 62;
    /// No-execute.
    pub const NX: u64 = 1 << 63;
    /// Address bits 51:12.
    pub const ADDR: u64 = 0x000f_ffff_ffff_f000;
}
use bits::*;

/// Flags Xen accepts in any entry (`base_disallow_mask` is the complement).
const BASE_ALLOWED: u64 = P | RW | USER | A | D | AVAIL | AVAIL_HIGH | NX;
/// Flags whose change alone takes Xen's fast path (no new references) in an L1 entry.
const FASTPATH_L1: u64 = NX | AVAIL_HIGH | AVAIL | GLOBAL | D | A | USER;

/// Xen's L4 slots (256..272): the guest may not write them; Xen fills them on validation.
pub const XEN_SLOTS: core::ops::Range<usize> = 256..272;
/// A machine frame of Xen's own, which the model puts in L4 slot 256 (the M2P) of every
/// root it validates.
pub const XEN_M2P_L3_MFN: u64 = 0x1;

/// A frame's type (Xen's `PGT_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageType {
    /// Never typed.
    None,
    /// Mapped writable (or written through `mmu_update` as plain memory).
    Writable,
    /// Level-1 page table.
    L1,
    /// Level-2 page table.
    L2,
    /// Level-3 page table.
    L3,
    /// Level-4 page table.
    L4,
}

impl PageType {
    /// Whether this is a page-table type.
    pub const fn is_table(self) -> bool {
        matches!(self, Self::L1 | Self::L2 | Self::L3 | Self::L4)
    }

    /// The page-table type of level `n` (1..=4).
    pub const fn table(n: u8) -> Self {
        match n {
            1 => Self::L1,
            2 => Self::L2,
            3 => Self::L3,
            _ => Self::L4,
        }
    }

    const fn child(self) -> Self {
        match self {
            Self::L4 => Self::L3,
            Self::L3 => Self::L2,
            Self::L2 => Self::L1,
            other => other,
        }
    }
}

/// What the model knows about one frame of the domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameState {
    /// Its machine frame.
    pub mfn: u64,
    /// Its type.
    pub ty: PageType,
    /// Its type count.
    pub count: u32,
    /// Whether it is pinned.
    pub pinned: bool,
}

impl FrameState {
    /// Writable mappings of the frame in validated tables.
    pub fn writable_mappings(&self) -> u32 {
        if self.ty == PageType::Writable {
            self.count
        } else {
            0
        }
    }

    /// Whether Xen sees the frame as a page table now.
    pub fn is_table(&self) -> bool {
        self.ty.is_table() && self.count > 0
    }
}

/// One machine frame of the domain.
#[derive(Clone, Debug)]
pub struct FrameInfo {
    /// Its type.
    pub ty: PageType,
    /// Its type count (for `Writable`: the writable mappings in validated L1 tables).
    pub count: u32,
    /// Pinned (holds one type reference).
    pub pinned: bool,
    /// Linear page-table bookkeeping (Xen's `linear_pt_count`): > 0, entries of this table
    /// that map another table of its own level; < 0, entries of other tables of its level
    /// that map this one. A table is never both.
    pub linear: i32,
    data: Option<Box<[u64; 512]>>,
}

/// Counts the model keeps of what it was asked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Hypercalls (a multicall counts once, its entries not).
    pub hypercalls: u64,
    /// `mmu_update` requests applied.
    pub updates_applied: u64,
    /// `mmuext_op` commands applied.
    pub ext_ops_applied: u64,
    /// Non-present entries that were not all zeros (Xen's L1TF checks would act on them).
    pub nonzero_not_present: u64,
}

impl FrameInfo {
    const EMPTY: FrameInfo = FrameInfo {
        ty: PageType::None,
        count: 0,
        pinned: false,
        linear: 0,
        data: None,
    };
}

/// A frame nobody has typed or written yet (what a sparse store returns for it).
static EMPTY_FRAME: FrameInfo = FrameInfo::EMPTY;

/// Where the machine keeps its frames.
#[derive(Clone, Debug)]
pub(super) enum Store {
    /// A domain's frames `[mfn_base, mfn_base + frames.len())`, with the M2P.
    Dense {
        frames: Vec<FrameInfo>,
        /// (mfn - mfn_base) → pfn.
        m2p: Vec<u64>,
    },
    /// Frames in the ranges of `owned` (mfns), kept in chunks of 512 (mfn / 512 → chunk)
    /// once one of a chunk is typed or written; pfn = mfn - mfn_base
    /// ([`Rules`](super::Rules)).
    Sparse {
        owned: Vec<core::ops::Range<u64>>,
        chunks: std::collections::HashMap<u64, Box<Chunk>, ChunkHash>,
    },
}

/// 512 frames of a sparse store.
pub(super) type Chunk = [FrameInfo; 512];

/// Hashes a chunk number by one multiplication (the default hasher costs more than the
/// lookup it serves, and chunk numbers need no protection from collisions).
pub(super) type ChunkHash = core::hash::BuildHasherDefault<ChunkHasher>;

/// See [`ChunkHash`]; also the hal-core tests' maps (small integer keys).
#[derive(Default)]
pub struct ChunkHasher(u64);

impl core::hash::Hasher for ChunkHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// The machine: the frames of the domain (see [`Store`]).
#[derive(Clone, Debug)]
pub struct Machine {
    pub(super) mfn_base: u64,
    pub(super) store: Store,
    /// pfn → mfn (empty for a sparse store).
    pub(super) p2m: Vec<u64>,
    /// The machine frame of the current root.
    pub(super) cr3: u64,
    /// Whether PWT/PCD/PAT are allowed in L1 entries (Xen: `cache_flush_permitted`, dom0).
    pub(super) cache_attrs: bool,
    /// Whether Xen adds `GLOBAL` to the guest's user L1 entries.
    pub(super) global_user_pages: bool,
    pub(super) stats: Stats,
    /// The guest CPU's TLB: virtual page → (pfn, machine address of the page, writable),
    /// filled by successful guest accesses, emptied only by invalidations (the guest's, and
    /// Xen's own on a change of a frame's type or of the root).
    pub(super) tlb: Tlb,
}

/// The guest TLB's map: virtual page → (pfn, machine address of the page, writable).
pub(super) type Tlb =
    std::collections::HashMap<u64, (u64, u64, bool), core::hash::BuildHasherDefault<PageHasher>>;

/// A hasher for page-aligned virtual addresses, the TLB's keys: the page number (the key
/// rotated by 12) times an odd constant, so that both the low bits (the bucket) and the high
/// bits (hashbrown's tag) differ between neighbouring pages.
/// The keys come from the model's own tests, not from an adversary, so SipHash's resistance
/// to chosen collisions buys nothing and costs most of a TLB look-up.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct PageHasher(u64);

impl core::hash::Hasher for PageHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }

    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0 ^ v.rotate_right(12)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

impl Machine {
    /// A machine whose frames back `p2m` (pfn → mfn; every mfn in `[mfn_base, mfn_base + n)`).
    pub fn new(p2m: Vec<u64>, mfn_base: u64, cache_attrs: bool) -> Self {
        let n = p2m.len();
        let mut m2p = std::vec![u64::MAX; n];
        for (pfn, &mfn) in p2m.iter().enumerate() {
            let i = usize::try_from(mfn - mfn_base).expect("mfn in range");
            assert_eq!(m2p[i], u64::MAX, "the P2M maps two pfns to mfn {mfn:#x}");
            m2p[i] = pfn as u64;
        }
        let frames = (0..n).map(|_| FrameInfo::EMPTY).collect();
        Self {
            mfn_base,
            store: Store::Dense { frames, m2p },
            p2m,
            cr3: 0,
            cache_attrs,
            global_user_pages: true,
            stats: Stats::default(),
            tlb: Tlb::default(),
        }
    }

    /// A machine with no frames yet, kept sparsely: frames join with
    /// [`add_frames`](Self::add_frames), pfn = mfn - `mfn_base`, no P2M list.
    pub fn sparse(mfn_base: u64, cache_attrs: bool) -> Self {
        Self {
            mfn_base,
            store: Store::Sparse {
                owned: Vec::new(),
                chunks: std::collections::HashMap::default(),
            },
            p2m: Vec::new(),
            cr3: 0,
            cache_attrs,
            global_user_pages: false,
            stats: Stats::default(),
            tlb: Tlb::default(),
        }
    }

    /// Makes `mfns` the domain's (a sparse store only; a dense one has its frames).
    pub(super) fn add_frames(&mut self, mfns: core::ops::Range<u64>) {
        if let Store::Sparse { owned, .. } = &mut self.store {
            owned.push(mfns);
        }
    }

    /// Whether `mfn` is one of the domain's frames.
    pub fn owns(&self, mfn: u64) -> bool {
        match &self.store {
            Store::Dense { frames, .. } => mfn
                .checked_sub(self.mfn_base)
                .is_some_and(|i| i < frames.len() as u64),
            Store::Sparse { owned, .. } => owned.iter().any(|r| r.contains(&mfn)),
        }
    }

    /// The frame `mfn`, if the domain's.
    pub fn frame(&self, mfn: u64) -> Option<&FrameInfo> {
        match &self.store {
            Store::Dense { frames, .. } => {
                frames.get(usize::try_from(mfn.checked_sub(self.mfn_base)?).ok()?)
            }
            Store::Sparse { chunks, .. } => {
                if let Some(c) = chunks.get(&(mfn >> 9)) {
                    self.owns(mfn).then(|| &c[(mfn & 511) as usize])
                } else {
                    self.owns(mfn).then_some(&EMPTY_FRAME)
                }
            }
        }
    }

    pub(super) fn frame_mut(&mut self, mfn: u64) -> Option<&mut FrameInfo> {
        let owned = self.owns(mfn);
        match &mut self.store {
            Store::Dense { frames, .. } => {
                frames.get_mut(usize::try_from(mfn.checked_sub(self.mfn_base)?).ok()?)
            }
            Store::Sparse { chunks, .. } => owned.then(|| {
                &mut chunks
                    .entry(mfn >> 9)
                    .or_insert_with(|| Box::new([FrameInfo::EMPTY; 512]))
                    [(mfn & 511) as usize]
            }),
        }
    }

    /// The pfn of `mfn`, if the domain's.
    pub fn m2p(&self, mfn: u64) -> Option<u64> {
        match &self.store {
            Store::Dense { m2p, .. } => m2p
                .get(usize::try_from(mfn.checked_sub(self.mfn_base)?).ok()?)
                .copied(),
            Store::Sparse { .. } => self.owns(mfn).then(|| mfn - self.mfn_base),
        }
    }

    /// Every frame kept (for a sparse store, those typed or written), with its mfn.
    fn each_frame(&self) -> std::boxed::Box<dyn Iterator<Item = (u64, &FrameInfo)> + '_> {
        match &self.store {
            Store::Dense { frames, .. } => std::boxed::Box::new(
                frames
                    .iter()
                    .enumerate()
                    .map(|(i, f)| (i as u64 + self.mfn_base, f)),
            ),
            Store::Sparse { chunks, .. } => {
                std::boxed::Box::new(chunks.iter().flat_map(|(c, fs)| {
                    fs.iter()
                        .enumerate()
                        .map(move |(i, f)| ((c << 9) | i as u64, f))
                        .filter(|(m, _)| self.owns(*m))
                }))
            }
        }
    }

    /// Entry `idx` of frame `mfn` (zero for a frame never written). Panics if not the
    /// domain's.
    pub fn entry(&self, mfn: u64, idx: usize) -> u64 {
        let f = self.frame(mfn).expect("a frame of the domain");
        f.data.as_ref().map_or(0, |d| d[idx])
    }

    /// All 512 entries of frame `mfn`.
    pub fn entries(&self, mfn: u64) -> [u64; 512] {
        let f = self.frame(mfn).expect("a frame of the domain");
        f.data.as_deref().copied().unwrap_or([0; 512])
    }

    /// Stores `val` into entry `idx` of frame `mfn` without any check.
    pub(super) fn poke(&mut self, mfn: u64, idx: usize, val: u64) {
        let f = self.frame_mut(mfn).expect("a frame of the domain");
        if f.data.is_none() && val == 0 {
            return;
        }
        f.data.get_or_insert_with(|| Box::new([0; 512]))[idx] = val;
    }

    /// Takes a type reference of type `want` on `mfn` (Xen's `get_page_and_type_from_mfn`):
    /// 0 → 1 may change the type and validates a page-table type.
    pub(super) fn get_type(&mut self, mfn: u64, want: PageType) -> Result<(), i64> {
        let f = self.frame_mut(mfn).ok_or(EINVAL)?;
        if f.count == 0 && f.ty != want {
            // Xen flushes TLBs that may still map the frame with its old type.
            self.tlb.clear();
        }
        let f = self.frame_mut(mfn).ok_or(EINVAL)?;
        if f.count == 0 {
            f.ty = want;
            f.count = 1;
            if want.is_table() {
                if let Err(e) = self.validate(mfn, want) {
                    self.frame_mut(mfn).expect("checked").count = 0;
                    return Err(e);
                }
            }
            Ok(())
        } else if f.ty == want {
            f.count += 1;
            Ok(())
        } else {
            Err(EINVAL)
        }
    }

    /// `MMUEXT_PIN_L<n>_TABLE`: a type reference of table type `ty` held by the pin.
    pub(super) fn pin(&mut self, mfn: u64, ty: PageType) -> Result<(), i64> {
        if !self.owns(mfn) {
            return Err(EINVAL);
        }
        self.get_type(mfn, ty)?;
        let f = self.frame_mut(mfn).expect("owned");
        if f.pinned {
            self.put_type(mfn);
            return Err(EINVAL);
        }
        f.pinned = true;
        Ok(())
    }

    /// `MMUEXT_UNPIN_TABLE`: the pin's reference dropped.
    pub(super) fn unpin(&mut self, mfn: u64) -> Result<(), i64> {
        let f = self.frame_mut(mfn).ok_or(EINVAL)?;
        if !f.pinned {
            return Err(EINVAL);
        }
        f.pinned = false;
        self.put_type(mfn);
        Ok(())
    }

    /// `MMUEXT_NEW_BASEPTR`: `mfn` validated as an L4 and in CR3, the old root's reference
    /// dropped, the TLB flushed.
    pub(super) fn new_baseptr(&mut self, mfn: u64) -> Result<(), i64> {
        if mfn == self.cr3 {
            return Ok(());
        }
        self.get_type(mfn, PageType::L4)?;
        let old = self.cr3;
        self.cr3 = mfn;
        self.put_type(old);
        self.tlb.clear();
        Ok(())
    }

    /// Drops a type reference; a page-table type dropping to 0 is devalidated.
    pub(super) fn put_type(&mut self, mfn: u64) {
        let f = self.frame_mut(mfn).expect("a typed frame of the domain");
        assert!(f.count > 0, "type count underflow on mfn {mfn:#x}");
        f.count -= 1;
        if f.count == 0 && f.ty.is_table() {
            let ty = f.ty;
            let entries = self.entries(mfn);
            for (i, &e) in entries.iter().enumerate() {
                if !(ty == PageType::L4 && XEN_SLOTS.contains(&i)) {
                    self.put_entry_ref(mfn, ty, e);
                }
            }
        }
    }

    /// Validation of a new page-table type: every entry takes its reference; on failure the
    /// references taken so far are dropped again.
    fn validate(&mut self, mfn: u64, ty: PageType) -> Result<(), i64> {
        let entries = self.entries(mfn);
        for (i, &e) in entries.iter().enumerate() {
            if ty == PageType::L4 && XEN_SLOTS.contains(&i) {
                continue;
            }
            if e & P == 0 {
                if e != 0 {
                    self.stats.nonzero_not_present += 1;
                }
                continue;
            }
            if let Err(err) = self.get_entry_ref(mfn, ty, e) {
                for (j, &done) in entries.iter().enumerate().take(i) {
                    if !(ty == PageType::L4 && XEN_SLOTS.contains(&j)) {
                        self.put_entry_ref(mfn, ty, done);
                    }
                }
                return Err(err);
            }
            if ty == PageType::L1 {
                // Xen rewrites each entry it accepts in place (the entries before a
                // refused one stay rewritten).
                let adjusted = self.adjust_l1e(e);
                self.poke(mfn, i, adjusted);
            }
        }
        if ty == PageType::L4 {
            // Xen writes its own slots into every root it validates.
            for i in XEN_SLOTS {
                self.poke(mfn, i, 0);
            }
            self.poke(mfn, XEN_SLOTS.start, (XEN_M2P_L3_MFN << 12) | P | USER | A);
        }
        Ok(())
    }

    /// What Xen stores for an L1 entry of a 64-bit PV guest (`adjust_guest_l1e`): a kernel
    /// mapping (no `USER`) gets `USER` and Xen's guest-kernel mark (bit 52, which L2..L4 entries
    /// may carry); a user mapping gets `GLOBAL` where Xen uses global pages for guests
    /// ([`DomainConfig::global_user_pages`](super::DomainConfig::global_user_pages)), which
    /// makes the entry invalid should the frame later be used as an L2..L4 table.
    fn adjust_l1e(&self, e: u64) -> u64 {
        if e & P == 0 {
            e
        } else if e & USER == 0 {
            e | USER | GUEST_KERNEL
        } else if self.global_user_pages {
            e | GLOBAL
        } else {
            e
        }
    }

    fn l1_disallowed(&self) -> u64 {
        let cache = PWT | PCD | PSE;
        // Xen refuses `_PAGE_GNTTAB` (bit 62) only in debug builds: release builds define it
        // as 0, and Xen 4.17 as packaged accepted an L1 entry with bit 62 on real hardware
        // (the refusals example), so the model accepts it too.
        let mut d = !(BASE_ALLOWED) & !GLOBAL;
        if self.cache_attrs {
            d &= !cache;
        }
        d & !ADDR
    }

    /// The reference entry `e` of table `table`, of type `ty`, holds (Xen's
    /// `get_page_from_lNe`).
    fn get_entry_ref(&mut self, table: u64, ty: PageType, e: u64) -> Result<(), i64> {
        debug_assert!(e & P != 0);
        let target = (e & ADDR) >> 12;
        if ty == PageType::L1 {
            if e & self.l1_disallowed() != 0 {
                return Err(EINVAL);
            }
            if !self.owns(target) {
                return Err(EBUSY);
            }
            if e & RW != 0 && self.get_type(target, PageType::Writable).is_err() {
                return Err(EBUSY);
            }
            return Ok(());
        }
        if e & !BASE_ALLOWED & !ADDR != 0 {
            return Err(EINVAL);
        }
        // A child that cannot take the type is -EINVAL, unless the entry is a linear one;
        // a child that fails its own validation passes its errno up.
        match self.get_type(target, ty.child()) {
            Err(EINVAL) if self.get_linear(table, ty, e) => Ok(()),
            other => other,
        }
    }

    /// A linear page-table entry (Xen's `get_lN_linear_pagetable`, with `pv-linear-pt`
    /// on, its default): a read-only entry of `table` (type `ty`, L2..L4) that maps `table`
    /// itself (no reference), or another validated table of type `ty` (a type reference),
    /// provided neither is on the wrong side of another linear entry.
    fn get_linear(&mut self, table: u64, ty: PageType, e: u64) -> bool {
        let target = (e & ADDR) >> 12;
        if e & RW != 0 {
            return false;
        }
        if target == table {
            return true;
        }
        let (Some(t), Some(p)) = (self.frame(target), self.frame(table)) else {
            return false;
        };
        if p.linear < 0 || t.linear > 0 || t.ty != ty || t.count == 0 {
            return false;
        }
        let t = self.frame_mut(target).expect("checked");
        t.count += 1;
        t.linear -= 1;
        self.frame_mut(table).expect("checked").linear += 1;
        true
    }

    fn put_entry_ref(&mut self, table: u64, ty: PageType, e: u64) {
        if e & P == 0 {
            return;
        }
        let target = (e & ADDR) >> 12;
        if ty == PageType::L1 {
            if e & RW != 0 {
                self.put_type(target);
            }
            return;
        }
        if target == table {
            return;
        }
        if self
            .frame(target)
            .is_some_and(|t| t.ty == ty && t.linear < 0)
        {
            self.frame_mut(target).expect("checked").linear += 1;
            self.frame_mut(table).expect("a table of the domain").linear -= 1;
        }
        self.put_type(target);
    }

    /// A checked update of entry `idx` of validated table `mfn` (Xen's `mod_lN_entry`).
    pub(super) fn mod_entry(&mut self, mfn: u64, idx: usize, new: u64) -> Result<(), i64> {
        let ty = self.frame(mfn).expect("a table of the domain").ty;
        if ty == PageType::L4 && XEN_SLOTS.contains(&idx) {
            return Err(EINVAL);
        }
        let old = self.entry(mfn, idx);
        if new & P != 0 {
            let disallowed = if ty == PageType::L1 {
                self.l1_disallowed()
            } else {
                !BASE_ALLOWED & !ADDR
            };
            if new & disallowed != 0 {
                return Err(EINVAL);
            }
            let fast = if ty == PageType::L1 {
                FASTPATH_L1
            } else {
                FASTPATH_L1 | RW
            };
            let stored = if ty == PageType::L1 {
                self.adjust_l1e(new)
            } else {
                new
            };
            if old & P != 0 && (old ^ new) & !fast == 0 {
                self.poke(mfn, idx, stored);
                return Ok(());
            }
            self.get_entry_ref(mfn, ty, new)?;
            self.poke(mfn, idx, stored);
            self.put_entry_ref(mfn, ty, old);
            return Ok(());
        } else if new != 0 {
            self.stats.nonzero_not_present += 1;
        }
        self.poke(mfn, idx, new);
        self.put_entry_ref(mfn, ty, old);
        Ok(())
    }

    /// One `mmu_update` request (`MMU_NORMAL_PT_UPDATE` semantics): a checked update if the
    /// frame is a validated table, a plain write if it can be typed writable, -EINVAL
    /// otherwise.
    pub(super) fn update(&mut self, ptr: u64, val: u64) -> Result<(), i64> {
        let mfn = ptr >> 12;
        let idx = ((ptr & 0xfff) >> 3) as usize;
        let f = self.frame_mut(mfn).ok_or(EINVAL)?;
        if f.ty.is_table() && f.count > 0 {
            self.mod_entry(mfn, idx, val)
        } else if f.count == 0 || f.ty == PageType::Writable {
            if f.count == 0 {
                f.ty = PageType::Writable;
            }
            self.poke(mfn, idx, val);
            Ok(())
        } else {
            Err(EINVAL)
        }
    }

    /// The L1 table and slot that map `va` in the current root, if there is one.
    pub(super) fn l1_slot(&self, va: u64) -> Option<(u64, usize)> {
        let mut table = self.cr3;
        for level in (2..=4u32).rev() {
            let idx = ((va >> (12 + 9 * (level - 1))) & 0x1ff) as usize;
            let e = self.entry_or_zero(table, idx);
            if e & P == 0 || (level < 4 && e & PSE != 0) {
                return None;
            }
            table = (e & ADDR) >> 12;
        }
        Some((table, ((va >> 12) & 0x1ff) as usize))
    }

    fn entry_or_zero(&self, mfn: u64, idx: usize) -> u64 {
        if self.owns(mfn) {
            self.entry(mfn, idx)
        } else {
            0
        }
    }

    /// Recounts every type reference from the validated tables, the pins and CR3, and
    /// compares with the stored counts. Returns the first disagreement.
    pub fn audit(&self) -> Result<(), std::string::String> {
        use std::collections::HashMap;
        let mut want: HashMap<u64, (u32, PageType)> = HashMap::new();
        let mut note = |mfn: u64, ty: PageType| -> Result<(), std::string::String> {
            let w = want.entry(mfn).or_insert((0, ty));
            if w.1 != ty {
                return Err(std::format!(
                    "frame {mfn:#x} referenced as {:?} and {ty:?}",
                    w.1
                ));
            }
            w.0 += 1;
            Ok(())
        };
        for (mfn, f) in self.each_frame() {
            if f.pinned {
                note(mfn, f.ty)?;
            }
            if !(f.ty.is_table() && f.count > 0) {
                continue;
            }
            // A frame never written holds no present entry.
            let Some(entries) = f.data.as_deref() else {
                continue;
            };
            for (slot, e) in entries.iter().enumerate() {
                if e & P == 0 || (f.ty == PageType::L4 && XEN_SLOTS.contains(&slot)) {
                    continue;
                }
                let t = (e & ADDR) >> 12;
                let target = self
                    .frame(t)
                    .ok_or_else(|| std::format!("mfn {mfn:#x} slot {slot} maps a foreign frame"))?;
                let linear = target.ty == f.ty && e & RW == 0;
                match f.ty {
                    PageType::L1 if e & RW != 0 => note(t, PageType::Writable)?,
                    PageType::L1 => {}
                    _ if t == mfn => {}
                    ty if linear => note(t, ty)?,
                    ty => note(t, ty.child())?,
                }
            }
        }
        if self.owns(self.cr3) {
            note(self.cr3, PageType::L4)?;
        }
        let wrong = |mfn: u64, f: &FrameInfo, w: Option<&(u32, PageType)>| {
            let (n, ty) = w.map_or((0, None), |(n, ty)| (*n, Some(*ty)));
            (f.count != n || (n > 0 && ty != Some(f.ty))).then(|| {
                std::format!(
                    "mfn {mfn:#x}: stored {:?} x{} (pinned {}), recounted {ty:?} x{n}",
                    f.ty,
                    f.count,
                    f.pinned,
                )
            })
        };
        for (mfn, f) in self.each_frame() {
            if let Some(e) = wrong(mfn, f, want.get(&mfn)) {
                return Err(e);
            }
        }
        for (mfn, w) in &want {
            let f = self.frame(*mfn).expect("noted frames are the domain's");
            if let Some(e) = wrong(*mfn, f, Some(w)) {
                return Err(e);
            }
        }
        Ok(())
    }
}
