//! The cargo steps of `xtask test`, and building the example images the boot tests boot.
//!
//! Each step's output goes to a log file (`target/xtask-test/logs/<step>.log`); a failing
//! step prints the end of its log.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::matrix::FeatureSet;

/// One cargo invocation, run from the workspace root.
#[derive(Clone, Debug)]
pub struct Step {
    /// `cargo/<what>` or `xtask/<what>`.
    pub name: &'static str,
    /// The arguments after `cargo`.
    pub args: &'static [&'static str],
    /// Environment variables set for it (on top of the caller's).
    pub env: &'static [(&'static str, &'static str)],
}

const XTASK: [&str; 4] = [
    "--manifest-path",
    "xtask/Cargo.toml",
    "--target-dir",
    "target/xtask",
];

/// The checks of the workspace and of the xtask, in order.
pub fn steps() -> Vec<Step> {
    const fn s(name: &'static str, args: &'static [&'static str]) -> Step {
        Step {
            name,
            args,
            env: &[],
        }
    }
    // rustdoc's warnings (broken links first) fail the step, for both feature sets.
    const DENY_DOC_WARNINGS: &[(&str, &str)] = &[("RUSTDOCFLAGS", "-D warnings")];
    const fn doc(name: &'static str, args: &'static [&'static str]) -> Step {
        Step {
            name,
            args,
            env: DENY_DOC_WARNINGS,
        }
    }
    vec![
        s("cargo/fmt", &["fmt", "--all", "--check"]),
        s(
            "cargo/clippy",
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
        ),
        // Not `--all-features`: backend-xen-pv's `model` feature (std, for host tests) must
        // never reach the freestanding images.
        s(
            "cargo/clippy-xen-pv",
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--features",
                "pvmmu-examples/xen-pv",
                "--",
                "-D",
                "warnings",
            ],
        ),
        s("cargo/test", &["test", "--workspace"]),
        s(
            "cargo/test-xen-pv",
            &["test", "--workspace", "--features", "pvmmu-examples/xen-pv"],
        ),
        doc("cargo/doc", &["doc", "--workspace", "--no-deps"]),
        doc(
            "cargo/doc-xen-pv",
            &[
                "doc",
                "--workspace",
                "--no-deps",
                "--features",
                "pvmmu-examples/xen-pv",
            ],
        ),
        // The fuzz crate (a workspace of its own, see tests/fuzz/Cargo.toml); its build and
        // short runs are in crate::fuzz.
        s(
            "fuzz/fmt",
            &["fmt", "--check", "--manifest-path", "tests/fuzz/Cargo.toml"],
        ),
        s(
            "fuzz/clippy",
            &[
                "clippy",
                "--locked",
                "--manifest-path",
                "tests/fuzz/Cargo.toml",
                "--target-dir",
                "target/fuzz-clippy",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
        ),
        s(
            "xtask/fmt",
            &["fmt", "--check", "--manifest-path", "xtask/Cargo.toml"],
        ),
        s(
            "xtask/clippy",
            &[
                "clippy",
                XTASK[0],
                XTASK[1],
                XTASK[2],
                XTASK[3],
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
        ),
        s(
            "xtask/test",
            &["test", XTASK[0], XTASK[1], XTASK[2], XTASK[3]],
        ),
    ]
}

/// The cargo that runs us (`$CARGO` under `cargo run`), else `cargo` from `PATH`.
fn cargo() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

fn command(root: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(cargo());
    cmd.args(args).current_dir(root).stdin(Stdio::null());
    cmd
}

/// Runs `step` with its output in `log`; `Err` says why it failed.
pub fn run(root: &Path, step: &Step, log: &Path) -> Result<()> {
    let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let status = command(root, step.args)
        .envs(step.env.iter().copied())
        .stdout(out.try_clone()?)
        .stderr(out)
        .status()
        .context("starting cargo")?;
    if !status.success() {
        bail!("`cargo {}` exited with {status}", step.args.join(" "));
    }
    Ok(())
}

/// Builds every example of `pvmmu-examples` with `features` and copies the images to
/// `dir/<features>/<example>` (a later build with other features overwrites cargo's copy).
/// Returns the images by example name.
pub fn build_images(
    root: &Path,
    features: FeatureSet,
    dir: &Path,
    log: &Path,
) -> Result<BTreeMap<String, PathBuf>> {
    build(root, &["--examples"], features, dir, log)
}

/// Builds the example `name` with `features` in the release profile (the profile the
/// image-size budget is for) and copies it to `dir/<features>/<name>`.
pub fn build_release_image(
    root: &Path,
    name: &str,
    features: FeatureSet,
    dir: &Path,
    log: &Path,
) -> Result<PathBuf> {
    let images = build(root, &["--release", "--example", name], features, dir, log)?;
    images
        .get(name)
        .cloned()
        .with_context(|| format!("cargo reported no image for {name}"))
}

fn build(
    root: &Path,
    which: &[&str],
    features: FeatureSet,
    dir: &Path,
    log: &Path,
) -> Result<BTreeMap<String, PathBuf>> {
    let mut args = vec![
        "build",
        "-p",
        "pvmmu-examples",
        "--message-format=json-render-diagnostics",
    ];
    args.extend_from_slice(which);
    args.extend_from_slice(features.cargo_args());
    let err = File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let mut child = command(root, &args)
        .stdout(Stdio::piped())
        .stderr(err)
        .spawn()
        .context("starting cargo")?;
    let mut built = BTreeMap::new();
    for line in BufReader::new(child.stdout.take().expect("piped")).lines() {
        let line = line.context("reading cargo's messages")?;
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        let is_example = msg["target"]["kind"]
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k == "example"));
        if msg["reason"] == "compiler-artifact" && is_example {
            if let (Some(name), Some(exe)) =
                (msg["target"]["name"].as_str(), msg["executable"].as_str())
            {
                built.insert(name.to_string(), PathBuf::from(exe));
            }
        }
    }
    let status = child.wait().context("waiting for cargo")?;
    if !status.success() {
        bail!("`cargo {}` exited with {status}", args.join(" "));
    }
    let dest = dir.join(features.name());
    std::fs::create_dir_all(&dest).with_context(|| format!("creating {}", dest.display()))?;
    let mut images = BTreeMap::new();
    for (name, exe) in built {
        let to = dest.join(&name);
        std::fs::copy(&exe, &to)
            .with_context(|| format!("copying {} to {}", exe.display(), to.display()))?;
        images.insert(name, to);
    }
    if images.is_empty() {
        bail!("cargo reported no example images");
    }
    Ok(images)
}

/// The last `n` lines of `log`.
pub fn tail(log: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
