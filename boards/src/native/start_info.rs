//! `struct hvm_start_info` (Xen's `arch/x86/hvm/start_info.h`): what a PVH loader hands over
//! in `EBX`, and its E820-style memory map.
//!
//! Only reading and checking happen here; [`NativeBoard`](super::NativeBoard) does the
//! (unsafe) dereferencing, and hal-core validates the map later.

use core::fmt;

use crate::common::console::{self, Text};

use hal_core::memmap::{MemRegion, RegionKind};

/// `hvm_start_info.magic`: `"xEn3"` with bit 7 of the `'E'` set.
pub const HVM_START_MAGIC: u32 = 0x336e_c578;
/// How many memory map entries the board keeps.
pub const MAX_REGIONS: usize = 128;
/// Everything the board can address through the boot identity map.
pub const IDENTITY_MAP_END: u64 = 4 << 30;

/// `struct hvm_start_info`, version 1 layout (56 bytes; version 0 ends before `memmap_paddr`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct HvmStartInfo {
    /// [`HVM_START_MAGIC`].
    pub magic: u32,
    /// Layout version: 0, or 1 with the memory map fields.
    pub version: u32,
    /// `SIF_*` flags.
    pub flags: u32,
    /// Number of `hvm_modlist_entry`s at `modlist_paddr`.
    pub nr_modules: u32,
    /// Physical address of the module list.
    pub modlist_paddr: u64,
    /// Physical address of the NUL-terminated command line, or 0.
    pub cmdline_paddr: u64,
    /// Physical address of the ACPI RSDP, or 0.
    pub rsdp_paddr: u64,
    /// Physical address of the memory map (version 1).
    pub memmap_paddr: u64,
    /// Number of memory map entries (version 1).
    pub memmap_entries: u32,
    /// Must be zero.
    pub reserved: u32,
}

/// `struct hvm_memmap_table_entry`: one E820-style entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HvmMemmapEntry {
    /// Physical start.
    pub addr: u64,
    /// Length in bytes.
    pub size: u64,
    /// E820 type (`XEN_HVM_MEMMAP_TYPE_*`).
    pub kind: u32,
    /// Must be zero.
    pub reserved: u32,
}

/// Why the board cannot use what the loader handed over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, defmt::Format)]
pub enum StartInfoError {
    /// `magic` is not [`HVM_START_MAGIC`]: not booted through PVH, or a bad `EBX`.
    BadMagic(u32),
    /// Version 0 structure: no memory map field (the loader is too old).
    NoMemmap {
        /// The structure's version.
        version: u32,
    },
    /// The memory map is empty or its address is 0.
    EmptyMemmap,
    /// More entries than [`MAX_REGIONS`].
    TooManyEntries(u32),
    /// The table lies (partly) above the boot identity map.
    OutOfReach(u64),
    /// The command line has a `pvmmu.test-memmap=` value the test hook does not know.
    UnknownTestMemmap,
    /// The command line has a `pvmmu.*` key this board does not know.
    UnknownArgument,
}

impl StartInfoError {
    /// Writes what went wrong, in words (the `Display` text), without `core::fmt`.
    pub fn write_to<W: FnMut(&str)>(&self, t: &mut Text<W>) {
        match *self {
            Self::BadMagic(m) => t
                .str("bad magic ")
                .hex(m.into())
                .str(" (expected ")
                .hex(HVM_START_MAGIC.into())
                .str(")"),
            Self::NoMemmap { version } => t
                .str("hvm_start_info version ")
                .dec(version.into())
                .str(" has no memory map (need >= 1)"),
            Self::EmptyMemmap => t.str("the loader passed no memory map"),
            Self::TooManyEntries(n) => t
                .str("memory map has ")
                .dec(n.into())
                .str(" entries, the board keeps ")
                .dec(MAX_REGIONS as u64),
            Self::OutOfReach(a) => t
                .str("memory map at ")
                .hex(a)
                .str(" is above the 4 GiB boot map"),
            Self::UnknownTestMemmap => t.str(
                "unknown pvmmu.test-memmap value (test hook: overlap, unsorted, zero or tiny)",
            ),
            Self::UnknownArgument => t.str(
                "unknown pvmmu.* argument on the command line (this board knows \
                 pvmmu.test-memmap=)",
            ),
        };
    }
}

impl fmt::Display for StartInfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        console::display(f, |t| self.write_to(t))
    }
}

/// Where the memory map table is: physical address and entry count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemmapTable {
    /// Physical address of the first entry.
    pub paddr: u64,
    /// Number of entries (at most [`MAX_REGIONS`]).
    pub entries: usize,
}

impl MemmapTable {
    /// Size of the table in bytes.
    pub const fn size(&self) -> u64 {
        (self.entries * core::mem::size_of::<HvmMemmapEntry>()) as u64
    }
}

impl HvmStartInfo {
    /// Checks the magic and version and locates the memory map table.
    pub fn memmap(&self) -> Result<MemmapTable, StartInfoError> {
        if self.magic != HVM_START_MAGIC {
            return Err(StartInfoError::BadMagic(self.magic));
        }
        if self.version < 1 {
            return Err(StartInfoError::NoMemmap {
                version: self.version,
            });
        }
        if self.memmap_paddr == 0 || self.memmap_entries == 0 {
            return Err(StartInfoError::EmptyMemmap);
        }
        let entries = self.memmap_entries as usize;
        if entries > MAX_REGIONS {
            return Err(StartInfoError::TooManyEntries(self.memmap_entries));
        }
        let table = MemmapTable {
            paddr: self.memmap_paddr,
            entries,
        };
        match self.memmap_paddr.checked_add(table.size()) {
            Some(end) if end <= IDENTITY_MAP_END => Ok(table),
            _ => Err(StartInfoError::OutOfReach(self.memmap_paddr)),
        }
    }
}

/// The board's view of the table: one [`MemRegion`] per entry, in order, unvalidated.
pub fn regions(table: &[HvmMemmapEntry]) -> heapless::Vec<MemRegion, MAX_REGIONS> {
    table.iter().take(MAX_REGIONS).map(region).collect()
}

/// The board's view of one entry.
pub fn region(e: &HvmMemmapEntry) -> MemRegion {
    MemRegion {
        start: e.addr,
        len: e.size,
        kind: RegionKind::from_e820(e.kind),
    }
}

impl core::error::Error for StartInfoError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(version: u32, paddr: u64, entries: u32) -> HvmStartInfo {
        HvmStartInfo {
            magic: HVM_START_MAGIC,
            version,
            memmap_paddr: paddr,
            memmap_entries: entries,
            ..Default::default()
        }
    }

    #[test]
    fn layout_matches_the_c_structs() {
        assert_eq!(core::mem::size_of::<HvmStartInfo>(), 56);
        assert_eq!(core::mem::offset_of!(HvmStartInfo, memmap_paddr), 40);
        assert_eq!(core::mem::offset_of!(HvmStartInfo, memmap_entries), 48);
        assert_eq!(core::mem::size_of::<HvmMemmapEntry>(), 24);
    }

    #[test]
    fn memmap_checks() {
        let ok = info(1, 0x1000, 3).memmap().unwrap();
        assert_eq!(
            ok,
            MemmapTable {
                paddr: 0x1000,
                entries: 3
            }
        );
        assert_eq!(ok.size(), 72);
        let bad = HvmStartInfo {
            magic: 1,
            ..info(1, 0x1000, 3)
        };
        assert_eq!(bad.memmap(), Err(StartInfoError::BadMagic(1)));
        assert_eq!(
            info(0, 0x1000, 3).memmap(),
            Err(StartInfoError::NoMemmap { version: 0 })
        );
        assert_eq!(info(1, 0, 3).memmap(), Err(StartInfoError::EmptyMemmap));
        assert_eq!(
            info(1, 0x1000, 0).memmap(),
            Err(StartInfoError::EmptyMemmap)
        );
        assert_eq!(
            info(1, 0x1000, 129).memmap(),
            Err(StartInfoError::TooManyEntries(129))
        );
        assert_eq!(
            info(1, IDENTITY_MAP_END - 24, 2).memmap(),
            Err(StartInfoError::OutOfReach(IDENTITY_MAP_END - 24))
        );
    }

    #[test]
    fn regions_keep_order_and_types() {
        let table = [
            HvmMemmapEntry {
                addr: 0,
                size: 0x9fc00,
                kind: 1,
                reserved: 0,
            },
            HvmMemmapEntry {
                addr: 0xf0000,
                size: 0x10000,
                kind: 2,
                reserved: 0,
            },
            HvmMemmapEntry {
                addr: 0x100000,
                size: 0x3ff00000,
                kind: 7,
                reserved: 0,
            },
        ];
        let r = regions(&table);
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].kind, RegionKind::Ram);
        assert_eq!(r[1].kind, RegionKind::Reserved);
        assert_eq!(
            r[2],
            MemRegion {
                start: 0x100000,
                len: 0x3ff00000,
                kind: RegionKind::Other(7)
            }
        );
    }
}
