//! A deliberate guest fault: reads an address nothing maps, so the board's fault path must
//! report a page fault (vector 14, CR2 = [`FAULT_ADDRESS`]) and end the run with `Fail`. The boot
//! tests expect exactly that; if the read returns, the example fails with its own message.
//!
//! `cargo run --example fault` (bare metal); `--features xen-pv` under Xen.

#![no_std]
#![no_main]

use boards::{Outcome, Platform};
use pvmmu_figures::FAULT_ADDRESS;

boards::entry!(main);

/// The address read: `pvmmu_figures::FAULT_ADDRESS`, which the runner checks the report against.
const UNMAPPED: u64 = FAULT_ADDRESS;

fn main<P: Platform>(p: &mut P) -> Outcome {
    p.console_write("fault: reading 0x0000700000000000, which is not mapped\n");
    defmt::info!("fault: reading {=u64:#x}, which is not mapped", UNMAPPED);
    // SAFETY: none: this read is meant to fault. The address is not mapped on either board, so
    // no memory is read; the CPU raises #PF and the board's handler reports it and exits Fail
    // before the value could be used.
    let value = unsafe { core::ptr::read_volatile(UNMAPPED as *const u64) };
    p.console_write("fault: the read returned: no page fault was raised\n");
    defmt::error!(
        "fault: reading {=u64:#x} returned {=u64:#x}: no page fault",
        UNMAPPED,
        value
    );
    Outcome::Fail
}
