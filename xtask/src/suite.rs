//! `xtask test`: the whole test suite. The cargo steps ([`crate::steps`]), one image build per
//! feature set, then the boot matrix ([`crate::matrix`]), each judged by [`crate::checks`].
//!
//! Every step and boot test prints one line, `test <name> ... ok` or
//! `test <name> ... FAILED (<reason>)`; the run ends with `N passed, N failed`, counting both.
//! Nothing is skipped because a tool is missing: a missing QEMU, Xen package or `readelf`
//! fails the tests that need it.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::boot::{self, Board, BootOptions, BootResult};
use crate::conformance;
use crate::matrix::{self, BootTest, FeatureSet};
use crate::{checks, domu, fuzz, steps};

/// What to run.
#[derive(Clone, Debug, Default)]
pub struct SuiteOptions {
    /// Only the image builds and the boot matrix.
    pub boot_only: bool,
    /// Only the cargo steps.
    pub no_boot: bool,
    /// Only steps and boot tests whose name contains one of these.
    pub filters: Vec<String>,
}

impl SuiteOptions {
    /// Whether this run is the whole suite.
    pub fn is_complete(&self) -> bool {
        !self.boot_only && !self.no_boot && self.filters.is_empty()
    }

    fn selects(&self, name: &str) -> bool {
        self.filters.is_empty() || self.filters.iter().any(|f| name.contains(f.as_str()))
    }
}

/// The tally.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Names of the passed steps and tests.
    pub passed: Vec<String>,
    /// Names of the failed ones, with the reason.
    pub failed: Vec<(String, String)>,
}

impl Summary {
    fn record(&mut self, name: &str, result: Result<(), String>, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        match result {
            Ok(()) => {
                say(&format!("test {name} ... ok [{secs:.1} s]"));
                self.passed.push(name.to_string());
            }
            Err(reason) => {
                let first = reason.lines().next().unwrap_or("").to_string();
                say(&format!("test {name} ... FAILED ({first}) [{secs:.1} s]"));
                self.failed.push((name.to_string(), first));
            }
        }
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Runs the suite; prints as it goes and ends with the `N passed, N failed` line.
pub fn run(root: &Path, opts: &SuiteOptions) -> Summary {
    let start = Instant::now();
    let work = root.join("target/xtask-test");
    let logs = work.join("logs");
    let _ = std::fs::create_dir_all(&logs);
    let mut summary = Summary::default();
    let mut boots = 0;
    if !opts.is_complete() {
        say("note: a partial run (--boot-only, --no-boot or a filter): not the whole suite");
    }

    if !opts.boot_only {
        // The fuzz targets link libFuzzer, which the libfuzzer-sys crate builds with C++.
        if let Err(e) = crate::apt::provide("c++", "g++", "the fuzz targets build libFuzzer") {
            say(&format!("note: {e:#}; the fuzz steps will fail"));
        }
        for step in steps::steps().iter().filter(|s| opts.selects(s.name)) {
            say(&format!("     running `cargo {}`", step.args.join(" ")));
            let log = logs.join(format!("{}.log", step.name.replace('/', "-")));
            let t = Instant::now();
            let result = steps::run(root, step, &log).map_err(|e| {
                say(&format!(
                    "---- {} (end of {}) ----\n{}\n----",
                    step.name,
                    log.display(),
                    steps::tail(&log, 60)
                ));
                format!("{e:#}")
            });
            summary.record(step.name, result, t.elapsed());
        }
        run_fuzz(root, &work, &logs, opts, &mut summary);
        if opts.selects(SIZE_TEST) {
            run_size(root, &mut summary);
        }
    }

    if !opts.no_boot {
        let tests: Vec<BootTest> = matrix::enabled()
            .into_iter()
            .filter(|t| opts.selects(&t.to_string()))
            .collect();
        if !matrix::XEN_ENABLED {
            say(&format!(
                "note: the {} Xen PV boot tests are DISABLED (XEN_ENABLED = false in \
                 xtask/src/matrix.rs): {}",
                matrix::XEN.len(),
                matrix::XEN
                    .iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let images = build_images(root, &work, &logs, &tests, &mut summary);
        let image = |test: &BootTest| match images.get(&test.features()) {
            Some(Ok(set)) => set
                .get(test.example)
                .cloned()
                .ok_or_else(|| format!("no image for example {:?}", test.example)),
            Some(Err(e)) => Err(e.clone()),
            None => Err("image not built".into()),
        };
        let mut domus = run_domus(&tests, &image);
        for test in &tests {
            let t = Instant::now();
            let (result, elapsed) = if test.board == Board::XenDomU {
                match domus.remove(&test.to_string()) {
                    Some(Ok(run)) => (judge(test, &run), run.elapsed),
                    Some(Err(e)) => (Err(e), Duration::ZERO),
                    None => (Err("not run".into()), Duration::ZERO),
                }
            } else {
                let result = image(test).and_then(|elf| boot_test(test, &elf));
                (result, t.elapsed())
            };
            summary.record(&test.to_string(), result, elapsed);
            boots += 1;
        }
    }

    if !summary.failed.is_empty() {
        say("\nfailures:");
        for (name, reason) in &summary.failed {
            say(&format!("    {name}: {reason}"));
        }
    }
    say(&format!(
        "\n{} cargo steps and image builds, {} boot tests, {:.0} s in all",
        summary.passed.len() + summary.failed.len() - boots,
        boots,
        start.elapsed().as_secs_f64()
    ));
    say(&format!(
        "{} passed, {} failed",
        summary.passed.len(),
        summary.failed.len()
    ));
    summary
}

/// The image-size test's name.
const SIZE_TEST: &str = "size/direct_map-release";

/// Builds the release image the image-size budget is for and reports its size (one test:
/// it fails if the release build or the measurement fails, or if the image is over either
/// budget, its loaded bytes or its memory in all; the error names every budget exceeded).
fn run_size(root: &Path, summary: &mut Summary) {
    say("     building the release direct_map image (both boards) for its size");
    let t = Instant::now();
    let result = crate::size::build_budget_image(root)
        .and_then(|elf| crate::size::measure_file(&elf))
        .map_err(|e| format!("{e:#}"))
        .and_then(|size| {
            say(&format!("     {SIZE_TEST}: {size}"));
            size.check()?;
            say(&format!("     {SIZE_TEST}: within the budget"));
            Ok(())
        });
    summary.record(SIZE_TEST, result, t.elapsed());
}

/// The fuzz targets' instrumented build (one step), then a short run of each (one test each).
fn run_fuzz(root: &Path, work: &Path, logs: &Path, opts: &SuiteOptions, summary: &mut Summary) {
    let targets: Vec<fuzz::Target> = fuzz::TARGETS
        .into_iter()
        .filter(|t| opts.selects(&format!("fuzz/{}", t.name)) || opts.selects("fuzz/build"))
        .collect();
    if targets.is_empty() {
        return;
    }
    say("     building the fuzz targets (libFuzzer, SanitizerCoverage)");
    let log = logs.join("fuzz-build.log");
    let t = Instant::now();
    let built = fuzz::build(root, &log).map_err(|e| {
        say(&format!(
            "---- fuzz/build (end of {}) ----\n{}\n----",
            log.display(),
            steps::tail(&log, 60)
        ));
        format!("{e:#}")
    });
    summary.record("fuzz/build", built.clone(), t.elapsed());
    for target in targets {
        let name = format!("fuzz/{}", target.name);
        let log = logs.join(format!("fuzz-{}.log", target.name));
        let t = Instant::now();
        let result = match &built {
            Err(_) => Err("the fuzz build failed".to_string()),
            Ok(()) => fuzz::run(root, &target, &work.join("fuzz"), &log)
                .map(|()| {
                    if let Some(n) = fuzz::executions(&log) {
                        say(&format!("     {name}: {n} executions, no crash"));
                    }
                })
                .map_err(|e| {
                    say(&format!(
                        "---- {name} (end of {}) ----\n{}\n----",
                        log.display(),
                        steps::tail(&log, 40)
                    ));
                    format!("{e:#}")
                }),
        };
        summary.record(&name, result, t.elapsed());
    }
}

type Images = BTreeMap<FeatureSet, Result<BTreeMap<String, PathBuf>, String>>;

/// Builds the images of every feature set `tests` need, once each; each build is a step.
fn build_images(
    root: &Path,
    work: &Path,
    logs: &Path,
    tests: &[BootTest],
    summary: &mut Summary,
) -> Images {
    let mut sets: Vec<FeatureSet> = tests.iter().map(BootTest::features).collect();
    sets.sort();
    sets.dedup();
    let mut images = Images::new();
    for set in sets {
        let name = format!("build/examples-{}", set.name());
        let log = logs.join(format!("build-{}.log", set.name()));
        say(&format!(
            "     building the example images ({} features)",
            set.name()
        ));
        let t = Instant::now();
        let built = steps::build_images(root, set, &work.join("images"), &log).map_err(|e| {
            say(&format!(
                "---- {name} (end of {}) ----\n{}\n----",
                log.display(),
                steps::tail(&log, 60)
            ));
            format!("{e:#}")
        });
        summary.record(
            &name,
            built.as_ref().map(|_| ()).map_err(Clone::clone),
            t.elapsed(),
        );
        images.insert(
            set,
            built.map_err(|e| format!("the {} image build failed: {e}", set.name())),
        );
    }
    images
}

/// The xen-domu tests, all in one boot of the Xen host (dom0 boots once): their runs by test
/// name. The times recorded per test are the domU's own (`xl create` to its end).
fn run_domus(
    tests: &[BootTest],
    image: &dyn Fn(&BootTest) -> Result<PathBuf, String>,
) -> BTreeMap<String, Result<BootResult, String>> {
    let mut out = BTreeMap::new();
    let mut jobs = Vec::new();
    let mut names = Vec::new();
    for test in tests.iter().filter(|t| t.board == Board::XenDomU) {
        match image(test) {
            Ok(elf) => {
                jobs.push(domu::Job {
                    elf,
                    mem: test.mem(),
                    args: test.guest_args.iter().map(|s| s.to_string()).collect(),
                    timeout: Board::XenDomU.default_timeout(test.mem()),
                });
                names.push(test.to_string());
            }
            Err(e) => {
                out.insert(test.to_string(), Err(e));
            }
        }
    }
    if jobs.is_empty() {
        return out;
    }
    say(&format!(
        "     booting the Xen host (Linux dom0) once for {} domUs",
        jobs.len()
    ));
    let t = Instant::now();
    let root = crate::workspace_root();
    match domu::provision(&root.join("target/xen-domu"), &root.join("target/xen")) {
        Ok(_) => say(&format!(
            "     the Xen host is provisioned ({:.1} s; cached under target/xen-domu)",
            t.elapsed().as_secs_f64()
        )),
        Err(e) => {
            for name in names {
                out.insert(name, Err(format!("cannot provision the Xen host: {e:#}")));
            }
            return out;
        }
    }
    let t = Instant::now();
    match domu::run_batch(&jobs, &[], false) {
        Ok(runs) => {
            say(&format!(
                "     the Xen host ran {} domUs in {:.1} s (QEMU start to power-off)",
                runs.len(),
                t.elapsed().as_secs_f64()
            ));
            for (name, run) in names.into_iter().zip(runs) {
                out.insert(name, Ok(run));
            }
        }
        Err(e) => {
            for name in names {
                out.insert(name, Err(format!("cannot boot the Xen host: {e:#}")));
            }
        }
    }
    out
}

/// Boots one test and judges it; on failure prints what the run left.
fn boot_test(test: &BootTest, elf: &Path) -> Result<(), String> {
    if let matrix::Expect::Conformance { sequences, seed } = test.expect {
        return conformance_test(test, elf, sequences, seed);
    }
    let opts = BootOptions {
        board: Some(test.board),
        mem: Some(test.mem()),
        timeout: None,
        echo: false,
        guest_args: test.guest_args.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    let run = boot::boot(elf, &opts).map_err(|e| format!("cannot boot: {e:#}"))?;
    judge(test, &run)
}

/// Judges one run; on failure prints what it left.
fn judge(test: &BootTest, run: &BootResult) -> Result<(), String> {
    let verdict = checks::check(test, run);
    match (&verdict, &run.frames_file) {
        (Err(_), _) => say(&diagnostics(test, run)),
        // An expected failure: its raw frames are of no further use.
        (Ok(_), Some(frames)) => {
            let _ = std::fs::remove_file(frames);
        }
        (Ok(_), None) => {}
    }
    match (&verdict, &run.capture) {
        (Ok(note), Some(Ok(cap))) if !note.is_empty() => say(&format!(
            "     {test}: {note}; held at the gate {:.1} ms",
            cap.held.as_secs_f64() * 1e3
        )),
        // A domU has no gate (its note says why).
        (Ok(note), None) if !note.is_empty() => say(&format!("     {test}: {note}")),
        _ => {}
    }
    verdict.map(|_| ())
}

/// The conformance boot: a corpus generated here, replayed by the guest, compared with the
/// model; any disagreement fails the test (the first few are printed).
fn conformance_test(test: &BootTest, elf: &Path, sequences: u32, seed: u64) -> Result<(), String> {
    let work = crate::workspace_root().join("target/xtask-test/conformance");
    let corpus = work.join(format!("corpus-{seed}-{sequences}.bin"));
    let (seqs, expected) = conformance::prepare(&corpus, sequences, seed)
        .map_err(|e| format!("cannot prepare the corpus: {e:#}"))?;
    let run =
        conformance::boot_corpus(elf, &corpus, false).map_err(|e| format!("cannot boot: {e:#}"))?;
    if let Err(e) = checks::check(test, &run) {
        say(&diagnostics(test, &run));
        return Err(e);
    }
    let got =
        conformance::guest_results(&run.defmt_lines, seqs.len()).map_err(|e| format!("{e:#}"))?;
    let report = conformance::compare(&seqs, &expected, &got);
    if report.disagree > 0 {
        for d in report.details.iter().take(5) {
            say(d);
        }
        return Err(report.summary());
    }
    if let Some(frames) = &run.frames_file {
        let _ = std::fs::remove_file(frames);
    }
    Ok(())
}

/// The end of the console, the warnings and errors, and the last decoded lines of a run.
fn diagnostics(test: &BootTest, run: &BootResult) -> String {
    let mut s = format!("---- {test}: {} ----\n", run.summary());
    let console: Vec<&str> = run.console_text.lines().collect();
    s.push_str("console (last 40 lines):\n");
    for l in &console[console.len().saturating_sub(40)..] {
        s.push_str(&format!("  | {l}\n"));
    }
    s.push_str("defmt (last 30 lines):\n");
    let d = &run.defmt_lines;
    for l in &d[d.len().saturating_sub(30)..] {
        s.push_str(&format!("  | {l}\n"));
    }
    if !run.qemu_stderr.trim().is_empty() {
        s.push_str(&format!("qemu stderr:\n{}\n", run.qemu_stderr.trim_end()));
    }
    if let Some(f) = &run.frames_file {
        s.push_str(&format!("raw defmt frames: {}\n", f.display()));
    }
    if !run.host_console.is_empty() {
        s.push_str(&domu::host_tail(&run.host_console, 15));
    }
    s.push_str("----");
    s
}
