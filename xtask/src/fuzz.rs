//! The fuzz targets of `tests/fuzz` in the suite: one optimised, coverage-instrumented build
//! (libFuzzer through `libfuzzer-sys`, SanitizerCoverage by stable `-C` flags), then a short
//! run of every target: its committed corpus replayed, then a fixed number of fuzzing
//! executions from it with a fixed seed (the same inputs every run, so the suite is not
//! flaky). A crash or a failed assertion fails the target's test.
//!
//! Long runs are by hand (`tests/fuzz/README.md`).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// The fuzz crate, from the workspace root.
pub const CRATE: &str = "tests/fuzz";
/// Its target directory, from the workspace root (its own: other flags than the workspace's).
pub const TARGET_DIR: &str = "target/fuzz";
const TRIPLE: &str = "x86_64-unknown-linux-gnu";

/// The flags of a coverage-guided libFuzzer build on stable rustc (as `tests/fuzz/env.sh`).
pub const RUSTFLAGS: &str = "--cfg fuzzing -C passes=sancov-module \
    -C llvm-args=-sanitizer-coverage-level=4 \
    -C llvm-args=-sanitizer-coverage-inline-8bit-counters \
    -C llvm-args=-sanitizer-coverage-pc-table \
    -C llvm-args=-sanitizer-coverage-trace-compares";

/// One fuzz target and how much the suite fuzzes it after the corpus replay.
#[derive(Clone, Copy, Debug)]
pub struct Target {
    /// The binary's name (and its corpus directory's).
    pub name: &'static str,
    /// `-max_len`.
    pub max_len: u32,
    /// Executions (`-runs`), replay included: a few seconds' worth.
    pub runs: u32,
}

/// Every target, fast ones first.
pub const TARGETS: [Target; 5] = [
    Target {
        name: "firmware_map",
        max_len: 512,
        runs: 300000,
    },
    Target {
        name: "start_info",
        max_len: 512,
        runs: 300000,
    },
    Target {
        name: "memblock_ops",
        max_len: 4096,
        runs: 40000,
    },
    Target {
        name: "direct_map",
        max_len: 64,
        runs: 800,
    },
    Target {
        name: "typed_ops",
        max_len: 256,
        runs: 1500,
    },
];

fn cargo() -> std::ffi::OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// Builds every target, instrumented, with its output in `log`.
pub fn build(root: &Path, log: &Path) -> Result<()> {
    let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let manifest = format!("{CRATE}/Cargo.toml");
    let args = [
        "build",
        "--release",
        "--locked",
        "--manifest-path",
        &manifest,
        "--target",
        TRIPLE,
        "--target-dir",
        TARGET_DIR,
        "--bins",
    ];
    let status = Command::new(cargo())
        .args(args)
        .current_dir(root)
        // Replaces the workspace's kernel flags (RUSTFLAGS wins over build.rustflags); with
        // an explicit --target they stay off build scripts.
        .env("RUSTFLAGS", RUSTFLAGS)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .status()
        .context("starting cargo")?;
    if !status.success() {
        bail!("`cargo {}` exited with {status}", args.join(" "));
    }
    Ok(())
}

/// The instrumented binary of `t`.
pub fn binary(root: &Path, t: &Target) -> PathBuf {
    root.join(TARGET_DIR)
        .join(TRIPLE)
        .join("release")
        .join(t.name)
}

/// Replays `t`'s committed corpus, then fuzzes from it up to `t.runs` executions with seed 1;
/// new inputs and any crash go under `work`, never into the committed corpus.
pub fn run(root: &Path, t: &Target, work: &Path, log: &Path) -> Result<()> {
    let corpus = root.join(CRATE).join("corpus").join(t.name);
    if !corpus.is_dir() || std::fs::read_dir(&corpus)?.next().is_none() {
        bail!("no committed corpus in {}", corpus.display());
    }
    let scratch = work.join(t.name);
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let mut prefix = scratch.clone().into_os_string();
    prefix.push("/");
    let status = Command::new(binary(root, t))
        .arg(format!("-runs={}", t.runs))
        .arg("-seed=1")
        .arg(format!("-max_len={}", t.max_len))
        .arg("-print_final_stats=1")
        .arg({
            let mut a = std::ffi::OsString::from("-artifact_prefix=");
            a.push(&prefix);
            a
        })
        .arg(&scratch)
        .arg(&corpus)
        .current_dir(root)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .status()
        .with_context(|| format!("starting {}", binary(root, t).display()))?;
    if !status.success() {
        bail!(
            "fuzz target {} failed ({status}): see {}",
            t.name,
            log.display()
        );
    }
    Ok(())
}

/// `stat::number_of_executed_units` from libFuzzer's final stats in `log`.
pub fn executions(log: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_execution_count() {
        let dir = std::env::temp_dir().join(format!("xtask-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("log");
        std::fs::write(
            &log,
            "Done 1234 runs in 3 second(s)\nstat::number_of_executed_units: 1234\n\
             stat::average_exec_per_sec:     411\n",
        )
        .unwrap();
        assert_eq!(executions(&log), Some(1234));
        std::fs::write(&log, "no stats\n").unwrap();
        assert_eq!(executions(&log), None);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn every_target_has_a_committed_corpus_and_a_binary_entry() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let manifest = std::fs::read_to_string(root.join(CRATE).join("Cargo.toml")).unwrap();
        for t in TARGETS {
            assert!(
                manifest.contains(&format!("name = \"{}\"", t.name)),
                "{} is no bin of the fuzz crate",
                t.name
            );
            let corpus = root.join(CRATE).join("corpus").join(t.name);
            assert!(
                std::fs::read_dir(&corpus).is_ok_and(|mut d| d.next().is_some()),
                "no corpus for {}",
                t.name
            );
        }
        assert!(TARGETS.iter().all(|t| t.runs > 0 && t.runs <= 1_000_000));
    }
}
