//! [`Rules`]: the model's rules of Xen, on their own, for a test backend that keeps its own
//! memory and asks Xen's verdict on each operation. hal-core's simulated backend does: its
//! tests compile this file, `machine.rs` and `errno.rs` in from here
//! (`hal-core/tests/common/xen_model.rs`), so these three use nothing else of the crate.
//!
//! The same [`Machine`] as a [`Model`](super::Model)'s domain, with frames kept sparsely (any
//! frame numbers a test's firmware map gives, pfn = mfn - `mfn_base`) and no domain built
//! around them: no initial mapping, no `start_info`, no P2M list. The caller names the
//! frames, writes the boot tables and installs the root, then hands each page-table update,
//! pin, unpin and root change to it as the backend would hand them to Xen.

use std::string::String;

use super::machine::{FrameState, Machine, PageType};

/// Xen's page-table rules over frames the caller names (see the module's documentation).
#[derive(Clone, Debug)]
pub struct Rules {
    m: Machine,
}

impl Rules {
    /// No frames yet; pfn `n` is mfn `mfn_base + n`. `cache_attrs`: whether L1 entries may
    /// carry cache attributes (dom0's right).
    pub fn new(mfn_base: u64, cache_attrs: bool) -> Self {
        Self {
            m: Machine::sparse(mfn_base, cache_attrs),
        }
    }

    /// Makes the machine frames `first..first + count` the domain's.
    pub fn add_frames(&mut self, first: u64, count: u64) {
        self.m.add_frames(first..first.saturating_add(count));
    }

    /// One `mmu_update` request (`MMU_NORMAL_PT_UPDATE`) for entry `idx` of frame `mfn`: a
    /// checked update of a validated table, a plain write to a frame that can be typed
    /// writable. `Err(errno)` (positive) as Xen would refuse it; nothing changed then.
    pub fn update(&mut self, mfn: u64, idx: u16, val: u64) -> Result<(), i64> {
        self.m
            .update((mfn << 12) | (u64::from(idx & 511) << 3), val)
    }

    /// `MMUEXT_PIN_L<level>_TABLE` of `mfn` (`level` 1..=4).
    pub fn pin(&mut self, mfn: u64, level: u8) -> Result<(), i64> {
        self.m.pin(mfn, PageType::table(level))
    }

    /// `MMUEXT_UNPIN_TABLE` of `mfn`.
    pub fn unpin(&mut self, mfn: u64) -> Result<(), i64> {
        self.m.unpin(mfn)
    }

    /// `MMUEXT_NEW_BASEPTR`: `mfn` becomes the root (validated as an L4).
    pub fn new_baseptr(&mut self, mfn: u64) -> Result<(), i64> {
        self.m.new_baseptr(mfn)
    }

    /// Installs `mfn`, written already with plain updates, as the root the domain starts on,
    /// as Xen's domain builder does: validated as an L4, pinned, in CR3.
    pub fn boot_root(&mut self, mfn: u64) -> Result<(), i64> {
        self.m.get_type(mfn, PageType::L4)?;
        self.m.cr3 = mfn;
        self.pin(mfn, 4)
    }

    /// The machine frame of the current root.
    pub fn root(&self) -> u64 {
        self.m.cr3
    }

    /// What Xen's bookkeeping says of frame `mfn` (`None`: not the domain's).
    pub fn frame(&self, mfn: u64) -> Option<FrameState> {
        self.m.frame(mfn).map(|f| FrameState {
            mfn,
            ty: f.ty,
            count: f.count,
            pinned: f.pinned,
        })
    }

    /// Entry `idx` of frame `mfn` as Xen stored it (L1 entries adjusted as Xen adjusts them).
    pub fn entry(&self, mfn: u64, idx: u16) -> u64 {
        self.m.entry(mfn, usize::from(idx & 511))
    }

    /// Recounts every type reference (see [`Model::audit`](super::Model::audit)).
    pub fn audit(&self) -> Result<(), String> {
        self.m.audit()
    }
}
