//! The native backend's errors.

use hal_core::{BackendError, ErrorKind, Pfn};

/// Why the native backend refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum NativeError {
    /// No window maps this frame: the backend cannot store into it.
    NotMapped(Pfn),
    /// Entry index beyond 511, or a write running past the end of the table.
    BadIndex(u16),
    /// No room for another window.
    TooManyWindows,
}

impl BackendError for NativeError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::NotMapped(_) => ErrorKind::NotMapped,
            Self::BadIndex(_) => ErrorKind::OutOfRange,
            Self::TooManyWindows => ErrorKind::Capacity,
        }
    }
}

impl core::fmt::Display for NativeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NotMapped(pfn) => write!(
                f,
                "no window maps frame {:#x}, so the backend cannot store into it",
                pfn.as_u64()
            ),
            Self::BadIndex(i) => write!(
                f,
                "entry index {i} is beyond slot 511, or the write runs past the end of the table"
            ),
            Self::TooManyWindows => f.write_str("no room for another window (8 at most)"),
        }
    }
}

impl core::error::Error for NativeError {}
