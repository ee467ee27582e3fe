//! The native board's Rust entry: console, CPU tables, logger, boot information, the example.

use core::fmt::Write;

use super::start_info::StartInfoError;
use super::{boot, cpu, NativeBoard};
use crate::common::console::{self, Console};
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
    let _ = writeln!(
        Console,
        "native-pvh: PVH entry {:#x}, image [{:#x}, {:#x}), boot stack [{:#x}, {:#x}), \
         boot PML4 {:#x}, hvm_start_info at {:#x}",
        boot::entry_address(),
        image.0,
        image.1,
        stack.0,
        stack.1,
        boot::boot_pml4(),
        start_info_paddr
    );
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
            let _ = writeln!(
                Console,
                "native-pvh: cannot use hvm_start_info at {start_info_paddr:#x}: {e}"
            );
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
        let _ = writeln!(Console, "native-pvh: command line: {}", board.cmdline());
    }
    if let Some(p) = board.test_memmap() {
        let _ = writeln!(
            Console,
            "native-pvh: TEST HOOK pvmmu.test-memmap={}: reporting a deliberately broken memory map",
            p.name()
        );
        defmt::warn!(
            "native-pvh: TEST HOOK pvmmu.test-memmap={=str}: reporting a deliberately broken memory map",
            p.name()
        );
    }

    let outcome = main(&mut board);
    let _ = writeln!(Console, "native-pvh: example returned {outcome:?}");
    defmt::info!("native-pvh: example returned {}", outcome);
    exit::exit(outcome)
}
