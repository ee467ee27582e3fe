//! Random sequences of typed-API operations (allocate, protect, release, new L1 and L2
//! tables, pin, retire, give back to memblock) on backend-xen-pv over the model of Xen's
//! rules. Every operation the types allow must succeed (a table with child tables is refused
//! by retire, and comes back), and after each one the model agrees with the types: a `Free` frame is
//! no table and writable through the initial mapping, a `PgtReserved` or `PinnedRO` frame has
//! no writable mapping, a pinned table has its level's type, and Xen's bookkeeping audits
//! clean.

#![no_main]

use backend_xen_pv::mmu::MAX_PINNED;
use backend_xen_pv::mmu::{Capacity, Cause};
use backend_xen_pv::model::{Fault, Model, PageType};
use backend_xen_pv::{Counted, Storage, XenPv};
use hal_core::memblock::{Direction, Memblock};
use hal_core::mmu::RetireError;
use hal_core::{
    Frame, FrameRange, Free, Level, Mmu, PageTableFlags, Pfn, PgtReserved, Pinned, PinnedRO, Pte,
    TableBuilder,
};
use libfuzzer_sys::fuzz_target;
use pvmmu_fuzz::guest;
use pvmmu_fuzz::input::Input;
use typenum::{U1, U2};

const NR_PAGES: u64 = 1100;

/// A table the sequence holds, unpinned or pinned, and how many child tables it adopted.
enum Table<L: Level> {
    Unpinned(Frame<PinnedRO<L>>, u32),
    Pinned(Pinned<L>, u32),
}

impl<L: Level> Table<L> {
    fn pfn(&self) -> Pfn {
        match self {
            Self::Unpinned(f, _) => f.pfn(),
            Self::Pinned(p, _) => p.pfn(),
        }
    }
    fn pinned(&self) -> bool {
        matches!(self, Self::Pinned(..))
    }
}

#[derive(Default)]
struct Held {
    free: Vec<FrameRange<Free>>,
    reserved: Vec<FrameRange<PgtReserved>>,
    l1: Vec<Table<U1>>,
    l2: Vec<Table<U2>>,
}

fn pick<T>(v: &mut Vec<T>, inp: &mut Input<'_>) -> Option<T> {
    if v.is_empty() {
        None
    } else {
        let i = usize::from(inp.u8()) % v.len();
        Some(v.swap_remove(i))
    }
}

struct World<'a> {
    mmu: Mmu<XenPv<'a, Model>>,
    mb: Memblock<32>,
    window_va: u64,
    held: Held,
}

/// Pins an unpinned table or unpins a pinned one; Xen must accept either. A pin is refused
/// only by the backend's own limit ([`MAX_PINNED`] tables it unpins later), which must be
/// reached then; the table comes back unpinned.
fn toggle<L: Level>(mmu: &mut Mmu<XenPv<'_, Model>>, t: Table<L>) -> Table<L> {
    match t {
        Table::Unpinned(f, c) => match mmu.pin(f) {
            Ok(p) => Table::Pinned(p, c),
            Err(failed) => {
                assert!(
                    matches!(failed.error.cause, Cause::Capacity(Capacity::Pinned)),
                    "pin of a complete table: {:?}",
                    failed.error
                );
                assert_eq!(
                    mmu.raw().pinned().len(),
                    MAX_PINNED,
                    "refused before the limit"
                );
                Table::Unpinned(failed.value, c)
            }
        },
        Table::Pinned(p, c) => Table::Unpinned(mmu.unpin(p).expect("unpin of a pinned table"), c),
    }
}

/// Retires an unpinned table: refused (and given back) exactly when it has child tables.
fn retire<L: Level>(
    mmu: &mut Mmu<XenPv<'_, Model>>,
    f: Frame<PinnedRO<L>>,
    children: u32,
) -> Result<Frame<Free>, Table<L>> {
    match mmu.retire(f) {
        Ok(r) => {
            assert_eq!(children, 0, "a table with children retired");
            Ok(r.into_free())
        }
        Err(RetireError::HasChild { table, .. }) => {
            assert!(children > 0, "refused as having children");
            Err(Table::Unpinned(table, children))
        }
        Err(RetireError::CurrentRoot(_)) => panic!("retire: a held table is the current root"),
        Err(RetireError::Unreadable { error, .. }) => panic!("retire: unreadable: {error:?}"),
        Err(RetireError::Backend(f)) => panic!("retire: {:?}", f.error),
    }
}

impl World<'_> {
    fn xen(&self) -> &Model {
        self.mmu.raw().hypervisor().inner()
    }

    /// The types against the model after a step (Xen's whole bookkeeping is recounted once,
    /// at the end of the sequence: `Model::audit` walks every table, most of a step's cost).
    fn check(&self) {
        let xen = self.xen();
        for r in &self.held.free {
            for p in r.pfns().iter().map(|p| p.as_u64()) {
                assert!(!xen.frame(p).is_table(), "free {p:#x} is a table");
                assert_eq!(
                    xen.store(self.window_va + p * 4096),
                    Ok(p),
                    "free {p:#x} writable"
                );
            }
        }
        // The backend's default holds `protect` back until its next operation that could make
        // a frame a table: such frames are still writable, and no table.
        let deferred = self.mmu.raw().deferred();
        let held_back = |p: u64| {
            deferred
                .iter()
                .any(|r| r.start().as_u64() <= p && p < r.end())
        };
        for r in &self.held.reserved {
            for p in r.pfns().iter().map(|p| p.as_u64()) {
                let f = xen.frame(p);
                assert!(!f.pinned);
                if held_back(p) {
                    assert!(!f.is_table(), "held back {p:#x}: {f:?}");
                    continue;
                }
                assert_eq!(f.writable_mappings(), 0, "reserved {p:#x}: {f:?}");
                assert_eq!(
                    xen.store(self.window_va + p * 4096),
                    Err(Fault::ReadOnly { level: 1 })
                );
            }
        }
        let l1 = self
            .held
            .l1
            .iter()
            .map(|t| (t.pfn(), t.pinned(), PageType::L1));
        let l2 = self
            .held
            .l2
            .iter()
            .map(|t| (t.pfn(), t.pinned(), PageType::L2));
        for (pfn, pinned, ty) in l1.chain(l2) {
            let f = xen.frame(pfn.as_u64());
            assert_eq!(f.writable_mappings(), 0, "table {pfn:?}: {f:?}");
            assert_eq!(f.pinned, pinned, "table {pfn:?}: {f:?}");
            if pinned {
                assert_eq!(f.ty, ty, "table {pfn:?}");
            }
        }
    }

    fn reserved_frame(&mut self, inp: &mut Input<'_>) -> Option<Frame<PgtReserved>> {
        let mut r = pick(&mut self.held.reserved, inp)?;
        let frame = r.next();
        if !r.is_empty() {
            self.held.reserved.push(r);
        }
        frame
    }

    fn step(&mut self, inp: &mut Input<'_>) {
        let limit = self.mmu.raw().windows()[0].pfns.end() * 4096;
        match inp.below(9) {
            0 => {
                let n = u64::from(inp.below(8)) + 1;
                let d = if inp.bool() {
                    Direction::TopDown
                } else {
                    Direction::BottomUp
                };
                if let Ok(r) = self.mb.alloc_frames(n, limit, d) {
                    self.held.free.push(r);
                }
            }
            1 => {
                let Some(r) = pick(&mut self.held.free, inp) else {
                    return;
                };
                let r = self.mmu.protect(r).unwrap();
                self.held.reserved.push(r);
            }
            2 => {
                let Some(r) = pick(&mut self.held.reserved, inp) else {
                    return;
                };
                let r = self.mmu.release(r).unwrap();
                self.held.free.push(r.into_free());
            }
            3 => {
                // A new L1 table, with read-only leaves to any frames.
                let Some(frame) = self.reserved_frame(inp) else {
                    return;
                };
                let mut b = TableBuilder::<U1>::new(frame);
                for _ in 0..inp.below(4) {
                    let idx = inp.u16() % 512;
                    let target = Pfn::new(u64::from(inp.u16()) % NR_PAGES).unwrap();
                    // SAFETY: the table is never hooked into a live tree, so the leaf maps
                    // nothing the guest uses; read-only leaves are allowed to any frame.
                    let _ = unsafe { b.set_leaf(idx, Pte::new(target, PageTableFlags::PRESENT)) };
                }
                let t = self.mmu.new_table(b).unwrap();
                self.held.l1.push(Table::Unpinned(t, 0));
            }
            4 => {
                // A new L2 adopting some unpinned L1 tables.
                let Some(frame) = self.reserved_frame(inp) else {
                    return;
                };
                let mut b = TableBuilder::<U2>::new(frame);
                let mut children = 0;
                for _ in 0..inp.below(3) {
                    let Some(i) = self.held.l1.iter().position(|t| !t.pinned()) else {
                        break;
                    };
                    let Table::Unpinned(child, c) = self.held.l1.swap_remove(i) else {
                        unreachable!("picked an unpinned one")
                    };
                    match b.adopt(inp.u16() % 512, child) {
                        Ok(()) => children += 1,
                        Err((_, child)) => self.held.l1.push(Table::Unpinned(child, c)),
                    }
                }
                let t = self.mmu.new_table(b).unwrap();
                self.held.l2.push(Table::Unpinned(t, children));
            }
            5 => {
                let Some(t) = pick(&mut self.held.l1, inp) else {
                    return;
                };
                let t = toggle(&mut self.mmu, t);
                self.held.l1.push(t);
            }
            6 => {
                let Some(t) = pick(&mut self.held.l2, inp) else {
                    return;
                };
                let t = toggle(&mut self.mmu, t);
                self.held.l2.push(t);
            }
            7 => {
                let freed = if inp.bool() {
                    match pick(&mut self.held.l1, inp) {
                        Some(Table::Unpinned(f, c)) => {
                            retire(&mut self.mmu, f, c).map_err(|t| self.held.l1.push(t))
                        }
                        Some(t) => {
                            self.held.l1.push(t);
                            Err(())
                        }
                        None => Err(()),
                    }
                } else {
                    match pick(&mut self.held.l2, inp) {
                        Some(Table::Unpinned(f, c)) => {
                            retire(&mut self.mmu, f, c).map_err(|t| self.held.l2.push(t))
                        }
                        Some(t) => {
                            self.held.l2.push(t);
                            Err(())
                        }
                        None => Err(()),
                    }
                };
                if let Ok(f) = freed {
                    self.held.free.push(FrameRange::from_frame(f));
                }
            }
            _ => {
                let Some(r) = pick(&mut self.held.free, inp) else {
                    return;
                };
                self.mb.free_frames(r).unwrap();
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input::new(data);
    let b = guest::boot(NR_PAGES);
    let mut storage = Box::new(Storage::new());
    let model = Counted::new(b.model);
    let mmu = guest::backend(&model, &b.p2m, &b.bootstrap, &mut storage);
    let mut mb = Memblock::new();
    // SAFETY: the model's frames are this memblock's alone; nothing dereferences them (the
    // model's memory is simulated).
    unsafe { mb.add_memory(0, NR_PAGES * 4096) }.unwrap();
    mb.reserve(0, b.layout.bootstrap_end()).unwrap();
    let mut w = World {
        mmu,
        mb,
        window_va: b.layout.virt_base,
        held: Held::default(),
    };
    for _ in 0..48 {
        if inp.is_empty() {
            break;
        }
        w.step(&mut inp);
        w.check();
    }
    w.xen().audit().unwrap();
});
