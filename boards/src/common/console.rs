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

/// Console text without `core::fmt`: pieces of text and numbers written one after the other,
/// `text().str("at ").hex(va).str("\n")`. The boards and examples write their console lines
/// this way (the formatting machinery, several KiB, stays out of the images); numbers read as
/// `{:#x}`, `{:#018x}` and `{}` would write them.
pub struct Text<W: FnMut(&str)>(pub W);

/// [`Text`] onto the registered console.
pub fn text() -> Text<fn(&str)> {
    Text(write)
}

impl<W: FnMut(&str)> Text<W> {
    /// Writes `s`.
    pub fn str(&mut self, s: &str) -> &mut Self {
        (self.0)(s);
        self
    }

    /// Writes `v` in hex with the `0x` prefix, as `{:#x}`.
    pub fn hex(&mut self, v: u64) -> &mut Self {
        let mut buf = [0; 18];
        (self.0)(hex(v, 0, &mut buf));
        self
    }

    /// Writes `v` in hex with the `0x` prefix, zero-padded to 16 digits, as `{:#018x}`.
    pub fn hex_wide(&mut self, v: u64) -> &mut Self {
        self.hex_digits(v, 16)
    }

    /// Writes `v` in hex with the `0x` prefix and at least `digits` digits (at most 16), as
    /// `{:#0W$x}` with `W = digits + 2`.
    pub fn hex_digits(&mut self, v: u64, digits: usize) -> &mut Self {
        let mut buf = [0; 18];
        (self.0)(hex(v, digits.min(16), &mut buf));
        self
    }

    /// Writes `v` in decimal, as `{}`.
    pub fn dec(&mut self, v: u64) -> &mut Self {
        let mut buf = [0; 20];
        (self.0)(dec(v, &mut buf));
        self
    }

    /// Writes `v` in decimal, right-aligned in `width` columns, as `{:>W$}`.
    pub fn dec_right(&mut self, v: u64, width: usize) -> &mut Self {
        let mut buf = [0; 20];
        let digits = dec(v, &mut buf);
        for _ in digits.len()..width {
            (self.0)(" ");
        }
        (self.0)(digits);
        self
    }

    /// Writes `v` in decimal with its sign, as `{}`.
    pub fn signed(&mut self, v: i64) -> &mut Self {
        if v < 0 {
            (self.0)("-");
        }
        self.dec(v.unsigned_abs())
    }
}

/// A `Display` body from a [`Text`] writer, so that a message has one wording for both:
/// `fmt::Display::fmt` is `console::display(f, |t| self.write_to(t))`.
pub fn display(
    f: &mut fmt::Formatter<'_>,
    write_to: impl FnOnce(&mut Text<&mut dyn FnMut(&str)>),
) -> fmt::Result {
    let mut result = Ok(());
    let mut sink = |s: &str| result = result.and_then(|()| f.write_str(s));
    write_to(&mut Text(&mut sink));
    result
}

/// `v` as `0x` and at least `width` (at most 16) hex digits, in `buf`. Written from the end,
/// without indexing (no bounds checks: their panic message is `core::fmt`'s).
fn hex(mut v: u64, width: usize, buf: &mut [u8; 18]) -> &str {
    let mut len = 0;
    for b in buf.iter_mut().rev().take(16) {
        *b = b"0123456789abcdef"[(v & 0xf) as usize];
        v >>= 4;
        len += 1;
        if v == 0 && len >= width {
            break;
        }
    }
    let at = 16 - len;
    for (b, p) in buf.iter_mut().skip(at).zip(*b"0x") {
        *b = p;
    }
    // The prefix and hex digits are ASCII.
    core::str::from_utf8(buf.get(at..).unwrap_or_default()).unwrap_or_default()
}

/// `v` in decimal, in `buf` (written from the end, as [`hex`]).
fn dec(mut v: u64, buf: &mut [u8; 20]) -> &str {
    let mut len = 0;
    for b in buf.iter_mut().rev() {
        *b = b'0' + (v % 10) as u8;
        v /= 10;
        len += 1;
        if v == 0 {
            break;
        }
    }
    // Decimal digits are ASCII.
    core::str::from_utf8(buf.get(buf.len() - len..).unwrap_or_default()).unwrap_or_default()
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::String;

    fn written(f: impl FnOnce(&mut Text<&mut dyn FnMut(&str)>)) -> String {
        let mut out = String::new();
        let mut push = |s: &str| out.push_str(s);
        f(&mut Text(&mut push));
        out
    }

    /// The numbers read as `core::fmt` writes them, for values across every digit count.
    #[test]
    fn numbers_match_core_fmt() {
        let mut values = std::vec![0u64, 1, 9, 10, 15, 16, u64::MAX, u64::MAX - 1];
        for shift in 0..64 {
            values.extend([1u64 << shift, (1u64 << shift) - 1, (1u64 << shift) + 1]);
            values.push(10u64.saturating_pow(shift / 3));
        }
        for v in values {
            let s = v as i64;
            let hex = written(|t| _ = t.hex(v));
            let wide = written(|t| _ = t.hex_wide(v));
            let dec = written(|t| _ = t.dec(v));
            let signed = written(|t| _ = t.signed(s));
            let twelve = written(|t| _ = t.hex_digits(v, 12));
            let right = written(|t| _ = t.dec_right(v, 10));
            assert_eq!(twelve, std::format!("{v:#014x}"));
            assert_eq!(right, std::format!("{v:>10}"));
            assert_eq!(hex, std::format!("{v:#x}"));
            assert_eq!(wide, std::format!("{v:#018x}"));
            assert_eq!(dec, std::format!("{v}"));
            assert_eq!(signed, std::format!("{s}"));
        }
        let line = written(|t| _ = t.str("at ").hex(0x3fe000).str(", ").dec(7).str("\n"));
        assert_eq!(line, "at 0x3fe000, 7\n");
    }
}
