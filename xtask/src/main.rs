//! `cargo xtask`: the project's task runner, and (through `.cargo/runner.sh`) the cargo runner
//! for kernel ELFs.
//!
//! ```text
//! xtask boot [--board native|xen|xen-domu] [--mem SIZE] [--timeout SECS] [--quiet]
//!            [--keep-frames] [--qemu-arg ARG]... [--module FILE] ELF [-- GUEST_ARGS]
//! xtask test [--boot-only | --no-boot] [FILTER...]
//! xtask conformance [--sequences N] [--seed S | --corpus FILE] [--echo]
//! xtask size [ELF]
//! xtask xen-strategies [--mem SIZE]...
//! ```
//! `boot` prints the guest's console and decoded defmt lines in the order the guest wrote them
//! (`xtask::order`); a `direct_map` run ends with a summary of its figures and the host
//! verifier's verdict on them (`xtask::summary`).
//!
//! `boot` exit status: 0 the example passed; 1 it reported failure (Fail, panic, CPU
//! exception), or it passed and the host verifier disagrees with its figures; 2 the run ended without a verdict (triple fault, reset, timeout); 3 setup error
//! (bad options, not a kernel or not one for the board, too little memory for the image, QEMU
//! or Xen missing or refusing to start).
//!
//! `size` prints an image's loaded bytes and memory in all against the image-size budget
//! (`xtask::size`); without an ELF it builds the release `direct_map` with both boards, the
//! image the budget is for. Exit status 1 if over budget.
//!
//! `test` runs the whole suite (see `xtask::suite`) and exits 0 only if everything passed.
//! `--boot-only`, `--no-boot` and filters (substrings of step and test names) select a part;
//! with `CI` set they are refused: CI runs everything.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use xtask::boot::{self, BootOptions};
use xtask::suite::{self, SuiteOptions};

const USAGE: &str = "usage: xtask boot [--board native|xen|xen-domu] [--mem SIZE] [--timeout SECS] \
                     [--quiet] [--keep-frames] [--qemu-arg ARG]... [--module FILE] ELF [-- GUEST_ARGS...]\n       \
                     xtask test [--boot-only | --no-boot] [FILTER...]\n       \
                     xtask conformance [--sequences N] [--seed S | --corpus FILE] [--echo]\n       \
                     xtask size [ELF]\n       \
                     xtask xen-strategies [--mem SIZE]...";

/// The longest `--timeout` accepted: a day.
const MAX_TIMEOUT_SECS: f64 = 86_400.0;

/// `--timeout`'s value: seconds, finite, above 0 and at most [`MAX_TIMEOUT_SECS`].
fn parse_timeout(text: &str) -> Result<Duration> {
    let secs: f64 = text
        .trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("--timeout: {text:?} is not a number of seconds"))?;
    if !secs.is_finite() || secs <= 0.0 || secs > MAX_TIMEOUT_SECS {
        bail!("--timeout: {text:?} is out of range (more than 0, at most {MAX_TIMEOUT_SECS} s)");
    }
    Ok(Duration::from_secs_f64(secs))
}

fn main() -> ExitCode {
    match real_main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::from(3)
        }
    }
}

fn real_main() -> Result<ExitCode> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("boot") => boot_cmd(args.collect()),
        Some("test") => test_cmd(args.collect()),
        Some("conformance") => conformance_cmd(args.collect()),
        Some("size") => size_cmd(args.collect()),
        Some("xen-strategies") => strategies_cmd(args.collect()),
        Some("-h" | "--help" | "help") | None => {
            println!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        Some(other) => bail!("unknown command {other:?}\n{USAGE}"),
    }
}

fn boot_cmd(args: Vec<String>) -> Result<ExitCode> {
    let mut opts = BootOptions {
        echo: true,
        ..Default::default()
    };
    let mut elf: Option<PathBuf> = None;
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--board" => opts.board = Some(value("--board")?.parse().map_err(anyhow::Error::msg)?),
            "--mem" => opts.mem = Some(value("--mem")?.parse().map_err(anyhow::Error::msg)?),
            "--timeout" => opts.timeout = Some(parse_timeout(&value("--timeout")?)?),
            "--quiet" => opts.echo = false,
            "--keep-frames" => opts.keep_frames = true,
            "--qemu-arg" => opts.qemu_args.push(value("--qemu-arg")?),
            "--module" => opts.module = Some(PathBuf::from(value("--module")?)),
            "--" => opts.guest_args.extend(it.by_ref()),
            s if s.starts_with('-') => bail!("unknown option {s:?}\n{USAGE}"),
            s if elf.is_none() => elf = Some(PathBuf::from(s)),
            s => bail!("unexpected argument {s:?} (guest arguments go after `--`)\n{USAGE}"),
        }
    }
    let elf = elf.with_context(|| format!("no ELF given\n{USAGE}"))?;
    let result = boot::boot(&elf, &opts)?;
    if !opts.echo && result.verdict != boot::Verdict::Pass {
        // Quiet, but a failure shows its cause: the end of the guest's output (console, Xen's
        // log and the decoded lines, in order), and what QEMU said.
        let out = &result.output;
        for l in &out[out.len().saturating_sub(30)..] {
            eprintln!("{}", l.display());
        }
        if !result.qemu_stderr.trim().is_empty() {
            eprintln!("qemu: {}", result.qemu_stderr.trim_end());
        }
    }
    if result.verdict != boot::Verdict::Pass && !result.host_console.is_empty() {
        // xen-domu: the host's side of the failure.
        eprint!("{}", xtask::domu::host_tail(&result.host_console, 15));
    }
    // A `direct_map` run ends with its figures in words and the host's verdict on them; a
    // passing guest the host disagrees with fails.
    let mut disagrees = false;
    if let Some((block, host)) = xtask::summary::direct_map(&result) {
        if opts.echo || result.verdict != boot::Verdict::Pass {
            eprint!("{block}");
        }
        disagrees = matches!(host, xtask::summary::HostVerdict::Disagrees(_));
    }
    eprintln!("xtask: {}: {}", elf.display(), result.summary());
    match &result.capture {
        Some(Ok(c)) => eprintln!(
            "xtask: exit gate: CR3 {:#x}, CPL {}, gate word at {:#x}, held {:.1} ms",
            c.regs.cr3,
            c.regs.cpl,
            c.gate_pa,
            c.held.as_secs_f64() * 1e3
        ),
        Some(Err(e)) => eprintln!("xtask: exit gate: the host could not capture: {e}"),
        None => {}
    }
    match &result.capture {
        Some(Ok(c)) => match &c.stack {
            Ok(u) => eprintln!("xtask: {u}"),
            Err(e) => eprintln!("xtask: stack not measured: {e}"),
        },
        Some(Err(_)) => {}
        None => eprintln!("xtask: exit gate: the guest never reached it"),
    }
    if let Some(frames) = &result.frames_file {
        eprintln!("xtask: raw defmt frames kept in {}", frames.display());
    }
    if disagrees && result.verdict == boot::Verdict::Pass {
        eprintln!("xtask: the guest passed, but the host verifier disagrees (above): exit 1");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::from(result.verdict.exit_code()))
}

/// `conformance`: the model against real Xen on a generated corpus; the last line is
/// `conformance: N sequences, A agree, D disagree`; exit 0 only if D is 0.
fn conformance_cmd(args: Vec<String>) -> Result<ExitCode> {
    let (mut sequences, mut seed, mut echo) = (1000u32, 1u64, false);
    let mut corpus: Option<PathBuf> = None;
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().with_context(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--sequences" => sequences = value("--sequences")?.parse().context("--sequences")?,
            "--seed" => seed = value("--seed")?.parse().context("--seed")?,
            "--echo" => echo = true,
            "--corpus" => corpus = Some(PathBuf::from(value("--corpus")?)),
            s => bail!("unknown argument {s:?}\n{USAGE}"),
        }
    }
    let root = xtask::workspace_root();
    let work = root.join("target/conformance");
    std::fs::create_dir_all(&work)?;
    let images = xtask::steps::build_images(
        &root,
        xtask::matrix::FeatureSet::XenPv,
        &work.join("images"),
        &work.join("build.log"),
    )?;
    let elf = images
        .get("conformance")
        .context("no conformance image was built")?;
    let report = match corpus {
        Some(c) => xtask::conformance::run_corpus(elf, &c, echo)?,
        None => xtask::conformance::run(elf, &work, sequences, seed, echo)?,
    };
    for d in report.details.iter().take(20) {
        println!("{d}");
    }
    let outcomes: Vec<String> = report
        .outcomes
        .iter()
        .map(|(k, n)| format!("{k}: {n}"))
        .collect();
    println!(
        "{} operations compared; Xen answered {}",
        report.ops,
        outcomes.join(", ")
    );
    println!("{}", report.summary());
    Ok(if report.disagree == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `size`: the image's size against the budget (exit 1 if over it).
fn size_cmd(args: Vec<String>) -> Result<ExitCode> {
    let elf = match args.as_slice() {
        [] => xtask::size::build_budget_image(&xtask::workspace_root())?,
        [elf] if !elf.starts_with('-') => PathBuf::from(elf),
        _ => bail!("usage: xtask size [ELF]"),
    };
    let size = xtask::size::measure_file(&elf)?;
    println!("{}: {size}", elf.display());
    Ok(match size.check() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            println!("over budget: {e}");
            ExitCode::FAILURE
        }
    })
}

/// `xen-strategies`: the direct map built by each strategy in one boot under Xen with
/// `-icount`, at 64M and 1G of dom0 memory (or each `--mem`); one table per size.
fn strategies_cmd(args: Vec<String>) -> Result<ExitCode> {
    let mut sizes = Vec::new();
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--mem" => {
                let v = it.next().context("--mem needs a value")?;
                let m: xtask::mem_size::MemSize = v.parse().map_err(anyhow::Error::msg)?;
                sizes.push(m.mib());
            }
            s => bail!("unknown argument {s:?}\n{USAGE}"),
        }
    }
    if sizes.is_empty() {
        sizes.extend(xtask::strategies::DEFAULT_SIZES);
    }
    let elf = xtask::strategies::build(&xtask::workspace_root())?;
    for mib in sizes {
        let rows = xtask::strategies::measure(&elf, mib)?;
        println!(
            "{}",
            xtask::strategies::table(mib, &rows).map_err(anyhow::Error::msg)?
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn test_cmd(args: Vec<String>) -> Result<ExitCode> {
    let mut opts = SuiteOptions::default();
    for arg in args {
        match arg.as_str() {
            "--boot-only" => opts.boot_only = true,
            "--no-boot" => opts.no_boot = true,
            s if s.starts_with('-') => bail!("unknown option {s:?}\n{USAGE}"),
            s => opts.filters.push(s.to_string()),
        }
    }
    if opts.boot_only && opts.no_boot {
        bail!("--boot-only and --no-boot exclude each other");
    }
    if !opts.is_complete() && std::env::var_os("CI").is_some_and(|v| !v.is_empty()) {
        bail!("CI is set: `xtask test` runs the whole suite there (no --boot-only, --no-boot or filters)");
    }
    let summary = suite::run(&xtask::workspace_root(), &opts);
    Ok(if summary.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::parse_timeout;

    #[test]
    fn timeouts_out_of_range_are_refused() {
        for bad in [
            "-1", "0", "inf", "-inf", "nan", "NaN", "1e30", "86401", "", "ten",
        ] {
            assert!(parse_timeout(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(parse_timeout("1.5").unwrap().as_millis(), 1500);
        assert_eq!(parse_timeout("86400").unwrap().as_secs(), 86_400);
    }
}
