//! The panic handler of every kernel image: report on the console and via defmt, exit Fail.

use core::fmt::Write;
use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};

use super::{console::Console, exit, logger};
use crate::Outcome;

/// Set by the first panic; a panic while reporting one goes straight to the exit.
static PANICKING: AtomicBool = AtomicBool::new(false);

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    if !PANICKING.swap(true, Ordering::Relaxed) {
        let _ = writeln!(Console, "\n*** PANIC: {info}");
        if !logger::is_busy() {
            defmt::error!("panic: {}", defmt::Display2Format(info));
        }
    }
    exit::exit(Outcome::Fail)
}
