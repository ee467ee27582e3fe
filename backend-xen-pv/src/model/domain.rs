//! Building a domain the way Xen's PV domain builder does: the P2M, the bootstrap page tables
//! (validated, pinned, in CR3), the initial mapping, and the `start_info` that describes them.

use std::vec::Vec;

use super::machine::{bits::*, Machine, PageType};
use crate::hypercall::abi::{sif, start_info_off as off};
use crate::start_info::START_INFO_SIZE;

const PAGE: u64 = 4096;
const FOUR_MIB: u64 = 4 << 20;

/// How to build the model's domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomainConfig {
    /// Pages of the domain: pfns `0..nr_pages`.
    pub nr_pages: u64,
    /// Pages of the kernel image at the start of the initial mapping.
    pub image_pages: u64,
    /// The lowest machine frame of the domain. The P2M maps pfn `n` to
    /// `mfn_base + nr_pages - 1 - n`: not the identity, and descending, so a pfn used as an
    /// mfn, or an mfn computed from a neighbour, shows.
    pub mfn_base: u64,
    /// Whether the domain may use cache attributes in L1 entries (dom0 may).
    pub cache_attrs: bool,
    /// Whether Xen adds `GLOBAL` to the guest's user (`USER`) L1 entries, as Xen 4.17 did on
    /// the QEMU machine the conformance corpus ran on (its `opt_global_pages` depends on the
    /// CPU): an entry written into an L1 then refuses to serve in an L2..L4 table.
    pub global_user_pages: bool,
}

impl DomainConfig {
    /// A dom0 of `mib` MiB with a 1 MiB kernel image.
    pub const fn mib(mib: u64) -> Self {
        Self {
            nr_pages: mib * 256,
            image_pages: 256,
            mfn_base: 0x10_0000,
            cache_attrs: true,
            global_user_pages: true,
        }
    }
}

/// What the domain builder hands the guest, as the guest sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootImage {
    /// The `start_info` page's bytes (parse them with
    /// [`StartInfo::from_bytes`](crate::StartInfo::from_bytes)).
    pub start_info: Vec<u8>,
    /// The virtual address of the start_info page.
    pub start_info_va: u64,
    /// The image's `VIRT_BASE` (0): the initial mapping maps pfn `n` at `virt_base + n * 4096`.
    pub virt_base: u64,
    /// End of the initial mapping.
    pub mapped_end: u64,
    /// The P2M list (pfn → mfn).
    pub p2m: Vec<u64>,
}

/// Builds the machine and the boot image.
pub fn build(cfg: DomainConfig) -> (Machine, BootImage) {
    let n = cfg.nr_pages;
    let p2m: Vec<u64> = (0..n).map(|pfn| cfg.mfn_base + n - 1 - pfn).collect();
    let mut m = Machine::new(p2m.clone(), cfg.mfn_base, cfg.cache_attrs);
    m.global_user_pages = cfg.global_user_pages;

    // The layout of xen.h's start-of-day rules, as B's BootstrapLayout reads it.
    let virt_base = 0;
    let p2m_va = cfg.image_pages * PAGE;
    let si_va = p2m_va + (n * 8).div_ceil(PAGE) * PAGE;
    let pt_va = si_va + PAGE;
    let mut nr_pt = 4;
    let mapped_end = loop {
        let stack_end = pt_va + nr_pt * PAGE + PAGE;
        let mut end = stack_end.next_multiple_of(FOUR_MIB);
        if end - stack_end < 512 << 10 {
            end += FOUR_MIB;
        }
        let need = 3 + end.div_ceil(2 << 20);
        if need <= nr_pt {
            break end;
        }
        nr_pt = need;
    };
    assert!(
        mapped_end <= 1 << 30,
        "the model's builder maps at most 1 GiB"
    );
    assert!(
        mapped_end / PAGE <= n,
        "domain too small for its boot image"
    );
    let mapped = mapped_end / PAGE;
    let pt_pfn = pt_va / PAGE;
    let pt = |i: u64| p2m[(pt_pfn + i) as usize];

    // L4 → L3 → L2 → L1s, every page of [0, mapped_end) mapped; the tables read-only.
    let table = P | RW | USER | A;
    m.poke(pt(0), 0, (pt(1) << 12) | table);
    m.poke(pt(1), 0, (pt(2) << 12) | table);
    for pfn in 0..mapped {
        let l1 = 3 + pfn / 512;
        if pfn % 512 == 0 {
            m.poke(pt(2), (pfn / 512) as usize, (pt(l1) << 12) | table);
        }
        let is_table = (pt_pfn..pt_pfn + nr_pt).contains(&pfn);
        let flags = P | USER | A | D | if is_table { 0 } else { RW };
        m.poke(
            pt(l1),
            (pfn % 512) as usize,
            (p2m[pfn as usize] << 12) | flags,
        );
    }
    m.cr3 = pt(0);
    m.get_type(pt(0), PageType::L4)
        .expect("the bootstrap tables validate");
    m.get_type(pt(0), PageType::L4).expect("pin");
    m.frame_mut(pt(0)).expect("the root is the domain's").pinned = true;

    let mut si = std::vec![0u8; START_INFO_SIZE];
    si[..14].copy_from_slice(b"xen-3.0-x86_64");
    let put = |b: &mut [u8], at: usize, v: u64| b[at..at + 8].copy_from_slice(&v.to_le_bytes());
    put(&mut si, off::NR_PAGES, n);
    put(&mut si, off::SHARED_INFO, 0x7fff_d000);
    si[off::FLAGS..off::FLAGS + 4]
        .copy_from_slice(&(sif::PRIVILEGED | sif::INITDOMAIN).to_le_bytes());
    put(&mut si, off::PT_BASE, pt_va);
    put(&mut si, off::NR_PT_FRAMES, nr_pt);
    put(&mut si, off::MFN_LIST, p2m_va);
    let boot = BootImage {
        start_info: si,
        start_info_va: si_va,
        virt_base,
        mapped_end,
        p2m,
    };
    (m, boot)
}
