//! The model's rules, one by one, against the raw hypercall interface.

use super::*;
use crate::hypercall::abi::{mmuext, nr, uvmf, DOMID_SELF};
use crate::start_info::{BootstrapLayout, StartInfo};

use bits::*;

struct Dom {
    m: Model,
    pt: (u64, u64),
    mapped: u64,
}

fn dom() -> Dom {
    let m = Model::new(DomainConfig::mib(16));
    let si = StartInfo::from_bytes(&m.boot().start_info).unwrap();
    let layout = BootstrapLayout::new(&si, m.boot().start_info_va, 0).unwrap();
    assert_eq!(layout.mapped_end, m.boot().mapped_end);
    let pt0 = si.pt_base() / 4096;
    Dom {
        pt: (pt0, pt0 + si.nr_pt_frames()),
        mapped: layout.mapped_pages(),
        m,
    }
}

impl Dom {
    fn mfn(&self, pfn: u64) -> u64 {
        self.m.boot().p2m[pfn as usize]
    }
    fn upd(&self, reqs: &[MmuUpdate]) -> (i64, u32) {
        let mut done = 0;
        // SAFETY: the model touches only its simulated memory.
        let r = unsafe { self.m.mmu_update(reqs, &mut done, DOMID_SELF) };
        (r, done)
    }
    fn ext(&self, cmd: u32, pfn: u64) -> i64 {
        let mut done = 0;
        let op = MmuextOp {
            cmd,
            arg1: self.mfn(pfn),
            arg2: 0,
        };
        // SAFETY: as above.
        unsafe { self.m.mmuext_op(&[op], &mut done, DOMID_SELF) }
    }
    fn uvm(&self, pfn: u64, val: u64) -> i64 {
        // SAFETY: as above.
        unsafe { self.m.update_va_mapping(pfn * 4096, val, uvmf::INVLPG) }
    }
    /// The machine address of the L1 entry mapping `pfn` in the initial mapping.
    fn pte(&self, pfn: u64) -> u64 {
        let l1 = self.pt.0 + 3 + pfn / 512;
        (self.mfn(l1) << 12) + 8 * (pfn % 512)
    }
}

#[test]
fn boot_state_is_what_the_domain_builder_leaves() {
    let d = dom();
    d.m.audit().unwrap();
    let root = d.m.frame(d.pt.0);
    assert_eq!((root.ty, root.pinned), (PageType::L4, true));
    assert_eq!(root.count, 2, "pinned + CR3");
    assert_eq!(d.m.current_root(), d.pt.0);
    assert_eq!(d.m.frame(d.pt.0 + 3).ty, PageType::L1);
    assert_eq!(d.m.frame(5).writable_mappings(), 1);
    assert_eq!(d.m.frame(d.mapped).ty, PageType::None, "beyond the mapping");
    assert_ne!(d.mfn(7), 7, "the P2M is not the identity");
    assert_eq!(d.m.store(5 * 4096), Ok(5));
    assert_eq!(d.m.store(d.pt.0 * 4096), Err(Fault::ReadOnly { level: 1 }));
    assert_eq!(d.m.load(d.pt.0 * 4096), Ok(d.pt.0));
    assert_eq!(
        d.m.store(d.mapped * 4096),
        Err(Fault::NotPresent { level: 2 }),
        "4 MiB aligned"
    );
    assert_eq!(d.m.store(0xffff_8000_0000_0000), Err(Fault::XenArea));
}

#[test]
fn pinning_a_frame_that_is_mapped_writable_is_einval_until_it_is_read_only() {
    let d = dom();
    let pfn = d.mapped - 1;
    assert_eq!(d.ext(mmuext::PIN_L1_TABLE, pfn), -22);
    assert_eq!(d.m.frame(pfn).writable_mappings(), 1, "nothing changed");
    let ro = (d.mfn(pfn) << 12) | P | A;
    assert_eq!(d.uvm(pfn, ro), 0);
    assert_eq!(d.m.frame(pfn).writable_mappings(), 0);
    assert_eq!(d.ext(mmuext::PIN_L1_TABLE, pfn), 0);
    assert_eq!(d.ext(mmuext::PIN_L1_TABLE, pfn), -22, "already pinned");
    assert_eq!(
        d.ext(mmuext::PIN_L2_TABLE, pfn),
        -22,
        "a table of another level"
    );
    assert_eq!(d.m.store(pfn * 4096), Err(Fault::ReadOnly { level: 1 }));
    // A writable mapping of a pinned table: -EBUSY, and the entry is unchanged.
    assert_eq!(d.uvm(pfn, ro | RW), -16);
    assert_eq!(
        d.m.raw_entry(d.pt.0 + 3 + pfn / 512, (pfn % 512) as usize),
        ro | USER | GUEST_KERNEL,
        "unchanged (as Xen stored it: a kernel mapping, marked)"
    );
    assert_eq!(d.ext(mmuext::UNPIN_TABLE, pfn), 0);
    assert_eq!(d.ext(mmuext::UNPIN_TABLE, pfn), -22, "not pinned");
    assert_eq!(d.uvm(pfn, ro | RW), 0, "ordinary memory again");
    assert_eq!(d.m.store(pfn * 4096), Ok(pfn));
    d.m.audit().unwrap();
}

#[test]
fn writable_mapping_of_a_bootstrap_table_is_ebusy_with_success_count() {
    let d = dom();
    let t = d.pt.0 + 1;
    let ok = MmuUpdate {
        ptr: d.pte(10),
        val: (d.mfn(10) << 12) | P | A,
    };
    let bad = MmuUpdate {
        ptr: d.pte(t),
        val: (d.mfn(t) << 12) | P | RW | A,
    };
    assert_eq!(d.upd(&[ok, ok, bad, ok]), (-16, 2));
    assert_eq!(
        d.m.frame(10).writable_mappings(),
        0,
        "the first two were applied"
    );
    assert_eq!(d.m.frame(t).ty, PageType::L3);
    d.m.audit().unwrap();
}

#[test]
fn hooking_a_table_that_is_still_writable_is_einval() {
    let d = dom();
    let (child, leaf) = (d.mapped - 2, d.mapped - 1);
    // A plain write into the child (it is no table yet): an L1 mapping `leaf` read-only.
    let fill = MmuUpdate {
        ptr: d.mfn(child) << 12,
        val: (d.mfn(leaf) << 12) | P | A,
    };
    assert_eq!(d.upd(&[fill]), (0, 1));
    // Hook it under the live L2 (slot 100, unused): the child has a writable mapping.
    let l2 = d.pt.0 + 2;
    let hook = MmuUpdate {
        ptr: (d.mfn(l2) << 12) + 8 * 100,
        val: (d.mfn(child) << 12) | P | RW | A,
    };
    assert_eq!(d.upd(&[hook]), (-22, 0));
    assert_eq!(d.m.raw_entry(l2, 100), 0);
    // Read-only first, then the hook validates the child.
    assert_eq!(d.uvm(child, (d.mfn(child) << 12) | P | A), 0);
    assert_eq!(d.upd(&[hook]), (0, 1));
    assert_eq!(d.m.frame(child).ty, PageType::L1);
    assert_eq!(d.m.load(100 << 21), Ok(leaf));
    assert_eq!(d.m.store(100 << 21), Err(Fault::ReadOnly { level: 1 }));
    d.m.audit().unwrap();
    // Unhook: the child is devalidated and may be mapped writable again.
    let unhook = MmuUpdate {
        ptr: hook.ptr,
        val: 0,
    };
    assert_eq!(d.upd(&[unhook]), (0, 1));
    assert_eq!(d.uvm(child, (d.mfn(child) << 12) | P | RW | A), 0);
    d.m.audit().unwrap();
}

#[test]
fn a_child_whose_entry_maps_a_table_writable_fails_validation_with_ebusy() {
    let d = dom();
    let child = d.mapped - 1;
    assert_eq!(d.uvm(child, (d.mfn(child) << 12) | P | A), 0);
    let t = d.pt.0 + 1;
    let fill = MmuUpdate {
        ptr: d.mfn(child) << 12,
        val: (d.mfn(t) << 12) | P | RW | A,
    };
    assert_eq!(d.upd(&[fill]), (0, 1), "a plain write: not a table yet");
    assert_eq!(d.ext(mmuext::PIN_L1_TABLE, child), -16);
    assert!(!d.m.frame(child).is_table());
    d.m.audit().unwrap();
}

#[test]
fn superpages_and_xen_slots_are_einval() {
    let d = dom();
    let l2 = d.pt.0 + 2;
    let pse = MmuUpdate {
        ptr: (d.mfn(l2) << 12) + 8 * 200,
        val: (d.mfn(0) << 12) | P | RW | PSE,
    };
    assert_eq!(d.upd(&[pse]), (-22, 0));
    let l3 = d.pt.0 + 1;
    let pse1g = MmuUpdate {
        ptr: (d.mfn(l3) << 12) + 8 * 3,
        val: (d.mfn(0) << 12) | P | RW | PSE,
    };
    assert_eq!(d.upd(&[pse1g]), (-22, 0));
    let xen = MmuUpdate {
        ptr: (d.mfn(d.pt.0) << 12) + 8 * 256,
        val: 0,
    };
    assert_eq!(d.upd(&[xen]), (-22, 0));
    let xen_last = MmuUpdate {
        ptr: (d.mfn(d.pt.0) << 12) + 8 * 271,
        val: 0,
    };
    assert_eq!(d.upd(&[xen_last]), (-22, 0));
    let guest = MmuUpdate {
        ptr: (d.mfn(d.pt.0) << 12) + 8 * 272,
        val: 0,
    };
    assert_eq!(d.upd(&[guest]), (0, 1));
    let foreign = MmuUpdate {
        ptr: 7 << 12,
        val: 0,
    };
    assert_eq!(d.upd(&[foreign]), (-22, 0), "not the domain's frame");
}

#[test]
fn multicall_runs_every_entry_and_reports_each() {
    let d = dom();
    let t = d.pt.0 + 1;
    let good = [MmuUpdate {
        ptr: d.pte(10),
        val: (d.mfn(10) << 12) | P | A,
    }];
    let bad = [MmuUpdate {
        ptr: d.pte(t),
        val: (d.mfn(t) << 12) | P | RW | A,
    }];
    let good2 = [MmuUpdate {
        ptr: d.pte(11),
        val: (d.mfn(11) << 12) | P | A,
    }];
    let mut done = [7u32; 3];
    let mut e = [MulticallEntry::default(); 4];
    for (i, reqs) in [&good, &bad, &good2].iter().enumerate() {
        e[i].op = u64::from(nr::MMU_UPDATE);
        e[i].args = [
            reqs.as_ptr() as u64,
            1,
            &mut done[i] as *mut u32 as u64,
            u64::from(DOMID_SELF),
            0,
            0,
        ];
    }
    e[3].op = u64::from(nr::UPDATE_VA_MAPPING);
    e[3].args = [12 * 4096, (d.mfn(12) << 12) | P | A, 0, 0, 0, 0];
    // SAFETY: every pointer is live for the call.
    assert_eq!(unsafe { d.m.multicall(&mut e) }, 0);
    let results: std::vec::Vec<i64> = e.iter().map(|e| e.result as i64).collect();
    assert_eq!(results, [0, -16, 0, 0]);
    assert_eq!(done, [1, 0, 1]);
    assert_eq!(
        d.m.frame(11).writable_mappings(),
        0,
        "ran after the failure"
    );
    assert_eq!(d.m.frame(12).writable_mappings(), 0);
    assert_eq!(d.m.stats().hypercalls, 1);
}

#[test]
fn new_baseptr_validates_the_new_root_and_drops_the_old() {
    let d = dom();
    let new = d.mapped - 1;
    // A copy of the bootstrap root, written plainly, read-only first.
    assert_eq!(d.uvm(new, (d.mfn(new) << 12) | P | A), 0);
    let l4 = d.m.raw_entry(d.pt.0, 0);
    let fill = MmuUpdate {
        ptr: d.mfn(new) << 12,
        val: l4,
    };
    assert_eq!(d.upd(&[fill]), (0, 1));
    assert_eq!(d.ext(mmuext::NEW_BASEPTR, new), 0);
    assert_eq!(d.m.current_root(), new);
    assert_eq!(d.m.frame(d.pt.0).count, 1, "still pinned");
    assert_eq!(d.m.frame(new).count, 1, "CR3 only");
    assert_eq!(d.m.store(5 * 4096), Ok(5));
    assert_ne!(d.m.raw_entry(new, 256), 0, "Xen filled its slots");
    d.m.audit().unwrap();
    // The old root is still pinned: it can be switched back to.
    assert_eq!(d.ext(mmuext::NEW_BASEPTR, d.pt.0), 0);
    assert_eq!(d.m.frame(new).count, 0);
    assert!(!d.m.frame(new).is_table());
    d.m.audit().unwrap();
}

#[test]
fn backend_size_is_what_its_docs_say() {
    let size = core::mem::size_of::<crate::XenPv<'static, Model>>();
    let storage = core::mem::size_of::<crate::Storage>();
    std::println!("XenPv: {size} bytes, Storage: {storage} bytes");
    assert!(size < 2 * 1024, "{size} bytes");
    assert!(storage < 26 * 1024, "{storage} bytes");
}

#[test]
fn the_static_storage_is_handed_out_once() {
    let first = crate::Storage::take_static();
    assert!(first.is_some());
    assert!(crate::Storage::take_static().is_none());
}

#[test]
fn translate_pages_agrees_with_a_load_and_a_store_per_page() {
    let d = dom();
    // Read-only leaves (the bootstrap tables), writable ones, the end of the initial mapping
    // and beyond it (not present), across a 2 MiB boundary and into Xen's slots' neighbour.
    let first = d.pt.0.saturating_sub(3);
    let pages = d.mapped - first + 600;
    let mut walked = std::vec::Vec::new();
    d.m.translate_pages(first * 4096, pages, |i, got| walked.push((i, got)));
    assert_eq!(walked.len() as u64, pages);
    for (i, got) in walked {
        let va = (first + i) * 4096;
        let want = match (d.m.load(va), d.m.store(va)) {
            (Ok(pfn), Ok(_)) => Ok(Translation {
                pfn,
                writable: true,
            }),
            (Ok(pfn), Err(Fault::ReadOnly { .. })) => Ok(Translation {
                pfn,
                writable: false,
            }),
            (Err(f), _) => Err(f),
            (Ok(_), Err(f)) => panic!("a load that lands and a store that faults with {f:?}"),
        };
        assert_eq!(got, want, "page {:#x}", first + i);
    }
    // The cheap walk leaves the TLB alone; the loads and stores above filled it.
    let tlb = d.m.tlb_entries();
    d.m.translate_pages(0, 16, |_, _| {});
    assert_eq!(d.m.tlb_entries(), tlb);
}

#[test]
fn a_copy_of_a_model_is_the_same_domain_and_independent() {
    let d = dom();
    let copy = d.m.clone();
    d.m.audit().unwrap();
    copy.audit().unwrap();
    let p = d.mapped - 1;
    assert_eq!(copy.frame(p), d.m.frame(p));
    // A change to one is not seen by the other.
    let e = d.m.raw_entry(d.pt.0 + 3, 0);
    let (r, _) = d.upd(&[MmuUpdate {
        ptr: ((d.mfn(d.pt.0 + 3)) << 12) | mmu::NORMAL_PT_UPDATE,
        val: 0,
    }]);
    assert_eq!(r, 0);
    assert_eq!(copy.raw_entry(d.pt.0 + 3, 0), e);
    assert_ne!(d.m.raw_entry(d.pt.0 + 3, 0), e);
}
