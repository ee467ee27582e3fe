//! The hypercall budgets of a `direct_map` run under Xen, checked on the counters the guest
//! logs (`xen-pv hypercalls, PHASE: N carrying E entries (...)`), against the size of the work
//! as the host's walk measured it.

use crate::verify::Report;

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

/// The documented budgets (backend-xen-pv's `mmu` module and `XenPv::release`): releasing
/// `K` frames mapped `m` times each costs at most `ceil(m * K / 1024) + 1` hypercalls (the
/// queue, then multicalls of two 512-entry batches). `m * K` is the host's count of the tail's
/// mappings in the live tree ([`Report::tail_mappings`]), and the backend's counters must
/// carry exactly that many entries. The seed's loop costs one hypercall per mapping; filling
/// and installing at most one per 512 entries written, plus one.
pub fn check(lines: &[String], host: &Report) -> Result<String, String> {
    let get = |p: &str| phase(lines, p).ok_or(format!("no `xen-pv hypercalls, {p}` line"));
    let batched = get("release (batched)")?;
    let seed = get("release (per page, seed)")?;
    let fill = get("fill and install")?;
    let mk = host.tail_mappings;
    if host.tail_frames == 0 || mk < host.tail_frames {
        return Err(format!(
            "the host found {mk} mappings of {} tail frames",
            host.tail_frames
        ));
    }
    if batched.entries != mk {
        return Err(format!(
            "batched release carried {} entries, the tail has {mk} mappings (host walk)",
            batched.entries
        ));
    }
    let budget = mk.div_ceil(1024) + 1;
    if batched.hypercalls > budget {
        return Err(format!(
            "batched release: {} hypercalls exceed ceil(m*K/1024)+1 = {budget} (m*K = {mk})",
            batched.hypercalls
        ));
    }
    if seed.hypercalls != mk || seed.entries != mk {
        return Err(format!(
            "per-page release {seed:?} is not one hypercall per mapping of the {mk}"
        ));
    }
    if fill.hypercalls > fill.entries.div_ceil(512) + 1 {
        return Err(format!(
            "fill and install: {fill:?} exceeds one hypercall per 512 entries"
        ));
    }
    Ok(format!(
        "release {} hypercalls (budget {budget} for m*K = {mk}) vs seed {}; fill {} for {} \
         entries",
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

    fn host(tail_frames: u64, tail_mappings: u64) -> Report {
        Report {
            tail_frames,
            tail_mappings,
            ..Report::default()
        }
    }

    #[test]
    fn accepts_the_measured_run_and_refuses_the_seeds_cost() {
        let ok = lines(
            "INFO xen-pv hypercalls, release (batched): 1 carrying 128 entries (1 mmu_update)",
        );
        assert!(check(&ok, &host(64, 128)).is_ok());
        let two = lines(
            "INFO xen-pv hypercalls, release (batched): 2 carrying 128 entries (1 mmu_update)",
        );
        assert!(check(&two, &host(64, 128)).is_ok());
        // One hypercall over ceil(128/1024)+1 = 2.
        let three = lines(
            "INFO xen-pv hypercalls, release (batched): 3 carrying 128 entries (1 mmu_update)",
        );
        assert!(check(&three, &host(64, 128)).is_err());
        let seedlike =
            lines("INFO xen-pv hypercalls, release (batched): 128 carrying 128 entries (...)");
        assert!(check(&seedlike, &host(64, 128)).is_err());
        // The counters miss mappings the host found.
        assert!(check(&ok, &host(64, 192)).is_err());
        assert!(check(&ok, &host(0, 0)).is_err());
        assert!(check(&ok[..1], &host(64, 128)).is_err());
    }
}
