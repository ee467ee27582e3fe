//! Hypercall counters, per phase of the page-table lifecycle.

pub use hal_core::Phase;

/// What one phase cost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PhaseCount {
    /// Hypercalls made (a multicall counts once).
    pub hypercalls: u64,
    /// Entries they carried: `mmu_update` requests, `mmuext_op` commands and
    /// `update_va_mapping`s (inside multicalls too).
    pub entries: u64,
    /// Of the hypercalls: `mmu_update`.
    pub mmu_update: u64,
    /// Of the hypercalls: `mmuext_op`.
    pub mmuext_op: u64,
    /// Of the hypercalls: `update_va_mapping`.
    pub update_va_mapping: u64,
    /// Of the hypercalls: `multicall`.
    pub multicall: u64,
}

impl PhaseCount {
    fn add(&mut self, other: &PhaseCount) {
        self.hypercalls += other.hypercalls;
        self.entries += other.entries;
        self.mmu_update += other.mmu_update;
        self.mmuext_op += other.mmuext_op;
        self.update_va_mapping += other.update_va_mapping;
        self.multicall += other.multicall;
    }
}

/// Hypercalls per phase, since the backend was made (or [`reset`](Counters::reset)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Counters {
    /// Indexed like [`Phase::ALL`].
    pub phases: [PhaseCount; 6],
}

/// The kind of hypercall, for counting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    MmuUpdate,
    MmuextOp,
    UpdateVaMapping,
    Multicall,
}

impl Counters {
    /// What `phase` cost.
    pub fn get(&self, phase: Phase) -> &PhaseCount {
        &self.phases[phase.index()]
    }

    /// All phases together.
    pub fn total(&self) -> PhaseCount {
        let mut t = PhaseCount::default();
        for p in &self.phases {
            t.add(p);
        }
        t
    }

    /// Zeroes every phase.
    pub fn reset(&mut self) {
        *self = Self::default();
    }

    pub(crate) fn record(&mut self, phase: Phase, kind: Kind, entries: u64) {
        let c = &mut self.phases[phase.index()];
        c.hypercalls += 1;
        c.entries += entries;
        match kind {
            Kind::MmuUpdate => c.mmu_update += 1,
            Kind::MmuextOp => c.mmuext_op += 1,
            Kind::UpdateVaMapping => c.update_va_mapping += 1,
            Kind::Multicall => c.multicall += 1,
        }
    }
}
