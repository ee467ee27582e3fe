//! The smallest example: prints the board, the raw firmware memory map and the reserved
//! ranges, on the console and via defmt, and passes.
//!
//! `cargo run --example hello` (bare metal); `-- --mem 6G` for RAM above 4 GiB.

#![no_std]
#![no_main]

use boards::common::console::Text;
use boards::{Outcome, Platform};
use pvmmu::memmap::RegionKind;

boards::entry!(main);

fn main<P: Platform>(p: &mut P) -> Outcome {
    let name = p.name();
    console(p).str("hello from ").str(name).str("\n");
    defmt::info!("hello from {=str}", name);

    let entries = p.memory_map().len();
    console(p)
        .str("memory map (")
        .dec(entries as u64)
        .str(" entries):\n");
    defmt::info!("memory map ({=usize} entries):", entries);
    for i in 0..entries {
        let r = p.memory_map()[i];
        let end = r.start.wrapping_add(r.len);
        let mut t = console(p);
        t.str("  [")
            .hex_digits(r.start, 12)
            .str(", ")
            .hex_digits(end, 12)
            .str(") ")
            .dec_right(r.len >> 10, 10)
            .str(" KiB  ");
        match r.kind {
            RegionKind::Ram => t.str("Ram"),
            RegionKind::Reserved => t.str("Reserved"),
            RegionKind::AcpiReclaimable => t.str("AcpiReclaimable"),
            RegionKind::AcpiNvs => t.str("AcpiNvs"),
            RegionKind::Unusable => t.str("Unusable"),
            RegionKind::Other(n) => t.str("Other(").dec(n.into()).str(")"),
        }
        .str("\n");
        defmt::info!("  [{=u64:#x}, {=u64:#x}) {}", r.start, end, r.kind);
    }

    let ranges = p.reserved().len();
    console(p)
        .str("reserved (")
        .dec(ranges as u64)
        .str(" ranges):\n");
    defmt::info!("reserved ({=usize} ranges):", ranges);
    for i in 0..ranges {
        let (start, end) = p.reserved()[i];
        console(p)
            .str("  [")
            .hex_digits(start, 12)
            .str(", ")
            .hex_digits(end, 12)
            .str(")\n");
        defmt::info!("  [{=u64:#x}, {=u64:#x})", start, end);
    }
    Outcome::Pass
}

/// Console text onto the board's console.
fn console<P: Platform>(p: &mut P) -> Text<impl FnMut(&str) + '_> {
    Text(move |s: &str| p.console_write(s))
}
