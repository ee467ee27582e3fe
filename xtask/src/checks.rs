//! Judging a boot test's run: each check asserts on what the example itself verified and
//! reported (its exit status and its defmt lines), not on a banner.

use crate::boot::{Board, BootResult, Verdict};
use crate::figures::Figures;
use crate::matrix::{BootTest, Expect, DIRECT_MAP_HEADROOM};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// RAM a firmware map may withhold from the configured size: on QEMU q35 the 385 KiB below
/// 1 MiB and the 132 KiB just below the top of low RAM; a few MiB of slack.
pub const NATIVE_RAM_SLACK: u64 = 4 * MIB;
/// The same for a Xen PV dom0 (`nr_pages` against `dom0_mem`).
pub const XEN_RAM_SLACK: u64 = 8 * MIB;
/// On q35, memory above this is split: 2 GiB below 4 GiB, the rest from 4 GiB up.
const Q35_SPLIT: u64 = 2816 * MIB;
/// Low RAM on q35 when the memory is split.
const Q35_LOW: u64 = 2 * GIB;

/// `Ok` if `run` is what `test` expects, else why not.
pub fn check(test: &BootTest, run: &BootResult) -> Result<(), String> {
    match test.expect {
        Expect::Hello => {
            passed(run)?;
            memory_map_printed(run)
        }
        Expect::DirectMap => {
            passed(run)?;
            let f = Figures::find(&run.defmt_lines).map_err(|e| format!("{e:#}"))?;
            direct_map_figures(test, &f)?;
            if test.board == Board::Xen {
                crate::budget::check(&run.defmt_lines, f.tail_released)?;
            }
            Ok(())
        }
        Expect::FailWith(texts) => {
            failed(run)?;
            for text in texts {
                if !mentions(run, text) {
                    return Err(format!(
                        "failed, but {text:?} is neither in the defmt lines nor on the console"
                    ));
                }
            }
            Ok(())
        }
        Expect::PageFault { address } => {
            failed(run)?;
            if mentions(run, "no page fault was raised") {
                return Err("the read of the unmapped address returned".into());
            }
            let report = "CPU EXCEPTION 14 (#PF page fault)";
            if !run.console_text.contains(report) {
                return Err(format!("no {report:?} report on the console"));
            }
            let cr2 = format!("CR2 {address:#018x}");
            if !run.console_text.contains(&cr2) {
                return Err(format!("the #PF report does not say {cr2:?}"));
            }
            Ok(())
        }
        Expect::PassWith(texts) => {
            passed(run)?;
            for text in texts {
                if !run.defmt_lines.iter().any(|l| l.contains(text)) {
                    return Err(format!("passed, but no defmt line says {text:?}"));
                }
            }
            Ok(())
        }
        Expect::SeedBug => seed_bug(run),
        Expect::SetupError(text) => {
            if run.verdict != Verdict::GuestSetupError {
                return Err(format!(
                    "expected the guest to refuse its arguments (status 37), got: {}",
                    verdict_reason(run)
                ));
            }
            if !run.console_text.contains(text) {
                return Err(format!("refused, but the console does not say {text:?}"));
            }
            Ok(())
        }
    }
}

/// `seed_bug` under Xen: see [`Expect::SeedBug`].
fn seed_bug(run: &BootResult) -> Result<(), String> {
    passed(run)?;
    if mentions(run, "did not fault") {
        return Err("the store to the read-only frame did not fault".into());
    }
    let result = run
        .defmt_lines
        .iter()
        .find(|l| l.contains("RESULT seed_bug "))
        .ok_or("no `RESULT seed_bug` defmt line")?;
    let field = |name: &str| -> Result<&str, String> {
        result
            .split_whitespace()
            .find_map(|w| w.strip_prefix(name)?.strip_prefix('='))
            .ok_or_else(|| format!("the RESULT line has no {name}: {result:?}"))
    };
    for (name, want) in [
        ("pin_writable_errno", "-22"),
        ("pin_writable_success", "0"),
        ("pin_readonly", "0"),
        ("pin_readonly_success", "1"),
    ] {
        let got = field(name)?;
        if got != want {
            return Err(format!("{name}={got}, expected {want}: {result:?}"));
        }
    }
    // The fault itself is the board's report (its #PF handler), not the example's claim.
    let va = field("fault_va")?;
    let caught = format!("expected fault caught: #PF at {va} ");
    if !run.defmt_lines.iter().any(|l| l.contains(&caught)) {
        return Err(format!("no defmt line says {:?}", caught.trim_end()));
    }
    if !run.console_text.contains(&caught) {
        return Err(format!("the console does not say {:?}", caught.trim_end()));
    }
    Ok(())
}

fn passed(run: &BootResult) -> Result<(), String> {
    match run.verdict {
        Verdict::Pass => Ok(()),
        _ => Err(verdict_reason(run)),
    }
}

/// The run must end with the example's or board's `Fail` status: a timeout, triple fault or
/// reset is not the intended failure.
fn failed(run: &BootResult) -> Result<(), String> {
    match run.verdict {
        Verdict::Fail => Ok(()),
        Verdict::Pass => Err("expected the run to fail, but it passed".into()),
        _ => Err(format!(
            "expected the example's Fail status, got: {}",
            verdict_reason(run)
        )),
    }
}

fn verdict_reason(run: &BootResult) -> String {
    match run.verdict {
        Verdict::Pass => "passed".into(),
        Verdict::Fail => {
            let why = run
                .defmt_lines
                .iter()
                .find(|l| l.starts_with("ERROR"))
                .map_or(String::new(), |l| format!(": {l}"));
            format!("the example reported failure{why}")
        }
        Verdict::Unexpected(0) => "QEMU exited 0: triple fault, reset or Xen reboot".into(),
        Verdict::Unexpected(c) => format!("QEMU exited with status {c}"),
        Verdict::Signalled => "QEMU was killed by a signal".into(),
        Verdict::Timeout => format!("timed out after {:.0} s", run.elapsed.as_secs_f64()),
        Verdict::QemuError => format!("QEMU failed to start: {}", run.qemu_stderr.trim()),
        Verdict::GuestSetupError => "the guest refused its command line".into(),
    }
}

fn mentions(run: &BootResult, text: &str) -> bool {
    run.console_text.contains(text) || run.defmt_lines.iter().any(|l| l.contains(text))
}

/// `hello`'s memory map: the defmt line `memory map (N entries):` followed by N entry lines,
/// at least one of them RAM, and the same header on the console.
fn memory_map_printed(run: &BootResult) -> Result<(), String> {
    let lines = &run.defmt_lines;
    let (at, n) = lines
        .iter()
        .enumerate()
        .find_map(|(i, l)| {
            let rest = l.split_once("memory map (")?.1;
            let n: usize = rest.strip_suffix(" entries):")?.parse().ok()?;
            Some((i, n))
        })
        .ok_or("no `memory map (N entries):` defmt line")?;
    if n == 0 {
        return Err("the memory map is empty".into());
    }
    let entries = lines.get(at + 1..at + 1 + n).ok_or(format!(
        "the memory map announces {n} entries, fewer lines follow"
    ))?;
    if let Some(bad) = entries.iter().find(|l| !l.contains("[0x")) {
        return Err(format!("not a memory map entry: {bad:?}"));
    }
    if !entries.iter().any(|l| l.trim_end().ends_with("Ram")) {
        return Err("no RAM entry in the memory map".into());
    }
    if !run
        .console_text
        .contains(&format!("memory map ({n} entries):"))
    {
        return Err("the memory map is not on the console".into());
    }
    Ok(())
}

/// The figures of a passing `direct_map` run against the memory it had.
pub fn direct_map_figures(test: &BootTest, f: &Figures) -> Result<(), String> {
    let mem = test.mem_mib * MIB;
    let fail = |what: String| Err(format!("{what} in {f:?}"));
    if f.tables_used != f.computed + 1 {
        return fail(format!(
            "tables_used {} != computed {} + 1 (root)",
            f.tables_used, f.computed
        ));
    }
    if f.tail_released != DIRECT_MAP_HEADROOM {
        return fail(format!(
            "tail_released {} != the headroom {DIRECT_MAP_HEADROOM}",
            f.tail_released
        ));
    }
    if f.leaves_checked == 0 {
        return fail("no leaf checked".into());
    }
    if f.pages_touched == 0 {
        return fail("no page touched".into());
    }
    if f.mapped_bytes() != f.ram_bytes {
        return fail(format!(
            "the pages map {} bytes, not ram_bytes",
            f.mapped_bytes()
        ));
    }
    let slack = match test.board {
        Board::Native => NATIVE_RAM_SLACK,
        Board::Xen => XEN_RAM_SLACK,
    };
    if f.ram_bytes > mem || f.ram_bytes + slack < mem {
        return fail(format!(
            "ram_bytes is not within {} MiB below the configured {} MiB",
            slack / MIB,
            test.mem_mib
        ));
    }
    match test.board {
        Board::Native => {
            if f.cross_checked != f.tail_released {
                return fail(format!(
                    "cross_checked {} != tail_released (the identity map covers the tail)",
                    f.cross_checked
                ));
            }
            if mem > Q35_SPLIT {
                // RAM from 4 GiB up is 1 GiB-aligned: every whole GiB of it is one page.
                let min = (mem - Q35_LOW) / GIB;
                if f.pages[2] < min.max(1) {
                    return fail(format!(
                        "{} 1 GiB pages, expected at least {}",
                        f.pages[2],
                        min.max(1)
                    ));
                }
            }
        }
        Board::Xen => {
            if f.pages[1] != 0 || f.pages[2] != 0 {
                return fail("large pages under Xen PV (it has no superpages)".into());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matrix::NATIVE;
    use crate::mem_size::MemSize;
    use std::time::Duration;

    fn run(verdict: Verdict, console: &str, defmt: &[&str]) -> BootResult {
        BootResult {
            board: Board::Native,
            mem: MemSize::from_mib(1024),
            status: None,
            verdict,
            console_text: console.into(),
            defmt_lines: defmt.iter().map(|s| s.to_string()).collect(),
            qemu_stderr: String::new(),
            elapsed: Duration::from_millis(300),
            frames_file: None,
        }
    }

    fn figures_6g() -> Figures {
        Figures {
            ram_bytes: 6441918464,
            computed: 5,
            tables_used: 6,
            tail_released: 64,
            pages: [894, 1022, 4],
            leaves_checked: 1920,
            pages_touched: 98296,
            cross_checked: 64,
        }
    }

    fn test_at(example: &str, mem_mib: u64) -> BootTest {
        *NATIVE
            .iter()
            .find(|t| t.example == example && t.mem_mib == mem_mib && t.guest_args.is_empty())
            .unwrap()
    }

    #[test]
    fn direct_map_6g_passes_and_each_check_bites() {
        let t = test_at("direct_map", 6144);
        assert_eq!(direct_map_figures(&t, &figures_6g()), Ok(()));
        let bad = [
            Figures {
                tables_used: 7,
                ..figures_6g()
            },
            Figures {
                tail_released: 63,
                ..figures_6g()
            },
            Figures {
                leaves_checked: 0,
                ..figures_6g()
            },
            Figures {
                cross_checked: 0,
                ..figures_6g()
            },
            Figures {
                pages: [894, 1022, 3],
                ..figures_6g()
            },
            // Consistent, but 1 GiB short of the configured size.
            Figures {
                ram_bytes: 6441918464 - (1 << 30),
                pages: [894, 1022, 3],
                ..figures_6g()
            },
            // Consistent, but with 2 MiB pages only.
            Figures {
                pages: [894, 1022 + 4 * 512, 0],
                ..figures_6g()
            },
        ];
        for f in bad {
            assert!(direct_map_figures(&t, &f).is_err(), "{f:?} accepted");
        }
    }

    #[test]
    fn fail_with_needs_the_fail_status_and_every_text() {
        let t = NATIVE[6];
        let Expect::FailWith(texts) = t.expect else {
            panic!("row 6 is a bad-map test")
        };
        let console = format!("{}\n", texts[0]);
        let defmt = format!("ERROR {}  (memview.rs:16)", texts[1]);
        assert_eq!(check(&t, &run(Verdict::Fail, &console, &[&defmt])), Ok(()));
        assert!(check(&t, &run(Verdict::Timeout, &console, &[&defmt])).is_err());
        assert!(check(&t, &run(Verdict::Unexpected(0), &console, &[&defmt])).is_err());
        assert!(check(&t, &run(Verdict::Pass, &console, &[&defmt])).is_err());
        assert!(check(&t, &run(Verdict::Fail, &console, &[])).is_err());
    }

    #[test]
    fn page_fault_needs_the_report_with_cr2() {
        let t = test_at("fault", 1024);
        let report = "*** CPU EXCEPTION 14 (#PF page fault), error code 0x0, RIP 0x2002dc\n    \
                      CR2 0x0000700000000000: not present on read\n";
        assert_eq!(check(&t, &run(Verdict::Fail, report, &[])), Ok(()));
        assert!(check(&t, &run(Verdict::Unexpected(0), report, &[])).is_err());
        let other = report.replace("0x0000700000000000", "0x0000000000000000");
        assert!(check(&t, &run(Verdict::Fail, &other, &[])).is_err());
    }

    #[test]
    fn seed_bug_needs_the_refusal_and_the_expected_fault() {
        let t = crate::matrix::XEN
            .iter()
            .find(|t| t.example == "seed_bug")
            .copied()
            .unwrap();
        let result = "INFO RESULT seed_bug pin_writable_errno=-22 pin_writable_success=0 \
                      pin_readonly=0 pin_readonly_success=1 fault_va=0x3fe000";
        let caught = "INFO expected fault caught: #PF at 0x3fe000 (error code 0x3, RIP 0x20ea48)";
        let console = "expected fault caught: #PF at 0x3fe000 (error code 0x3, RIP 0x20ea48)\n";
        assert_eq!(
            check(&t, &run(Verdict::Pass, console, &[result, caught])),
            Ok(())
        );
        assert!(check(&t, &run(Verdict::Fail, console, &[result, caught])).is_err());
        assert!(check(&t, &run(Verdict::Pass, console, &[result])).is_err());
        assert!(check(&t, &run(Verdict::Pass, "", &[result, caught])).is_err());
        let accepted = result.replace("errno=-22", "errno=0");
        assert!(check(&t, &run(Verdict::Pass, console, &[&accepted, caught])).is_err());
        let elsewhere = caught.replace("0x3fe000", "0x3fd000");
        assert!(check(&t, &run(Verdict::Pass, console, &[result, &elsewhere])).is_err());
    }

    #[test]
    fn hello_needs_the_map() {
        let t = test_at("hello", 1024);
        let defmt = [
            "INFO hello from native-pvh",
            "INFO memory map (2 entries):",
            "INFO   [0x0, 0x9fc00) Ram",
            "INFO   [0x9fc00, 0xa0000) Reserved",
        ];
        let console = "hello from native-pvh\nmemory map (2 entries):\n";
        assert_eq!(check(&t, &run(Verdict::Pass, console, &defmt)), Ok(()));
        assert!(check(&t, &run(Verdict::Pass, console, &defmt[..3])).is_err());
        assert!(check(&t, &run(Verdict::Pass, "", &defmt)).is_err());
        assert!(check(&t, &run(Verdict::Fail, console, &defmt)).is_err());
    }
}
