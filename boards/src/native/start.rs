//! The native board's Rust entry: console, CPU tables, logger, boot information, the example.

use super::start_info::StartInfoError;
use super::{boot, cpu, NativeBoard};
use crate::common::console;
use crate::common::exit;
use crate::common::logger::{self, IrqMask};
use crate::common::uart::{Uart16550, COM1};
use crate::Outcome;

// SAFETY: COM1 on the PC; the native board runs in ring 0 with I/O privilege.
const CONSOLE_UART: Uart16550 = unsafe { Uart16550::new(COM1) };

fn com1_write(s: &str) {
    CONSOLE_UART.write_bytes(s.as_bytes());
}

/// Runs the example `main` on the native board and exits with its outcome.
///
/// Called by the `entry!` glue in 64-bit mode on the boot stack, interrupts off.
///
/// # Safety
/// Call once, from the PVH boot stub's call to `__pvmmu_native_entry`, with the
/// `hvm_start_info` physical address the loader passed in `EBX`.
pub unsafe fn start(start_info_paddr: u64, main: fn(&mut NativeBoard) -> Outcome) -> ! {
    CONSOLE_UART.init();
    console::set(com1_write);
    cpu::init();
    logger::init(&IrqMask::CPU);

    let image = boot::image_range();
    let stack = boot::boot_stack();
    console::text()
        .str("native-pvh: PVH entry ")
        .hex(boot::entry_address())
        .str(", image [")
        .hex(image.0)
        .str(", ")
        .hex(image.1)
        .str("), boot stack [")
        .hex(stack.0)
        .str(", ")
        .hex(stack.1)
        .str("), boot PML4 ")
        .hex(boot::boot_pml4())
        .str(", hvm_start_info at ")
        .hex(start_info_paddr)
        .str("\n");
    defmt::info!(
        "native-pvh: PVH entry {=u64:#x}, image [{=u64:#x}, {=u64:#x}), hvm_start_info at {=u64:#x}",
        boot::entry_address(),
        image.0,
        image.1,
        start_info_paddr
    );

    // SAFETY: the caller passes the loader's `hvm_start_info`; the boot stub identity-mapped
    // [0, 4 GiB), where the loader put it and its memory map.
    let board = unsafe { NativeBoard::from_start_info(start_info_paddr, image) };
    let mut board = match board {
        Ok(board) => board,
        Err(e) => {
            let mut line = console::text();
            line.str("native-pvh: cannot use hvm_start_info at ")
                .hex(start_info_paddr)
                .str(": ");
            e.write_to(&mut line);
            line.str("\n");
            defmt::error!("native-pvh: cannot use hvm_start_info: {}", e);
            if matches!(
                e,
                StartInfoError::UnknownTestMemmap | StartInfoError::UnknownArgument
            ) {
                exit::setup_error(true);
            }
            exit::exit(Outcome::Fail);
        }
    };

    if !board.cmdline().is_empty() {
        console::text()
            .str("native-pvh: command line: ")
            .str(board.cmdline())
            .str("\n");
    }
    if let Some(p) = board.test_memmap() {
        console::text()
            .str("native-pvh: TEST HOOK pvmmu.test-memmap=")
            .str(p.name())
            .str(": reporting a deliberately broken memory map\n");
        defmt::warn!(
            "native-pvh: TEST HOOK pvmmu.test-memmap={=str}: reporting a deliberately broken memory map",
            p.name()
        );
    }

    let outcome = main(&mut board);
    console::text()
        .str("native-pvh: example returned ")
        .str(outcome.name())
        .str("\n");
    defmt::info!("native-pvh: example returned {}", outcome);
    exit::exit(outcome)
}
