// The backend loads a slot from whatever frame its windows reach: reading a frame that Rust code
// holds a reference to, or that another CPU writes meanwhile, would be undefined behaviour, so
// `RawMmu::read` is unsafe on a backend one holds (here bare metal's, before `Mmu::new`). The
// safe reads take a typed table: `Mmu::entry`, `Mmu::child`, `Mmu::translate`.
use backend_native::{Cpu, Native};
use hal_core::{Pfn, Pte, RawMmu, TableLevel};

fn peek<C: Cpu>(raw: &mut Native<C>, memory: Pfn) -> Pte {
    raw.read(memory, TableLevel::L1, 0).unwrap()
}

fn main() {}
