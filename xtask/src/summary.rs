//! The short block `xtask boot` ends a `direct_map` run with: the guest's figures in words,
//! the hypercalls per phase under Xen, and the host verifier's verdict on them.

use std::fmt::Write;

use crate::boot::{Board, BootResult, Verdict};
use crate::checks;
use crate::figures::Figures;
use crate::verify::Report;

/// The block's verdict: whether the host agrees with a passing guest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostVerdict {
    /// The host's walk found every figure the guest printed (and, under Xen, the hypercall
    /// budgets kept).
    Agrees(Report),
    /// The host found something wrong: what.
    Disagrees(String),
    /// No walk: the board gives the host no view of the guest's tables (a domU), or the run
    /// did not get to the exit gate.
    NotWalked(String),
}

/// The summary of a `direct_map` run, or `None` for a run of another example (no figures line).
pub fn direct_map(run: &BootResult) -> Option<(String, HostVerdict)> {
    let f = Figures::find(&run.defmt_lines).ok()?;
    let host = host_verdict(run, &f);
    Some((render(run, &f, &host), host))
}

fn host_verdict(run: &BootResult, f: &Figures) -> HostVerdict {
    let report = match checks::host_report(run.board, run.mem.mib(), run) {
        Ok(r) => r,
        Err(e) if run.capture.as_ref().is_none_or(|c| c.is_err()) => {
            return HostVerdict::NotWalked(e)
        }
        Err(e) => return HostVerdict::Disagrees(e),
    };
    if let Err(e) = checks::direct_map_figures(f, &report) {
        return HostVerdict::Disagrees(e);
    }
    if run.board.is_xen() {
        if let Err(e) = crate::budget::check(&run.defmt_lines, &report) {
            return HostVerdict::Disagrees(e);
        }
    }
    HostVerdict::Agrees(report)
}

/// `n` bytes in the largest binary unit that keeps one decimal.
fn bytes(n: u64) -> String {
    let units = [(1u64 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (size, unit) in units {
        if n >= size {
            return format!("{:.1} {unit}", n as f64 / size as f64);
        }
    }
    format!("{n} bytes")
}

/// The hypercall counters the Xen backend logs: `(phase, hypercalls, entries)`, in order.
pub fn hypercall_phases(lines: &[String]) -> Vec<(String, u64, u64)> {
    lines
        .iter()
        .filter_map(|l| {
            let rest = l.split_once("xen-pv hypercalls, ")?.1;
            let (phase, rest) = rest.split_once(": ")?;
            let (n, rest) = rest.split_once(" carrying ")?;
            let e = rest.split_whitespace().next()?;
            Some((phase.to_string(), n.parse().ok()?, e.parse().ok()?))
        })
        .collect()
}

fn render(run: &BootResult, f: &Figures, host: &HostVerdict) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "---- direct_map summary ({} board, {}) ----",
        run.board, run.mem
    );
    let _ = writeln!(
        s,
        "RAM mapped     {} ({} bytes) at 0xffff888000000000",
        bytes(f.ram_bytes),
        f.ram_bytes
    );
    let _ = writeln!(
        s,
        "pages          {} x 4 KiB, {} x 2 MiB, {} x 1 GiB",
        f.pages[0], f.pages[1], f.pages[2]
    );
    let _ = writeln!(
        s,
        "page tables    {} computed, {} used from pgt_buf (the tables and the root)",
        f.computed, f.tables_used
    );
    let _ = writeln!(
        s,
        "tail released  {} frames ({}), {} read back through a second mapping",
        f.tail_released,
        bytes(f.tail_released * 4096),
        f.cross_checked
    );
    let phases = hypercall_phases(&run.defmt_lines);
    if run.board.is_xen() {
        let _ = writeln!(s, "hypercalls     per phase (entries carried):");
        for (phase, n, e) in &phases {
            let _ = writeln!(s, "  {:<26}{n:>6} ({e})", format!("{phase}:"));
        }
        if phases.is_empty() {
            let _ = writeln!(s, "  (the backend logged no counters)");
        }
    } else {
        let _ = writeln!(s, "hypercalls     none (bare metal)");
    }
    let guest = match run.verdict {
        Verdict::Pass => "PASS",
        _ => "FAIL",
    };
    let _ = writeln!(s, "guest          {guest}");
    let _ = match host {
        HostVerdict::Agrees(r) => writeln!(
            s,
            "host verifier  AGREES: walked {} tables from CR3 {:#x}, {} leaves, every figure \
             above matches{}",
            r.tables_walked,
            r.root,
            r.total_leaves(),
            if run.board == Board::Xen {
                ", hypercall budgets kept"
            } else {
                ""
            }
        ),
        HostVerdict::Disagrees(e) => writeln!(s, "host verifier  DISAGREES: {e}"),
        HostVerdict::NotWalked(e) => writeln!(s, "host verifier  not run: {e}"),
    };
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_and_sizes() {
        let lines = [
            "INFO xen-pv hypercalls, make read-only: 2 carrying 196 entries (1 mmu_update)",
            "INFO something else",
            "INFO xen-pv hypercalls, total: 267 carrying 67655 entries",
        ]
        .map(String::from);
        assert_eq!(
            hypercall_phases(&lines),
            [
                ("make read-only".to_string(), 2, 196),
                ("total".to_string(), 267, 67655)
            ]
        );
        assert_eq!(bytes(1073209344), "1023.5 MiB");
        assert_eq!(bytes(64 * 4096), "256.0 KiB");
        assert_eq!(bytes(6 << 30), "6.0 GiB");
        assert_eq!(bytes(12), "12 bytes");
    }
}
