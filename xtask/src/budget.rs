//! The hypercall budgets of a `direct_map` run under Xen, checked on the counters the guest
//! logs (`xen-pv hypercalls, PHASE: N carrying E entries (...)`), against the size of the work
//! as the host's walk measured it. The counters are backend-xen-pv's `Counted` wrapper's, the
//! one door every hypercall of the guest goes through, so no call escapes them.

use crate::verify::Report;

/// One phase's figures, as backend-xen-pv's counting wrapper (`Counted`, the one door to the
/// hypercalls) saw them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhaseCount {
    /// Hypercalls made.
    pub hypercalls: u64,
    /// Entries they carried.
    pub entries: u64,
    /// Of the hypercalls: `mmu_update`, `mmuext_op`, `update_va_mapping`, `multicall`.
    pub kinds: Kinds,
}

/// Hypercalls per kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Kinds {
    /// `mmu_update`s.
    pub mmu_update: u64,
    /// `mmuext_op`s.
    pub mmuext_op: u64,
    /// `update_va_mapping`s.
    pub update_va_mapping: u64,
    /// `multicall`s.
    pub multicall: u64,
}

/// The counters of `phase` in the decoded defmt lines:
/// `xen-pv hypercalls, PHASE: N carrying E entries (A mmu_update, B mmuext_op, C
/// update_va_mapping, D multicall)`.
pub fn phase(lines: &[String], phase: &str) -> Option<PhaseCount> {
    let key = format!("xen-pv hypercalls, {phase}: ");
    lines.iter().find_map(|l| {
        let rest = l.split_once(&key)?.1;
        let (n, rest) = rest.split_once(" carrying ")?;
        let (e, rest) = rest.split_once(" entries (")?;
        let kinds = rest.strip_suffix(')')?;
        let mut k = kinds.split(", ").map(|part| {
            let (count, name) = part.split_once(' ')?;
            Some((count.parse::<u64>().ok()?, name))
        });
        let mut next = |name: &str| match k.next()?? {
            (count, n) if n == name => Some(count),
            _ => None,
        };
        let kinds = Kinds {
            mmu_update: next("mmu_update")?,
            mmuext_op: next("mmuext_op")?,
            update_va_mapping: next("update_va_mapping")?,
            multicall: next("multicall")?,
        };
        Some(PhaseCount {
            hypercalls: n.parse().ok()?,
            entries: e.parse().ok()?,
            kinds,
        })
    })
}

/// What releasing `mk` mappings costs when nothing else is queued (the queue is submitted
/// first; a phase that carried exactly the tail's `mk` entries had nothing else queued, so the
/// `+ 1` of the documented bound is not available): one hypercall per 1024 entries, each a
/// multicall of two 512-entry `mmu_update` batches, except the last if it holds 512 entries or
/// fewer, which is one `mmu_update`.
pub fn release_cost(mk: u64) -> Kinds {
    let n = mk.div_ceil(1024);
    let last = mk - 1024 * n.saturating_sub(1);
    let single = u64::from(n > 0 && last <= 512);
    Kinds {
        mmu_update: single,
        multicall: n - single,
        ..Kinds::default()
    }
}

/// The backend's scratch pages (`backend_xen_pv::MAX_SCRATCH`), each put back at most once.
const SCRATCH_PAGES: u64 = 4;

/// What making `e` writable mappings read-only costs: one `mmu_update` per 512, then one
/// `mmuext_op` (the final local TLB flush) if anything changed.
pub fn protect_cost(e: u64) -> Kinds {
    Kinds {
        mmu_update: e.div_ceil(512),
        mmuext_op: u64::from(e > 0),
        ..Kinds::default()
    }
}

/// The documented budgets (backend-xen-pv's `mmu` module and `XenPv::release`), checked
/// exactly:
///
/// - the batched release carries exactly the tail's mappings the host counted in the live
///   tree (`m * K`, [`Report::tail_mappings`]), in exactly the hypercalls of
///   [`release_cost`]: `ceil(m * K / 1024)`, the documented `ceil(m * K / 1024) + 1` less the
///   queue's `+ 1`, which only a release that carries entries of its own caller can use;
/// - making `pgt_buf` read-only carries exactly the mappings of its frames outside the direct
///   map (for dom0, the host's count, [`Report::pgt_buf_boot_mappings`]) plus the TLB flush,
///   in exactly the hypercalls of [`protect_cost`];
/// - the seed's loop costs one `update_va_mapping` per mapping;
/// - filling and installing (the backend's default `StoreThenProtect`: tables stored, not
///   queued) makes one `update_va_mapping` per table no mapping outside the direct map reaches
///   ([`Report::tables_outside_boot_mapping`]: each one stored through a scratch page pointed
///   at it) plus at most one per scratch page (one per level, 4) to point it back, none if
///   there is no such table; and at most one `mmu_update` per 512 entries it queued, plus
///   one; nothing else.
pub fn check(lines: &[String], host: &Report) -> Result<String, String> {
    let get = |p: &str| phase(lines, p).ok_or(format!("no `xen-pv hypercalls, {p}` line"));
    let batched = get("release (batched)")?;
    let seed = get("release (per page, seed)")?;
    // With every table stored, fill and install may make no hypercall at all (no line).
    let fill = phase(lines, "fill and install").unwrap_or_default();
    // A phase that made no hypercall has no line.
    let protect = phase(lines, "make read-only").unwrap_or_default();
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
    let budget = mk.div_ceil(1024);
    let want = release_cost(mk);
    if batched.hypercalls != budget || batched.kinds != want {
        return Err(format!(
            "batched release: {} hypercalls {:?}, the documented cost of m*K = {mk} mappings \
             with nothing else queued is ceil(m*K/1024) = {budget}: {want:?}",
            batched.hypercalls, batched.kinds
        ));
    }
    let want = Kinds {
        update_va_mapping: mk,
        ..Kinds::default()
    };
    if seed.hypercalls != mk || seed.entries != mk || seed.kinds != want {
        return Err(format!(
            "per-page release {seed:?} is not one update_va_mapping per mapping of the {mk}"
        ));
    }
    let e = protect.entries.saturating_sub(protect.kinds.mmuext_op);
    if host.pgt_buf_boot_mappings != e {
        return Err(format!(
            "make read-only changed {e} entries, pgt_buf's frames have {} mappings outside \
             the direct map (host walk)",
            host.pgt_buf_boot_mappings
        ));
    }
    let want = protect_cost(e);
    if protect.kinds != want || protect.hypercalls != want.mmu_update + want.mmuext_op {
        return Err(format!(
            "make read-only: {protect:?}, the cost of {e} entries is {want:?} (one \
             mmu_update per 512, then the TLB flush)"
        ));
    }
    let out = host.tables_outside_boot_mapping;
    let uvm = fill.kinds.update_va_mapping;
    let scratch_ok = if out == 0 {
        uvm == 0
    } else {
        (out..=out + SCRATCH_PAGES).contains(&uvm)
    };
    if !scratch_ok {
        return Err(format!(
            "fill and install: {uvm} update_va_mapping, the host found {out} tables outside \
             the initial mapping (one each, plus at most {SCRATCH_PAGES} to put the scratch \
             pages back, none without such tables): {fill:?}"
        ));
    }
    let queued = fill.entries.saturating_sub(uvm);
    if fill.kinds.mmu_update > queued.div_ceil(512) + 1
        || fill.hypercalls != fill.kinds.mmu_update + uvm
    {
        return Err(format!(
            "fill and install: {fill:?} exceeds one mmu_update per 512 queued entries (+1) and \
             the scratch pages' update_va_mappings"
        ));
    }
    Ok(format!(
        "make read-only {} hypercalls for {e} entries (+ flush); release {} hypercalls \
         (exactly ceil(m*K/1024) = {budget} for m*K = {mk}) vs seed {}; fill {} for {} entries \
         ({uvm} scratch remaps for {out} tables outside the initial mapping)",
        protect.hypercalls, batched.hypercalls, seed.hypercalls, fill.hypercalls, fill.entries
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILL: &str =
        "INFO xen-pv hypercalls, fill and install: 35 carrying 17920 entries (35 mmu_update, 0 mmuext_op, 0 update_va_mapping, 0 multicall)";
    const PROTECT: &str =
        "INFO xen-pv hypercalls, make read-only: 2 carrying 100 entries (1 mmu_update, 1 mmuext_op, 0 update_va_mapping, 0 multicall)";
    const SEED: &str =
        "INFO xen-pv hypercalls, release (per page, seed): 128 carrying 128 entries (0 mmu_update, 0 mmuext_op, 128 update_va_mapping, 0 multicall)";
    const RELEASE: &str =
        "INFO xen-pv hypercalls, release (batched): 1 carrying 128 entries (1 mmu_update, 0 mmuext_op, 0 update_va_mapping, 0 multicall)";

    fn lines(replace: &[(&str, &str)]) -> Vec<String> {
        [FILL, PROTECT, SEED, RELEASE]
            .iter()
            .map(|l| {
                let key = l.split(':').next().unwrap();
                replace
                    .iter()
                    .find(|(k, _)| key.ends_with(k))
                    .map_or(l.to_string(), |(_, r)| format!("{key}: {r}"))
            })
            .collect()
    }

    fn host(tail_frames: u64, tail_mappings: u64, boot: u64) -> Report {
        Report {
            tail_frames,
            tail_mappings,
            pgt_buf_boot_mappings: boot,
            ..Report::default()
        }
    }

    #[test]
    fn parses_every_kind() {
        let p = phase(&lines(&[]), "make read-only").unwrap();
        assert_eq!(
            p,
            PhaseCount {
                hypercalls: 2,
                entries: 100,
                kinds: Kinds {
                    mmu_update: 1,
                    mmuext_op: 1,
                    ..Kinds::default()
                }
            }
        );
        let broken = ["INFO xen-pv hypercalls, other: 2 carrying 3 entries (2 mmu_update)".into()];
        assert_eq!(phase(&broken, "other"), None);
    }

    #[test]
    fn release_and_protect_costs() {
        let k = |mmu_update, multicall| Kinds {
            mmu_update,
            multicall,
            ..Kinds::default()
        };
        assert_eq!(release_cost(0), k(0, 0));
        assert_eq!(release_cost(1), k(1, 0));
        assert_eq!(release_cost(512), k(1, 0));
        assert_eq!(release_cost(513), k(0, 1));
        assert_eq!(release_cost(1024), k(0, 1));
        assert_eq!(release_cost(1025), k(1, 1));
        assert_eq!(release_cost(2048 + 600), k(0, 3));
        assert_eq!(protect_cost(0), Kinds::default());
        let p = protect_cost(513);
        assert_eq!((p.mmu_update, p.mmuext_op, p.multicall), (2, 1, 0));
    }

    #[test]
    fn accepts_the_measured_run_and_refuses_one_call_more() {
        let ok = lines(&[]);
        assert_eq!(
            check(&ok, &host(64, 128, 99)),
            check(&ok, &host(64, 128, 99))
        );
        assert!(
            check(&ok, &host(64, 128, 99)).is_ok(),
            "{:?}",
            check(&ok, &host(64, 128, 99))
        );
        // One hypercall more than ceil(128/1024) = 1, within the old `+ 1` slack.
        let two = lines(&[(
            "release (batched)",
            "2 carrying 128 entries (2 mmu_update, 0 mmuext_op, 0 update_va_mapping, 0 multicall)",
        )]);
        assert!(check(&two, &host(64, 128, 99)).is_err());
        let flush = lines(&[(
            "release (batched)",
            "2 carrying 129 entries (1 mmu_update, 1 mmuext_op, 0 update_va_mapping, 0 multicall)",
        )]);
        assert!(check(&flush, &host(64, 128, 99)).is_err());
        // The same count as a multicall: the wrong kind for 128 entries.
        let multi = lines(&[(
            "release (batched)",
            "1 carrying 128 entries (0 mmu_update, 0 mmuext_op, 0 update_va_mapping, 1 multicall)",
        )]);
        assert!(check(&multi, &host(64, 128, 99)).is_err());
        let seedlike = lines(&[("release (batched)", "128 carrying 128 entries (0 mmu_update, 0 mmuext_op, 128 update_va_mapping, 0 multicall)")]);
        assert!(check(&seedlike, &host(64, 128, 99)).is_err());
        // The counters miss mappings the host found.
        assert!(check(&ok, &host(64, 192, 99)).is_err());
        assert!(check(&ok, &host(0, 0, 99)).is_err());
        assert!(check(&ok[..1], &host(64, 128, 99)).is_err());
    }

    #[test]
    fn fill_makes_one_scratch_remap_per_table_outside_the_initial_mapping() {
        let outside = |n: u64| Report {
            tables_outside_boot_mapping: n,
            ..host(64, 128, 99)
        };
        let fill = |s: &str| lines(&[("fill and install", s)]);
        // Every table stored: no hypercall, no line.
        let none: Vec<String> = lines(&[])
            .into_iter()
            .filter(|l| !l.contains("fill and install"))
            .collect();
        assert!(check(&none, &outside(0)).is_ok());
        assert!(
            check(&none, &outside(3)).is_err(),
            "3 tables stored through nothing"
        );
        // 1000 tables outside, one remap each, one put back.
        let ok = fill("1001 carrying 1001 entries (0 mmu_update, 0 mmuext_op, 1001 update_va_mapping, 0 multicall)");
        assert!(
            check(&ok, &outside(1000)).is_ok(),
            "{:?}",
            check(&ok, &outside(1000))
        );
        assert!(
            check(&ok, &outside(1002)).is_err(),
            "two tables not remapped"
        );
        assert!(
            check(&ok, &outside(0)).is_err(),
            "remaps without tables outside"
        );
        let five = fill("1005 carrying 1005 entries (0 mmu_update, 0 mmuext_op, 1005 update_va_mapping, 0 multicall)");
        assert!(
            check(&five, &outside(1000)).is_err(),
            "more put back than pages"
        );
        // Queued entries besides: at most one mmu_update per 512, plus one.
        let q = fill("1003 carrying 2001 entries (2 mmu_update, 0 mmuext_op, 1001 update_va_mapping, 0 multicall)");
        assert!(check(&q, &outside(1000)).is_ok());
        let q = fill("1005 carrying 2001 entries (4 mmu_update, 0 mmuext_op, 1001 update_va_mapping, 0 multicall)");
        assert!(check(&q, &outside(1000)).is_err());
    }

    #[test]
    fn protect_without_its_flush_or_with_other_entries_is_refused() {
        let no_flush = lines(&[(
            "make read-only",
            "1 carrying 99 entries (1 mmu_update, 0 mmuext_op, 0 update_va_mapping, 0 multicall)",
        )]);
        assert!(check(&no_flush, &host(64, 128, 99)).is_err());
        // The host counted other mappings than the phase changed.
        assert!(check(&lines(&[]), &host(64, 128, 98)).is_err());
        assert!(check(&lines(&[]), &host(64, 128, 100)).is_err());
        // Nothing to change: no hypercall at all.
        let none = lines(&[(
            "make read-only",
            "0 carrying 0 entries (0 mmu_update, 0 mmuext_op, 0 update_va_mapping, 0 multicall)",
        )]);
        assert!(check(&none, &host(64, 128, 0)).is_ok());
        let flush_only = lines(&[(
            "make read-only",
            "1 carrying 1 entries (0 mmu_update, 1 mmuext_op, 0 update_va_mapping, 0 multicall)",
        )]);
        assert!(check(&flush_only, &host(64, 128, 0)).is_err());
    }
}
