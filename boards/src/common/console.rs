//! The active board's human-readable console, reachable from anywhere (panic handler, fault
//! handlers) through a function pointer the board registers at entry.

use core::fmt;
use core::sync::atomic::{AtomicPtr, AtomicU32, Ordering};

use crate::Platform;

/// The registered console writer; null until a board calls [`set`].
static CONSOLE: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());

/// Registers the board's console writer. Boards call this first thing at entry.
pub fn set(write: fn(&str)) {
    CONSOLE.store(write as *mut (), Ordering::Release);
}

/// Console lines completed (newlines written) so far; the defmt logger stamps each frame with
/// it, so the runner can put the two outputs back in the order they were written.
static LINES: AtomicU32 = AtomicU32::new(0);

/// Writes `s` to the registered console; drops it if no board registered one yet.
pub fn write(s: &str) {
    let p = CONSOLE.load(Ordering::Acquire);
    if !p.is_null() {
        // SAFETY: the only non-null value ever stored is a `fn(&str)` (see `set`).
        let f = unsafe { core::mem::transmute::<*mut (), fn(&str)>(p) };
        f(s);
        let newlines = s.bytes().filter(|&b| b == b'\n').count();
        LINES.fetch_add(newlines as u32, Ordering::Relaxed);
    }
}

/// How many console lines were completed (the number of newlines written to the console).
pub fn lines() -> u32 {
    LINES.load(Ordering::Relaxed)
}

/// `core::fmt::Write` onto the registered console: `writeln!(Console, ...)`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Console;

impl fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write(s);
        Ok(())
    }
}

/// `core::fmt::Write` onto a [`Platform`]'s console, for examples:
/// `writeln!(PlatformWriter(p), "...")`.
pub struct PlatformWriter<'a, P: Platform + ?Sized>(pub &'a mut P);

impl<P: Platform + ?Sized> fmt::Write for PlatformWriter<'_, P> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.console_write(s);
        Ok(())
    }
}
