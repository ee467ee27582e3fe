//! The hypercall budgets of a `direct_map` run under Xen, checked on the counters the guest
//! logs (`xen-pv hypercalls, PHASE: N carrying E entries (...)`): what real Xen was asked.

/// One phase's figures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhaseCount {
    /// Hypercalls made.
    pub hypercalls: u64,
    /// Entries they carried.
    pub entries: u64,
}

/// The counters of `phase` in the decoded defmt lines.
pub fn phase(lines: &[String], phase: &str) -> Option<PhaseCount> {
    let key = format!("xen-pv hypercalls, {phase}: ");
    lines.iter().find_map(|l| {
        let rest = l.split_once(&key)?.1;
        let (n, rest) = rest.split_once(" carrying ")?;
        let e = rest.split_whitespace().next()?;
        Some(PhaseCount {
            hypercalls: n.parse().ok()?,
            entries: e.parse().ok()?,
        })
    })
}

/// Releasing a tail of `tail` frames costs at most ceil(K/512)+1 hypercalls, K being the
/// entries (mappings) released; the seed's loop costs one per mapping; filling and installing
/// costs at most one hypercall per 512 entries written (plus one per table batch boundary).
pub fn check(lines: &[String], tail: u64) -> Result<String, String> {
    let get = |p: &str| phase(lines, p).ok_or(format!("no `xen-pv hypercalls, {p}` line"));
    let batched = get("release (batched)")?;
    let seed = get("release (per page, seed)")?;
    let fill = get("fill and install")?;
    if batched.entries < tail {
        return Err(format!(
            "batched release carried {} entries for {tail} frames",
            batched.entries
        ));
    }
    if batched.hypercalls > batched.entries.div_ceil(512) + 1 {
        return Err(format!(
            "batched release: {batched:?} exceeds ceil(K/512)+1"
        ));
    }
    if seed.hypercalls != seed.entries || seed.entries != batched.entries {
        return Err(format!(
            "per-page release {seed:?} is not one hypercall per mapping of {batched:?}"
        ));
    }
    if fill.hypercalls > fill.entries.div_ceil(512) + 1 {
        return Err(format!(
            "fill and install: {fill:?} exceeds one hypercall per 512 entries"
        ));
    }
    Ok(format!(
        "release {} vs seed {} hypercalls; fill {} for {} entries",
        batched.hypercalls, seed.hypercalls, fill.hypercalls, fill.entries
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(batched: &str) -> Vec<String> {
        [
            "INFO xen-pv hypercalls, fill and install: 35 carrying 17920 entries (35 mmu_update)",
            batched,
            "INFO xen-pv hypercalls, release (per page, seed): 128 carrying 128 entries (...)",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    #[test]
    fn accepts_the_measured_run_and_refuses_the_seeds_cost() {
        let ok = lines(
            "INFO xen-pv hypercalls, release (batched): 1 carrying 128 entries (1 mmu_update)",
        );
        assert!(check(&ok, 64).is_ok());
        let seedlike =
            lines("INFO xen-pv hypercalls, release (batched): 128 carrying 128 entries (...)");
        assert!(check(&seedlike, 64).is_err());
        assert!(check(&ok[..1], 64).is_err());
    }
}
