//! Errors: a kind that generic code can react to, with the backend's own cause inside.

use core::fmt;

/// What went wrong, in terms any backend can report (embedded-hal style).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ErrorKind {
    /// The hypervisor or hardware refused an operation as invalid (Xen: -EINVAL), for example
    /// hooking or pinning a table that is still writable somewhere.
    Refused,
    /// The frame is in use in a way that forbids the operation (Xen: -EBUSY), for example a
    /// writable mapping of a page-table frame.
    Busy,
    /// A frame, index or address outside what the backend manages.
    OutOfRange,
    /// The backend has no mapping through which it could reach a frame.
    NotMapped,
    /// Something the backend does not support (large pages on Xen PV, a reserved root slot).
    Unsupported,
    /// A fixed-capacity structure is full.
    Capacity,
    /// Any other failure; the backend's error says more.
    Other,
}

/// An error a backend returns. Generic code looks at [`kind`](BackendError::kind); the
/// concrete type keeps the raw cause (Xen's errno, which entry of a batch failed, ...), and
/// says it in words ([`Display`](fmt::Display), [`core::error::Error`]).
pub trait BackendError: core::error::Error + 'static {
    /// The kind of failure.
    fn kind(&self) -> ErrorKind;
}

impl BackendError for core::convert::Infallible {
    fn kind(&self) -> ErrorKind {
        match *self {}
    }
}

/// An operation that consumed a value failed: the error, and the value back, so nothing is
/// lost. The value's type says the state it is in.
#[derive(Debug)]
pub struct Failed<T, E> {
    /// Why.
    pub error: E,
    /// What the operation had been given, in the state its type says.
    pub value: T,
}

impl<T, E: BackendError> BackendError for Failed<T, E>
where
    T: fmt::Debug + 'static,
{
    fn kind(&self) -> ErrorKind {
        self.error.kind()
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Refused => "refused as invalid",
            Self::Busy => "the frame is in use in a way that forbids it",
            Self::OutOfRange => "outside what the backend manages",
            Self::NotMapped => "no mapping reaches the frame",
            Self::Unsupported => "not supported by the backend",
            Self::Capacity => "a fixed-capacity structure is full",
            Self::Other => "failed",
        })
    }
}

impl<T, E: fmt::Display> fmt::Display for Failed<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

/// The error's own `defmt::Format` (as `Display` gives the error's text).
#[cfg(feature = "defmt")]
impl<T, E: defmt::Format> defmt::Format for Failed<T, E> {
    fn format(&self, f: defmt::Formatter<'_>) {
        self.error.format(f)
    }
}

impl<T: fmt::Debug, E: core::error::Error + 'static> core::error::Error for Failed<T, E> {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        self.error.source()
    }
}
