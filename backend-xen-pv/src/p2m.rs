//! The P2M list: the guest's pfn → machine frame table that Xen builds at `start_info.mfn_list`
//! (`nr_pages` entries; the entry for pfn `n` is the mfn backing it).

use crate::start_info::StartInfo;

/// The P2M value of a pfn that no machine frame backs (Linux's `INVALID_P2M_ENTRY`).
pub const INVALID_P2M_ENTRY: u64 = !0;
/// Machine frames are below 2^40: a PTE holds address bits 51:12.
pub const MAX_MFN: u64 = (1 << 40) - 1;

/// A machine frame number (a host-physical page), as PTEs and `mmuext_op` name frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(transparent)]
pub struct Mfn(pub u64);

impl Mfn {
    /// The machine address of the frame's first byte.
    pub const fn maddr(self) -> u64 {
        self.0 << 12
    }
}

/// Why a P2M list or a lookup was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum P2mError {
    /// The list has no entries.
    Empty,
    /// `nr_pages` entries do not fit this machine's address space (more than `usize::MAX`).
    TooLarge {
        /// `start_info.nr_pages`.
        nr_pages: u64,
    },
    /// `pfn` is not below the domain's `nr_pages`.
    PfnOutOfRange {
        /// The pfn asked for.
        pfn: u64,
        /// Entries in the list.
        nr_pages: u64,
    },
    /// The entry of `pfn` is [`INVALID_P2M_ENTRY`]: no frame backs it.
    InvalidEntry {
        /// The first such pfn.
        pfn: u64,
    },
    /// The entry of `pfn` is above [`MAX_MFN`].
    MfnTooLarge {
        /// The first such pfn.
        pfn: u64,
        /// Its entry.
        mfn: u64,
    },
}

/// Entries of a list of `nr_pages` entries, if this machine can address them.
fn list_len(nr_pages: u64) -> Result<usize, P2mError> {
    usize::try_from(nr_pages).map_err(|_| P2mError::TooLarge { nr_pages })
}

/// A validated P2M list: every pfn in `0..nr_pages` has a usable machine frame.
#[derive(Clone, Copy, Debug)]
pub struct P2m<'a> {
    entries: &'a [u64],
}

impl<'a> P2m<'a> {
    /// Validates `entries` (one per pfn, from pfn 0): non-empty, no [`INVALID_P2M_ENTRY`], no
    /// entry above [`MAX_MFN`]; the error names the first bad pfn.
    pub fn new(entries: &'a [u64]) -> Result<Self, P2mError> {
        if entries.is_empty() {
            return Err(P2mError::Empty);
        }
        for (pfn, &mfn) in (0u64..).zip(entries) {
            if mfn == INVALID_P2M_ENTRY {
                return Err(P2mError::InvalidEntry { pfn });
            }
            if mfn > MAX_MFN {
                return Err(P2mError::MfnTooLarge { pfn, mfn });
            }
        }
        Ok(Self { entries })
    }

    /// The P2M list that `si` describes: `nr_pages` entries at `mfn_list` (the ABI gives the
    /// list exactly one entry per page of the domain), validated as by [`P2m::new`].
    ///
    /// # Safety
    /// `si` is the `start_info` Xen gave this guest, whose bootstrap mapping (which holds the
    /// list, read-write) is still in place for `'a`, and nothing writes the list during `'a`.
    pub unsafe fn from_start_info(si: &StartInfo<'_>) -> Result<P2m<'a>, P2mError> {
        let len = list_len(si.nr_pages())?;
        // SAFETY: StartInfo guarantees `mfn_list` is non-null, 8-byte aligned and that the
        // `nr_pages` entries lie in the guest half of the address space; the caller guarantees
        // they are mapped and unchanged for 'a.
        let entries = unsafe { core::slice::from_raw_parts(si.mfn_list() as *const u64, len) };
        Self::new(entries)
    }

    /// The machine frame backing `pfn`.
    pub fn pfn_to_mfn(&self, pfn: u64) -> Result<Mfn, P2mError> {
        usize::try_from(pfn)
            .ok()
            .and_then(|i| self.entries.get(i))
            .map(|&m| Mfn(m))
            .ok_or(P2mError::PfnOutOfRange {
                pfn,
                nr_pages: self.nr_pages(),
            })
    }

    /// The pfn backed by `mfn`, by a linear search (for diagnostics; a guest reads Xen's M2P
    /// table for this).
    pub fn find_pfn(&self, mfn: Mfn) -> Option<u64> {
        self.entries
            .iter()
            .position(|&m| m == mfn.0)
            .map(|i| i as u64)
    }

    /// Pages of the domain: pfns `0..nr_pages`.
    pub fn nr_pages(&self) -> u64 {
        self.entries.len() as u64
    }

    /// The raw entries, indexed by pfn.
    pub fn entries(&self) -> &'a [u64] {
        self.entries
    }
}

impl core::fmt::Display for P2mError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Empty => f.write_str("the P2M list has no entries"),
            Self::TooLarge { nr_pages } => write!(
                f,
                "a P2M list of {nr_pages} entries does not fit the address space"
            ),
            Self::PfnOutOfRange { pfn, nr_pages } => write!(
                f,
                "pfn {pfn:#x} is not below the domain's {nr_pages:#x} pages"
            ),
            Self::InvalidEntry { pfn } => {
                write!(f, "no machine frame backs pfn {pfn:#x} (INVALID_P2M_ENTRY)")
            }
            Self::MfnTooLarge { pfn, mfn } => {
                write!(
                    f,
                    "pfn {pfn:#x} maps to mfn {mfn:#x}, above the largest machine frame"
                )
            }
        }
    }
}

impl core::error::Error for P2mError {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn looks_up_with_bounds_checks() {
        let list = [0x1000, 0x1001, 0x2345];
        let p2m = P2m::new(&list).unwrap();
        assert_eq!(p2m.nr_pages(), 3);
        assert_eq!(p2m.pfn_to_mfn(0), Ok(Mfn(0x1000)));
        assert_eq!(p2m.pfn_to_mfn(2), Ok(Mfn(0x2345)));
        assert_eq!(p2m.pfn_to_mfn(2).unwrap().maddr(), 0x2345000);
        assert_eq!(
            p2m.pfn_to_mfn(3),
            Err(P2mError::PfnOutOfRange {
                pfn: 3,
                nr_pages: 3
            })
        );
        assert_eq!(
            p2m.pfn_to_mfn(u64::MAX),
            Err(P2mError::PfnOutOfRange {
                pfn: u64::MAX,
                nr_pages: 3
            })
        );
        assert_eq!(p2m.find_pfn(Mfn(0x1001)), Some(1));
        assert_eq!(p2m.find_pfn(Mfn(0x9999)), None);
    }

    #[test]
    fn validation_names_the_first_bad_pfn() {
        assert_eq!(P2m::new(&[]).unwrap_err(), P2mError::Empty);
        let list = [1, 2, INVALID_P2M_ENTRY, 4, INVALID_P2M_ENTRY];
        assert_eq!(
            P2m::new(&list).unwrap_err(),
            P2mError::InvalidEntry { pfn: 2 }
        );
        let list = [1, 1 << 40, 3];
        assert_eq!(
            P2m::new(&list).unwrap_err(),
            P2mError::MfnTooLarge {
                pfn: 1,
                mfn: 1 << 40
            }
        );
        assert!(P2m::new(&[MAX_MFN]).is_ok());
    }

    #[test]
    fn a_list_too_large_for_the_address_space_is_not_called_empty() {
        assert_eq!(list_len(0x400), Ok(0x400));
        // Only a machine with a usize narrower than 64 bits can refuse a count; the cause
        // must then be the size, never `Empty`.
        match usize::try_from(u64::MAX) {
            Ok(_) => assert_eq!(list_len(u64::MAX), Ok(usize::MAX)),
            Err(_) => assert_eq!(
                list_len(u64::MAX),
                Err(P2mError::TooLarge { nr_pages: u64::MAX })
            ),
        }
        assert_eq!(
            P2mError::TooLarge { nr_pages: 1 << 40 }.to_string(),
            "a P2M list of 1099511627776 entries does not fit the address space"
        );
        assert_eq!(
            P2mError::InvalidEntry { pfn: 0x12 }.to_string(),
            "no machine frame backs pfn 0x12 (INVALID_P2M_ENTRY)"
        );
    }

    #[test]
    fn reads_the_list_that_start_info_points_to() {
        extern crate std;
        use crate::hypercall::abi::start_info_off as off;
        use crate::start_info::START_INFO_SIZE;
        let list: std::vec::Vec<u64> = (0x8000..0x8000 + 0x400).collect();
        let mut b = std::vec![0u8; START_INFO_SIZE];
        b[..14].copy_from_slice(b"xen-3.0-x86_64");
        b[off::NR_PAGES..][..8].copy_from_slice(&0x400u64.to_le_bytes());
        b[off::MFN_LIST..][..8].copy_from_slice(&(list.as_ptr() as u64).to_le_bytes());
        b[off::PT_BASE..][..8].copy_from_slice(&0x1000u64.to_le_bytes());
        b[off::NR_PT_FRAMES..][..8].copy_from_slice(&4u64.to_le_bytes());
        let si = StartInfo::from_bytes(&b).unwrap();
        // SAFETY: `list` is a live, unchanging Vec of nr_pages entries at mfn_list.
        let p2m = unsafe { P2m::from_start_info(&si) }.unwrap();
        assert_eq!(p2m.pfn_to_mfn(0x3ff), Ok(Mfn(0x83ff)));
        assert_eq!(
            p2m.pfn_to_mfn(0x400),
            Err(P2mError::PfnOutOfRange {
                pfn: 0x400,
                nr_pages: 0x400
            })
        );
    }
}
