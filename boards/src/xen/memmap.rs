//! The Xen PV domain's memory as memblock sees it: one RAM range (pfns `0..nr_pages`), and
//! the reservations of the bootstrap structures, computed without overflow from a
//! `start_info` that validation accepted.

use core::fmt;

use backend_xen_pv::{BootstrapLayout, StartInfo};
use hal_core::memmap::{MemRegion, RegionKind};

const PAGE_SIZE: u64 = 4096;

/// A `start_info` field whose byte range passes the end of the address space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, defmt::Format)]
pub enum MemMapError {
    /// `nr_pages * 4096` is past 2^64.
    RamTooLarge {
        /// `start_info.nr_pages`.
        nr_pages: u64,
    },
    /// The frames of an out-of-mapping P2M run past 2^64.
    P2mFramesTooLarge {
        /// `start_info.first_p2m_pfn`.
        first_p2m_pfn: u64,
        /// `start_info.nr_p2m_frames`.
        nr_p2m_frames: u64,
    },
}

impl fmt::Display for MemMapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::RamTooLarge { nr_pages } => {
                write!(
                    f,
                    "nr_pages {nr_pages:#x} is more than the address space holds"
                )
            }
            Self::P2mFramesTooLarge {
                first_p2m_pfn,
                nr_p2m_frames,
            } => write!(
                f,
                "the P2M frames {first_p2m_pfn:#x} + {nr_p2m_frames:#x} run past the address space"
            ),
        }
    }
}

impl core::error::Error for MemMapError {}

/// The domain's pseudo-physical memory: one RAM range, pfns `0..nr_pages`.
pub fn memory_map(si: &StartInfo<'_>) -> Result<[MemRegion; 1], MemMapError> {
    let len = si
        .nr_pages()
        .checked_mul(PAGE_SIZE)
        .ok_or(MemMapError::RamTooLarge {
            nr_pages: si.nr_pages(),
        })?;
    Ok([MemRegion {
        start: 0,
        len,
        kind: RegionKind::Ram,
    }])
}

/// `[0, bootstrap_end)`, plus the frames of a P2M Xen placed outside the initial mapping.
pub fn reserved(
    si: &StartInfo<'_>,
    layout: &BootstrapLayout,
) -> Result<heapless::Vec<(u64, u64), 2>, MemMapError> {
    let mut r = heapless::Vec::new();
    let _ = r.push((0, layout.bootstrap_end() - layout.virt_base));
    if si.nr_p2m_frames() != 0 {
        let bad = MemMapError::P2mFramesTooLarge {
            first_p2m_pfn: si.first_p2m_pfn(),
            nr_p2m_frames: si.nr_p2m_frames(),
        };
        let start = si.first_p2m_pfn().checked_mul(PAGE_SIZE).ok_or(bad)?;
        let len = si.nr_p2m_frames().checked_mul(PAGE_SIZE).ok_or(bad)?;
        let _ = r.push((start, start.checked_add(len).ok_or(bad)?));
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use backend_xen_pv::hypercall::abi::start_info_off as off;
    use backend_xen_pv::start_info::START_INFO_SIZE;

    /// The start_info of a 64 MiB dom0 (as Xen 4.17 gave it), with fields overridden.
    fn start_info(fields: &[(usize, u64)]) -> std::vec::Vec<u8> {
        let mut b = std::vec![0u8; START_INFO_SIZE];
        b[..14].copy_from_slice(b"xen-3.0-x86_64");
        let mut put = |at: usize, v: u64| b[at..at + 8].copy_from_slice(&v.to_le_bytes());
        put(off::NR_PAGES, 0x4000);
        put(off::PT_BASE, 0x228000);
        put(off::NR_PT_FRAMES, 5);
        put(off::MFN_LIST, 0x206000);
        for &(at, v) in fields {
            put(at, v);
        }
        b
    }

    #[test]
    fn ram_of_a_normal_domain() {
        let b = start_info(&[]);
        let si = StartInfo::from_bytes(&b).unwrap();
        assert_eq!(memory_map(&si).unwrap()[0].len, 64 << 20);
        let layout = BootstrapLayout::new(&si, 0x226000, 0).unwrap();
        assert_eq!(reserved(&si, &layout).unwrap().as_slice(), &[(0, 0x22e000)]);
    }

    #[test]
    fn nr_pages_past_the_address_space_is_an_error_not_an_overflow() {
        // Validation accepts it (the P2M list itself fits below Xen's area); the bytes do not
        // fit in 64 bits.
        let b = start_info(&[(off::NR_PAGES, 1 << 52), (off::PT_BASE, 1 << 60)]);
        let si = StartInfo::from_bytes(&b).unwrap();
        assert_eq!(
            memory_map(&si),
            Err(MemMapError::RamTooLarge { nr_pages: 1 << 52 })
        );
    }

    #[test]
    fn p2m_frames_past_the_address_space_are_an_error_not_an_overflow() {
        let b = start_info(&[]);
        let si = StartInfo::from_bytes(&b).unwrap();
        let layout = BootstrapLayout::new(&si, 0x226000, 0).unwrap();
        for (first, n) in [(u64::MAX / 4096 + 1, 1), (u64::MAX / 4096, 2), (0, 1 << 52)] {
            let b = start_info(&[(off::FIRST_P2M_PFN, first), (off::NR_P2M_FRAMES, n)]);
            let si = StartInfo::from_bytes(&b).unwrap();
            assert_eq!(
                reserved(&si, &layout),
                Err(MemMapError::P2mFramesTooLarge {
                    first_p2m_pfn: first,
                    nr_p2m_frames: n
                })
            );
        }
        let b = start_info(&[(off::FIRST_P2M_PFN, 0x10000), (off::NR_P2M_FRAMES, 8)]);
        let si = StartInfo::from_bytes(&b).unwrap();
        assert_eq!(
            reserved(&si, &layout).unwrap().as_slice(),
            &[(0, 0x22e000), (0x1000_0000, 0x1000_8000)]
        );
    }
}
