//! Host tests of the programs' failure paths: each failure keeps its true cause.

use std::vec::Vec;

use pvmmu::addr::MAX_PFN;
use pvmmu::memblock::Memblock;
#[cfg(feature = "xen-pv")]
use pvmmu::xen_pv::hypercall::{MmuUpdate, MmuextOp, MulticallEntry, TrapInfo};
#[cfg(feature = "xen-pv")]
use pvmmu::xen_pv::{P2m, RawHypercall};
use pvmmu::PfnRange;

use crate::memview::{self, REGIONS};
use crate::Failure;

/// Host builds have no board, so no defmt logger: one that drops every frame.
#[defmt::global_logger]
struct Discard;

// SAFETY: the logger does nothing, so no frame can be interleaved with another.
unsafe impl defmt::Logger for Discard {
    fn acquire() {}
    unsafe fn flush() {}
    unsafe fn release() {}
    unsafe fn write(_bytes: &[u8]) {}
}

#[test]
fn ram_beyond_max_pfn_is_refused_not_dropped() {
    let top = MAX_PFN << 12;
    let mut mb = Memblock::<REGIONS>::new();
    // SAFETY: the RAM is made up; nothing allocates from this memblock or dereferences a
    // frame.
    unsafe {
        mb.add_memory(0, 16 << 20).unwrap();
        mb.add_memory(top - (2 << 20), top + (2 << 20)).unwrap();
    }
    match memview::ram_ranges(&mb) {
        Err(Failure::Unaddressable { start, end }) => {
            assert_eq!((start, end), (top - (2 << 20), top + (2 << 20)));
        }
        other => panic!("RAM past MAX_PFN: {other:?}"),
    }
    let mut ok = Memblock::<REGIONS>::new();
    // SAFETY: as above.
    unsafe {
        ok.add_memory(0, 16 << 20).unwrap();
        ok.add_memory(top - (2 << 20), top).unwrap();
    }
    let r: Vec<PfnRange> = memview::ram_ranges(&ok).unwrap().into_iter().collect();
    assert_eq!(r.len(), 2);
    assert_eq!(r[1].end(), MAX_PFN);
}

defmt::timestamp!("{=u8}", 0);

/// Refuses every call: the P2M lookup must fail before any hypercall is made.
#[cfg(feature = "xen-pv")]
struct NoHypervisor;

// SAFETY: every call panics, so nothing is ever changed.
#[cfg(feature = "xen-pv")]
unsafe impl RawHypercall for NoHypervisor {
    unsafe fn mmu_update(&self, _: &[MmuUpdate], _: &mut u32, _: u16) -> i64 {
        unreachable!("no hypercall after a failed P2M lookup")
    }
    unsafe fn mmuext_op(&self, _: &[MmuextOp], _: &mut u32, _: u16) -> i64 {
        unreachable!("no hypercall after a failed P2M lookup")
    }
    unsafe fn update_va_mapping(&self, _: u64, _: u64, _: u64) -> i64 {
        unreachable!("no hypercall after a failed P2M lookup")
    }
    unsafe fn multicall(&self, _: &mut [MulticallEntry]) -> i64 {
        unreachable!("no hypercall after a failed P2M lookup")
    }
    unsafe fn set_trap_table(&self, _: &[TrapInfo]) -> i64 {
        unreachable!("no hypercall after a failed P2M lookup")
    }
    fn console_write(&self, _: &[u8]) -> i64 {
        unreachable!("no hypercall after a failed P2M lookup")
    }
    fn sched_shutdown(&self, _: u32) -> i64 {
        unreachable!("no hypercall after a failed P2M lookup")
    }
    fn physdev_set_iopl(&self, _: u32) -> i64 {
        unreachable!("no hypercall after a failed P2M lookup")
    }
    fn vm_assist(&self, _: u32, _: u32) -> i64 {
        unreachable!("no hypercall after a failed P2M lookup")
    }
    fn xen_version(&self) -> i64 {
        unreachable!("no hypercall after a failed P2M lookup")
    }
}

#[cfg(feature = "xen-pv")]
#[test]
fn seed_bug_reports_a_p2m_failure_as_one() {
    let list: &'static [u64] = Vec::leak(std::vec![0x1000, 0x1001]);
    let p2m = P2m::new(list).unwrap();
    // SAFETY: the lookup fails first, so `va` is never touched.
    let r = unsafe { crate::seed_bug::xen::pin_demo(&NoHypervisor, &p2m, 7, 0) };
    match r {
        Err(Failure::P2mLookup { pfn: 7 }) => {}
        other => panic!("a P2M failure reported as {other:?}"),
    }
}
