//! Hypercall counters, per phase of the page-table lifecycle, and apart from the phases, the
//! releases made one page at a time ([`ReleaseStrategy::PerPage`](super::ReleaseStrategy),
//! the seed's way, for comparison). They are counted by
//! [`Counted`](crate::hypercall::Counted), the wrapper every hypercall goes through; this is
//! what it saw.

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
    /// Clock ticks spent in the phase ([`RawHypercall::clock`](crate::RawHypercall::clock):
    /// the TSC, instructions under QEMU's `-icount`; 0 on the host model), from each switch to
    /// the phase to the next switch away (a held-back protection's with the phase it was held
    /// back in).
    pub cycles: u64,
}

impl PhaseCount {
    fn add(&mut self, other: &PhaseCount) {
        self.hypercalls += other.hypercalls;
        self.entries += other.entries;
        self.mmu_update += other.mmu_update;
        self.mmuext_op += other.mmuext_op;
        self.update_va_mapping += other.update_va_mapping;
        self.multicall += other.multicall;
        self.cycles += other.cycles;
    }
}

/// Hypercalls per phase, since the backend was made (or [`reset`](Counters::reset)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Counters {
    /// Indexed like [`Phase::ALL`]: everything made with the batched release strategy.
    pub phases: [PhaseCount; Phase::ALL.len()],
    /// Releases made with [`ReleaseStrategy::PerPage`](super::ReleaseStrategy), whatever the
    /// phase: the seed's way, measured for comparison.
    pub per_page_release: PhaseCount,
    /// Hypercalls that change no page table (console, scheduler, trap table, I/O privilege,
    /// version, assists, event channels), whatever the phase; not in [`total`](Self::total).
    pub not_mmu: u64,
}

impl Counters {
    /// What `phase` cost.
    pub fn get(&self, phase: Phase) -> &PhaseCount {
        &self.phases[phase.index()]
    }

    /// What the per-page releases cost.
    pub fn per_page_release(&self) -> &PhaseCount {
        &self.per_page_release
    }

    /// All phases together, the per-page releases included (the MMU hypercalls).
    pub fn total(&self) -> PhaseCount {
        let mut t = self.per_page_release;
        for p in &self.phases {
            t.add(p);
        }
        t
    }

    /// Zeroes every count.
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}
