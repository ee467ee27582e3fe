//! What the types prevent, shown at run time on real Xen by going around them.
//!
//! hal-core's type states make two mistakes impossible to write: using a frame as a page table
//! while it is still mapped writable, and storing into a frame that was made page-table-ready
//! (the 2011 seed's crash: the tail of `pgt_buf` was still read-only when other code wrote to
//! it). This program commits both through the explicitly `unsafe` escape hatch (raw
//! hypercalls, raw pointer stores) and checks that Xen refuses / the CPU faults:
//!
//! 1. A free frame (from memblock) that the initial mapping maps writable at
//!    `va = pfn * 4096` is zeroed and pinned as an L1 table with a raw `MMUEXT_PIN_L1_TABLE`:
//!    Xen must refuse with `-EINVAL` (-22). Its mapping is then made read-only
//!    (`update_va_mapping`) and the pin must succeed (0); then it is unpinned and made writable
//!    again, every return value checked.
//! 2. Last: a frame protected as `pgt_buf` frames are ([`Mmu::protect`](pvmmu::Mmu::protect),
//!    `FrameRange<Free>` → `FrameRange<PgtReserved>`) is stored to through its old,
//!    writable-looking address. That store must raise `#PF`; the board catches it as the
//!    expected fault armed with [`boards::common::expect::expect_fault`] and exits Pass.
//!
//! On bare metal no hypervisor refuses anything (a protected frame stays writable): the
//! program says so (`nothing to demonstrate: no hypervisor refuses`) and passes.

use boards::MmuPlatform;

use crate::Failure;
#[cfg(feature = "xen-pv")]
use pvmmu::xen_pv::{P2m, RawHypercall};

/// What the board offers beyond [`MmuPlatform`] for this demonstration.
pub trait SeedBugBoard: MmuPlatform {
    /// The raw hypercalls and the P2M of a Xen PV guest; `None` on a board without a
    /// hypervisor (nothing refuses there). Only in builds with the `xen-pv` feature: without
    /// it no board has a hypervisor.
    #[cfg(feature = "xen-pv")]
    fn xen_raw(&self) -> Option<(&dyn RawHypercall, &P2m<'static>)>;
}

#[cfg(feature = "native")]
impl SeedBugBoard for boards::native::NativeBoard {
    #[cfg(feature = "xen-pv")]
    fn xen_raw(&self) -> Option<(&dyn RawHypercall, &P2m<'static>)> {
        None
    }
}

#[cfg(feature = "xen-pv")]
impl SeedBugBoard for boards::xen::XenBoard {
    fn xen_raw(&self) -> Option<(&dyn RawHypercall, &P2m<'static>)> {
        Some((self.hypercalls(), self.p2m()))
    }
}

/// Runs the demonstration. On Xen it ends in the expected page fault (the board exits Pass);
/// a return is a failure (or, without a hypervisor, the "nothing to demonstrate" pass).
pub fn run<P: SeedBugBoard>(p: &mut P) -> Result<(), Failure> {
    #[cfg(feature = "xen-pv")]
    if p.xen_raw().is_some() {
        return xen::run(p);
    }
    defmt::info!(
        "seed_bug on {=str}: nothing to demonstrate: no hypervisor refuses",
        p.name()
    );
    p.console_write("seed_bug: nothing to demonstrate: no hypervisor refuses\n");
    Ok(())
}

/// The part that needs a hypervisor (built with the `xen-pv` feature only).
#[cfg(feature = "xen-pv")]
pub(crate) mod xen {
    use super::SeedBugBoard;
    use crate::{memview, Failure};
    use boards::common::fault::PAGE_FAULT;
    use pvmmu::memblock::Direction;
    use pvmmu::xen_pv::hypercall::abi::{mmuext, uvmf, MmuextOp, DOMID_SELF};
    use pvmmu::xen_pv::{P2m, RawHypercall};
    use pvmmu::RawMmu;

    /// `-EINVAL`: what Xen answers a pin of a frame that has a writable mapping.
    pub const EINVAL: i64 = -22;

    /// PTE bits for `update_va_mapping` (the domain builder's L1 flags, Xen adds `USER` anyway).
    const PTE_P: u64 = 1 << 0;
    const PTE_RW: u64 = 1 << 1;
    const PTE_USER: u64 = 1 << 2;
    const PTE_ACCESSED: u64 = 1 << 5;
    const PTE_DIRTY: u64 = 1 << 6;

    /// What part 1 observed.
    #[derive(Clone, Copy, Debug, defmt::Format)]
    pub struct PinFigures {
        /// The frame used.
        pub pfn: u64,
        /// Its machine frame.
        pub mfn: u64,
        /// `MMUEXT_PIN_L1_TABLE` while mapped writable: the return value (-22 expected).
        pub pin_writable: i64,
        /// Its success count (0 expected).
        pub pin_writable_done: u32,
        /// The same pin after the mapping was made read-only (0 expected).
        pub pin_readonly: i64,
        /// Its success count (1 expected).
        pub pin_readonly_done: u32,
    }

    fn hypercall(what: &'static str, ret: i64) -> Result<(), Failure> {
        if ret == 0 {
            Ok(())
        } else {
            defmt::error!("seed_bug: {=str} returned {=i64}", what, ret);
            Err(Failure::Hypercall { what, ret })
        }
    }

    /// One `mmuext_op` of `cmd` on `mfn`: (return value, success count).
    ///
    /// # Safety
    /// As for [`RawHypercall::mmuext_op`]: the command must not remove a mapping Rust relies on.
    unsafe fn mmuext_one(hv: &dyn RawHypercall, cmd: u32, mfn: u64) -> (i64, u32) {
        let op = MmuextOp {
            cmd,
            arg1: mfn,
            arg2: 0,
        };
        let mut done = 0;
        // SAFETY: the caller's promise; `op` is one valid command.
        let ret = unsafe { hv.mmuext_op(&[op], &mut done, DOMID_SELF) };
        (ret, done)
    }

    /// Part 1: pin a writable frame (refused), then a read-only one (accepted), clean up.
    ///
    /// # Safety
    /// `va` maps `pfn` (writable, 4 KiB) in the live tables, and the caller owns the frame.
    pub(crate) unsafe fn pin_demo(
        hv: &dyn RawHypercall,
        p2m: &P2m<'static>,
        pfn: u64,
        va: u64,
    ) -> Result<PinFigures, Failure> {
        let mfn = p2m
            .pfn_to_mfn(pfn)
            .map_err(|e| {
                defmt::error!("seed_bug: P2M lookup of pfn {=u64:#x} failed: {}", pfn, e);
                Failure::P2mLookup { pfn }
            })?
            .0;
        // SAFETY: the caller owns the frame and `va` maps it writable.
        unsafe { core::ptr::write_bytes(va as *mut u8, 0, 4096) };

        // The mistake the types forbid: a frame that is still writable used as a page table.
        // SAFETY: pinning changes no mapping; the frame is ours and all-zero (a valid empty L1).
        let (pin_writable, pin_writable_done) =
            unsafe { mmuext_one(hv, mmuext::PIN_L1_TABLE, mfn) };
        defmt::info!(
        "seed_bug: MMUEXT_PIN_L1_TABLE of pfn {=u64:#x} (mfn {=u64:#x}) while mapped writable at {=u64:#x}: returned {=i64} (errno {=i64}), success count {=u32}",
        pfn,
        mfn,
        va,
        pin_writable,
        -pin_writable,
        pin_writable_done
    );
        if pin_writable == 0 {
            // SAFETY: the frame is pinned (just now) and hooked nowhere.
            let _ = unsafe { mmuext_one(hv, mmuext::UNPIN_TABLE, mfn) };
        }
        if pin_writable != EINVAL || pin_writable_done != 0 {
            defmt::error!(
            "seed_bug: Xen did not refuse to pin a writable frame with -EINVAL (got {=i64}, success count {=u32})",
            pin_writable,
            pin_writable_done
        );
            return Err(Failure::Hypercall {
                what: "pin of a writable frame not refused",
                ret: pin_writable,
            });
        }

        // The right order: read-only first, then pin.
        let ro = (mfn << 12) | PTE_P | PTE_USER | PTE_ACCESSED;
        // SAFETY: only the mapping of our own frame changes (to read-only); nothing reads or
        // writes through it until it is writable again.
        hypercall("update_va_mapping (read-only)", unsafe {
            hv.update_va_mapping(va, ro, uvmf::INVLPG | uvmf::LOCAL)
        })?;
        // SAFETY: pinning changes no mapping; the frame is ours, all-zero and read-only.
        let (pin_readonly, pin_readonly_done) =
            unsafe { mmuext_one(hv, mmuext::PIN_L1_TABLE, mfn) };
        defmt::info!(
        "seed_bug: MMUEXT_PIN_L1_TABLE of the same frame once mapped read-only: returned {=i64}, success count {=u32}",
        pin_readonly,
        pin_readonly_done
    );
        if pin_readonly != 0 || pin_readonly_done != 1 {
            defmt::error!(
            "seed_bug: Xen rejected the pin of a read-only frame ({=i64}, success count {=u32})",
            pin_readonly,
            pin_readonly_done
        );
            return Err(Failure::Hypercall {
                what: "pin of a read-only frame",
                ret: pin_readonly,
            });
        }

        // Clean up: unpin, then writable again.
        // SAFETY: the frame is pinned (just now), hooked nowhere and not the root.
        let (unpin, unpin_done) = unsafe { mmuext_one(hv, mmuext::UNPIN_TABLE, mfn) };
        defmt::info!(
            "seed_bug: MMUEXT_UNPIN_TABLE: returned {=i64}, success count {=u32}",
            unpin,
            unpin_done
        );
        hypercall("MMUEXT_UNPIN_TABLE", unpin)?;
        let rw = (mfn << 12) | PTE_P | PTE_RW | PTE_USER | PTE_ACCESSED | PTE_DIRTY;
        // SAFETY: only the mapping of our own frame changes (back to writable).
        let ret = unsafe { hv.update_va_mapping(va, rw, uvmf::INVLPG | uvmf::LOCAL) };
        defmt::info!(
            "seed_bug: update_va_mapping back to writable: returned {=i64}",
            ret
        );
        hypercall("update_va_mapping (writable)", ret)?;
        // SAFETY: `va` maps our frame writable again.
        unsafe {
            core::ptr::write_volatile(va as *mut u64, 0x5eed_b0c5);
            if core::ptr::read_volatile(va as *const u64) != 0x5eed_b0c5 {
                return Err(Failure::Pattern { pfn });
            }
        }
        Ok(PinFigures {
            pfn,
            mfn,
            pin_writable,
            pin_writable_done,
            pin_readonly,
            pin_readonly_done,
        })
    }

    /// The demonstration on Xen: ends in the expected page fault.
    pub(super) fn run<P: SeedBugBoard>(p: &mut P) -> Result<(), Failure> {
        let mb = memview::memblock(p)?;
        let Some((hv, p2m)) = p.xen_raw() else {
            return Err(Failure::Claimed);
        };
        let (win_va, win) = p.boot_window();
        let limit = win.end() << 12;

        // Part 1.
        let frame = mb
            .alloc_frame(limit, Direction::TopDown)
            .map_err(Failure::Memblock)?;
        let pfn = frame.pfn().as_u64();
        // SAFETY: the boot window maps every frame below `limit` writable at `win_va + pfn * 4096`
        // (the board checked the initial mapping); the frame is ours (just allocated).
        let pins = unsafe { pin_demo(hv, p2m, pfn, win_va + pfn * 4096) }?;

        // Part 2: a frame protected the way pgt_buf frames are. Part 1's frame is still held, so
        // this is another one, which this program has never touched (no TLB entry of ours).
        let frames = mb
            .alloc_frames(1, limit, Direction::TopDown)
            .map_err(Failure::Memblock)?;
        mb.free_frame(frame)
            .map_err(|e| Failure::Memblock(e.error))?;
        let tail_pfn = frames.pfns().start().as_u64();
        let reserved = p.mmu().protect(frames).map_err(|e| {
            defmt::error!("seed_bug: protect refused: {}", e.error);
            Failure::Backend("protect", pvmmu::BackendError::kind(&e.error))
        })?;
        p.mmu().raw_mut().flush().map_err(|e| {
            defmt::error!("seed_bug: flush refused: {}", e);
            Failure::Backend("flush", pvmmu::BackendError::kind(&e))
        })?;
        let fault_va = win_va + tail_pfn * 4096;
        // Xen does not flush the guest's TLB after an `mmu_update` of a leaf: drop any cached
        // writable translation of the page so the store meets the read-only PTE.
        if let Some((hv, _)) = p.xen_raw() {
            // SAFETY: invalidating one TLB entry changes no mapping.
            let (ret, _) = unsafe { mmuext_one(hv, mmuext::INVLPG_LOCAL, fault_va) };
            hypercall("MMUEXT_INVLPG_LOCAL", ret)?;
        }

        defmt::info!(
        "RESULT seed_bug pin_writable_errno={=i64} pin_writable_success={=u32} pin_readonly={=i64} pin_readonly_success={=u32} fault_va={=u64:#x}",
        pins.pin_writable,
        pins.pin_writable_done,
        pins.pin_readonly,
        pins.pin_readonly_done,
        fault_va
    );
        p.console_write("seed_bug: storing to a read-only tail frame; a page fault must follow\n");
        // SAFETY: the next access is meant to fault exactly there; the board then exits Pass and
        // nothing after the store is needed.
        unsafe { boards::common::expect::expect_fault(PAGE_FAULT, fault_va) };
        // SAFETY: none, on purpose: this is the seed's bug. The frame is `PgtReserved` (read-only
        // under Xen), and the store bypasses the type that forbids it. Xen's #PF ends the run
        // before the store could take effect.
        unsafe { core::ptr::write_volatile(fault_va as *mut u64, 0xdead_beef) };

        defmt::error!(
            "seed_bug: store to a read-only tail frame did not fault (va {=u64:#x}, frames {})",
            fault_va,
            reserved.pfns()
        );
        p.console_write("seed_bug: store to a read-only tail frame did not fault\n");
        Err(Failure::NoFault { va: fault_va })
    }
}
