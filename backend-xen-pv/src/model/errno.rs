//! The error numbers the model returns (as positive values; hypercalls return them negated).

/// No such domain.
pub const ESRCH: i64 = 3;
/// Busy: a writable mapping of a page-table frame.
pub const EBUSY: i64 = 16;
/// Invalid argument.
pub const EINVAL: i64 = 22;
/// Not implemented (by Xen, or by the model).
pub const ENOSYS: i64 = 38;
