//! A host-side model of Xen's page-table rules behind the same [`RawHypercall`] and
//! [`PvPlatform`] traits as the real hypervisor, so that the backend's logic runs unchanged in
//! host tests.
//!
//! # What it models
//! - Simulated machine memory: the domain's frames, each 512 `u64` entries (allocated on first
//!   write), and a P2M that is *not* the identity ([`DomainConfig::mfn_base`]).
//! - Per machine frame, Xen's bookkeeping: type (none, writable, L1..L4), type count, pinned.
//!   A writable mapping in a validated L1 holds a `writable` type reference, so the count of a
//!   writable frame is the number of its writable mappings.
//! - `mmu_update`: a checked update of a validated table, a plain write to any other frame
//!   that can be typed writable, `success_count` on error. The checks: a writable L1 entry
//!   for a frame that is a page table → -EBUSY; an entry in L2..L4 (or pinning) that makes a
//!   frame a page table while it has a writable mapping → -EINVAL, validating the child's
//!   subtree first; PSE (and PWT/PCD/GLOBAL) in L2..L4 → -EINVAL; L4 slots 256..272 → -EINVAL.
//! - `mmuext_op`: PIN_L1..L4 (-EINVAL if pinned already, or if validation fails), UNPIN
//!   (-EINVAL if not pinned), NEW_BASEPTR (validates the new root; the old one's reference is
//!   dropped, the TLB flushed), TLB operations on the guest TLB below.
//! - `update_va_mapping` through the current root (-EINVAL without an L1) with its flush
//!   flags (`UVMF_INVLPG`, `UVMF_TLB_FLUSH`), `multicall` with a result per entry (a failing
//!   entry does not stop the batch).
//! - The guest CPU's TLB: [`Model::store`] and [`Model::load`] go through it; it keeps what
//!   they walked until `INVLPG_LOCAL`/`_ALL`, `TLB_FLUSH_LOCAL`/`_ALL`, the `UVMF` flags, a new
//!   base pointer or a change of a frame's type (Xen's own flush) drops it. A missing
//!   invalidation shows as a stale translation.
//! - The guest itself: [`Model::store`] is a store through the current root (the #PF of a
//!   read-only mapping), [`PvPlatform::read_u64`] a load, [`PvPlatform::mfn_to_pfn`] the M2P.
//!
//! - The same rules on their own, [`Rules`], over frames a test backend names and keeps its
//!   own copy of: hal-core's tests' simulated backend hands every table update, pin, unpin
//!   and root change to it and takes its verdict (one model of Xen's rules in the workspace).
//!
//! # What it leaves out
//! General references, linear page tables, preemption/continuations, segment descriptors,
//! grant and foreign mappings, MMIO, `_PAGE_USER` adjustment, large-page TLB entries. Frame contents other than
//! page-table entries are not kept.

mod domain;
mod errno;
mod machine;
mod rules;
#[cfg(test)]
mod tests;

use std::cell::{Cell, RefCell};
use std::string::String;

pub use domain::{BootImage, DomainConfig};
pub use machine::{bits, FrameState, PageType, Stats, XEN_SLOTS};
pub use rules::Rules;

use machine::Machine;

use crate::hypercall::abi::{mmu, mmuext, nr, uvmf, DOMID_SELF};
use crate::hypercall::{MmuUpdate, MmuextOp, MulticallEntry, RawHypercall, TrapInfo};
use crate::mmu::PvPlatform;
use errno::{EINVAL, ENOSYS, ESRCH};

/// Why a guest store (or load) through the current root faults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The address is not canonical.
    NonCanonical,
    /// It lies in Xen's part of the address space (L4 slots 256..272).
    XenArea,
    /// The entry at `level` is not present.
    NotPresent {
        /// Level of the entry (4..1).
        level: u8,
    },
    /// The entry at `level` is read-only (for a store).
    ReadOnly {
        /// Level of the entry (4..1).
        level: u8,
    },
    /// A large-page entry (64-bit PV has none).
    LargePage {
        /// Level of the entry.
        level: u8,
    },
}

/// The model: a domain on a simulated Xen. Interior mutability, because the hypercall traits
/// take `&self`.
#[derive(Debug)]
pub struct Model {
    m: RefCell<Machine>,
    boot: BootImage,
    /// Whether the backend may store ([`PvPlatform::can_store`]); off unless a test turns it
    /// on ([`Model::set_stores`]).
    stores: Cell<bool>,
    /// The backend's stores so far.
    stored: Cell<u64>,
}

/// A copy of the domain in its present state (every frame, Xen's bookkeeping, the TLB): for
/// tests that start many runs from one freshly built domain.
impl Clone for Model {
    fn clone(&self) -> Self {
        Self {
            m: RefCell::new(self.m.borrow().clone()),
            boot: self.boot.clone(),
            stores: self.stores.clone(),
            stored: self.stored.clone(),
        }
    }
}

impl Model {
    /// A domain built as Xen's domain builder does (see [`DomainConfig`]).
    pub fn new(cfg: DomainConfig) -> Self {
        let (m, boot) = domain::build(cfg);
        Self {
            m: RefCell::new(m),
            boot,
            stores: Cell::new(false),
            stored: Cell::new(0),
        }
    }

    /// Lets the backend store into guest memory as a CPU would ([`PvPlatform::write_u64`]
    /// through [`Model::write`]: a store that faults is a bug of the backend's, and panics).
    /// Off by default: the backend then queues every entry.
    pub fn set_stores(&self, on: bool) {
        self.stores.set(on);
    }

    /// The backend's stores so far.
    pub fn stored(&self) -> u64 {
        self.stored.get()
    }

    /// What the domain builder handed the guest.
    pub fn boot(&self) -> &BootImage {
        &self.boot
    }

    /// The state of pseudo-physical frame `pfn`.
    pub fn frame(&self, pfn: u64) -> FrameState {
        let m = self.m.borrow();
        let mfn = m.p2m[pfn as usize];
        let f = m.frame(mfn).expect("the domain's frame");
        FrameState {
            mfn,
            ty: f.ty,
            count: f.count,
            pinned: f.pinned,
        }
    }

    /// The pfn of the current root.
    pub fn current_root(&self) -> u64 {
        let m = self.m.borrow();
        m.m2p(m.cr3).expect("the root is the domain's")
    }

    /// What the model counted.
    pub fn stats(&self) -> Stats {
        self.m.borrow().stats
    }

    /// Recounts every type reference and compares with the bookkeeping (see
    /// `Machine::audit`): `Err` names the first frame whose count or type is wrong, or a frame
    /// that is a page table and mapped writable at once.
    pub fn audit(&self) -> Result<(), String> {
        self.m.borrow().audit()
    }

    /// A guest store of 8 bytes at `va` through the current root: `Ok(pfn)` of the frame
    /// written, or the fault the CPU would raise.
    pub fn store(&self, va: u64) -> Result<u64, Fault> {
        self.walk(va, true)
    }

    /// A guest store of `val` at `va` (8-byte aligned) through the current root: the frame's
    /// contents change as the CPU's store would change them. `Ok(pfn)` of the frame written,
    /// or the fault (nothing changed).
    pub fn write(&self, va: u64, val: u64) -> Result<u64, Fault> {
        let mut m = self.m.borrow_mut();
        let w = walk_all(&m, va & !7)?;
        let (mfn, idx) = (w.maddr >> 12, ((w.maddr & 0xfff) >> 3) as usize);
        if let Some(level) = w.read_only {
            // Xen's writable page tables: a store through a read-only leaf (whatever the
            // levels above say) to a validated L1 table is emulated as a checked update of
            // that entry; a refused update is the #PF.
            let f = m.frame(mfn).expect("owned");
            if !w.leaf_rw && f.ty == PageType::L1 && f.count > 0 {
                return match m.mod_entry(mfn, idx, val) {
                    Ok(()) => Ok(w.pfn),
                    Err(_) => Err(Fault::ReadOnly { level }),
                };
            }
            return Err(Fault::ReadOnly { level });
        }
        m.poke(mfn, idx, val);
        Ok(w.pfn)
    }

    /// A guest load at `va`: `Ok(pfn)` of the frame read, or the fault.
    pub fn load(&self, va: u64) -> Result<u64, Fault> {
        self.walk(va, false)
    }

    /// The entry `idx` of the frame `pfn`, raw (machine addresses).
    pub fn raw_entry(&self, pfn: u64, idx: usize) -> u64 {
        let m = self.m.borrow();
        let mfn = m.p2m[pfn as usize];
        m.entry(mfn, idx)
    }

    /// A guest access: through the TLB if it holds the page (a store to a page cached
    /// read-only faults, as on the CPU, and the fault drops the entry), else a walk whose
    /// result the TLB keeps.
    fn walk(&self, va: u64, write: bool) -> Result<u64, Fault> {
        let mut m = self.m.borrow_mut();
        let page = va & !0xfff;
        if let Some(&(pfn, _, rw)) = m.tlb.get(&page) {
            if !write || rw {
                return Ok(pfn);
            }
            m.tlb.remove(&page);
            return Err(Fault::ReadOnly { level: 1 });
        }
        // One walk says both whether this access may go through and whether the page is
        // writable (what the TLB keeps).
        let w = walk_all(&m, va)?;
        match w.read_only {
            Some(level) if write => Err(Fault::ReadOnly { level }),
            read_only => {
                m.tlb
                    .insert(page, (w.pfn, w.maddr & !0xfff, read_only.is_none()));
                Ok(w.pfn)
            }
        }
    }

    /// Pages the guest's TLB holds now.
    pub fn tlb_entries(&self) -> usize {
        self.m.borrow().tlb.len()
    }

    /// The page walk of `pages` pages from `va` through the current root, as the CPU would
    /// walk each of them (without the TLB, which it neither reads nor fills): `f(i, result)`
    /// for page `i`, the upper levels walked once per 2 MiB. For checks over large ranges.
    pub fn translate_pages(
        &self,
        va: u64,
        pages: u64,
        mut f: impl FnMut(u64, Result<Translation, Fault>),
    ) {
        let m = self.m.borrow();
        let mut upper = (u64::MAX, Err(Fault::NonCanonical));
        for i in 0..pages {
            let v = va.wrapping_add(i << 12);
            let key = v >> 21;
            if i == 0 || upper.0 != key {
                upper = (key, walk_upper(&m, v));
            }
            let walked = match &upper.1 {
                Ok(u) => walk_leaf(&m, u, v),
                Err(e) => Err(*e),
            };
            f(
                i,
                walked.map(|w| Translation {
                    pfn: w.pfn,
                    writable: w.read_only.is_none(),
                }),
            );
        }
    }
}

/// Walks `va` through the current root: the pfn and the machine address it reaches.
fn walk(m: &Machine, va: u64, write: bool) -> Result<(u64, u64), Fault> {
    let w = walk_all(m, va)?;
    match w.read_only {
        Some(level) if write => Err(Fault::ReadOnly { level }),
        _ => Ok((w.pfn, w.maddr)),
    }
}

/// Where a walk of `va` ends, and the highest level whose entry is read-only.
struct Walked {
    pfn: u64,
    maddr: u64,
    read_only: Option<u8>,
    leaf_rw: bool,
}

/// Walks `va` through the current root. As the CPU does, a not-present entry anywhere on the
/// way is the fault (a write fault on a read-only entry above it reports "not present" too);
/// permissions are judged once the whole walk is present.
fn walk_all(m: &Machine, va: u64) -> Result<Walked, Fault> {
    walk_upper(m, va).and_then(|u| walk_leaf(m, &u, va))
}

/// Where the walk of `va` stands after levels 4..2: the L1 table and the highest level above
/// it whose entry is read-only. Every page of the same 2 MiB shares it.
struct Upper {
    l1: u64,
    read_only: Option<u8>,
}

fn walk_upper(m: &Machine, va: u64) -> Result<Upper, Fault> {
    let top = va >> 47;
    if top != 0 && top != 0x1ffff {
        return Err(Fault::NonCanonical);
    }
    if XEN_SLOTS.contains(&(((va >> 39) & 0x1ff) as usize)) {
        return Err(Fault::XenArea);
    }
    let mut table = m.cr3;
    let mut read_only = None;
    for level in (2..=4u8).rev() {
        let e = m.entry(table, level_index(va, level));
        if e & bits::P == 0 {
            return Err(Fault::NotPresent { level });
        }
        if level < 4 && e & bits::PSE != 0 {
            return Err(Fault::LargePage { level });
        }
        if e & bits::RW == 0 && read_only.is_none() {
            read_only = Some(level);
        }
        table = (e & bits::ADDR) >> 12;
        if !m.owns(table) {
            return Err(Fault::NotPresent { level });
        }
    }
    Ok(Upper {
        l1: table,
        read_only,
    })
}

/// The last step of the walk of `va`, from the L1 table `walk_upper` reached.
fn walk_leaf(m: &Machine, u: &Upper, va: u64) -> Result<Walked, Fault> {
    let e = m.entry(u.l1, level_index(va, 1));
    if e & bits::P == 0 {
        return Err(Fault::NotPresent { level: 1 });
    }
    let leaf_rw = e & bits::RW != 0;
    let read_only = u.read_only.or((!leaf_rw).then_some(1));
    let frame = (e & bits::ADDR) >> 12;
    let pfn = m.m2p(frame).ok_or(Fault::NotPresent { level: 1 })?;
    Ok(Walked {
        pfn,
        maddr: (frame << 12) | (va & 0xfff),
        read_only,
        leaf_rw,
    })
}

fn level_index(va: u64, level: u8) -> usize {
    ((va >> (12 + 9 * u32::from(level - 1))) & 0x1ff) as usize
}

/// What a walk of one page found: the pfn it reaches and whether a store may go through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    /// The pseudo-physical frame reached.
    pub pfn: u64,
    /// Whether every entry on the way is writable.
    pub writable: bool,
}

fn run_mmu_update(m: &mut Machine, reqs: &[MmuUpdate], done: &mut u32, domid: u16) -> i64 {
    m.stats.hypercalls += 1;
    mmu_update_inner(m, reqs, done, domid)
}

fn mmu_update_inner(m: &mut Machine, reqs: &[MmuUpdate], done: &mut u32, domid: u16) -> i64 {
    *done = 0;
    if domid != DOMID_SELF {
        return -ESRCH;
    }
    for r in reqs {
        let cmd = r.ptr & 7;
        if cmd != mmu::NORMAL_PT_UPDATE && cmd != mmu::PT_UPDATE_PRESERVE_AD {
            return -ENOSYS;
        }
        if let Err(e) = m.update(r.ptr & !7, r.val) {
            return -e;
        }
        m.stats.updates_applied += 1;
        *done += 1;
    }
    0
}

fn mmuext_inner(m: &mut Machine, ops: &[MmuextOp], done: &mut u32, domid: u16) -> i64 {
    *done = 0;
    if domid != DOMID_SELF {
        return -ESRCH;
    }
    for op in ops {
        if let Err(e) = mmuext_one(m, op) {
            return -e;
        }
        m.stats.ext_ops_applied += 1;
        *done += 1;
    }
    0
}

fn mmuext_one(m: &mut Machine, op: &MmuextOp) -> Result<(), i64> {
    let mfn = op.arg1;
    match op.cmd {
        mmuext::PIN_L1_TABLE..=mmuext::PIN_L4_TABLE => m.pin(
            mfn,
            PageType::table((op.cmd - mmuext::PIN_L1_TABLE + 1) as u8),
        ),
        mmuext::UNPIN_TABLE => m.unpin(mfn),
        mmuext::NEW_BASEPTR => m.new_baseptr(mfn),
        mmuext::TLB_FLUSH_LOCAL | mmuext::TLB_FLUSH_ALL => {
            m.tlb.clear();
            Ok(())
        }
        mmuext::INVLPG_LOCAL | mmuext::INVLPG_ALL => {
            m.tlb.remove(&(op.arg1 & !0xfff));
            Ok(())
        }
        _ => Err(ENOSYS),
    }
}

fn update_va_inner(m: &mut Machine, va: u64, pte: u64, flags: u64) -> i64 {
    let Some((l1, idx)) = m.l1_slot(va) else {
        return -EINVAL;
    };
    match m.mod_entry(l1, idx, pte) {
        Ok(()) => {
            m.stats.updates_applied += 1;
            // UVMF_FLUSHTYPE_MASK: 1 a TLB flush, 2 an invlpg of `va`.
            match flags & 3 {
                uvmf::TLB_FLUSH => m.tlb.clear(),
                uvmf::INVLPG => {
                    m.tlb.remove(&(va & !0xfff));
                }
                _ => {}
            }
            0
        }
        Err(e) => -e,
    }
}

// SAFETY: every call acts on the model's own simulated memory with the semantics documented
// above (Xen's, within the stated limits), writes `success_count` and multicall results as
// Xen does, and touches no real memory except the argument arrays the caller hands it (for
// `multicall`, through the pointers the caller's contract makes valid).
unsafe impl RawHypercall for Model {
    unsafe fn mmu_update(&self, reqs: &[MmuUpdate], success_count: &mut u32, domid: u16) -> i64 {
        run_mmu_update(&mut self.m.borrow_mut(), reqs, success_count, domid)
    }

    unsafe fn mmuext_op(&self, ops: &[MmuextOp], success_count: &mut u32, domid: u16) -> i64 {
        let mut m = self.m.borrow_mut();
        m.stats.hypercalls += 1;
        mmuext_inner(&mut m, ops, success_count, domid)
    }

    unsafe fn update_va_mapping(&self, va: u64, pte: u64, flags: u64) -> i64 {
        let mut m = self.m.borrow_mut();
        m.stats.hypercalls += 1;
        update_va_inner(&mut m, va, pte, flags)
    }

    unsafe fn multicall(&self, entries: &mut [MulticallEntry]) -> i64 {
        let mut m = self.m.borrow_mut();
        m.stats.hypercalls += 1;
        for e in entries.iter_mut() {
            let a = e.args;
            let ret = match e.op as u32 {
                nr::MMU_UPDATE | nr::MMUEXT_OP => {
                    let mut done = 0u32;
                    let len = a[1] as usize;
                    let ret = if e.op as u32 == nr::MMU_UPDATE {
                        // SAFETY: the caller's contract: `a[0]` points at `a[1]` requests.
                        let reqs =
                            unsafe { std::slice::from_raw_parts(a[0] as *const MmuUpdate, len) };
                        mmu_update_inner(&mut m, reqs, &mut done, a[3] as u16)
                    } else {
                        // SAFETY: as above, for mmuext_op commands.
                        let ops =
                            unsafe { std::slice::from_raw_parts(a[0] as *const MmuextOp, len) };
                        mmuext_inner(&mut m, ops, &mut done, a[3] as u16)
                    };
                    if a[2] != 0 {
                        // SAFETY: the caller's contract: a non-null `a[2]` points at a u32.
                        unsafe { *(a[2] as *mut u32) = done };
                    }
                    ret
                }
                nr::UPDATE_VA_MAPPING => update_va_inner(&mut m, a[0], a[1], a[2]),
                _ => -ENOSYS,
            };
            e.result = ret as u64;
        }
        0
    }

    unsafe fn set_trap_table(&self, _table: &[TrapInfo]) -> i64 {
        0
    }

    fn console_write(&self, bytes: &[u8]) -> i64 {
        bytes.len() as i64
    }

    fn sched_shutdown(&self, _reason: u32) -> i64 {
        -ENOSYS
    }

    fn physdev_set_iopl(&self, _iopl: u32) -> i64 {
        0
    }

    fn vm_assist(&self, _cmd: u32, _assist: u32) -> i64 {
        0
    }

    fn xen_version(&self) -> i64 {
        (4 << 16) | 17
    }
}

// SAFETY: loads go through the model's current root as the CPU's would (a load the model
// cannot translate panics: the caller broke `read_u64`'s contract), and the M2P is the
// inverse of the model's P2M.
unsafe impl PvPlatform for Model {
    unsafe fn read_u64(&self, va: u64) -> u64 {
        let m = self.m.borrow();
        match walk(&m, va, false) {
            Ok((_, maddr)) => m.entry(maddr >> 12, ((maddr & 0xfff) >> 3) as usize),
            Err(f) => panic!("backend read {va:#x}, which is not mapped: {f:?}"),
        }
    }

    unsafe fn mfn_to_pfn(&self, mfn: u64) -> u64 {
        self.m.borrow().m2p(mfn).unwrap_or(u64::MAX)
    }

    fn can_store(&self) -> bool {
        self.stores.get()
    }

    unsafe fn write_u64(&self, va: u64, val: u64) {
        if !self.stores.get() {
            return;
        }
        if let Err(f) = self.write(va, val) {
            panic!("backend store of {val:#x} at {va:#x} faulted: {f:?}");
        }
        self.stored.set(self.stored.get() + 1);
    }
}
