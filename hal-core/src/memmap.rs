//! The firmware's memory map, as a board reads it (E820 entries from `hvm_start_info`, or the
//! single RAM range of a Xen PV domain), before any validation.
//!
//! Boards produce [`MemRegion`]s; [`Memblock::from_firmware`](crate::memblock::Memblock::from_firmware) validates them.

/// What the firmware says a region is (E820 types).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RegionKind {
    /// Usable RAM (E820 type 1).
    Ram,
    /// Reserved (type 2).
    Reserved,
    /// ACPI tables, reclaimable (type 3).
    AcpiReclaimable,
    /// ACPI NVS (type 4).
    AcpiNvs,
    /// Unusable / bad memory (type 5).
    Unusable,
    /// Any other type number.
    Other(u32),
}

impl RegionKind {
    /// Decode an E820 type number.
    pub const fn from_e820(ty: u32) -> Self {
        match ty {
            1 => Self::Ram,
            2 => Self::Reserved,
            3 => Self::AcpiReclaimable,
            4 => Self::AcpiNvs,
            5 => Self::Unusable,
            other => Self::Other(other),
        }
    }
}

/// One entry of a firmware memory map: `[start, start + len)`, unvalidated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct MemRegion {
    /// Physical start address in bytes.
    pub start: u64,
    /// Length in bytes (may be zero or overflow in a malformed map).
    pub len: u64,
    /// The region's type.
    pub kind: RegionKind,
}
