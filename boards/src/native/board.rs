//! [`NativeBoard`]: the [`Platform`] of a PVH-booted bare-metal kernel.

use backend_native::{HardwareCpu, Native};
use hal_core::memmap::MemRegion;

use super::start_info::{self, HvmMemmapEntry, HvmStartInfo, MemmapTable, StartInfoError};
use super::test_memmap::Perturbation;
use crate::common::console;
use crate::Platform;

/// The longest kernel command line the board keeps (longer ones are cut).
pub const MAX_CMDLINE: usize = 256;
/// How many reserved ranges the board reports.
pub const MAX_RESERVED: usize = 4;
/// Everything below this is left alone (real-mode IVT, BDA, EBDA, option ROMs, BIOS).
pub const LOW_MEMORY_END: u64 = 1 << 20;
const PAGE: u64 = 4096;

/// The bare-metal board, booted through the PVH entry.
pub struct NativeBoard {
    map: heapless::Vec<MemRegion, { start_info::MAX_REGIONS }>,
    reserved: heapless::Vec<(u64, u64), MAX_RESERVED>,
    cmdline: heapless::String<MAX_CMDLINE>,
    test_memmap: Option<Perturbation>,
    pub(super) mmu: hal_core::Mmu<Native<HardwareCpu>>,
    pub(super) root: hal_core::LiveRoot,
}

impl NativeBoard {
    /// Reads `hvm_start_info` at `paddr`, its memory map and the command line.
    ///
    /// A `pvmmu.test-memmap=` parameter on the command line applies the [test
    /// hook](super::test_memmap) to the map the board reports.
    ///
    /// `image` is the kernel image `[start, end)`, `.bss` included.
    ///
    /// # Safety
    /// `paddr` must be the `hvm_start_info` the PVH loader passed, and it and the memory map
    /// must be readable through the identity map (the boot page tables map `[0, 4 GiB)`).
    pub unsafe fn from_start_info(paddr: u64, image: (u64, u64)) -> Result<Self, StartInfoError> {
        // SAFETY: the caller's contract; unaligned reads need no alignment from the loader.
        let info = unsafe { (paddr as *const HvmStartInfo).read_unaligned() };
        let table = info.memmap()?;
        // Read entry by entry into the board's map (no copy of the table on the stack).
        let mut map = heapless::Vec::new();
        let base = table.paddr as *const HvmMemmapEntry;
        for i in 0..table.entries.min(start_info::MAX_REGIONS) {
            // SAFETY: `memmap()` bounded the table to `entries` entries below 4 GiB, and the
            // caller promised the loader's table is readable there.
            let e = unsafe { base.add(i).read_unaligned() };
            let _ = map.push(start_info::region(&e));
        }
        let mut cmdline = heapless::String::new();
        if cmdline_readable(info.cmdline_paddr) {
            let text = info.cmdline_paddr as *const u8;
            for i in 0..MAX_CMDLINE {
                // SAFETY: the loader's NUL-terminated command line, read up to its NUL or
                // MAX_CMDLINE bytes, all below 4 GiB (checked) where the caller promised the
                // identity map makes the loader's data readable.
                let b = unsafe { text.add(i).read() };
                if b == 0
                    || cmdline
                        .push(if b.is_ascii() { b as char } else { '?' })
                        .is_err()
                {
                    break;
                }
            }
        }
        crate::common::args::check(&cmdline, &["test-memmap"])
            .map_err(|_| StartInfoError::UnknownArgument)?;
        let test_memmap =
            Perturbation::from_cmdline(&cmdline).map_err(|_| StartInfoError::UnknownTestMemmap)?;
        if let Some(p) = test_memmap {
            p.apply(&mut map, image);
        }
        // SAFETY: the boot stub identity-maps [0, 4 GiB) writable for the kernel's whole life,
        // and this board is the only one changing page tables.
        let native = unsafe { Native::new(HardwareCpu, &[super::mmu::identity_window()]) };
        // One window into a backend with room for eight: cannot fail.
        let mmu =
            hal_core::Mmu::new(native.unwrap_or_else(|_| unreachable!(/* one window fits */)));
        // SAFETY: the board is made once per boot (from the PVH entry), so this is the one
        // handle to the boot root; from here on only the board's backend changes page tables.
        let root = unsafe { hal_core::LiveRoot::adopt_boot_root(&mmu) };
        Ok(Self {
            map,
            reserved: reserved_ranges(image, paddr, &table),
            cmdline,
            test_memmap,
            mmu,
            root,
        })
    }

    /// The kernel command line (`hvm_start_info.cmdline_paddr`; QEMU's `-append`), at most
    /// `MAX_CMDLINE` bytes, non-ASCII bytes as `?`.
    pub fn cmdline(&self) -> &str {
        &self.cmdline
    }

    /// The test hook in effect, if the command line asked for one.
    pub fn test_memmap(&self) -> Option<Perturbation> {
        self.test_memmap
    }
}

/// Whether the loader's command line at `paddr` can be read, [`MAX_CMDLINE`] bytes of it,
/// through the identity map: not null, and all of it below
/// [`IDENTITY_MAP_END`](start_info::IDENTITY_MAP_END) (an address near the end of the address
/// space must not wrap around into it).
pub fn cmdline_readable(paddr: u64) -> bool {
    paddr != 0
        && paddr
            .checked_add(MAX_CMDLINE as u64)
            .is_some_and(|end| end <= start_info::IDENTITY_MAP_END)
}

/// The ranges memblock must keep out of the allocator: the first MiB, the kernel image, the
/// `hvm_start_info` page(s) and the memory map table, each rounded out to pages.
pub fn reserved_ranges(
    image: (u64, u64),
    start_info_paddr: u64,
    table: &MemmapTable,
) -> heapless::Vec<(u64, u64), MAX_RESERVED> {
    // Rounded out to pages; an end past the address space stays u64::MAX, which memblock
    // refuses as `Overflow` rather than the board wrapping around.
    let info_end = start_info_paddr.saturating_add(core::mem::size_of::<HvmStartInfo>() as u64);
    let pages = |start: u64, end: u64| {
        (
            start & !(PAGE - 1),
            end.checked_next_multiple_of(PAGE).unwrap_or(u64::MAX),
        )
    };
    heapless::Vec::from_slice(&[
        (0, LOW_MEMORY_END),
        pages(image.0, image.1),
        pages(start_info_paddr, info_end),
        pages(table.paddr, table.paddr.saturating_add(table.size())),
    ])
    .unwrap_or_default()
}

impl Platform for NativeBoard {
    fn name(&self) -> &'static str {
        "native-pvh"
    }

    fn cmdline(&self) -> &str {
        &self.cmdline
    }

    fn memory_map(&self) -> &[MemRegion] {
        &self.map
    }

    fn reserved(&self) -> &[(u64, u64)] {
        &self.reserved
    }

    fn console_write(&mut self, s: &str) {
        console::write(s);
    }

    fn cycles(&self) -> u64 {
        // SAFETY: RDTSC only reads the time-stamp counter (CR4.TSD is clear at boot).
        unsafe { core::arch::x86_64::_rdtsc() }
    }

    fn take_memblock(
        &mut self,
    ) -> Result<
        (
            &'static mut crate::BoardMemblock,
            hal_core::memblock::MapReport,
        ),
        crate::ClaimError,
    > {
        // SAFETY: the map is the firmware's (PVH start_info) for this machine, `reserved`
        // covers the image and boot data.
        unsafe { crate::platform::claim_memblock(&self.map, &self.reserved) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_line_near_the_end_of_the_address_space_is_not_read() {
        // `paddr + MAX_CMDLINE` overflowed (a panic in debug kernels, and in release a wrap
        // to a small address that passed the bound).
        assert!(!cmdline_readable(u64::MAX - 10));
        assert!(!cmdline_readable(u64::MAX - MAX_CMDLINE as u64 + 1));
        assert!(!cmdline_readable(0));
        assert!(cmdline_readable(0x1000));
        let end = start_info::IDENTITY_MAP_END;
        assert!(cmdline_readable(end - MAX_CMDLINE as u64));
        assert!(!cmdline_readable(end - MAX_CMDLINE as u64 + 1));
    }

    #[test]
    fn reserved_ranges_near_the_end_of_the_address_space_do_not_wrap() {
        let table = MemmapTable {
            paddr: u64::MAX - 8,
            entries: 4,
        };
        let r = reserved_ranges((0x200000, 0x260000), u64::MAX - 20, &table);
        assert_eq!(r[2], (!(PAGE - 1), u64::MAX));
        assert_eq!(r[3], (!(PAGE - 1), u64::MAX));
    }

    #[test]
    fn reserved_ranges_are_page_rounded() {
        let table = MemmapTable {
            paddr: 0x6f00,
            entries: 16,
        };
        let r = reserved_ranges((0x200000, 0x260000), 0x6e10, &table);
        assert_eq!(
            r.as_slice(),
            &[
                (0, 0x100000),
                (0x200000, 0x260000),
                (0x6000, 0x7000),
                (0x6000, 0x8000)
            ]
        );
    }
}
