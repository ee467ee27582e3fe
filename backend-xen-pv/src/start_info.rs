//! `start_info`: what Xen hands a PV guest at entry (`rsi`), parsed and validated, and the
//! bootstrap virtual layout it implies.
//!
//! # The bootstrap layout (public `xen.h`, "Start-of-day memory layout")
//! Xen maps one contiguous virtual region starting at the image's `VIRT_BASE` (0 for our
//! images), 1:1 onto the first pseudo-physical frames: `va = virt_base + pfn * 4096`. In it,
//! each element page aligned, in this order: the kernel image, (an initrd), the P2M list
//! (`mfn_list`, `nr_pages` entries of 8 bytes), the `start_info` page, (domU only: xenstore
//! and console pages), the bootstrap page tables (`pt_base`, `nr_pt_frames` frames, mapped
//! read-only), one page of boot stack. The region ends on a 4 MiB boundary with at least
//! 512 KiB of mapped padding after the stack. Everything is mapped writable except the page
//! tables.

use crate::hypercall::abi::{start_info_off as off, MAX_GUEST_CMDLINE};

/// The prefix of `start_info.magic` for a 64-bit PV guest.
pub const MAGIC_PREFIX: &[u8] = b"xen-3.0-x86_64";
/// `sizeof(struct start_info)` on x86-64.
pub const START_INFO_SIZE: usize = off::SIZE;

const PAGE_SIZE: u64 = 4096;
/// The lowest address of Xen's reserved part of the address space (L4 slot 256).
const HYPERVISOR_VIRT_START: u64 = 0xFFFF_8000_0000_0000;
/// L4 + L3 + L2 + one L1: the fewest frames a 4-level bootstrap can have.
const MIN_PT_FRAMES: u64 = 4;

/// Why a `start_info` was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum StartInfoError {
    /// Fewer than [`START_INFO_SIZE`] bytes.
    Truncated {
        /// Bytes given.
        len: usize,
    },
    /// `magic` does not start with [`MAGIC_PREFIX`] (not a 64-bit PV start_info).
    BadMagic,
    /// `nr_pages` is 0.
    NoPages,
    /// `mfn_list` is null.
    NullMfnList,
    /// `mfn_list` is not 8-byte aligned.
    MfnListMisaligned {
        /// The value.
        mfn_list: u64,
    },
    /// `pt_base` is null or not page aligned.
    PtBaseMisaligned {
        /// The value.
        pt_base: u64,
    },
    /// `nr_pt_frames` is below 4 (L4, L3, L2, L1).
    TooFewPtFrames {
        /// The value.
        nr_pt_frames: u64,
    },
    /// The P2M list or the page tables run past the guest half of the address space.
    RangeOverflow,
    /// The P2M list and the page tables overlap.
    P2mOverlapsPageTables,
    /// `cmd_line` has no terminating NUL.
    CmdLineUnterminated,
    /// The elements are not in the order Xen places them (see the module docs), or the
    /// mapped region would exceed `nr_pages`.
    LayoutMismatch,
}

/// A validated `start_info`.
///
/// Invariants: `nr_pages > 0`; `mfn_list` non-null, 8-byte aligned, and the P2M list
/// `[mfn_list, mfn_list + 8 * nr_pages)` lies below Xen's area; `pt_base` page aligned with
/// at least 4 frames, also below Xen's area; the two ranges are disjoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StartInfo<'a> {
    magic: &'a [u8],
    nr_pages: u64,
    shared_info: u64,
    flags: u32,
    store_mfn: u64,
    store_evtchn: u32,
    console: [u64; 2],
    pt_base: u64,
    nr_pt_frames: u64,
    mfn_list: u64,
    mod_start: u64,
    mod_len: u64,
    cmd_line: &'a [u8],
    first_p2m_pfn: u64,
    nr_p2m_frames: u64,
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut v = [0; 8];
    v.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(v)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut v = [0; 4];
    v.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(v)
}

/// The bytes of `b` before the first NUL, if there is one.
fn c_str(b: &[u8]) -> Option<&[u8]> {
    b.iter().position(|&c| c == 0).map(|n| &b[..n])
}

impl<'a> StartInfo<'a> {
    /// Parses and validates a `start_info` from its bytes (at least [`START_INFO_SIZE`]).
    pub fn from_bytes(b: &'a [u8]) -> Result<Self, StartInfoError> {
        use StartInfoError as E;
        if b.len() < START_INFO_SIZE {
            return Err(E::Truncated { len: b.len() });
        }
        let magic =
            c_str(&b[off::MAGIC..off::MAGIC + 32]).unwrap_or(&b[off::MAGIC..off::MAGIC + 32]);
        if !magic.starts_with(MAGIC_PREFIX) {
            return Err(E::BadMagic);
        }
        let cmd_line = c_str(&b[off::CMD_LINE..off::CMD_LINE + MAX_GUEST_CMDLINE])
            .ok_or(E::CmdLineUnterminated)?;
        let si = StartInfo {
            magic,
            nr_pages: u64_at(b, off::NR_PAGES),
            shared_info: u64_at(b, off::SHARED_INFO),
            flags: u32_at(b, off::FLAGS),
            store_mfn: u64_at(b, off::STORE_MFN),
            store_evtchn: u32_at(b, off::STORE_EVTCHN),
            console: [u64_at(b, off::CONSOLE), u64_at(b, off::CONSOLE + 8)],
            pt_base: u64_at(b, off::PT_BASE),
            nr_pt_frames: u64_at(b, off::NR_PT_FRAMES),
            mfn_list: u64_at(b, off::MFN_LIST),
            mod_start: u64_at(b, off::MOD_START),
            mod_len: u64_at(b, off::MOD_LEN),
            cmd_line,
            first_p2m_pfn: u64_at(b, off::FIRST_P2M_PFN),
            nr_p2m_frames: u64_at(b, off::NR_P2M_FRAMES),
        };
        si.validate()?;
        Ok(si)
    }

    /// Parses and validates the `start_info` at `ptr` (the guest's `rsi` at entry).
    ///
    /// # Safety
    /// `ptr` is valid for reads of [`START_INFO_SIZE`] bytes for `'a`, and nothing writes
    /// them during `'a` (Xen does not after boot; the guest must not either).
    pub unsafe fn parse(ptr: *const u8) -> Result<Self, StartInfoError> {
        // SAFETY: the caller guarantees the bytes are readable and unchanged for 'a.
        let bytes = unsafe { core::slice::from_raw_parts(ptr, START_INFO_SIZE) };
        Self::from_bytes(bytes)
    }

    fn validate(&self) -> Result<(), StartInfoError> {
        use StartInfoError as E;
        if self.nr_pages == 0 {
            return Err(E::NoPages);
        }
        if self.mfn_list == 0 {
            return Err(E::NullMfnList);
        }
        if self.mfn_list % 8 != 0 {
            return Err(E::MfnListMisaligned {
                mfn_list: self.mfn_list,
            });
        }
        if self.pt_base == 0 || self.pt_base % PAGE_SIZE != 0 {
            return Err(E::PtBaseMisaligned {
                pt_base: self.pt_base,
            });
        }
        if self.nr_pt_frames < MIN_PT_FRAMES {
            return Err(E::TooFewPtFrames {
                nr_pt_frames: self.nr_pt_frames,
            });
        }
        let p2m = range(self.mfn_list, self.nr_pages, 8).ok_or(E::RangeOverflow)?;
        let pts = range(self.pt_base, self.nr_pt_frames, PAGE_SIZE).ok_or(E::RangeOverflow)?;
        if p2m.0 < pts.1 && pts.0 < p2m.1 {
            return Err(E::P2mOverlapsPageTables);
        }
        Ok(())
    }

    /// `magic` up to its NUL, e.g. `b"xen-3.0-x86_64"`.
    pub const fn magic(&self) -> &'a [u8] {
        self.magic
    }
    /// Pages allocated to the domain: pfns `0..nr_pages`.
    pub const fn nr_pages(&self) -> u64 {
        self.nr_pages
    }
    /// Machine address of the shared_info page (not mapped by Xen).
    pub const fn shared_info(&self) -> u64 {
        self.shared_info
    }
    /// `SIF_*` flags ([`crate::hypercall::abi::sif`]).
    pub const fn flags(&self) -> u32 {
        self.flags
    }
    /// Whether this is the initial domain (`SIF_INITDOMAIN`).
    pub const fn is_initdomain(&self) -> bool {
        self.flags & crate::hypercall::abi::sif::INITDOMAIN != 0
    }
    /// Machine frame of the xenstore page (domU).
    pub const fn store_mfn(&self) -> u64 {
        self.store_mfn
    }
    /// Event channel of xenstore (domU).
    pub const fn store_evtchn(&self) -> u32 {
        self.store_evtchn
    }
    /// The raw 16-byte console union (domU: mfn, evtchn; dom0: info_off, info_size).
    pub const fn console_raw(&self) -> [u64; 2] {
        self.console
    }
    /// The console ring of a domU (`console.domU`), validated; `None` for dom0 (whose
    /// `console.dom0` describes a VGA/VESA console instead) or when the fields are unusable.
    pub fn domu_console(&self) -> Option<DomUConsole> {
        if self.is_initdomain() {
            return None;
        }
        DomUConsole::from_raw(self.console)
    }
    /// Virtual address of the bootstrap L4 (the first bootstrap page-table frame).
    pub const fn pt_base(&self) -> u64 {
        self.pt_base
    }
    /// Number of bootstrap page-table frames, contiguous from `pt_base`.
    pub const fn nr_pt_frames(&self) -> u64 {
        self.nr_pt_frames
    }
    /// Virtual address of the P2M list (`nr_pages` u64 machine frame numbers).
    pub const fn mfn_list(&self) -> u64 {
        self.mfn_list
    }
    /// Start of the initial module (virtual address, or pfn with `SIF_MOD_START_PFN`).
    pub const fn mod_start(&self) -> u64 {
        self.mod_start
    }
    /// Length of the initial module in bytes (0: none).
    pub const fn mod_len(&self) -> u64 {
        self.mod_len
    }
    /// The command line, up to its NUL.
    pub const fn cmd_line(&self) -> &'a [u8] {
        self.cmd_line
    }
    /// First pfn of a P2M placed outside the initial mapping (`XEN_ELFNOTE_INIT_P2M`).
    pub const fn first_p2m_pfn(&self) -> u64 {
        self.first_p2m_pfn
    }
    /// Frames of that out-of-mapping P2M (0 when the P2M is in the initial mapping).
    pub const fn nr_p2m_frames(&self) -> u64 {
        self.nr_p2m_frames
    }
}

/// A domU's console: the machine frame of its `struct xencons_interface` ring page and the
/// event channel (bound by the toolstack to dom0's console daemon) to notify after writing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DomUConsole {
    /// `console.domU.mfn`.
    pub mfn: u64,
    /// `console.domU.evtchn`.
    pub evtchn: u32,
}

impl DomUConsole {
    /// From the raw 16-byte union (`mfn` at +0, `evtchn` at +8): `None` if the mfn is 0 or
    /// above what a PTE can name, or the port is 0 (never a bound channel).
    pub fn from_raw(console: [u64; 2]) -> Option<Self> {
        let mfn = console[0];
        let evtchn = console[1] as u32;
        (mfn != 0 && mfn <= crate::p2m::MAX_MFN && evtchn != 0).then_some(Self { mfn, evtchn })
    }
}

/// What a guest needs before `start_info` is validated: whether it is dom0, and a domU's
/// console, so that a domU can report a bad `start_info` on its own console.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peek {
    /// `flags` (`SIF_*`).
    pub flags: u32,
    /// The console ring, if this is a domU and the fields are usable.
    pub domu_console: Option<DomUConsole>,
}

impl Peek {
    /// Reads `flags` and the console union of the start_info in `b`, checking only its size
    /// and magic.
    pub fn from_bytes(b: &[u8]) -> Result<Self, StartInfoError> {
        if b.len() < START_INFO_SIZE {
            return Err(StartInfoError::Truncated { len: b.len() });
        }
        if !b[off::MAGIC..].starts_with(MAGIC_PREFIX) {
            return Err(StartInfoError::BadMagic);
        }
        let flags = u32_at(b, off::FLAGS);
        let initdomain = flags & crate::hypercall::abi::sif::INITDOMAIN != 0;
        let console = [u64_at(b, off::CONSOLE), u64_at(b, off::CONSOLE + 8)];
        Ok(Self {
            flags,
            domu_console: if initdomain {
                None
            } else {
                DomUConsole::from_raw(console)
            },
        })
    }

    /// Whether this is the initial domain (`SIF_INITDOMAIN`).
    pub const fn is_initdomain(&self) -> bool {
        self.flags & crate::hypercall::abi::sif::INITDOMAIN != 0
    }
}

/// `[base, base + n * size)` if it fits below Xen's part of the address space.
fn range(base: u64, n: u64, size: u64) -> Option<(u64, u64)> {
    let end = base.checked_add(n.checked_mul(size)?)?;
    (end <= HYPERVISOR_VIRT_START).then_some((base, end))
}

const fn page_up(x: u64) -> u64 {
    (x + PAGE_SIZE - 1) & !(PAGE_SIZE - 1)
}

/// Where Xen put the bootstrap elements and how far its initial mapping goes (virtual
/// addresses; see the module docs). Within `[virt_base, mapped_end)`, `va = virt_base + pfn *
/// 4096`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BootstrapLayout {
    /// Start of the initial mapping (the image's `VIRT_BASE`); maps pfn 0.
    pub virt_base: u64,
    /// The P2M list, `[mfn_list, page_up(mfn_list + 8 * nr_pages))`.
    pub p2m: (u64, u64),
    /// The start_info page.
    pub start_info: (u64, u64),
    /// The bootstrap page tables, mapped read-only: `[pt_base, pt_base + nr_pt_frames * 4096)`.
    pub page_tables: (u64, u64),
    /// Xen's one-page boot stack (the initial `rsp` is its end).
    pub boot_stack: (u64, u64),
    /// End of the initial mapping: the boot stack's end rounded up to 4 MiB, plus 4 MiB if
    /// that left less than 512 KiB of padding.
    pub mapped_end: u64,
}

impl BootstrapLayout {
    /// Derives the layout from a validated `start_info`, the address it was found at and the
    /// image's `VIRT_BASE`, checking that the elements are in Xen's order.
    pub fn new(
        si: &StartInfo<'_>,
        start_info_va: u64,
        virt_base: u64,
    ) -> Result<Self, StartInfoError> {
        let bad = StartInfoError::LayoutMismatch;
        let p2m = (si.mfn_list, page_up(si.mfn_list + 8 * si.nr_pages));
        let start_info = (
            start_info_va,
            start_info_va.checked_add(PAGE_SIZE).ok_or(bad)?,
        );
        let page_tables = (si.pt_base, si.pt_base + si.nr_pt_frames * PAGE_SIZE);
        let boot_stack = (
            page_tables.1,
            page_tables.1.checked_add(PAGE_SIZE).ok_or(bad)?,
        );
        let ordered = virt_base % PAGE_SIZE == 0
            && start_info_va % PAGE_SIZE == 0
            && virt_base <= p2m.0
            && p2m.1 <= start_info.0
            && start_info.1 <= page_tables.0;
        if !ordered {
            return Err(bad);
        }
        const FOUR_MIB: u64 = 4 << 20;
        let mut mapped_end = boot_stack.1.checked_next_multiple_of(FOUR_MIB).ok_or(bad)?;
        if mapped_end - boot_stack.1 < 512 << 10 {
            mapped_end = mapped_end.checked_add(FOUR_MIB).ok_or(bad)?;
        }
        if mapped_end > HYPERVISOR_VIRT_START || (mapped_end - virt_base) / PAGE_SIZE > si.nr_pages
        {
            return Err(bad);
        }
        Ok(Self {
            virt_base,
            p2m,
            start_info,
            page_tables,
            boot_stack,
            mapped_end,
        })
    }

    /// End of the last bootstrap element (the boot stack): everything the guest must keep
    /// until it has moved off the bootstrap structures lies in `[virt_base, bootstrap_end)`.
    pub const fn bootstrap_end(&self) -> u64 {
        self.boot_stack.1
    }

    /// Pages mapped by the initial mapping: pfns `0..mapped_pages` (none for a layout, built
    /// by hand, whose end is below its base).
    pub const fn mapped_pages(&self) -> u64 {
        self.mapped_end.saturating_sub(self.virt_base) / PAGE_SIZE
    }

    /// The virtual address of `pfn` in the initial mapping, if it is mapped there.
    pub const fn pfn_to_va(&self, pfn: u64) -> Option<u64> {
        // Below `mapped_pages`, the address is below `mapped_end`: no overflow.
        if pfn < self.mapped_pages() {
            Some(self.virt_base + pfn * PAGE_SIZE)
        } else {
            None
        }
    }

    /// The pfn mapped at `va` by the initial mapping, if `va` is in it.
    pub const fn va_to_pfn(&self, va: u64) -> Option<u64> {
        if va >= self.virt_base && va < self.mapped_end {
            Some((va - self.virt_base) / PAGE_SIZE)
        } else {
            None
        }
    }
}

impl core::fmt::Display for StartInfoError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Truncated { len } => write!(
                f,
                "start_info truncated: {len} bytes, {START_INFO_SIZE} needed"
            ),
            Self::BadMagic => f.write_str("start_info magic is not a 64-bit PV guest's (\"xen-3.0-x86_64\")"),
            Self::NoPages => f.write_str("start_info says nr_pages = 0"),
            Self::NullMfnList => f.write_str("start_info's mfn_list is null"),
            Self::MfnListMisaligned { mfn_list } => {
                write!(f, "start_info's mfn_list {mfn_list:#x} is not 8-byte aligned")
            }
            Self::PtBaseMisaligned { pt_base } => {
                write!(f, "start_info's pt_base {pt_base:#x} is null or not page aligned")
            }
            Self::TooFewPtFrames { nr_pt_frames } => write!(
                f,
                "start_info's nr_pt_frames is {nr_pt_frames}, fewer than the 4 of a 4-level bootstrap"
            ),
            Self::RangeOverflow => f.write_str(
                "the P2M list or the bootstrap page tables run past the guest half of the address space",
            ),
            Self::P2mOverlapsPageTables => {
                f.write_str("the P2M list and the bootstrap page tables overlap")
            }
            Self::CmdLineUnterminated => f.write_str("start_info's cmd_line has no terminating NUL"),
            Self::LayoutMismatch => f.write_str(
                "the boot data are not in the order Xen places them, or the mapped region exceeds nr_pages",
            ),
        }
    }
}

impl core::error::Error for StartInfoError {}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::*;

    /// The start_info Xen 4.17 gave a 64 MiB dom0 whose image ends below 0x400000.
    fn sample() -> Vec<u8> {
        let mut b = std::vec![0u8; START_INFO_SIZE];
        b[..14].copy_from_slice(b"xen-3.0-x86_64");
        put(&mut b, off::NR_PAGES, 0x4000);
        put(&mut b, off::SHARED_INFO, 0x7fffd000);
        b[off::FLAGS..off::FLAGS + 4].copy_from_slice(&3u32.to_le_bytes());
        put(&mut b, off::PT_BASE, 0x228000);
        put(&mut b, off::NR_PT_FRAMES, 5);
        put(&mut b, off::MFN_LIST, 0x206000);
        b[off::CMD_LINE..off::CMD_LINE + 5].copy_from_slice(b"hello");
        b
    }

    fn put(b: &mut [u8], at: usize, v: u64) {
        b[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }

    #[test]
    fn parses_a_good_start_info() {
        let b = sample();
        let si = StartInfo::from_bytes(&b).unwrap();
        assert_eq!(si.magic(), b"xen-3.0-x86_64");
        assert_eq!(si.nr_pages(), 0x4000);
        assert_eq!(si.pt_base(), 0x228000);
        assert_eq!(si.nr_pt_frames(), 5);
        assert_eq!(si.mfn_list(), 0x206000);
        assert_eq!(si.shared_info(), 0x7fffd000);
        assert!(si.is_initdomain());
        assert_eq!(si.cmd_line(), b"hello");
    }

    #[test]
    fn rejects_each_kind_of_bad_input() {
        use StartInfoError as E;
        let case = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut b = sample();
            f(&mut b);
            StartInfo::from_bytes(&b).unwrap_err()
        };
        assert_eq!(
            StartInfo::from_bytes(&sample()[..100]).unwrap_err(),
            E::Truncated { len: 100 }
        );
        assert_eq!(
            case(&|b| b[..14].copy_from_slice(b"xen-3.0-x86_32")),
            E::BadMagic
        );
        assert_eq!(case(&|b| b[0] = 0), E::BadMagic);
        assert_eq!(case(&|b| put(b, off::NR_PAGES, 0)), E::NoPages);
        assert_eq!(case(&|b| put(b, off::MFN_LIST, 0)), E::NullMfnList);
        assert_eq!(
            case(&|b| put(b, off::MFN_LIST, 0x206004)),
            E::MfnListMisaligned { mfn_list: 0x206004 }
        );
        assert_eq!(
            case(&|b| put(b, off::PT_BASE, 0x228008)),
            E::PtBaseMisaligned { pt_base: 0x228008 }
        );
        assert_eq!(
            case(&|b| put(b, off::PT_BASE, 0)),
            E::PtBaseMisaligned { pt_base: 0 }
        );
        assert_eq!(
            case(&|b| put(b, off::NR_PT_FRAMES, 0)),
            E::TooFewPtFrames { nr_pt_frames: 0 }
        );
        assert_eq!(
            case(&|b| put(b, off::NR_PAGES, u64::MAX / 4)),
            E::RangeOverflow
        );
        assert_eq!(
            case(&|b| put(b, off::PT_BASE, 0xffff_7fff_ffff_f000)),
            E::RangeOverflow
        );
        assert_eq!(
            case(&|b| put(b, off::PT_BASE, 0x207000)),
            E::P2mOverlapsPageTables
        );
        assert_eq!(
            case(&|b| b[off::CMD_LINE..off::FIRST_P2M_PFN].fill(b'x')),
            E::CmdLineUnterminated
        );
    }

    #[test]
    fn peek_and_domu_console() {
        let mut b = sample();
        let p = Peek::from_bytes(&b).unwrap();
        assert!(p.is_initdomain());
        assert_eq!(p.domu_console, None);
        // A domU: no SIF flags, console.domU = { mfn, evtchn }.
        b[off::FLAGS..off::FLAGS + 4].copy_from_slice(&0u32.to_le_bytes());
        put(&mut b, off::CONSOLE, 0x1234);
        put(&mut b, off::CONSOLE + 8, 0xdead_0000_0002); // evtchn is the low 32 bits
        let want = Some(DomUConsole {
            mfn: 0x1234,
            evtchn: 2,
        });
        let p = Peek::from_bytes(&b).unwrap();
        assert!(!p.is_initdomain());
        assert_eq!(p.domu_console, want);
        assert_eq!(StartInfo::from_bytes(&b).unwrap().domu_console(), want);
        // Unusable fields give no console, never a panic.
        for (mfn, port) in [(0, 2), (0x1234, 0), (1 << 40, 2)] {
            put(&mut b, off::CONSOLE, mfn);
            put(&mut b, off::CONSOLE + 8, port);
            assert_eq!(Peek::from_bytes(&b).unwrap().domu_console, None);
        }
        assert_eq!(
            Peek::from_bytes(&b[..10]).unwrap_err(),
            StartInfoError::Truncated { len: 10 }
        );
        b[0] = b'y';
        assert_eq!(Peek::from_bytes(&b).unwrap_err(), StartInfoError::BadMagic);
    }

    #[test]
    fn layout_follows_xens_order_and_rounding() {
        let b = sample();
        let si = StartInfo::from_bytes(&b).unwrap();
        let l = BootstrapLayout::new(&si, 0x226000, 0).unwrap();
        assert_eq!(l.p2m, (0x206000, 0x226000));
        assert_eq!(l.page_tables, (0x228000, 0x22d000));
        assert_eq!(l.boot_stack, (0x22d000, 0x22e000));
        assert_eq!(l.bootstrap_end(), 0x22e000);
        assert_eq!(l.mapped_end, 0x400000);
        assert_eq!(l.mapped_pages(), 0x400);
        assert_eq!(l.pfn_to_va(0x3ff), Some(0x3ff000));
        assert_eq!(l.pfn_to_va(0x400), None);
        assert_eq!(l.va_to_pfn(0x200123), Some(0x200));
        assert_eq!(l.va_to_pfn(0x400000), None);
    }

    #[test]
    fn layout_adds_4mib_when_padding_is_short() {
        let mut b = sample();
        put(&mut b, off::PT_BASE, 0x380000); // stack ends at 0x386000: 488 KiB to 0x400000
        let si = StartInfo::from_bytes(&b).unwrap();
        let l = BootstrapLayout::new(&si, 0x226000, 0).unwrap();
        assert_eq!(l.mapped_end, 0x800000);
    }

    #[test]
    fn layout_rejects_misordered_elements() {
        let b = sample();
        let si = StartInfo::from_bytes(&b).unwrap();
        // start_info inside the P2M, after the page tables, or unaligned.
        for va in [0x210000, 0x230000, 0x226008] {
            assert_eq!(
                BootstrapLayout::new(&si, va, 0),
                Err(StartInfoError::LayoutMismatch)
            );
        }
        // A mapping larger than the domain.
        let mut small = sample();
        put(&mut small, off::NR_PAGES, 0x300);
        put(&mut small, off::MFN_LIST, 0x206000);
        let si = StartInfo::from_bytes(&small).unwrap();
        assert_eq!(
            BootstrapLayout::new(&si, 0x208000, 0),
            Err(StartInfoError::LayoutMismatch)
        );
    }

    #[test]
    fn a_layout_built_by_hand_never_panics() {
        // The fields are public: a layout need not come from `new`. Nothing may overflow, and
        // an empty or reversed mapping maps no page.
        let b = sample();
        let si = StartInfo::from_bytes(&b).unwrap();
        let good = BootstrapLayout::new(&si, 0x226000, 0).unwrap();
        let top = !(PAGE_SIZE - 1);
        for (virt_base, mapped_end) in [
            (0x40_0000, 0),
            (top, top - PAGE_SIZE),
            (top, top),
            (top - PAGE_SIZE, top),
        ] {
            let l = BootstrapLayout {
                virt_base,
                mapped_end,
                ..good
            };
            let pages = u128::from(mapped_end).saturating_sub(u128::from(virt_base)) / 4096;
            assert_eq!(
                u128::from(l.mapped_pages()),
                pages,
                "[{virt_base:#x}, {mapped_end:#x})"
            );
            for pfn in [0, 1, u64::MAX] {
                let va = u128::from(virt_base) + u128::from(pfn) * 4096;
                let expected = (u128::from(pfn) < pages).then_some(va as u64);
                assert_eq!(l.pfn_to_va(pfn), expected);
            }
            assert_eq!(l.va_to_pfn(virt_base), (pages > 0).then_some(0));
            let boot = crate::Bootstrap::from_start_info(&si, &l);
            assert!(boot.is_none_or(|b| b.initial_mapping.pfns.len() as u128 == pages));
        }
    }
}
