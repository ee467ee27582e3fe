//! The guest half of the conformance check: the corpus the host generated (the multiboot module
//! after the kernel) replayed on real Xen, one result line per sequence, for the host to compare
//! with the model's answers (`cargo xtask conformance`).
//!
//! The operations act on [`FRAMES`] frames from memblock (mapped writable once, by the
//! initial mapping, and zeroed) and on the live root's scratch slots, through
//! `pvmmu::xen_pv::conformance`'s replayer: the same code the host runs on the model. Stores
//! go through the board's probing store, so a `#PF` is a result, not the end of the run.
//!
//! Output: `conformance: seq N ops K [r0, e0, r1, e1, ...]` per sequence (2 bytes per
//! operation: the hypercall's return value as an i8, and a success count or a store outcome),
//! then `RESULT conformance sequences=N ops=M`. On bare metal there is nothing to replay.

use boards::MmuPlatform;
use pvmmu::memblock::Direction;
use pvmmu::xen_pv::conformance::corpus::{FRAMES, SCRATCH, SCRATCH_SLOTS};
use pvmmu::xen_pv::conformance::{Corpus, FrameAt, Guest, Replayer, Setup, StoreOutcome};
use pvmmu::xen_pv::{P2m, RawHypercall};

use crate::{memview, Failure};

/// Operations one sequence may hold.
pub const MAX_OPS: usize = 256;

/// What the board offers for the replay.
pub trait ConformanceBoard: MmuPlatform {
    /// On a Xen PV guest: the hypercalls, the P2M, the corpus module, and the live root's pfn
    /// and a virtual address where it can be read. `None` without a hypervisor.
    fn xen_side(&self) -> Option<XenSide<'_>>;
}

/// See [`ConformanceBoard::xen_side`].
pub struct XenSide<'a> {
    /// The hypercalls.
    pub hv: &'a dyn RawHypercall,
    /// The P2M.
    pub p2m: &'a P2m<'static>,
    /// The corpus, or why there is none.
    pub module: Result<&'static [u8], &'static str>,
    /// The live root's pfn.
    pub root_pfn: u64,
    /// Where the live root can be read.
    pub root_va: u64,
}

#[cfg(feature = "native")]
impl ConformanceBoard for boards::native::NativeBoard {
    fn xen_side(&self) -> Option<XenSide<'_>> {
        None
    }
}

#[cfg(feature = "xen-pv")]
impl ConformanceBoard for boards::xen::XenBoard {
    fn xen_side(&self) -> Option<XenSide<'_>> {
        use boards::xen::board::ModuleError;
        Some(XenSide {
            hv: self.hypercalls(),
            p2m: self.p2m(),
            module: self.module().map_err(|e| match e {
                ModuleError::None => "no module",
                ModuleError::Unmapped { .. } => "module not mapped",
                ModuleError::Outside { .. } => "module outside the image's neighbourhood",
            }),
            root_pfn: self.pt_base_pfn(),
            root_va: self.pt_base(),
        })
    }
}

struct Real<'a>(&'a dyn RawHypercall);

// SAFETY: `store` is the board's probing store, which stores or reports the #PF that stopped
// it; `load` reads the address.
unsafe impl Guest for Real<'_> {
    fn hv(&self) -> &dyn RawHypercall {
        self.0
    }

    unsafe fn load(&self, va: u64) -> u64 {
        // SAFETY: the caller's contract: `va` is mapped readable.
        unsafe { core::ptr::read_volatile(va as *const u64) }
    }

    unsafe fn store(&self, va: u64, val: u64) -> StoreOutcome {
        #[cfg(feature = "xen-pv")]
        {
            use boards::xen::probe::{store, Probe};
            // SAFETY: the caller's contract.
            match unsafe { store(va, val) } {
                Probe::Stored => StoreOutcome::Done,
                Probe::ReadOnly => StoreOutcome::ReadOnly,
                Probe::NotPresent => StoreOutcome::NotPresent,
            }
        }
        #[cfg(not(feature = "xen-pv"))]
        {
            let _ = (va, val);
            StoreOutcome::Other
        }
    }
}

fn failed(what: &'static str) -> Failure {
    defmt::error!("conformance: {=str}", what);
    Failure::Hypercall { what, ret: 0 }
}

/// Replays the corpus. Fails if there is no corpus, the frames cannot be set up, or a
/// sequence does not end back on the live root.
pub fn run<P: ConformanceBoard>(p: &mut P) -> Result<(), Failure> {
    if p.xen_side().is_none() {
        defmt::info!("conformance: nothing to replay: no hypervisor");
        p.console_write("conformance: nothing to replay: no hypervisor\n");
        return Ok(());
    }
    let mb = memview::memblock(p)?;
    let (win_va, win) = p.boot_window();
    let limit = win.end() << 12;
    let Some(x) = p.xen_side() else {
        return Err(Failure::Claimed);
    };
    let corpus = Corpus::parse(x.module.map_err(failed)?).map_err(|e| {
        defmt::error!("conformance: bad corpus: {}", e);
        failed("bad corpus")
    })?;
    let mfn = |pfn: u64| {
        x.p2m
            .pfn_to_mfn(pfn)
            .map(|m| m.0)
            .map_err(|_| failed("P2M"))
    };
    let mut frames = [FrameAt { mfn: 0, va: 0 }; FRAMES];
    // The frames stay held (never given back) for the rest of the run.
    let mut held: heapless::Vec<pvmmu::Frame<pvmmu::Free>, FRAMES> = heapless::Vec::new();
    for f in frames.iter_mut() {
        let frame = mb
            .alloc_frame(limit, Direction::TopDown)
            .map_err(Failure::Memblock)?;
        let pfn = frame.pfn().as_u64();
        if held.push(frame).is_err() {
            return Err(failed("more frames than FRAMES"));
        }
        *f = FrameAt {
            mfn: mfn(pfn)?,
            va: win_va + pfn * 4096,
        };
        // SAFETY: the boot window maps the frame writable at `va`, and it is ours.
        unsafe { core::ptr::write_bytes(f.va as *mut u8, 0, 4096) };
    }
    for i in SCRATCH..SCRATCH + SCRATCH_SLOTS {
        // SAFETY: the live root is mapped read-only at `root_va`.
        let e = unsafe { core::ptr::read_volatile((x.root_va + 8 * u64::from(i)) as *const u64) };
        if e != 0 {
            return Err(failed("the live root's scratch slots are in use"));
        }
    }
    let setup = Setup {
        frames,
        root_mfn: mfn(x.root_pfn)?,
        root_va: x.root_va,
    };
    defmt::info!(
        "conformance: {=u32} sequences; frames {=[?]}, root mfn {=u64:#x}",
        corpus.len(),
        frames.map(|f| f.mfn),
        setup.root_mfn
    );
    let guest = Real(x.hv);
    // SAFETY: the frames are ours (held in `held`, never given back), the scratch slots are
    // empty (checked) and nothing else uses them; the live root is the boot root, pinned.
    let mut rep = unsafe { Replayer::new(&guest, setup) };
    let mut out = [0u8; 2 * MAX_OPS];
    let mut ops_total = 0u32;
    for (n, seq) in corpus.sequences().enumerate() {
        let seq = seq.map_err(|_| failed("corpus truncated"))?;
        let ops = seq.len() / 8;
        if ops > MAX_OPS {
            return Err(failed("sequence too long"));
        }
        let done = rep.sequence(seq, &mut out);
        ops_total += done as u32;
        defmt::info!(
            "conformance: seq {=u32} ops {=u32} {=[u8]}",
            n as u32,
            done as u32,
            &out[..2 * done]
        );
        if rep.current_root() != setup.root_mfn {
            return Err(failed("a sequence did not end on the live root"));
        }
    }
    defmt::info!(
        "RESULT conformance sequences={=u32} ops={=u32}",
        corpus.len(),
        ops_total
    );
    p.console_write("conformance: replayed\n");
    Ok(())
}
