//! `xtask conformance`: the host model of Xen's rules against real Xen.
//!
//! The host generates a corpus of raw operation sequences (`backend_xen_pv::conformance::gen`),
//! computes the model's answer to each operation, boots the `conformance` example as Xen's dom0
//! with the corpus as its initial module, reads the guest's result line per sequence from the
//! decoded defmt lines, and compares operation by operation: the return value (accepted, or
//! Xen's errno) and the success count or store outcome.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{bail, Context, Result};
use backend_xen_pv::conformance::gen;
use backend_xen_pv::conformance::{Code, Op};

use crate::boot::{self, Board, BootOptions, BootResult, Verdict};
use crate::mem_size::MemSize;

/// dom0's memory for the replay.
pub const DOM0_MIB: u64 = 64;

/// What a comparison found.
#[derive(Debug, Default)]
pub struct Report {
    /// Sequences in the corpus.
    pub sequences: usize,
    /// Sequences whose every operation agreed.
    pub agree: usize,
    /// Sequences with at least one disagreement (or no result from the guest).
    pub disagree: usize,
    /// Operations compared.
    pub ops: usize,
    /// One line per disagreeing sequence (the first few in full).
    pub details: Vec<String>,
    /// What Xen answered, over every operation compared: (kind, count), e.g. `accepted`,
    /// `-22`, `store done`, `store read-only`.
    pub outcomes: std::collections::BTreeMap<String, usize>,
}

impl Report {
    /// `conformance: N sequences, A agree, D disagree`.
    pub fn summary(&self) -> String {
        format!(
            "conformance: {} sequences, {} agree, {} disagree",
            self.sequences, self.agree, self.disagree
        )
    }
}

/// The results the guest reported, per sequence: `conformance: seq N ops K [a, b, ...]`.
pub fn guest_results(lines: &[String], n: usize) -> Result<Vec<Option<Vec<u8>>>> {
    let mut out = vec![None; n];
    for line in lines {
        let Some(rest) = line.split("conformance: seq ").nth(1) else {
            continue;
        };
        let (num, rest) = rest
            .split_once(" ops ")
            .context("a result line without ops")?;
        let seq: usize = num.trim().parse().context("sequence number")?;
        let (_, list) = rest
            .split_once('[')
            .context("a result line without bytes")?;
        let list = list.split(']').next().unwrap_or("");
        let bytes = list
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<u8>())
            .collect::<Result<Vec<u8>, _>>()
            .with_context(|| format!("result bytes of sequence {seq}"))?;
        if seq >= n {
            bail!("the guest reported sequence {seq} of {n}");
        }
        out[seq] = Some(bytes);
    }
    Ok(out)
}

fn describe(op: &Op, exp: &[u8], got: Option<&[u8]>) -> String {
    let show = |r: &[u8]| format!("ret {} extra {}", r[0] as i8, r[1]);
    format!(
        "{op:?}: model {}, xen {}",
        show(exp),
        got.map_or("nothing".into(), show)
    )
}

/// Compares the model's answers with the guest's.
pub fn compare(seqs: &[Vec<Op>], expected: &[Vec<u8>], got: &[Option<Vec<u8>>]) -> Report {
    let mut r = Report {
        sequences: seqs.len(),
        ..Report::default()
    };
    for (i, ((s, exp), got)) in seqs.iter().zip(expected).zip(got).enumerate() {
        r.ops += s.len();
        for (op, res) in s.iter().zip(got.iter().flat_map(|g| g.chunks(2))) {
            let kind = match (op.code, res[0] as i8, res[1]) {
                (Code::Store | Code::StoreVia | Code::Zero, 0, 0) => "store done".into(),
                (Code::Store | Code::StoreVia | Code::Zero, 0, 1) => "store read-only".into(),
                (Code::Store | Code::StoreVia | Code::Zero, 0, 2) => "store not-present".into(),
                (_, 0, _) => "accepted".into(),
                (_, 127, _) => "not sent (a NewRoot to tables without the kernel)".into(),
                (_, 126, _) => "not sent (malformed)".into(),
                (_, ret, _) => format!("refused {ret}"),
            };
            *r.outcomes.entry(kind).or_default() += 1;
        }
        let Some(got) = got else {
            r.disagree += 1;
            r.details
                .push(format!("sequence {i}: no result from the guest"));
            continue;
        };
        if got == exp {
            r.agree += 1;
            continue;
        }
        r.disagree += 1;
        let mut d = format!("sequence {i}:");
        for (k, op) in s.iter().enumerate() {
            let e = &exp[2 * k..2 * k + 2];
            let g = got.get(2 * k..2 * k + 2);
            let mark = if g == Some(e) { "  " } else { "!!" };
            let _ = write!(d, "\n  {mark} {k:3} {}", describe(op, e, g));
        }
        r.details.push(d);
    }
    r
}

/// A corpus's sequences, and the model's answers (2 bytes per operation) to each.
pub type Prepared = (Vec<Vec<Op>>, Vec<Vec<u8>>);

/// Writes the corpus of `sequences` from `seed` to `path`; returns it and the model's answers.
pub fn prepare(path: &Path, sequences: u32, seed: u64) -> Result<Prepared> {
    let seqs = gen::generate(seed, sequences);
    let bytes = gen::encode(&seqs);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(path, &bytes).with_context(|| format!("writing {}", path.display()))?;
    let expected = gen::expected(&seqs);
    Ok((seqs, expected))
}

/// Reads a corpus file back into its sequences; with the model's answers.
pub fn load(path: &Path) -> Result<Prepared> {
    use backend_xen_pv::conformance::corpus::OP_BYTES;
    use backend_xen_pv::conformance::Corpus;
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let corpus = Corpus::parse(&bytes).map_err(|e| anyhow::anyhow!("{}: {e:?}", path.display()))?;
    let mut seqs = Vec::new();
    for raw in corpus.sequences() {
        let raw = raw.map_err(|e| anyhow::anyhow!("{}: {e:?}", path.display()))?;
        let ops = raw
            .chunks_exact(OP_BYTES)
            .map(|c| Op::decode(c.try_into().expect("8 bytes")))
            .collect::<Option<Vec<Op>>>()
            .with_context(|| format!("{}: an unknown operation", path.display()))?;
        seqs.push(ops);
    }
    let expected = gen::expected(&seqs);
    Ok((seqs, expected))
}

/// Boots `elf` (the `conformance` example, Xen image) on the corpus at `corpus`.
pub fn boot_corpus(elf: &Path, corpus: &Path, echo: bool) -> Result<BootResult> {
    let opts = BootOptions {
        board: Some(Board::Xen),
        mem: Some(MemSize::from_mib(DOM0_MIB)),
        timeout: None,
        echo,
        guest_args: Vec::new(),
        module: Some(corpus.to_path_buf()),
        ..BootOptions::default()
    };
    boot::boot(elf, &opts)
}

/// The whole check: prepare, boot, compare. `Err` for a run that did not pass or a guest
/// that did not report every sequence is in the report as a disagreement.
pub fn run(elf: &Path, work: &Path, sequences: u32, seed: u64, echo: bool) -> Result<Report> {
    let corpus = work.join(format!("corpus-{seed}-{sequences}.bin"));
    prepare(&corpus, sequences, seed)?;
    run_corpus(elf, &corpus, echo)
}

/// As [`run`], on a corpus file made elsewhere.
pub fn run_corpus(elf: &Path, corpus: &Path, echo: bool) -> Result<Report> {
    let (seqs, expected) = load(corpus)?;
    let run = boot_corpus(elf, corpus, echo)?;
    if run.verdict != Verdict::Pass {
        let tail: Vec<&String> = run.defmt_lines.iter().rev().take(10).collect();
        bail!(
            "the conformance guest did not pass: {} (last defmt lines: {tail:?})",
            run.summary()
        );
    }
    let got = guest_results(&run.defmt_lines, seqs.len())?;
    Ok(compare(&seqs, &expected, &got))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_lines_parse_and_disagreements_show() {
        let lines = vec![
            "INFO conformance: seq 1 ops 2 [0, 0, 234, 1]".to_string(),
            "INFO conformance: seq 0 ops 1 [0, 0]".to_string(),
        ];
        let got = guest_results(&lines, 3).unwrap();
        assert_eq!(got[0].as_deref(), Some(&[0u8, 0][..]));
        assert_eq!(got[1].as_deref(), Some(&[0u8, 0, 234, 1][..]));
        assert_eq!(got[2], None);
        let seqs = gen::generate(3, 3);
        let seqs: Vec<Vec<Op>> = vec![
            seqs[0][..1].to_vec(),
            seqs[1][..2].to_vec(),
            seqs[2].clone(),
        ];
        let exp = vec![vec![0, 0], vec![0, 0, 234, 0], vec![0; 2 * seqs[2].len()]];
        let r = compare(&seqs, &exp, &got);
        assert_eq!((r.sequences, r.agree, r.disagree), (3, 1, 2));
        assert!(r.details[0].contains("!!"));
    }
}
