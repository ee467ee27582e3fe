//! The panic handler of every kernel image: report on the console and via defmt, exit Fail.
//!
//! No `core::fmt`: the report is the location and the message when it is a plain string (a
//! `panic!("...")`, `unwrap()` on `None`, the logger's re-entry); a message built from
//! arguments (`expect`, an index out of bounds) is not rendered, so that the formatting
//! machinery stays out of the images: the location says where it came from.

use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};

use super::{console, exit, logger};
use crate::Outcome;

/// Set by the first panic; a panic while reporting one goes straight to the exit.
static PANICKING: AtomicBool = AtomicBool::new(false);

/// What stands for a message that only `core::fmt` could render.
const FORMATTED: &str = "(formatted message not rendered)";

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    if !PANICKING.swap(true, Ordering::Relaxed) {
        let message = info.message().as_str().unwrap_or(FORMATTED);
        let (file, line, column) = info
            .location()
            .map_or(("<unknown>", 0, 0), |l| (l.file(), l.line(), l.column()));
        console::text()
            .str("\n*** PANIC at ")
            .str(file)
            .str(":")
            .dec(line.into())
            .str(":")
            .dec(column.into())
            .str(": ")
            .str(message)
            .str("\n");
        if !logger::is_busy() {
            defmt::error!(
                "panic at {=str}:{=u32}:{=u32}: {=str}",
                file,
                line,
                column,
                message
            );
        }
    }
    exit::exit(Outcome::Fail)
}
