//! Xen's error numbers (`xen/include/public/errno.h`) and the decoding of hypercall results.

/// A Xen error number, as a hypercall returns it negated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct XenErrno(pub i32);

impl XenErrno {
    /// Operation not permitted.
    pub const EPERM: Self = Self(1);
    /// No such entry.
    pub const ENOENT: Self = Self(2);
    /// Try again.
    pub const EAGAIN: Self = Self(11);
    /// Out of memory.
    pub const ENOMEM: Self = Self(12);
    /// Bad address (Xen could not read or write an argument).
    pub const EFAULT: Self = Self(14);
    /// Busy: e.g. a writable mapping of a frame that is a page table.
    pub const EBUSY: Self = Self(16);
    /// Exists.
    pub const EEXIST: Self = Self(17);
    /// Invalid argument: e.g. pinning a frame that still has a writable mapping.
    pub const EINVAL: Self = Self(22);
    /// No such hypercall / sub-command.
    pub const ENOSYS: Self = Self(38);

    /// Decodes a raw hypercall return value: negative values in `-4095..0` are errors, the
    /// rest is the (non-negative) result.
    pub const fn check(ret: i64) -> Result<u64, XenErrno> {
        if ret < 0 && ret >= -4095 {
            Err(XenErrno(-ret as i32))
        } else {
            Ok(ret as u64)
        }
    }
}

impl XenErrno {
    /// The errno's name (`"EINVAL"`), if it is one of the constants above.
    pub const fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            1 => "EPERM",
            2 => "ENOENT",
            11 => "EAGAIN",
            12 => "ENOMEM",
            14 => "EFAULT",
            16 => "EBUSY",
            17 => "EEXIST",
            22 => "EINVAL",
            38 => "ENOSYS",
            _ => return None,
        })
    }
}

impl core::fmt::Display for XenErrno {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.name() {
            Some(name) => write!(f, "-{name} (-{})", self.0),
            None => write!(f, "errno -{}", self.0),
        }
    }
}

impl core::error::Error for XenErrno {}

#[cfg(test)]
mod tests {
    use super::XenErrno;

    #[test]
    fn check_splits_errors_from_results() {
        assert_eq!(XenErrno::check(0), Ok(0));
        assert_eq!(XenErrno::check(0x4_0011), Ok(0x4_0011));
        assert_eq!(XenErrno::check(-22), Err(XenErrno::EINVAL));
        assert_eq!(XenErrno::check(-16), Err(XenErrno::EBUSY));
    }
}
