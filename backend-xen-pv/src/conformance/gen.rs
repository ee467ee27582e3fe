//! The host side: a generator of sequences (correct constructions and deliberate mistakes), and
//! the results the [model](crate::model) expects of a corpus.

use std::vec::Vec;

use super::corpus::{flags, Code, Op, StoreOutcome, FRAMES, MAGIC, NONE, ROOT, SCRATCH};
use super::replay::{FrameAt, Guest, Replayer, Setup};
use crate::hypercall::abi::start_info_off;
use crate::hypercall::RawHypercall;
use crate::mmu::PvPlatform;
use crate::model::{DomainConfig, Fault, Model};

/// A small deterministic generator (SplitMix64).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// Seeded.
    pub const fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `pct` percent.
    pub fn pct(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }

    fn frame(&mut self) -> u8 {
        self.below(FRAMES as u64) as u8
    }
}

fn op(code: Code, frame: u8) -> Op {
    Op {
        frame,
        ..Op::new(code)
    }
}

fn write(frame: u8, index: u16, target: u8, flags: u8) -> Op {
    Op {
        frame,
        index,
        target,
        flags,
        ..Op::new(Code::Write)
    }
}

fn pin(frame: u8, level: u8) -> Op {
    Op {
        arg: level,
        ..op(Code::Pin, frame)
    }
}

fn index(r: &mut Rng) -> u16 {
    match r.below(10) {
        0 => 256,
        1 => 511,
        _ => SCRATCH + r.below(4) as u16,
    }
}

fn target(r: &mut Rng) -> u8 {
    match r.below(10) {
        0 => ROOT,
        1 | 2 => NONE,
        _ => r.frame(),
    }
}

fn entry_flags(r: &mut Rng) -> u8 {
    match r.below(21) {
        0..=8 => flags::WRITABLE,
        9..=14 => flags::READ_ONLY,
        15 => flags::LARGE,
        16 => flags::LARGE_RO,
        17 => flags::GLOBAL_RW,
        18 => flags::UNCACHED,
        19 => flags::RO_NX,
        _ => flags::KERNEL_RO,
    }
}

/// A level, right most of the time, one off now and then ("a wrong level").
fn level(r: &mut Rng, right: u8) -> u8 {
    if r.pct(85) {
        right
    } else {
        1 + r.below(4) as u8
    }
}

/// One random operation.
fn random_op(r: &mut Rng) -> Op {
    let f = r.frame();
    match r.below(100) {
        0..=14 => op(Code::Protect, f),
        15..=21 => op(Code::Release, f),
        22..=46 => {
            let i = index(r);
            let count = if r.pct(80) { 1 } else { 2 + r.below(3) as u8 };
            let count = count.min((512 - i).min(8) as u8);
            let frame = if r.pct(15) { ROOT } else { f };
            let frame = if frame == ROOT && i == 511 { f } else { frame };
            // In the live root only the scratch slots and Xen's are written.
            let count = if frame == ROOT && i >= SCRATCH {
                count.min((SCRATCH + 4 - i) as u8)
            } else {
                count
            };
            Op {
                count,
                ..write(frame, i, target(r), entry_flags(r))
            }
        }
        47..=58 => pin(f, 1 + r.below(4) as u8),
        59..=64 => op(Code::Unpin, f),
        65..=69 => op(Code::Inherit, f),
        70..=74 => op(Code::NewRoot, if r.pct(30) { ROOT } else { f }),
        75..=84 => Op {
            index: index(r),
            target: target(r),
            flags: entry_flags(r),
            ..op(Code::Store, f)
        },
        85..=96 => Op {
            arg: r.below(256) as u8,
            ..op(Code::StoreVia, 0)
        },
        _ => op(Code::Zero, f),
    }
}

/// A hierarchy built the right way, with a mistake now and then: protect, fill from the
/// bottom, hook (under the live root, or under a frame pinned as a new root).
fn construction(r: &mut Rng, out: &mut Vec<Op>) {
    let mut order = [0u8, 1, 2, 3];
    for i in (1..FRAMES).rev() {
        order.swap(i, r.below(i as u64 + 1) as usize);
    }
    let own_root = r.pct(35);
    // Levels: with its own root, order[0] is the L4; otherwise order[0] is the leaf frame and
    // the live root holds the L3.
    let tables: &[u8] = if own_root { &order } else { &order[1..] };
    let top = if own_root { 4 } else { 3 };
    for &t in tables {
        if r.pct(92) {
            out.push(op(Code::Protect, t));
        }
    }
    let slot = |r: &mut Rng| SCRATCH + r.below(4) as u16;
    let mistake = |r: &mut Rng, f: u8| if r.pct(6) { entry_flags(r) } else { f };
    // The leaf: a writable mapping of the spare frame, or a read-only one of anything.
    let l1 = *tables.last().unwrap_or(&0);
    let leaf_target = if own_root { target(r) } else { order[0] };
    let leaf_flags = if r.pct(70) {
        flags::WRITABLE
    } else {
        flags::READ_ONLY
    };
    out.push(write(l1, slot(r), leaf_target, mistake(r, leaf_flags)));
    for pair in tables.windows(2).rev() {
        out.push(write(
            pair[0],
            slot(r),
            pair[1],
            mistake(r, flags::WRITABLE),
        ));
        if r.pct(10) {
            out.push(pin(pair[1], level(r, 1)));
        }
    }
    if own_root {
        out.push(op(Code::Inherit, order[0]));
        out.push(pin(order[0], level(r, top)));
        if r.pct(50) {
            out.push(op(Code::NewRoot, order[0]));
        }
    } else {
        out.push(write(ROOT, slot(r), tables[0], mistake(r, flags::WRITABLE)));
        if r.pct(20) {
            out.push(pin(tables[0], level(r, top)));
        }
    }
    for _ in 0..r.below(4) {
        out.push(Op {
            arg: r.below(256) as u8,
            ..op(Code::StoreVia, 0)
        });
    }
}

/// What every sequence ends with: back to the live root, its scratch slots cleared, every
/// frame unpinned, writable and zero again.
pub fn cleanup(out: &mut Vec<Op>) {
    out.push(op(Code::NewRoot, ROOT));
    out.push(Op {
        count: 4,
        ..write(ROOT, SCRATCH, NONE, 0)
    });
    for f in 0..FRAMES as u8 {
        out.push(op(Code::Unpin, f));
    }
    for f in 0..FRAMES as u8 {
        out.push(op(Code::Release, f));
    }
    for f in 0..FRAMES as u8 {
        out.push(op(Code::Zero, f));
    }
}

/// Sequence number `n` of the corpus seeded with `seed`.
pub fn sequence(seed: u64, n: u64) -> Vec<Op> {
    let mut r = Rng::new(seed ^ n.wrapping_mul(0xd6e8_feb8_6659_fd93));
    let mut out = Vec::new();
    if r.pct(60) {
        construction(&mut r, &mut out);
    }
    for _ in 0..2 + r.below(12) {
        out.push(random_op(&mut r));
    }
    cleanup(&mut out);
    out
}

/// `n` sequences from `seed`.
pub fn generate(seed: u64, n: u32) -> Vec<Vec<Op>> {
    (0..u64::from(n)).map(|i| sequence(seed, i)).collect()
}

/// The corpus's bytes.
pub fn encode(seqs: &[Vec<Op>]) -> Vec<u8> {
    let mut b = Vec::from(MAGIC);
    b.extend_from_slice(&(seqs.len() as u32).to_le_bytes());
    for s in seqs {
        b.extend_from_slice(&(s.len() as u16).to_le_bytes());
        for op in s {
            b.extend_from_slice(&op.encode());
        }
    }
    b
}

/// The model as a [`Guest`].
pub struct ModelGuest<'a>(pub &'a Model);

// SAFETY: stores and loads go to the model's simulated memory through its current root.
unsafe impl Guest for ModelGuest<'_> {
    fn hv(&self) -> &dyn RawHypercall {
        self.0
    }

    unsafe fn load(&self, va: u64) -> u64 {
        // SAFETY: the caller's contract: `va` is mapped.
        unsafe { self.0.read_u64(va) }
    }

    unsafe fn store(&self, va: u64, val: u64) -> StoreOutcome {
        match self.0.write(va, val) {
            Ok(_) => StoreOutcome::Done,
            Err(Fault::ReadOnly { .. }) => StoreOutcome::ReadOnly,
            Err(Fault::NotPresent { .. }) => StoreOutcome::NotPresent,
            Err(_) => StoreOutcome::Other,
        }
    }
}

/// The model's dom0 for a conformance run, and the frames used: the last [`FRAMES`] pages of
/// the initial mapping (free, mapped writable once, zero).
pub fn model_setup() -> (Model, Setup) {
    let model = Model::new(DomainConfig::mib(64));
    let boot = model.boot();
    let last = boot.mapped_end / 4096 - 1;
    let frames = core::array::from_fn(|i| {
        let pfn = last - i as u64;
        FrameAt {
            mfn: boot.p2m[pfn as usize],
            va: boot.virt_base + pfn * 4096,
        }
    });
    let at = start_info_off::PT_BASE;
    let pt_base = u64::from_le_bytes(boot.start_info[at..at + 8].try_into().expect("8 bytes"));
    let root_mfn = boot.p2m[model.current_root() as usize];
    let setup = Setup {
        frames,
        root_mfn,
        root_va: pt_base,
    };
    (model, setup)
}

/// What the model answers each operation of each sequence (2 bytes per operation), replayed
/// in order on one domain as the guest does.
pub fn expected(seqs: &[Vec<Op>]) -> Vec<Vec<u8>> {
    let (model, setup) = model_setup();
    let guest = ModelGuest(&model);
    // SAFETY: the frames are the model's free pages; the model's root has no scratch entries.
    let mut rep = unsafe { Replayer::new(&guest, setup) };
    seqs.iter()
        .map(|s| {
            let bytes: Vec<u8> = s.iter().flat_map(|o| o.encode()).collect();
            let mut out = std::vec![0u8; 2 * s.len()];
            rep.sequence(&bytes, &mut out);
            out
        })
        .collect()
}
