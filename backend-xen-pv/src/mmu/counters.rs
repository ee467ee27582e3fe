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
    /// Adds `other`, modulo 2^64 as the counters count (the fields are public: any values
    /// may come here, and a sum must not panic).
    fn add(&mut self, other: &PhaseCount) {
        self.hypercalls = self.hypercalls.wrapping_add(other.hypercalls);
        self.entries = self.entries.wrapping_add(other.entries);
        self.mmu_update = self.mmu_update.wrapping_add(other.mmu_update);
        self.mmuext_op = self.mmuext_op.wrapping_add(other.mmuext_op);
        self.update_va_mapping = self.update_va_mapping.wrapping_add(other.update_va_mapping);
        self.multicall = self.multicall.wrapping_add(other.multicall);
        self.cycles = self.cycles.wrapping_add(other.cycles);
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

    /// All phases together, the per-page releases included (the MMU hypercalls), modulo
    /// 2^64.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_total_wraps_as_the_counters_do() {
        let one = PhaseCount {
            hypercalls: 1,
            entries: 2,
            mmu_update: 3,
            mmuext_op: 4,
            update_va_mapping: 5,
            multicall: 6,
            cycles: 7,
        };
        let max = PhaseCount {
            hypercalls: u64::MAX,
            entries: u64::MAX,
            mmu_update: u64::MAX,
            mmuext_op: u64::MAX,
            update_va_mapping: u64::MAX,
            multicall: u64::MAX,
            cycles: u64::MAX,
        };
        let c = Counters {
            phases: [max; Phase::ALL.len()],
            per_page_release: one,
            not_mmu: 0,
        };
        // `n` phases at 2^64 - 1 each and `one`: `one` minus `n`, modulo 2^64.
        let n = Phase::ALL.len() as u64;
        let t = c.total();
        let want =
            |v: u64| ((u128::from(v) + u128::from(n) * u128::from(u64::MAX)) % (1 << 64)) as u64;
        assert_eq!(
            t,
            PhaseCount {
                hypercalls: want(1),
                entries: want(2),
                mmu_update: want(3),
                mmuext_op: want(4),
                update_va_mapping: want(5),
                multicall: want(6),
                cycles: want(7),
            }
        );
    }
}
