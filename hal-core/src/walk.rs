//! Translating a virtual address by walking the tables through the backend.

use crate::addr::Pfn;
use crate::backend::RawMmu;
use crate::level::TableLevel;
use crate::pte::Pte;

/// Where a virtual address leads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Translation {
    /// The 4 KiB frame the address falls in.
    pub pfn: Pfn,
    /// The level of the leaf entry (1: 4 KiB, 2: 2 MiB, 3: 1 GiB page).
    pub level: TableLevel,
    /// The leaf entry.
    pub leaf: Pte,
}

/// Walks from `root` to the leaf mapping `va`; `Ok(None)` if it is not mapped.
pub fn translate<B: RawMmu>(
    raw: &mut B,
    root: Pfn,
    va: u64,
) -> Result<Option<Translation>, B::Error> {
    let mut table = root;
    let mut level = TableLevel::L4;
    loop {
        let e = raw.read(table, level, level.index_of(va))?;
        if !e.is_present() {
            return Ok(None);
        }
        if level == TableLevel::L1 || (e.is_huge() && level != TableLevel::L4) {
            let within = (va & (level.entry_span() - 1)) >> 12;
            let pfn = Pfn::new(e.pfn().as_u64() + within).expect("in range");
            return Ok(Some(Translation {
                pfn,
                level,
                leaf: e,
            }));
        }
        table = e.pfn();
        level = level.child().expect("not L1 here");
    }
}
