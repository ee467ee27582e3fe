//! `xtask xen-strategies`: the `strategies` example (release build) booted as dom0 under Xen
//! with QEMU's `-icount shift=0`, at each memory size, and its `RESULT strategy` lines as one
//! table: instructions per phase (guest and Xen together: under `-icount` the TSC counts
//! instructions), hypercalls, and each total's ratio to the validation floor's.
//!
//! The counts repeat exactly from run to run; the example checks every tree before it prints
//! a figure (see `pvmmu_examples::strategies`), and a run that fails yields no table.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::boot::{self, BootOptions, Verdict};
use crate::mem_size::MemSize;

/// The memory sizes measured by default.
pub const DEFAULT_SIZES: [u64; 2] = [64, 1024];

/// One `RESULT strategy` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// The strategy.
    pub name: String,
    /// Instructions: make read-only, fill (and install), pin.
    pub phases: [u64; 3],
    /// All three.
    pub total: u64,
    /// Hypercalls.
    pub hypercalls: u64,
    /// Entries they carried.
    pub entries: u64,
    /// Tables of the tree (the root included).
    pub tables: u64,
}

/// The rows of a run's decoded lines, in order. A line that names a strategy but lacks a
/// field, or whose total is not the sum of its phases, is an error.
pub fn parse(lines: &[String]) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    for line in lines {
        let Some((_, rest)) = line.split_once("RESULT strategy ") else {
            continue;
        };
        let fields: Vec<(&str, &str)> = rest
            .split_whitespace()
            .filter_map(|w| w.split_once('='))
            .collect();
        let get = |k: &str| -> Result<&str, String> {
            fields
                .iter()
                .find(|(name, _)| *name == k)
                .map(|(_, v)| *v)
                .ok_or_else(|| format!("`{line}`: no {k}="))
        };
        let num = |k: &str| -> Result<u64, String> {
            get(k)?
                .parse()
                .map_err(|_| format!("`{line}`: {k} is not a number"))
        };
        let row = Row {
            name: get("name")?.to_string(),
            phases: [num("protect")?, num("fill")?, num("pin")?],
            total: num("total")?,
            hypercalls: num("hypercalls")?,
            entries: num("entries")?,
            tables: num("tables")?,
        };
        if row.phases.iter().sum::<u64>() != row.total {
            return Err(format!("`{line}`: the phases do not add up to the total"));
        }
        rows.push(row);
    }
    if rows.is_empty() {
        return Err("no `RESULT strategy` line".into());
    }
    Ok(rows)
}

/// The table for one memory size, in Markdown.
pub fn table(mib: u64, rows: &[Row]) -> Result<String, String> {
    let floor = rows
        .iter()
        .find(|r| r.name == "floor")
        .ok_or("no floor row")?
        .total;
    let mut out = format!(
        "dom0 {mib}M ({} tables)\n\n| strategy | make read-only | fill | pin | total | / floor | hypercalls | entries |\n|---|---|---|---|---|---|---|---|\n",
        rows[0].tables
    );
    for r in rows {
        out += &format!(
            "| {} | {} | {} | {} | {} | {:.3} | {} | {} |\n",
            r.name,
            group(r.phases[0]),
            group(r.phases[1]),
            group(r.phases[2]),
            group(r.total),
            r.total as f64 / floor as f64,
            r.hypercalls,
            r.entries
        );
    }
    Ok(out)
}

/// `1234567` as `1,234,567`.
fn group(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Builds the release image with the Xen board.
pub fn build(root: &Path) -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "-p",
            "pvmmu-examples",
            "--example",
            "strategies",
            "--features",
            "xen-pv",
        ])
        .current_dir(root)
        .stdin(Stdio::null())
        .status()
        .context("starting cargo")?;
    if !status.success() {
        bail!("building the strategies example failed ({status})");
    }
    Ok(root.join("target/x86_64-unknown-linux-gnu/release/examples/strategies"))
}

/// Boots `elf` at `mib` of dom0 memory under `-icount shift=0` and returns its rows.
pub fn measure(elf: &Path, mib: u64) -> Result<Vec<Row>> {
    let opts = BootOptions {
        mem: Some(MemSize::from_mib(mib)),
        // -icount slows QEMU down: about 45 s at 64M, 160 s at 1G on a busy 2-core machine.
        timeout: Some(std::time::Duration::from_secs(120 + mib)),
        qemu_args: vec!["-icount".into(), "shift=0".into()],
        ..BootOptions::default()
    };
    let run = boot::boot(elf, &opts)?;
    if run.verdict != Verdict::Pass {
        let d = &run.defmt_lines;
        for l in &d[d.len().saturating_sub(15)..] {
            eprintln!("defmt: {l}");
        }
        bail!("strategies at {mib}M: {}", run.summary());
    }
    parse(&run.defmt_lines).map_err(anyhow::Error::msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(name: &str, p: [u64; 3], total: u64) -> String {
        format!(
            "INFO RESULT strategy name={name} protect={} fill={} pin={} total={total} hypercalls=3 entries=37 tables=35",
            p[0], p[1], p[2]
        )
    }

    #[test]
    fn rows_are_parsed_and_checked() {
        let lines = vec![
            "INFO other".to_string(),
            line("pvmmu", [1, 2, 3], 6),
            line("floor", [1, 1, 1], 3),
        ];
        let rows = parse(&lines).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].phases, [1, 2, 3]);
        let t = table(64, &rows).unwrap();
        assert!(
            t.contains("| pvmmu | 1 | 2 | 3 | 6 | 2.000 | 3 | 37 |"),
            "{t}"
        );
        // A total that is not the sum, a missing field, no rows at all: refused.
        assert!(parse(&[line("x", [1, 2, 3], 7)]).is_err());
        assert!(parse(&["RESULT strategy name=x protect=1".to_string()]).is_err());
        assert!(parse(&["INFO nothing".to_string()]).is_err());
        assert!(table(64, &rows[..1]).is_err(), "no floor to compare with");
        assert_eq!(group(62549548), "62,549,548");
        assert_eq!(group(999), "999");
    }
}

/// What each strategy's hypercalls must be for dom0's `mib`, from the tree's shape alone
/// (`n` pages: `k1` L1s, `k2` L2s, one L3, the root; `t` tables): the host's own model of
/// each strategy, independent of the guest's counting.
pub fn expected_hypercalls(mib: u64) -> (u64, Vec<(&'static str, u64)>) {
    let n = mib * 256;
    let k1 = n.div_ceil(512);
    let k2 = k1.div_ceil(512);
    let t = 2 + k2 + k1;
    let batches = t.div_ceil(512);
    (
        t,
        vec![
            // Read-only batches and a TLB flush, an mmu_update per 512 entries, the pin.
            ("pvmmu-queue", batches + 1 + t + 1),
            // Read-only batches and a TLB flush (applied at the flush), the pin.
            ("pvmmu", batches + 1 + 1),
            // 16 multicalls of 32 entries per table, a remap per table, a pin per L1, the root's.
            ("linux", 16 * t + t + k1 + 1),
            // The root remapped and pinned; every other table remapped and hooked; the leaves
            // of each L1 in one call.
            ("minios", 2 + 2 * (t - 1) + k1),
            // Each L1 remapped and pinned; the upper tables remapped; the root pinned.
            ("trap", 2 * k1 + (2 + k2) + 1),
            // As pvmmu.
            ("floor", batches + 1 + 1),
        ],
    )
}

/// The suite's check of a run at `mib` (no timing): every strategy reported, in order, with
/// the tree's table count and exactly the hypercalls [`expected_hypercalls`] says, and
/// pvmmu's entries the floor's.
pub fn check(run: &crate::boot::BootResult, mib: u64) -> Result<(), String> {
    let rows = parse(&run.defmt_lines)?;
    let (t, want) = expected_hypercalls(mib);
    let names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
    let want_names: Vec<&str> = want.iter().map(|w| w.0).collect();
    if names != want_names {
        return Err(format!("strategies {names:?}, expected {want_names:?}"));
    }
    for (r, (name, calls)) in rows.iter().zip(&want) {
        if r.tables != t {
            return Err(format!("{name}: {} tables, expected {t}", r.tables));
        }
        if r.hypercalls != *calls {
            return Err(format!(
                "{name}: {} hypercalls, expected {calls}",
                r.hypercalls
            ));
        }
    }
    let entries = |n: &str| rows.iter().find(|r| r.name == n).map(|r| r.entries);
    if entries("pvmmu") != entries("floor") {
        return Err(format!(
            "pvmmu carried {:?} entries, the floor {:?}",
            entries("pvmmu"),
            entries("floor")
        ));
    }
    if !run.defmt_lines.iter().any(|l| {
        l.contains(&format!(
            "RESULT strategies done pages={} tables={t}",
            mib * 256
        ))
    }) {
        return Err("no `RESULT strategies done` line for the whole of dom0's memory".into());
    }
    Ok(())
}

#[cfg(test)]
mod model_tests {
    use super::expected_hypercalls;

    /// The model against the counts measured on Xen 4.17 (README): 64M and 1G.
    #[test]
    fn the_model_gives_the_measured_counts() {
        let (t, w) = expected_hypercalls(64);
        assert_eq!(t, 35);
        let calls: Vec<u64> = w.iter().map(|x| x.1).collect();
        assert_eq!(calls, [38, 3, 628, 102, 68, 3]);
        let (t, w) = expected_hypercalls(1024);
        assert_eq!(t, 515);
        let calls: Vec<u64> = w.iter().map(|x| x.1).collect();
        assert_eq!(calls, [519, 4, 9268, 1542, 1028, 4]);
    }
}
