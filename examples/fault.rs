//! Deliberate guest faults.
//!
//! - By default: reads an address nothing maps, so the board's fault path must report a page
//!   fault (vector 14, CR2 = [`FAULT_ADDRESS`]) and end the run with `Fail`.
//! - With `fault.kind=stack` on the guest command line: recurses until the boot stack
//!   overflows into its guard page (`__pvmmu_stack_guard`). Bare metal ends in a double fault
//!   reported on the IST stack; under Xen the `#PF` cannot be delivered on a stack that is not
//!   there, and Xen crashes the domain.
//!
//! The boot tests expect exactly that (the stack's case with the faulting `rsp` in the guard
//! page, as the image's symbol table places it); if the read returns or the recursion ends,
//! the example fails with its own message.
//!
//! `cargo run --example fault [-- -- fault.kind=stack]` (bare metal); `--features xen-pv`
//! under Xen.

#![no_std]
#![no_main]

use boards::{Outcome, Platform};
use pvmmu_figures::FAULT_ADDRESS;

boards::entry!(main);

/// The address read: `pvmmu_figures::FAULT_ADDRESS`, which the runner checks the report against.
const UNMAPPED: u64 = FAULT_ADDRESS;

fn main<P: Platform>(p: &mut P) -> Outcome {
    let stack = p
        .cmdline()
        .split_ascii_whitespace()
        .any(|w| w == "fault.kind=stack");
    if stack {
        defmt::info!("fault: overflowing the boot stack");
        let depth = descend(0);
        defmt::error!(
            "fault: the recursion returned after {=u64} frames: no fault was raised",
            depth
        );
        return Outcome::Fail;
    }
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

/// Recurses with 512 bytes of frame each, used after the call (so it is no tail call and no
/// frame is optimised away), until the stack runs out; returns only if `depth` wraps, which
/// it cannot before the stack does.
#[inline(never)]
fn descend(depth: u64) -> u64 {
    let mut frame = [0u8; 512];
    frame[(depth % 512) as usize] = depth as u8;
    let frame = core::hint::black_box(frame);
    let below = if core::hint::black_box(depth) == u64::MAX {
        0
    } else {
        descend(depth + 1)
    };
    below + u64::from(frame[(depth % 512) as usize])
}
