//! Counting instructions with callgrind, shared (through `#[path]`) by the host benchmarks
//! `tests/benches/direct_map.rs` and `backend-native/benches/map.rs`: the benchmark runs
//! itself again under `valgrind --tool=callgrind` with the arguments for one round, collecting
//! only inside the functions whose name matches a pattern.

/// Runs this executable with `args` under callgrind, collecting inside functions matching
/// `pattern` (callgrind's `--toggle-collect` glob, e.g. `*pvmmu_build*`). Returns callgrind's
/// uncompressed output, or `None` if valgrind is missing or the run failed.
pub fn run(pattern: &str, args: &[&str]) -> Option<String> {
    let exe = std::env::current_exe().ok()?;
    let out = std::env::temp_dir().join(format!(
        "pvmmu-callgrind.{}.{}",
        std::process::id(),
        pattern.trim_matches('*')
    ));
    let status = std::process::Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!("--toggle-collect={pattern}"))
        .arg("--compress-strings=no")
        .arg("--compress-pos=no")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg(exe)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .ok()?;
    let text = std::fs::read_to_string(&out).ok();
    let _ = std::fs::remove_file(&out);
    status.success().then_some(text).flatten()
}

/// The instructions collected in all, from [`run`]'s output.
pub fn total(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("totals: "))
        .and_then(|n| n.trim().parse().ok())
}

/// The instructions callgrind charges to functions whose name contains `name` themselves
/// (their cost lines, not the calls they make), from [`run`]'s output.
#[allow(dead_code)]
pub fn self_cost(text: &str, name: &str) -> u64 {
    let (mut inside, mut call, mut sum) = (false, false, 0);
    for l in text.lines() {
        if let Some(f) = l.strip_prefix("fn=") {
            inside = f.contains(name);
        } else if l.starts_with("calls=") {
            // The next cost line is the call's inclusive cost, not the function's own.
            call = true;
        } else if l.starts_with(|c: char| c.is_ascii_digit()) {
            if inside && !call {
                sum += l
                    .split_whitespace()
                    .nth(1)
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0);
            }
            call = false;
        }
    }
    sum
}
