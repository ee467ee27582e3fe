//! Checks, at boot, the initial mapping Xen built against what `start_info` and `xen.h` say:
//! walks the bootstrap page tables (readable at `pt_base`) with hal-core's walker
//! ([`hal_core::walk::visit`]) and confirms that exactly
//! `[virt_base, mapped_end)` is mapped with 4 KiB pages, `va = virt_base + pfn * 4096` onto
//! `P2M[pfn]`, read-only for the page-table frames and writable for everything else, and that
//! CR3 is the frame at `pt_base`.
//!
//! Table entries hold machine frames; a table's virtual address is found by looking its mfn up
//! among the bootstrap frames (`P2M[pfn(pt_base) + i]`), so no M2P access is needed.

use backend_xen_pv::{BootstrapLayout, Mfn, P2m};
use hal_core::walk::{self, Slot, Step, Visitor};
use hal_core::{Pte, TableLevel};

const WRITABLE: u64 = 1 << 1;
const ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;
/// L4 slots 256..272 belong to Xen.
const XEN_SLOTS: core::ops::Range<usize> = 256..272;

/// What the walk found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, defmt::Format)]
pub struct InitialMapping {
    /// 4 KiB pages mapped in the guest's part of the address space.
    pub mapped_pages: u64,
    /// Of those, mapped read-only (the bootstrap page tables).
    pub read_only_pages: u64,
    /// The machine frame CR3 names.
    pub cr3_mfn: Mfn,
}

/// How the initial mapping differs from the documented one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, defmt::Format)]
pub enum MappingError {
    /// CR3 is not the frame at `pt_base`.
    Cr3NotPtBase,
    /// A table entry names a frame outside the bootstrap page tables.
    ForeignTable {
        /// The entry's virtual address range start.
        va: u64,
    },
    /// A superpage entry (64-bit PV has none).
    Superpage {
        /// Its virtual address.
        va: u64,
    },
    /// A page mapped outside `[virt_base, mapped_end)`, or onto another frame than `P2M[pfn]`.
    WrongFrame {
        /// Its virtual address.
        va: u64,
    },
    /// A page writable that should be read-only, or the reverse.
    WrongAccess {
        /// Its virtual address.
        va: u64,
    },
    /// The count of mapped pages is not the layout's.
    Count {
        /// Pages found mapped.
        found: u64,
    },
}

struct Walk<'a> {
    layout: &'a BootstrapLayout,
    remapped: Option<(u64, Mfn)>,
    p2m: &'a P2m<'a>,
    pt_pfn: u64,
    mapped: u64,
    read_only: u64,
}

impl Walk<'_> {
    /// The virtual address of bootstrap table frame `mfn`.
    fn table_va(&self, mfn: u64, va: u64) -> Result<u64, MappingError> {
        let frames = (self.layout.page_tables.1 - self.layout.page_tables.0) / 4096;
        (0..frames)
            .find(|i| self.p2m.pfn_to_mfn(self.pt_pfn + i) == Ok(Mfn(mfn)))
            .map(|i| self.layout.page_tables.0 + i * 4096)
            .ok_or(MappingError::ForeignTable { va })
    }

    fn leaf(&mut self, va: u64, mfn: u64, e: u64) -> Result<(), MappingError> {
        let pfn = self
            .layout
            .va_to_pfn(va)
            .ok_or(MappingError::WrongFrame { va })?;
        let expected = match self.remapped {
            Some((at, to)) if at == va => Ok(to),
            _ => self.p2m.pfn_to_mfn(pfn),
        };
        if expected != Ok(Mfn(mfn)) {
            return Err(MappingError::WrongFrame { va });
        }
        let is_table = (self.layout.page_tables.0..self.layout.page_tables.1).contains(&va);
        if (e & WRITABLE != 0) == is_table {
            return Err(MappingError::WrongAccess { va });
        }
        self.mapped += 1;
        self.read_only += u64::from(is_table);
        Ok(())
    }
}

/// hal-core's walker over the bootstrap tables: tables named by their virtual address, entries
/// read with plain loads (they hold machine frames).
impl Visitor for Walk<'_> {
    type Table = u64;
    type Error = MappingError;

    fn read(&mut self, table_va: u64, level: TableLevel, index: u16) -> Result<Pte, MappingError> {
        if level == TableLevel::L4 && XEN_SLOTS.contains(&usize::from(index)) {
            // Xen's own slots: not the guest's mapping.
            return Ok(Pte::EMPTY);
        }
        // SAFETY: `table_va` is a bootstrap page-table frame (`pt_base`, or found by
        // `table_va` among them), mapped read-only in the initial mapping for as long as the
        // board runs on it; `index` is below 512.
        let e =
            unsafe { core::ptr::read_volatile((table_va as *const u64).add(usize::from(index))) };
        Ok(Pte::from_bits(e))
    }

    fn child(&mut self, slot: &Slot<u64>, e: Pte) -> Result<u64, MappingError> {
        self.table_va((e.bits() & ADDR_MASK) >> 12, slot.va)
    }

    fn entry(&mut self, slot: &Slot<u64>, e: Pte, leaf: bool) -> Result<Step, MappingError> {
        let va = slot.va;
        match (leaf, slot.level) {
            (true, TableLevel::L1) => self.leaf(va, (e.bits() & ADDR_MASK) >> 12, e.bits())?,
            (true, _) => return Err(MappingError::Superpage { va }),
            (false, _) => return Ok(Step::Descend),
        }
        Ok(Step::Next)
    }
}

/// Walks the bootstrap tables; `cr3` is the value `mov cr3` gives (a machine address).
/// `remapped` is one page the board has already retargeted (a domU's console window, mapped
/// before anything else so that errors can be reported): its va and the frame it now maps.
///
/// # Safety
/// The bootstrap page tables are still mapped where `layout` says (nothing has unmapped or
/// reused them).
pub unsafe fn check(
    layout: &BootstrapLayout,
    p2m: &P2m<'_>,
    cr3: u64,
    remapped: Option<(u64, Mfn)>,
) -> Result<InitialMapping, MappingError> {
    let pt_pfn = layout
        .va_to_pfn(layout.page_tables.0)
        .ok_or(MappingError::Cr3NotPtBase)?;
    let cr3_mfn = Mfn((cr3 & ADDR_MASK) >> 12);
    if p2m.pfn_to_mfn(pt_pfn) != Ok(cr3_mfn) {
        return Err(MappingError::Cr3NotPtBase);
    }
    let mut walk = Walk {
        layout,
        remapped,
        p2m,
        pt_pfn,
        mapped: 0,
        read_only: 0,
    };
    walk::visit(layout.page_tables.0, 0..=u64::MAX, &mut walk)?;
    if walk.mapped != layout.mapped_pages() {
        return Err(MappingError::Count { found: walk.mapped });
    }
    Ok(InitialMapping {
        mapped_pages: walk.mapped,
        read_only_pages: walk.read_only,
        cr3_mfn,
    })
}

impl core::fmt::Display for MappingError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Cr3NotPtBase => f.write_str("CR3 is not the frame at start_info.pt_base"),
            Self::ForeignTable { va } => write!(
                f,
                "the table entry covering {va:#x} names a frame outside the bootstrap page tables"
            ),
            Self::Superpage { va } => {
                write!(f, "a superpage maps {va:#x} (64-bit PV has none)")
            }
            Self::WrongFrame { va } => write!(
                f,
                "{va:#x} is mapped outside the initial mapping, or onto another frame than P2M[pfn]"
            ),
            Self::WrongAccess { va } => write!(
                f,
                "{va:#x} is writable where it should be read-only, or the reverse"
            ),
            Self::Count { found } => write!(
                f,
                "{found} pages are mapped, not the number the start_info layout says"
            ),
        }
    }
}

impl core::error::Error for MappingError {}
