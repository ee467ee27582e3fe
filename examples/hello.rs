//! The smallest example: prints the board, the raw firmware memory map and the reserved
//! ranges, on the console and via defmt, and passes.
//!
//! `cargo run --example hello` (bare metal); `-- --mem 6G` for RAM above 4 GiB.

#![no_std]
#![no_main]

use core::fmt::Write;

use boards::{Outcome, Platform, PlatformWriter};

boards::entry!(main);

fn main<P: Platform>(p: &mut P) -> Outcome {
    let name = p.name();
    let _ = writeln!(PlatformWriter(p), "hello from {name}");
    defmt::info!("hello from {=str}", name);

    let entries = p.memory_map().len();
    let _ = writeln!(PlatformWriter(p), "memory map ({entries} entries):");
    defmt::info!("memory map ({=usize} entries):", entries);
    for i in 0..entries {
        let r = p.memory_map()[i];
        let end = r.start.wrapping_add(r.len);
        let _ = writeln!(
            PlatformWriter(p),
            "  [{:#014x}, {:#014x}) {:>10} KiB  {:?}",
            r.start,
            end,
            r.len >> 10,
            r.kind
        );
        defmt::info!("  [{=u64:#x}, {=u64:#x}) {}", r.start, end, r.kind);
    }

    let ranges = p.reserved().len();
    let _ = writeln!(PlatformWriter(p), "reserved ({ranges} ranges):");
    defmt::info!("reserved ({=usize} ranges):", ranges);
    for i in 0..ranges {
        let (start, end) = p.reserved()[i];
        let _ = writeln!(PlatformWriter(p), "  [{start:#014x}, {end:#014x})");
        defmt::info!("  [{=u64:#x}, {=u64:#x})", start, end);
    }
    Outcome::Pass
}
