// `Mmu::raw_mut` is safe, and so are the backend methods it leaves callable in safe code (caps,
// counters, flush); reading a slot of any frame is not: `RawMmu::read` through it is unsafe
// (here Xen PV's backend, whose windows reach the whole direct map).
use backend_xen_pv::{PvPlatform, XenPv};
use hal_core::{Mmu, Pfn, Pte, RawMmu, TableLevel};

fn peek<H: PvPlatform>(mmu: &mut Mmu<XenPv<'_, H>>, memory: Pfn) -> Pte {
    mmu.raw_mut().read(memory, TableLevel::L1, 0).unwrap()
}

fn main() {}
