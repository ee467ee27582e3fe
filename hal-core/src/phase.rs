//! The phases of the page-table lifecycle, for backends that count their work per phase
//! (Xen PV counts hypercalls). [`direct_map::map_ram`](crate::direct_map::map_ram) enters
//! each phase through [`RawMmu::set_phase`](crate::RawMmu::set_phase); a backend that counts
//! nothing ignores it. What a backend counts beyond these phases (Xen PV's per-page release,
//! for comparison) is its own business, reported through [`Report`](crate::Report).

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
}

impl Phase {
    /// Every phase, in index order.
    pub const ALL: [Phase; 5] = [
        Phase::Other,
        Phase::MakeReadOnly,
        Phase::FillInstall,
        Phase::Switch,
        Phase::Release,
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
        }
    }
}
