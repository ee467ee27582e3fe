// The native backend trusts its `Cpu` for the current root and the TLB flushes: implementing it
// is a promise, so a safe `impl` (here one that reports a root the processor does not use,
// which would let `Mmu::retire` free the tables in use) is refused.
use backend_native::Cpu;
use hal_core::Pfn;

struct Liar;

impl Cpu for Liar {
    fn root(&self) -> Pfn {
        Pfn::new(1).unwrap()
    }
    unsafe fn set_root(&mut self, _root: Pfn) {}
    fn flush_tlb(&mut self) {}
    fn invalidate_page(&mut self, _va: u64) {}
}

fn main() {}
