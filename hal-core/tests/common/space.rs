//! A reference model of an address space (page → frame and flags) and a driver that runs a
//! sequence of mapper operations against it, shared by hal-core's tests (on the simulated
//! backend) and backend-xen-pv's (on its model of Xen). The model is written from the
//! mapper's contract, not from its code: it predicts each outcome (the page sizes `Auto`
//! picks, the tables that must exist, each refusal) and then compares what a walk, the
//! simulated CPU (through its TLB) and the frame source show.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::format;
use std::string::String;
use std::vec::Vec;

use hal_core::backend::{Caps, PageSizes, RawMmu};
use hal_core::mapper::{EmptyTables, FrameSource, MapError, Mapper, PageSize};
use hal_core::memblock::{Direction, Memblock};
use hal_core::{Frame, Free, Mmu, PageTableFlags, TableLevel, TableRef};
use proptest::prelude::*;
use typenum::U4;

pub const K4: u64 = 4096;
pub const M2: u64 = 2 << 20;
pub const G1: u64 = 1 << 30;
/// The window of virtual space the operations use: 4 GiB from L4 slot 128.
pub const WINDOW: u64 = 0x0000_4000_0000_0000;
pub const WINDOW_LEN: u64 = 4 * G1;
/// Physical addresses the operations map: 8 GiB from 4 GiB (no RAM of the tests' memblock).
pub const PHYS: u64 = 4 * G1;
pub const PHYS_LEN: u64 = 8 * G1;

/// The leaf bits the model compares (what the mapper is asked to set).
pub const CMP: u64 = PageTableFlags::PRESENT.bits()
    | PageTableFlags::WRITABLE.bits()
    | PageTableFlags::NO_EXECUTE.bits()
    | PageTableFlags::HUGE_PAGE.bits();

/// Table frames from a memblock, at most `budget` outstanding.
pub struct Budget<'a, const N: usize> {
    pub mb: &'a mut Memblock<N>,
    pub limit: u64,
    pub budget: u64,
    pub out: u64,
}

impl<const N: usize> FrameSource for Budget<'_, N> {
    fn alloc(&mut self) -> Option<Frame<Free>> {
        if self.out == self.budget {
            return None;
        }
        let f = self.mb.alloc_frame(self.limit, Direction::TopDown).ok()?;
        self.out += 1;
        Some(f)
    }
    fn give_back(&mut self, frame: Frame<Free>) -> Result<(), Frame<Free>> {
        self.mb.free_frame(frame).map_err(|f| f.value)?;
        self.out -= 1;
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leaf {
    pub phys: u64,
    pub size: u64,
    pub writable: bool,
    pub nx: bool,
}

/// What the model expects of an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    Overlap,
    TablesInRange,
    Splits,
    OutOfFrames,
    FrameIsTable,
    Unaligned,
    NonCanonical,
    Reserved,
    SizeUnsupported,
    Flags,
}

fn verdict_of<E>(e: &MapError<E>) -> Option<Verdict> {
    Some(match e {
        MapError::Overlap(_) => Verdict::Overlap,
        MapError::TablesInRange(_) => Verdict::TablesInRange,
        MapError::SplitsLargePage(_) => Verdict::Splits,
        MapError::OutOfFrames => Verdict::OutOfFrames,
        MapError::FrameIsTable(_) => Verdict::FrameIsTable,
        MapError::Unaligned { .. } => Verdict::Unaligned,
        MapError::NonCanonical(_) => Verdict::NonCanonical,
        MapError::ReservedSlot(_) => Verdict::Reserved,
        MapError::SizeUnsupported(_) => Verdict::SizeUnsupported,
        MapError::FlagsRefused(_) => Verdict::Flags,
        _ => return None,
    })
}

/// The reference address space: leaves by virtual address, and the root slots a level-3
/// table was ever made in (it stays there, empty or not: another root may have inherited the
/// slot).
#[derive(Default, Debug, Clone)]
pub struct Space {
    pub leaves: BTreeMap<u64, Leaf>,
    pub kept: BTreeSet<u64>,
}

fn level_of(size: u64) -> TableLevel {
    match size {
        G1 => TableLevel::L3,
        M2 => TableLevel::L2,
        _ => TableLevel::L1,
    }
}

impl Space {
    /// The leaf that maps `va`.
    pub fn cover(&self, va: u64) -> Option<(u64, Leaf)> {
        let (&s, &l) = self.leaves.range(..=va).next_back()?;
        (va < s + l.size).then_some((s, l))
    }

    /// Leaves meeting `[lo, hi)`.
    pub fn meeting(&self, lo: u64, hi: u64) -> Vec<(u64, Leaf)> {
        let first = self.cover(lo);
        let mut v: Vec<_> = first.into_iter().collect();
        v.extend(
            self.leaves
                .range(lo..hi)
                .map(|(&a, &b)| (a, b))
                .filter(|(a, _)| Some(*a) != first.map(|x| x.0)),
        );
        v
    }

    /// The tables the tree must hold (with tables freed when empty): (level, prefix).
    pub fn tables(&self) -> BTreeSet<(u8, u64)> {
        let mut t: BTreeSet<(u8, u64)> = self.kept.iter().map(|&p| (3, p)).collect();
        for (&va, l) in &self.leaves {
            t.insert((3, va >> 39));
            if l.size <= M2 {
                t.insert((2, va >> 30));
            }
            if l.size == K4 {
                t.insert((1, va >> 21));
            }
        }
        t
    }

    /// The leaves `map` makes, in order: the largest size alignment and caps allow.
    pub fn plan(
        sizes: PageSizes,
        va: u64,
        phys: u64,
        len: u64,
        fixed: Option<u64>,
    ) -> Vec<(u64, u64, u64)> {
        let mut out = Vec::new();
        let mut done = 0;
        while done < len {
            let (v, p, rest) = (va + done, phys + done, len - done);
            let s = fixed.unwrap_or_else(|| {
                let fits = |s: u64| (v | p) % s == 0 && rest >= s;
                if sizes.contains(PageSizes::SIZE_1G) && fits(G1) {
                    G1
                } else if sizes.contains(PageSizes::SIZE_2M) && fits(M2) {
                    M2
                } else {
                    K4
                }
            });
            out.push((v, p, s));
            done += s;
        }
        out
    }

    /// Predicts `map` and, if it succeeds, applies it.
    pub fn map(
        &mut self,
        plan: &[(u64, u64, u64)],
        writable: bool,
        nx: bool,
        budget: u64,
    ) -> Verdict {
        let mut tables = self.tables();
        for &(v, _, s) in plan {
            // Descend: a table per level above the leaf, unless a leaf is in the way.
            for (lvl, span) in [(3u8, 1u64 << 39), (2, G1), (1, M2)] {
                if s >= span {
                    break;
                }
                // A leaf as large as the table's span sits where the table would be.
                if let Some((_, l)) = self.cover(v) {
                    if l.size == span {
                        return Verdict::Overlap;
                    }
                }
                let prefix = v >> (12 + 9 * u32::from(lvl));
                if !tables.contains(&(lvl, prefix)) {
                    if tables.len() as u64 >= budget {
                        return Verdict::OutOfFrames;
                    }
                    tables.insert((lvl, prefix));
                    if lvl == 3 {
                        // Made now, and kept whatever happens to the rest of the plan.
                        self.kept.insert(prefix);
                    }
                }
            }
            if let Some(&(_, l)) = self.meeting(v, v + s).first() {
                return if l.size < s {
                    Verdict::TablesInRange
                } else {
                    Verdict::Overlap
                };
            }
            // Mark it taken for the rest of the plan (applied below if all goes well).
            self.leaves.insert(
                v,
                Leaf {
                    phys: 0,
                    size: s,
                    writable,
                    nx,
                },
            );
        }
        for &(v, p, s) in plan {
            self.leaves.insert(
                v,
                Leaf {
                    phys: p,
                    size: s,
                    writable,
                    nx,
                },
            );
        }
        Verdict::Ok
    }

    /// Predicts `unmap` or `protect` (`flags` given) and applies it.
    pub fn change(&mut self, va: u64, len: u64, flags: Option<(bool, bool)>) -> Verdict {
        let hit = self.meeting(va, va + len);
        if hit.iter().any(|(s, l)| *s < va || s + l.size > va + len) {
            return Verdict::Splits;
        }
        for (s, l) in hit {
            match flags {
                None => {
                    self.leaves.remove(&s);
                }
                Some((w, nx)) => {
                    self.leaves.insert(
                        s,
                        Leaf {
                            writable: w,
                            nx,
                            ..l
                        },
                    );
                }
            }
        }
        Verdict::Ok
    }
}

/// One operation on the window.
#[derive(Clone, Copy, Debug)]
pub enum Op {
    Map {
        off: u64,
        units: u64,
        unit: u64,
        phys: u64,
        writable: bool,
        nx: bool,
        fixed: bool,
    },
    Unmap {
        off: u64,
        len: u64,
    },
    Protect {
        off: u64,
        len: u64,
        writable: bool,
        nx: bool,
    },
    /// A writable mapping of a frame that is a page table now (the `n`-th one).
    MapTable {
        n: usize,
        off: u64,
    },
    /// An argument the mapper must refuse: 0 unaligned, 1 non-canonical, 2 a reserved slot
    /// (refused only where the caps reserve one), 3 HUGE_PAGE in the flags.
    Bad(u8),
    /// Flush now (the CPU then touches pages and compares).
    Flush,
}

fn unit() -> impl Strategy<Value = u64> {
    prop_oneof![6 => Just(K4), 3 => Just(M2), 1 => Just(G1)]
}

pub fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (unit(), 0u64..4096, 1u64..40, 0u64..4096, any::<bool>(), any::<bool>(), any::<bool>(), 0u64..8)
            .prop_map(|(unit, off, units, phys, writable, nx, fixed, jitter)| {
                let units = if unit == G1 { 1 } else if unit == M2 { units % 4 + 1 } else { units };
                let off = (off * unit) % WINDOW_LEN;
                // Sometimes misaligned by a few pages, so Auto mixes sizes.
                // (Not for 1 GiB: that would be 262,144 small pages.)
                let off = if jitter == 0 && unit != G1 { off + K4 * 3 } else { off };
                let phys = (phys * unit) % PHYS_LEN;
                Op::Map { off, units, unit, phys, writable, nx, fixed: fixed && jitter != 0 }
            }),
        3 => (unit(), 0u64..4096, 1u64..64).prop_map(|(unit, off, n)| Op::Unmap {
            off: (off * unit) % WINDOW_LEN,
            len: if unit == G1 { G1 } else { n * unit.min(M2) },
        }),
        2 => (unit(), 0u64..4096, 1u64..64, any::<bool>(), any::<bool>()).prop_map(
            |(unit, off, n, writable, nx)| Op::Protect {
                off: (off * unit) % WINDOW_LEN,
                len: if unit == G1 { G1 } else { n * unit.min(M2) },
                writable,
                nx,
            }
        ),
        1 => (0usize..16, 0u64..4096).prop_map(|(n, off)| Op::MapTable { n, off: off * K4 }),
        1 => (0u8..4).prop_map(Op::Bad),
        3 => Just(Op::Flush),
    ]
}

/// What the driver needs from the platform besides the backend: a CPU and the frames that
/// are page tables now.
pub trait Machine<B: RawMmu> {
    /// A CPU access at `va` (through its TLB): `Ok(pfn)`, `Err(())` on a fault.
    fn access(&mut self, mmu: &mut Mmu<B>, va: u64, write: bool) -> Result<u64, ()>;
    /// Frames that are page tables now, as the platform (not the mapper) knows them.
    fn table_frames(&self, mmu: &Mmu<B>) -> Vec<u64>;
}

/// Per-run counts, for the caller's own checks.
#[derive(Debug, Default)]
pub struct Summary {
    pub ops: u64,
    pub refused: u64,
    pub tables_allocated: u64,
    pub flushes: u64,
}

fn flags(writable: bool, nx: bool, caps: &Caps) -> PageTableFlags {
    let mut f = PageTableFlags::empty();
    if writable {
        f |= PageTableFlags::WRITABLE;
    }
    if nx && caps.nx {
        f |= PageTableFlags::NO_EXECUTE;
    }
    f
}

/// Runs `ops` through a mapper over `root` (tables from `mb`, at most `budget` at once),
/// checking every outcome against the model, the tree against it after every operation, the
/// CPU's view after every flush, and after a teardown that every table frame is back in `mb`.
#[allow(clippy::too_many_arguments)]
pub fn drive<B: RawMmu, M: Machine<B>, const N: usize>(
    mmu: &mut Mmu<B>,
    root: TableRef<'_, U4>,
    machine: &mut M,
    mb: &mut Memblock<N>,
    limit: u64,
    budget: u64,
    phys_area: (u64, u64),
    ops: &[Op],
) -> Result<Summary, String> {
    let (phys_base, phys_len) = phys_area;
    let caps = mmu.caps();
    let free_before = mb.free_bytes();
    let mut space = Space::default();
    let mut sum = Summary::default();
    let mut touched: Vec<u64> = Vec::new();
    {
        let source = Budget {
            mb: &mut *mb,
            limit,
            budget,
            out: 0,
        };
        let mut m: Mapper<_, 256> = Mapper::new(root, caps, source, EmptyTables::Free);
        for (i, op) in ops.iter().enumerate() {
            sum.ops += 1;
            let (expect, res) = match *op {
                Op::Map {
                    off,
                    units,
                    unit,
                    phys,
                    writable,
                    nx,
                    fixed,
                } => {
                    let va = WINDOW + off;
                    let phys = phys % phys_len;
                    let len = (units * unit).min(WINDOW_LEN - off).min(phys_len - phys);
                    let mut len = len - len % K4;
                    let fx = fixed.then_some(unit);
                    if fx.is_none()
                        && Space::plan(caps.page_sizes, va, phys_base + phys, len, None).len()
                            > 1024
                    {
                        // Small pages only (4 KiB-only caps, or misaligned): keep it short.
                        len = len.min(1024 * K4);
                    }
                    if len == 0 {
                        continue;
                    }
                    let size = match fx {
                        None => PageSize::Auto,
                        Some(K4) => PageSize::Size4K,
                        Some(M2) => PageSize::Size2M,
                        Some(_) => PageSize::Size1G,
                    };
                    let ok_size = match fx {
                        Some(M2) => caps.page_sizes.contains(PageSizes::SIZE_2M),
                        Some(G1) => caps.page_sizes.contains(PageSizes::SIZE_1G),
                        _ => true,
                    };
                    let expect = if !ok_size {
                        Verdict::SizeUnsupported
                    } else if fx
                        .is_some_and(|s| va % s != 0 || len % s != 0 || (phys_base + phys) % s != 0)
                    {
                        Verdict::Unaligned
                    } else {
                        let plan = Space::plan(caps.page_sizes, va, phys_base + phys, len, fx);
                        let mut trial = space.clone();
                        let v = trial.map(&plan, writable, nx && caps.nx, budget);
                        if v == Verdict::Ok {
                            space = trial;
                        } else {
                            // A refused map keeps the level-3 tables it made.
                            space.kept = trial.kept;
                        }
                        v
                    };
                    // SAFETY: the physical range is outside every RAM region the tests use
                    // (nothing to alias), the window is the test's.
                    let r = unsafe {
                        m.map(
                            mmu,
                            root,
                            va,
                            phys_base + phys,
                            len,
                            flags(writable, nx, &caps),
                            size,
                        )
                    };
                    (expect, r)
                }
                Op::Unmap { off, len } => {
                    let len = len.min(WINDOW_LEN - off);
                    let expect = space.change(WINDOW + off, len, None);
                    // SAFETY: the window is the test's.
                    let r = unsafe { m.unmap(mmu, root, WINDOW + off, len) };
                    (expect, r)
                }
                Op::Protect {
                    off,
                    len,
                    writable,
                    nx,
                } => {
                    let len = len.min(WINDOW_LEN - off);
                    let expect = space.change(WINDOW + off, len, Some((writable, nx && caps.nx)));
                    // SAFETY: the window's frames are no RAM; any protection is fine.
                    let r = unsafe {
                        m.protect(mmu, root, WINDOW + off, len, flags(writable, nx, &caps))
                    };
                    (expect, r)
                }
                Op::MapTable { n, off } => {
                    let tables = machine.table_frames(mmu);
                    let Some(&t) = tables.get(n % tables.len().max(1)) else {
                        continue;
                    };
                    // SAFETY: refused (that is the test); were it not, a writable mapping of a
                    // page table in a simulated machine harms nothing but the check.
                    let r = unsafe {
                        m.map(
                            mmu,
                            root,
                            WINDOW + off,
                            t * K4,
                            K4,
                            PageTableFlags::WRITABLE,
                            PageSize::Size4K,
                        )
                    };
                    (Verdict::FrameIsTable, r)
                }
                Op::Bad(k) => {
                    let (expect, va, f) = match k {
                        0 => (Verdict::Unaligned, WINDOW + 12, PageTableFlags::empty()),
                        1 => (
                            Verdict::NonCanonical,
                            0x0000_8000_0000_0000,
                            PageTableFlags::empty(),
                        ),
                        2 if caps.reserved_root_slots.0 < caps.reserved_root_slots.1 => {
                            let s = u64::from(caps.reserved_root_slots.0);
                            (
                                Verdict::Reserved,
                                0xffff_0000_0000_0000 | (s << 39),
                                PageTableFlags::empty(),
                            )
                        }
                        _ => (Verdict::Flags, WINDOW, PageTableFlags::HUGE_PAGE),
                    };
                    // SAFETY: refused before anything is written.
                    let r = unsafe { m.map(mmu, root, va, phys_base, K4, f, PageSize::Auto) };
                    (expect, r)
                }
                Op::Flush => {
                    m.flush(mmu, hal_core::mapper::Flush::none())
                        .map_err(|e| format!("op {i}: flush: {e}"))?;
                    check_cpu(mmu, machine, &space, &mut touched)
                        .map_err(|e| format!("op {i} {op:?}: {e}"))?;
                    continue;
                }
            };
            match res {
                Ok(f) => {
                    if expect != Verdict::Ok {
                        return Err(format!(
                            "op {i} {op:?}: accepted, the model expected {expect:?}"
                        ));
                    }
                    f.defer();
                }
                Err(e) => {
                    sum.refused += 1;
                    if verdict_of(&e) != Some(expect) {
                        return Err(format!("op {i} {op:?}: {e}, the model expected {expect:?}"));
                    }
                }
            }
            check_tree(mmu, root, &m, &space).map_err(|e| format!("op {i} {op:?}: {e}"))?;
        }
        m.flush(mmu, hal_core::mapper::Flush::none())
            .map_err(|e| format!("last flush: {e}"))?;
        check_cpu(mmu, machine, &space, &mut touched)?;
        let st = m.stats();
        sum.tables_allocated = st.tables_allocated;
        sum.flushes = st.flushes;
        // SAFETY: the window is the test's.
        let td = unsafe { m.teardown(mmu, root) }.map_err(|e| format!("teardown: {e}"))?;
        // Every table is freed but the level-3 ones in root slots, which stay.
        let kept = space.kept.len() as u64;
        if td.tables_freed_total + kept != td.tables_allocated
            || m.tables_owned() as u64 != kept
            || td.tables_kept != kept
        {
            return Err(format!(
                "teardown left tables: {td:?}, {} owned, the model keeps {kept}",
                m.tables_owned()
            ));
        }
        if m.source().out != kept {
            return Err(format!(
                "{} frames not given back, the model keeps {kept}",
                m.source().out
            ));
        }
        space = Space {
            kept: space.kept,
            ..Space::default()
        };
        check_tree(mmu, root, &m, &space)?;
        check_cpu(mmu, machine, &space, &mut touched)?;
    }
    // The level-3 tables the mapper keeps in the root are the only frames not back.
    let kept = 4096 * space.kept.len() as u64;
    if mb.free_bytes() + kept != free_before {
        return Err(format!(
            "frames not conserved: {} free bytes before, {} after, {kept} kept in the root",
            free_before,
            mb.free_bytes()
        ));
    }
    Ok(sum)
}

/// The tree against the model: every leaf by a walk, and the tables that must exist.
fn check_tree<B: RawMmu, S: FrameSource, const N: usize>(
    mmu: &mut Mmu<B>,
    root: TableRef<'_, U4>,
    m: &Mapper<S, N>,
    space: &Space,
) -> Result<(), String> {
    for (&va, l) in &space.leaves {
        for probe in [va, va + l.size - K4] {
            let t = mmu
                .translate(root, probe)
                .map_err(|e| format!("walk: {e:?}"))?;
            let Some(t) = t else {
                return Err(format!("{probe:#x}: not mapped, the model has {l:?}"));
            };
            let want_pfn = (l.phys + (probe - va)) / K4;
            let bits = t.leaf.bits() & CMP;
            let mut want = PageTableFlags::PRESENT.bits();
            if l.writable {
                want |= PageTableFlags::WRITABLE.bits();
            }
            if l.nx {
                want |= PageTableFlags::NO_EXECUTE.bits();
            }
            if l.size > K4 {
                want |= PageTableFlags::HUGE_PAGE.bits();
            }
            if t.pfn.as_u64() != want_pfn || bits != want || t.level != level_of(l.size) {
                return Err(format!(
                    "{probe:#x}: walk gives {t:?}, the model {l:?} (pfn {want_pfn:#x}, bits {want:#x})"
                ));
            }
        }
    }
    // A few holes: just below and above every leaf.
    for (&va, l) in &space.leaves {
        for probe in [va.wrapping_sub(K4), va + l.size] {
            if !(WINDOW..WINDOW + WINDOW_LEN).contains(&probe) || space.cover(probe).is_some() {
                continue;
            }
            if let Ok(Some(t)) = mmu.translate(root, probe) {
                return Err(format!("{probe:#x}: mapped ({t:?}), the model has a hole"));
            }
        }
    }
    let want = space.tables().len();
    if m.tables_hooked() != want {
        return Err(format!(
            "mapper has {} tables hooked, the model needs {want}",
            m.tables_hooked()
        ));
    }
    Ok(())
}

/// The CPU against the model, after a flush: pages touched before (maybe cached in the TLB)
/// and a sample of the model's leaves, read and written.
fn check_cpu<B: RawMmu, M: Machine<B>>(
    mmu: &mut Mmu<B>,
    machine: &mut M,
    space: &Space,
    touched: &mut Vec<u64>,
) -> Result<(), String> {
    let mut probes: Vec<u64> = touched.clone();
    probes.extend(space.leaves.iter().take(24).map(|(&va, _)| va));
    probes.extend(
        space
            .leaves
            .iter()
            .rev()
            .take(8)
            .map(|(&va, l)| va + l.size - K4),
    );
    for va in probes {
        let want = space
            .cover(va)
            .map(|(s, l)| ((l.phys + (va - s)) / K4, l.writable));
        let read = machine.access(mmu, va, false).ok();
        let write = machine.access(mmu, va, true).is_ok();
        match want {
            None if read.is_some() => return Err(format!("CPU reads unmapped {va:#x} (stale TLB?)")),
            Some((pfn, w)) if read != Some(pfn) || write != w => {
                return Err(format!(
                    "CPU at {va:#x}: read {read:?} write {write}, the model {pfn:#x} writable {w} (stale TLB?)"
                ))
            }
            _ => {}
        }
        if !touched.contains(&va) {
            touched.push(va);
        }
    }
    if touched.len() > 64 {
        touched.drain(..touched.len() - 64);
    }
    Ok(())
}
