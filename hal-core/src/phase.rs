//! The phases of the page-table lifecycle, for backends that count their work per phase
//! (Xen PV counts hypercalls) and for the examples that print those counts.

/// A phase of the page-table lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Phase {
    /// Anything else (start-up, verification).
    Other,
    /// `PgtBuf::new`: making the buffer page-table-ready (read-only).
    MakeReadOnly,
    /// Filling new tables and installing them.
    FillInstall,
    /// Pinning the new root and switching to it.
    Switch,
    /// `PgtBuf::finish`: releasing the unused tail, batched.
    Release,
    /// The same kind of release done the 2011 seed's way (one hypercall per page), measured
    /// for comparison.
    SeedRelease,
}

impl Phase {
    /// Every phase, in index order.
    pub const ALL: [Phase; 6] = [
        Phase::Other,
        Phase::MakeReadOnly,
        Phase::FillInstall,
        Phase::Switch,
        Phase::Release,
        Phase::SeedRelease,
    ];

    /// The phase's position in [`Phase::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// A short name for reports.
    pub const fn name(self) -> &'static str {
        match self {
            Phase::Other => "other",
            Phase::MakeReadOnly => "make read-only",
            Phase::FillInstall => "fill and install",
            Phase::Switch => "pin and switch",
            Phase::Release => "release (batched)",
            Phase::SeedRelease => "release (per page, seed)",
        }
    }
}
