//! Random sequences of typed-API operations (allocate, protect, release, new L1 and L2
//! tables, pin, retire, give back to memblock) on backend-xen-pv over the model of Xen's
//! rules. Every operation the types allow must succeed (a second pin is refused by Xen and
//! reported as such), and after each one the model agrees with the types: a `Free` frame is
//! no table and writable through the initial mapping, a `PgtReserved` or `PinnedRO` frame has
//! no writable mapping, a pinned table has its level's type, and Xen's bookkeeping audits
//! clean.

#![no_main]

use backend_xen_pv::model::{Fault, Model, PageType};
use backend_xen_pv::{Storage, XenErrno, XenPv};
use hal_core::memblock::{Direction, Memblock};
use hal_core::{
    Frame, FrameRange, Free, Mmu, PageTableFlags, PgtReserved, PinnedRO, Pte, TableBuilder,
};
use libfuzzer_sys::fuzz_target;
use pvmmu_fuzz::guest;
use pvmmu_fuzz::input::Input;
use typenum::{U1, U2};

const NR_PAGES: u64 = 1100;

struct Table<L: hal_core::Level> {
    frame: Frame<PinnedRO<L>>,
    pinned: bool,
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

impl World<'_> {
    fn xen(&self) -> &Model {
        self.mmu.raw().hypervisor()
    }

    fn check(&self) {
        let xen = self.xen();
        xen.audit().unwrap();
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
        for r in &self.held.reserved {
            for p in r.pfns().iter().map(|p| p.as_u64()) {
                let f = xen.frame(p);
                assert_eq!(f.writable_mappings(), 0, "reserved {p:#x}: {f:?}");
                assert!(!f.pinned);
                assert_eq!(
                    xen.store(self.window_va + p * 4096),
                    Err(Fault::ReadOnly { level: 1 })
                );
            }
        }
        let tables = self
            .held
            .l1
            .iter()
            .map(|t| (t.frame.pfn(), t.pinned, PageType::L1));
        let tables = tables.chain(
            self.held
                .l2
                .iter()
                .map(|t| (t.frame.pfn(), t.pinned, PageType::L2)),
        );
        for (pfn, pinned, ty) in tables {
            let f = xen.frame(pfn.as_u64());
            assert_eq!(f.writable_mappings(), 0, "table {pfn:?}: {f:?}");
            assert_eq!(f.pinned, pinned, "table {pfn:?}: {f:?}");
            if pinned {
                assert_eq!(f.ty, ty, "table {pfn:?}");
            }
        }
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
                // A new L1 table from a reserved frame, with read-only leaves to held frames.
                let Some(mut r) = pick(&mut self.held.reserved, inp) else {
                    return;
                };
                let Some(frame) = r.next() else { return };
                if !r.is_empty() {
                    self.held.reserved.push(r);
                }
                let mut b = TableBuilder::<U1>::new(frame);
                for _ in 0..inp.below(4) {
                    let idx = inp.u16() % 512;
                    let target = hal_core::Pfn::new(u64::from(inp.u16()) % NR_PAGES).unwrap();
                    // SAFETY: the table is never hooked into a live tree, so the leaf maps
                    // nothing the guest uses; read-only leaves are allowed to any frame.
                    let _ = unsafe { b.set_leaf(idx, Pte::new(target, PageTableFlags::PRESENT)) };
                }
                let (t, p) = self.mmu.new_table(b).unwrap();
                p.flush(&mut self.mmu).unwrap();
                self.held.l1.push(Table {
                    frame: t,
                    pinned: false,
                });
            }
            4 => {
                // A new L2 adopting some L1 tables.
                let Some(mut r) = pick(&mut self.held.reserved, inp) else {
                    return;
                };
                let Some(frame) = r.next() else { return };
                if !r.is_empty() {
                    self.held.reserved.push(r);
                }
                let mut b = TableBuilder::<U2>::new(frame);
                for _ in 0..inp.below(3) {
                    // Only unpinned children: a pinned table keeps its pin when adopted.
                    let Some(i) = self.held.l1.iter().position(|t| !t.pinned) else {
                        break;
                    };
                    let child = self.held.l1.swap_remove(i).frame;
                    if let Err((_, child)) = b.adopt(inp.u16() % 512, child) {
                        self.held.l1.push(Table {
                            frame: child,
                            pinned: false,
                        });
                    }
                }
                let (t, p) = self.mmu.new_table(b).unwrap();
                p.flush(&mut self.mmu).unwrap();
                self.held.l2.push(Table {
                    frame: t,
                    pinned: false,
                });
            }
            5 => {
                let i = usize::from(inp.u8()) % self.held.l1.len().max(1);
                let Some(t) = self.held.l1.get_mut(i) else {
                    return;
                };
                let res = self.mmu.pin(&t.frame);
                if t.pinned {
                    assert_eq!(
                        res.map_err(|e| e.errno()),
                        Err(Some(XenErrno::EINVAL)),
                        "double pin"
                    );
                } else {
                    res.unwrap();
                    t.pinned = true;
                }
            }
            6 => {
                let i = usize::from(inp.u8()) % self.held.l2.len().max(1);
                let Some(t) = self.held.l2.get_mut(i) else {
                    return;
                };
                let res = self.mmu.pin(&t.frame);
                if t.pinned {
                    assert_eq!(
                        res.map_err(|e| e.errno()),
                        Err(Some(XenErrno::EINVAL)),
                        "double pin"
                    );
                } else {
                    res.unwrap();
                    t.pinned = true;
                }
            }
            7 => {
                let f = if inp.bool() {
                    let Some(t) = pick(&mut self.held.l1, inp) else {
                        return;
                    };
                    self.mmu.retire(t.frame).unwrap().into_free()
                } else {
                    let Some(t) = pick(&mut self.held.l2, inp) else {
                        return;
                    };
                    self.mmu.retire(t.frame).unwrap().into_free()
                };
                self.held.free.push(FrameRange::from_frame(f));
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
    let mmu = guest::backend(b.model, &b.p2m, &b.bootstrap, &mut storage);
    let mut mb = Memblock::new();
    mb.add_memory(0, NR_PAGES * 4096).unwrap();
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
});
