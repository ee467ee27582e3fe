//! Xen's rules in hal-core's tests are backend-xen-pv's model of Xen (the one the conformance
//! corpus checks against real Xen): the sim hands it every table update, and its verdict,
//! with Xen's errno, is the sim's. Here the rule the type states exist for: no frame may be
//! a page table while a writable mapping of it is left.

mod common;

use common::sim::caps;
use common::world;
use hal_core::backend::RawMmu;
use hal_core::memblock::Direction;
use hal_core::memmap::{MemRegion, RegionKind};
use hal_core::{BackendError, ErrorKind, PageTableFlags, Pfn, PfnRange, Pte, TableLevel};

#[test]
fn a_table_with_a_writable_mapping_left_is_refused_with_xens_errno() {
    for c in [caps::XEN, caps::HYBRID, caps::NATIVE] {
        let map = [MemRegion {
            start: 0,
            len: 16 << 20,
            kind: RegionKind::Ram,
        }];
        let mut w = world(&map, c).unwrap();
        let got = w.mb.alloc_frames(2, u64::MAX, Direction::BottomUp).unwrap();
        let p = got.pfns();
        let _ = got;
        let one = |pfn: Pfn| PfnRange::new(pfn, pfn.as_u64() + 1).unwrap();
        let (a, x) = (p.start(), Pfn::new(p.start().as_u64() + 1).unwrap());
        // The boot L2 (under the kernel slot of the live root): what it holds is live.
        let l2 = Pfn::new(w.boot.start().as_u64() + 2).unwrap();
        let sim = w.mmu.raw_mut();
        // SAFETY: simulated memory; the frames are this test's, the boot L2 the sim's.
        let hooked = unsafe {
            sim.protect(one(a)).unwrap();
            let leaf = Pte::new(x, PageTableFlags::PRESENT | PageTableFlags::WRITABLE);
            sim.write(a, TableLevel::L1, 0, &[leaf]).unwrap();
            // A is live now: x is mapped writable through it.
            sim.write(l2, TableLevel::L2, 0, &[Pte::table(a)]).unwrap();
            // x protected with no window over it: the writable mapping through A is left.
            sim.protect(one(x)).unwrap();
            sim.write(x, TableLevel::L1, 0, &[Pte::from_bits(0)])
                .unwrap();
            sim.write(l2, TableLevel::L2, 1, &[Pte::table(x)])
        };
        if !c.tables_read_only {
            // Bare metal has no such rule.
            assert!(hooked.is_ok(), "{c:?}: {hooked:?}");
            continue;
        }
        let err = hooked.expect_err("Xen refuses a table with a writable mapping");
        assert_eq!(err.kind(), ErrorKind::Refused, "{c:?}: {err}");
        assert_eq!(err.why, "Xen (model): -EINVAL", "{c:?}");
        // Refused: nothing changed, in the sim's tables or in Xen's bookkeeping.
        assert_eq!(sim.peek(l2.as_u64(), 1), Some(0));
        let xen = sim.xen().expect("read-only tables: Xen's model");
        let fx = xen.frame(x.as_u64()).unwrap();
        assert_eq!((fx.writable_mappings(), fx.is_table()), (1, false));
        xen.audit().unwrap();
        // Once the mapping goes (A unhooked, so no longer validated), x may be a table.
        // SAFETY: as above.
        unsafe {
            sim.write(l2, TableLevel::L2, 0, &[Pte::from_bits(0)])
                .unwrap();
            sim.write(l2, TableLevel::L2, 1, &[Pte::table(x)]).unwrap();
        }
        let xen = sim.xen().unwrap();
        assert!(xen.frame(x.as_u64()).unwrap().is_table());
        xen.audit().unwrap();
    }
}

#[test]
fn a_pinned_table_is_not_made_writable_again() {
    for c in [caps::XEN, caps::HYBRID, caps::NATIVE] {
        let map = [MemRegion {
            start: 0,
            len: 16 << 20,
            kind: RegionKind::Ram,
        }];
        let mut w = world(&map, c).unwrap();
        let got = w.mb.alloc_frames(2, u64::MAX, Direction::BottomUp).unwrap();
        let p = got.pfns();
        let _ = got;
        let one = |pfn: Pfn| PfnRange::new(pfn, pfn.as_u64() + 1).unwrap();
        let (a, t) = (p.start(), Pfn::new(p.start().as_u64() + 1).unwrap());
        let l2 = Pfn::new(w.boot.start().as_u64() + 2).unwrap();
        // Slot 0 of A, under slot 0 of the boot L2 (kernel slot 511, L3 slot 510).
        let va = 0xffff_ffff_8000_0000;
        let sim = w.mmu.raw_mut();
        // SAFETY: simulated memory; the frames are this test's, the boot L2 the sim's.
        let released = unsafe {
            sim.protect(one(a)).unwrap();
            let leaf = Pte::new(t, PageTableFlags::PRESENT | PageTableFlags::WRITABLE);
            sim.write(a, TableLevel::L1, 0, &[leaf]).unwrap();
            sim.write(l2, TableLevel::L2, 0, &[Pte::table(a)]).unwrap();
            sim.add_window(va, one(t)).unwrap();
            // t protected through the window (the leaf made read-only), then an L1, pinned.
            sim.protect(one(t)).unwrap();
            sim.write(t, TableLevel::L1, 0, &[Pte::from_bits(0)])
                .unwrap();
            sim.pin(t, TableLevel::L1).unwrap();
            // Releasing it would map a pinned table writable.
            sim.release(one(t))
        };
        // Bare metal: the sim's check of the contract (no release of a table); read-only
        // tables: Xen's.
        let err = released.expect_err("a pinned table is not mapped writable");
        assert_eq!(err.kind(), ErrorKind::Busy, "{c:?}: {err}");
        let leaf = sim.peek(a.as_u64(), 0).map(Pte::from_bits).unwrap();
        if let Some(xen) = sim.xen() {
            // The leaf stays read-only.
            assert!(!leaf.flags().contains(PageTableFlags::WRITABLE), "{c:?}");
            // Xen's verdict: -EBUSY for the writable entry; t stays a pinned table.
            assert_eq!(err.why, "Xen (model) refused the remap", "{c:?}");
            let ft = xen.frame(t.as_u64()).unwrap();
            assert!(ft.is_table() && ft.pinned, "{c:?}: {ft:?}");
            xen.audit().unwrap();
        }
    }
}
