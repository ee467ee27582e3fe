//! Replaying a sequence: each operation turned into the raw hypercall (or guest store) it
//! names, on whatever answers [`RawHypercall`]: real Xen in the `conformance` example kernel,
//! the `model` on the host. The same code runs on both sides, so the only
//! difference between the two result streams is the hypervisor's judgement.

use crate::hypercall::abi::{mmuext, uvmf, DOMID_SELF};
use crate::hypercall::{MmuUpdate, MmuextOp, RawHypercall};

use super::corpus::{
    flags, Code, Op, StoreOutcome, FRAMES, NONE, OP_BYTES, REPLAY_BAD_OP, REPLAY_UNSAFE, ROOT,
    SCRATCH, SCRATCH_SLOTS,
};

const P: u64 = 1;
const ACCESSED_DIRTY: u64 = (1 << 5) | (1 << 6);
/// The lowest entry index a `Write` or `Store` may touch.
const FIRST_INDEX: u16 = 256;
/// Xen's L4 slots.
const XEN_SLOTS: core::ops::Range<u16> = 256..272;

/// What the replayer needs besides hypercalls: loads and fault-catching stores.
///
/// # Safety
/// For implementers: `store` performs the store (or reports the fault the CPU raised
/// instead, having changed nothing), and `load` reads the 8 bytes at `va`.
pub unsafe trait Guest {
    /// The hypercalls.
    fn hv(&self) -> &dyn RawHypercall;

    /// The 8 bytes at `va`.
    ///
    /// # Safety
    /// `va` is mapped readable.
    unsafe fn load(&self, va: u64) -> u64;

    /// Stores `val` at `va`, or reports why the CPU refused.
    ///
    /// # Safety
    /// If the store takes effect, nothing Rust relies on is overwritten.
    unsafe fn store(&self, va: u64, val: u64) -> StoreOutcome;
}

/// One of the frames the operations act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameAt {
    /// Its machine frame.
    pub mfn: u64,
    /// A virtual address that maps it (writable at the start), in the live root's part of
    /// the address space that [`Code::Inherit`] copies.
    pub va: u64,
}

/// The frames and the live root.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setup {
    /// The frames, mapped writable once each and nowhere else, zero-filled, no page tables.
    pub frames: [FrameAt; FRAMES],
    /// The live root's machine frame.
    pub root_mfn: u64,
    /// A virtual address at which the live root can be read.
    pub root_va: u64,
}

/// Replays sequences, remembering the current root between them.
pub struct Replayer<'a, G: Guest> {
    guest: &'a G,
    setup: Setup,
    current_root: u64,
}

impl<'a, G: Guest> Replayer<'a, G> {
    /// A replayer on `setup`, the live root current.
    ///
    /// # Safety
    /// The frames of `setup` belong to the caller and nothing else uses them; the live root's
    /// scratch slots (`SCRATCH..SCRATCH + SCRATCH_SLOTS`) are empty and nothing else uses
    /// them or the addresses below them; the live root is pinned and current.
    pub unsafe fn new(guest: &'a G, setup: Setup) -> Self {
        Self {
            guest,
            setup,
            current_root: setup.root_mfn,
        }
    }

    /// The current root's machine frame.
    pub fn current_root(&self) -> u64 {
        self.current_root
    }

    /// Replays one sequence (`OP_BYTES` per operation), writing 2 result bytes per operation
    /// into `out`; returns the operations replayed (fewer if `out` is short).
    pub fn sequence(&mut self, ops: &[u8], out: &mut [u8]) -> usize {
        let mut n = 0;
        for (raw, res) in ops.chunks_exact(OP_BYTES).zip(out.chunks_exact_mut(2)) {
            let raw: &[u8; OP_BYTES] = raw.try_into().unwrap_or(&[0; OP_BYTES]);
            let (ret, extra) = match Op::decode(raw) {
                Some(op) => self.op(&op),
                None => (REPLAY_BAD_OP, 0),
            };
            res[0] = ret as u8;
            res[1] = extra;
            n += 1;
        }
        n
    }

    fn frame(&self, i: u8) -> Option<FrameAt> {
        self.setup.frames.get(usize::from(i)).copied()
    }

    fn mfn(&self, i: u8) -> Option<u64> {
        if i == ROOT {
            Some(self.setup.root_mfn)
        } else {
            self.frame(i).map(|f| f.mfn)
        }
    }

    fn entry(&self, target: u8, flags: u8) -> Option<u64> {
        if target == NONE {
            return Some(0);
        }
        Some((self.mfn(target)? << 12) | *flags::TABLE.get(usize::from(flags))?)
    }

    fn ext(&self, cmd: u32, arg1: u64) -> (i8, u8) {
        let op = MmuextOp { cmd, arg1, arg2: 0 };
        let mut done = 0;
        // SAFETY: `Replayer::new`'s contract: the command acts on the caller's frames or the
        // live root; a NEW_BASEPTR is only issued to tables that map what the live root maps
        // (checked in `new_root`).
        let ret = unsafe { self.guest.hv().mmuext_op(&[op], &mut done, DOMID_SELF) };
        (ret_code(ret), done as u8)
    }

    fn flush_tlb(&self) {
        let _ = self.ext(mmuext::TLB_FLUSH_LOCAL, 0);
    }

    fn op(&mut self, op: &Op) -> (i8, u8) {
        let bad = (REPLAY_BAD_OP, 0);
        match op.code {
            Code::Protect | Code::Release => {
                let Some(f) = self.frame(op.frame) else {
                    return bad;
                };
                let set = if op.code == Code::Protect {
                    flags::READ_ONLY
                } else {
                    flags::WRITABLE
                };
                let pte = (f.mfn << 12) | flags::TABLE[usize::from(set)];
                // SAFETY: only the caller's frame's own mapping changes.
                let ret = unsafe {
                    self.guest
                        .hv()
                        .update_va_mapping(f.va, pte, uvmf::INVLPG | uvmf::LOCAL)
                };
                (ret_code(ret), 0)
            }
            Code::Write => {
                let (Some(table), Some(val)) =
                    (self.mfn(op.frame), self.entry(op.target, op.flags))
                else {
                    return bad;
                };
                let n = usize::from(op.count);
                if n == 0 || n > usize::from(super::corpus::MAX_COUNT) {
                    return bad;
                }
                if usize::from(op.index) + n > 512 {
                    return bad;
                }
                // Below slot 256 a frame may hold what it inherited from the live root (the
                // running kernel's mappings, if it is the current root); never touched.
                if op.index < FIRST_INDEX {
                    return bad;
                }
                let last = op.index + u16::from(op.count) - 1;
                if op.frame == ROOT
                    && !(XEN_SLOTS.contains(&op.index) && XEN_SLOTS.contains(&last))
                    && !(op.index >= SCRATCH && last < SCRATCH + SCRATCH_SLOTS)
                {
                    return bad;
                }
                let mut reqs = [MmuUpdate { ptr: 0, val: 0 }; super::corpus::MAX_COUNT as usize];
                for (i, r) in reqs[..n].iter_mut().enumerate() {
                    r.ptr = (table << 12) + 8 * (u64::from(op.index) + i as u64);
                    r.val = val;
                }
                let mut done = 0;
                // SAFETY: entries of the caller's frames, or the live root's scratch (or
                // Xen's) slots, which nothing else uses.
                let ret = unsafe {
                    self.guest
                        .hv()
                        .mmu_update(&reqs[..n], &mut done, DOMID_SELF)
                };
                (ret_code(ret), done as u8)
            }
            Code::Pin => {
                let Some(f) = self.frame(op.frame) else {
                    return bad;
                };
                if !(1..=4).contains(&op.arg) {
                    return bad;
                }
                self.ext(mmuext::PIN_L1_TABLE + u32::from(op.arg) - 1, f.mfn)
            }
            Code::Unpin => match self.frame(op.frame) {
                Some(f) => self.ext(mmuext::UNPIN_TABLE, f.mfn),
                None => bad,
            },
            Code::Inherit => self.inherit(op.frame),
            Code::NewRoot => self.new_root(op.frame),
            Code::Store => {
                let (Some(f), Some(val)) = (self.frame(op.frame), self.entry(op.target, op.flags))
                else {
                    return bad;
                };
                if !(FIRST_INDEX..512).contains(&op.index) {
                    return bad;
                }
                self.flush_tlb();
                // SAFETY: the caller's frame, at an entry index.
                let out = unsafe { self.guest.store(f.va + 8 * u64::from(op.index), val) };
                (0, out as u8)
            }
            Code::StoreVia => {
                let slot = |shift: u8| u64::from(SCRATCH) + u64::from((op.arg >> shift) & 3);
                let va = (slot(6) << 39) | (slot(4) << 30) | (slot(2) << 21) | (slot(0) << 12);
                let va = va | 0xff8 | 0xffff_0000_0000_0000;
                self.flush_tlb();
                // SAFETY: below the scratch slots only the caller's frames can be mapped
                // (`Replayer::new`), and this store of 0 goes to their last entry, which no
                // operation uses.
                let out = unsafe { self.guest.store(va, 0) };
                (0, out as u8)
            }
            Code::Zero => {
                let Some(f) = self.frame(op.frame) else {
                    return bad;
                };
                self.flush_tlb();
                for i in 0..512 {
                    // SAFETY: the caller's frame.
                    let out = unsafe { self.guest.store(f.va + 8 * i, 0) };
                    if out != StoreOutcome::Done {
                        return (0, out as u8);
                    }
                }
                (0, StoreOutcome::Done as u8)
            }
        }
    }

    /// The live root's present guest entries (not the scratch slots), copied into `frame`.
    fn inherit(&self, frame: u8) -> (i8, u8) {
        let Some(f) = self.frame(frame) else {
            return (REPLAY_BAD_OP, 0);
        };
        let mut reqs = [MmuUpdate { ptr: 0, val: 0 }; 16];
        let mut n = 0;
        for i in guest_slots() {
            // SAFETY: `Setup::root_va` maps the live root readable.
            let e = unsafe { self.guest.load(self.setup.root_va + 8 * u64::from(i)) };
            if e & P == 0 {
                continue;
            }
            if n == reqs.len() {
                return (REPLAY_UNSAFE, 0);
            }
            reqs[n] = MmuUpdate {
                ptr: (f.mfn << 12) + 8 * u64::from(i),
                val: e,
            };
            n += 1;
        }
        let mut done = 0;
        // SAFETY: entries of the caller's frame.
        let ret = unsafe {
            self.guest
                .hv()
                .mmu_update(&reqs[..n], &mut done, DOMID_SELF)
        };
        (ret_code(ret), done as u8)
    }

    fn new_root(&mut self, frame: u8) -> (i8, u8) {
        let Some(mfn) = self.mfn(frame) else {
            return (REPLAY_BAD_OP, 0);
        };
        if frame != ROOT {
            let f = self.setup.frames[usize::from(frame)];
            for i in guest_slots() {
                // SAFETY: the live root and the frame are mapped readable (`Setup`).
                let (live, copy) = unsafe {
                    (
                        self.guest.load(self.setup.root_va + 8 * u64::from(i)),
                        self.guest.load(f.va + 8 * u64::from(i)),
                    )
                };
                if live & P != 0 && (live ^ copy) & !ACCESSED_DIRTY != 0 {
                    return (REPLAY_UNSAFE, 0);
                }
            }
        }
        let (ret, done) = self.ext(mmuext::NEW_BASEPTR, mfn);
        if ret == 0 {
            self.current_root = mfn;
        }
        (ret, done)
    }
}

/// The guest slots of a root outside the scratch slots.
fn guest_slots() -> impl Iterator<Item = u16> {
    (0..512u16)
        .filter(|i| !XEN_SLOTS.contains(i) && !(SCRATCH..SCRATCH + SCRATCH_SLOTS).contains(i))
}

fn ret_code(ret: i64) -> i8 {
    ret.clamp(-125, 125) as i8
}
