//! [`RacyCell`]: a `static` that boot code mutates through raw pointers.

use core::cell::UnsafeCell;

/// Interior mutability for statics on a single boot CPU. Every access goes through
/// [`RacyCell::get`] and an `unsafe` block that says why nothing else touches the value.
pub struct RacyCell<T>(UnsafeCell<T>);

// SAFETY: only raw pointers are handed out; each dereference site proves exclusivity (one
// boot CPU, a once-flag, or a lock such as the logger's `TAKEN`).
unsafe impl<T: Send> Sync for RacyCell<T> {}

impl<T> RacyCell<T> {
    /// A cell holding `value`.
    pub const fn new(value: T) -> Self {
        Self(UnsafeCell::new(value))
    }

    /// A raw pointer to the value.
    pub const fn get(&self) -> *mut T {
        self.0.get()
    }
}
