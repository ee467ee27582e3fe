//! [`XenBoard`]: the [`Platform`] of a 64-bit Xen PV guest, and what a Xen MMU backend needs
//! from the boot.

use hal_core::memmap::MemRegion;

use backend_xen_pv::hypercall::abi::sif;
use backend_xen_pv::{BootstrapLayout, Counted, P2m, StartInfo, XenHypercalls};

use super::bootstrap::InitialMapping;
use super::mmu::Backend;
use crate::Platform;

const PAGE_SIZE: u64 = 4096;

/// Which kind of PV domain the guest is, from `start_info.flags` (`SIF_INITDOMAIN`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, defmt::Format)]
pub enum Role {
    /// The initial domain, built by Xen itself: console through `console_io`, defmt on COM2
    /// and the exit port after `PHYSDEVOP_set_iopl`.
    Dom0,
    /// An unprivileged domain built by the toolstack (`xl create`): console and defmt over
    /// the console ring, exit through `SCHEDOP_shutdown`, no I/O privilege.
    DomU,
}

impl Role {
    /// `"dom0"` or `"domU"`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Dom0 => "dom0",
            Self::DomU => "domU",
        }
    }
}

/// A Xen PV guest, as the boot found it.
///
/// # Pseudo-physical memory
/// The domain owns pfns `0..nr_pages`; [`Platform::memory_map`] is that one RAM range
/// (`[0, nr_pages * 4096)`). [`Platform::reserved`] is `[0, bootstrap_end)`: pfns below the
/// image (mapped, unused), the kernel image, the P2M list, start_info, the bootstrap page
/// tables and Xen's boot stack, plus the frames of a P2M placed outside the initial mapping if
/// Xen made one (`first_p2m_pfn`, `nr_p2m_frames`; not for our images), plus a domU's
/// xenstore and console pages should the toolstack place them outside that range (it places
/// them right after start_info).
///
/// # Virtual memory at entry
/// `[0, layout().mapped_end)` maps pfn `n` at `n * 4096` (4 KiB pages only), all writable
/// except the bootstrap page tables; nothing else in the guest half is mapped. The board
/// checked this against the tables themselves ([`XenBoard::initial_mapping`]). One page of the
/// image (the shared_info window) has since been remapped to shared_info.
pub struct XenBoard {
    pub(super) hv: &'static Counted<XenHypercalls>,
    pub(super) start_info: StartInfo<'static>,
    pub(super) start_info_va: u64,
    pub(super) layout: BootstrapLayout,
    pub(super) p2m: P2m<'static>,
    pub(super) initial_mapping: InitialMapping,
    pub(super) shared_info_va: u64,
    pub(super) image: (u64, u64),
    pub(super) memory_map: [MemRegion; 1],
    pub(super) reserved: heapless::Vec<(u64, u64), 4>,
    pub(super) iopl: bool,
    pub(super) role: Role,
    /// The MMU backend; from the board's boot on, every page-table change goes through it.
    pub(super) mmu: hal_core::Mmu<Backend>,
    /// The one handle to the live root (the domain builder's bootstrap L4 at boot).
    pub(super) root: hal_core::LiveRoot,
    /// The alias page of [`MmuPlatform::alias`](crate::MmuPlatform::alias) maps another frame.
    pub(super) aliased: bool,
}

impl XenBoard {
    /// The hypercalls, through the page Xen filled, counted (the same wrapper the MMU
    /// backend's figures come from).
    pub fn hypercalls(&self) -> &'static Counted<XenHypercalls> {
        self.hv
    }

    /// The validated start_info.
    pub fn start_info(&self) -> &StartInfo<'static> {
        &self.start_info
    }

    /// The virtual address of the start_info page (`rsi` at entry).
    pub fn start_info_va(&self) -> u64 {
        self.start_info_va
    }

    /// The validated P2M list (pfn → mfn for every pfn of the domain).
    pub fn p2m(&self) -> &P2m<'static> {
        &self.p2m
    }

    /// Where the bootstrap elements are and how far the initial mapping goes.
    pub fn layout(&self) -> &BootstrapLayout {
        &self.layout
    }

    /// Virtual address of the bootstrap L4 (first of the bootstrap page-table frames, which are
    /// contiguous, mapped read-only, pinned, L4 first).
    pub fn pt_base(&self) -> u64 {
        self.start_info.pt_base()
    }

    /// The pfn of the bootstrap L4; the table frames are pfns `pt_base_pfn()..+nr_pt_frames()`.
    pub fn pt_base_pfn(&self) -> u64 {
        (self.start_info.pt_base() - self.layout.virt_base) / PAGE_SIZE
    }

    /// Number of bootstrap page-table frames.
    pub fn nr_pt_frames(&self) -> u64 {
        self.start_info.nr_pt_frames()
    }

    /// The pfns the initial mapping covers: `0..initial_mapped_pfns()`, at `va = pfn * 4096`.
    pub fn initial_mapped_pfns(&self) -> u64 {
        self.layout.mapped_pages()
    }

    /// What the boot-time walk of the bootstrap tables found.
    pub fn initial_mapping(&self) -> &InitialMapping {
        &self.initial_mapping
    }

    /// The virtual (= pseudo-physical) range of the kernel image, `.bss` included.
    pub fn image(&self) -> (u64, u64) {
        self.image
    }

    /// Where shared_info is mapped (a page inside the image).
    pub fn shared_info_va(&self) -> u64 {
        self.shared_info_va
    }

    /// The initial module (what follows the kernel on Xen's multiboot command line, QEMU's
    /// `-initrd "KERNEL ARGS,MODULE"`), which Xen loads into the initial mapping right after
    /// the kernel image.
    pub fn module(&self) -> Result<&'static [u8], ModuleError> {
        let (start, len) = (self.start_info.mod_start(), self.start_info.mod_len());
        if len == 0 {
            return Err(ModuleError::None);
        }
        if self.start_info.flags() & sif::MOD_START_PFN != 0 {
            return Err(ModuleError::Unmapped { start, len });
        }
        let end = start.checked_add(len);
        if start < self.image.1 || end.is_none_or(|e| e > self.layout.p2m.0) {
            return Err(ModuleError::Outside { start, len });
        }
        // SAFETY: between the image and the P2M list, inside the initial mapping's part that
        // the board reserves (memblock never hands it out); Xen loaded it and nothing writes it.
        Ok(unsafe { core::slice::from_raw_parts(start as *const u8, len as usize) })
    }

    /// Whether `PHYSDEVOP_set_iopl(1)` succeeded (COM2 and port 0xf4 usable); always false
    /// in a domU, which never asks.
    pub fn has_io_privilege(&self) -> bool {
        self.iopl
    }

    /// dom0 or domU.
    pub fn role(&self) -> Role {
        self.role
    }
}

/// Why [`XenBoard::module`] has no module to give.
#[derive(Clone, Copy, Debug, PartialEq, Eq, defmt::Format)]
pub enum ModuleError {
    /// Xen was given none (`mod_len` is 0).
    None,
    /// Xen left it unmapped (`SIF_MOD_START_PFN`: `start` is a pfn).
    Unmapped {
        /// `mod_start`.
        start: u64,
        /// `mod_len`.
        len: u64,
    },
    /// It is not between the image and the P2M list, where Xen's builder puts it.
    Outside {
        /// `mod_start`.
        start: u64,
        /// `mod_len`.
        len: u64,
    },
}

impl Platform for XenBoard {
    fn name(&self) -> &'static str {
        match self.role {
            Role::Dom0 => "xen-pv",
            Role::DomU => "xen-pv-domU",
        }
    }

    fn cmdline(&self) -> &str {
        core::str::from_utf8(self.start_info.cmd_line()).unwrap_or("")
    }

    fn memory_map(&self) -> &[MemRegion] {
        &self.memory_map
    }

    fn reserved(&self) -> &[(u64, u64)] {
        &self.reserved
    }

    /// The role's console: `console_io` for dom0, the console ring for a domU.
    fn console_write(&mut self, s: &str) {
        crate::common::console::write(s);
    }

    fn cycles(&self) -> u64 {
        // SAFETY: rdtsc is available on every x86-64 CPU and Xen lets PV guests use it.
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
        // SAFETY: the map is the domain's pseudo-physical RAM (start_info.nr_pages), `reserved`
        // covers the image and the bootstrap elements.
        unsafe { crate::platform::claim_memblock(&self.memory_map, &self.reserved) }
    }
}
