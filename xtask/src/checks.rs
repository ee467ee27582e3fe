//! Judging a boot test's run: its exit status and defmt lines, and for `direct_map` the host's
//! own walk of the page tables ([`crate::verify`]), against which every figure the guest
//! printed is compared.

use crate::boot::{Board, BootResult, Verdict};
use crate::figures::Figures;
use crate::matrix::{BootTest, Expect};
use crate::verify::{self, Machine, Pfns, Report};

/// `Ok` if `run` is what `test` expects, else why not. `Ok` carries a note for the log (the
/// host verifier's figures), empty when there is none.
pub fn check(test: &BootTest, run: &BootResult) -> Result<String, String> {
    let note = check_expect(test, run)?;
    if !test.release {
        return Ok(note);
    }
    let used = stack_within(run, crate::matrix::RELEASE_STACK_LIMIT)?;
    Ok(if note.is_empty() {
        used
    } else {
        format!("{note}; {used}")
    })
}

/// The boot stack's high-water mark the host read at the exit gate, if it is at most `limit`
/// bytes.
pub fn stack_within(run: &BootResult, limit: u64) -> Result<String, String> {
    let cap = match &run.capture {
        Some(Ok(cap)) => cap,
        Some(Err(e)) => return Err(format!("the host could not capture the machine: {e}")),
        None => return Err("the guest never reached the exit gate: stack not measured".into()),
    };
    let used = cap
        .stack
        .as_ref()
        .map_err(|e| format!("stack not measured: {e}"))?;
    if used.used > limit {
        return Err(format!("{used}: over the limit of {limit} bytes"));
    }
    Ok(format!("{used} (limit {limit})"))
}

fn check_expect(test: &BootTest, run: &BootResult) -> Result<String, String> {
    match test.expect {
        Expect::Hello => {
            passed(run)?;
            memory_map_printed(run)?;
        }
        Expect::DirectMap => {
            // The host's walk runs whatever the guest says, so a failed run also shows what
            // the live tables were.
            let t = std::time::Instant::now();
            let host = host_verdict(test, run);
            let walked_in = t.elapsed();
            if let Err(e) = passed(run) {
                return Err(match host {
                    Ok(_) => format!("{e} (the host verifier found nothing wrong)"),
                    Err(h) => format!("{e}; {h}"),
                });
            }
            let host = host?;
            in_guest_order(run)?;
            let f = Figures::find(&run.defmt_lines).map_err(|e| format!("{e:#}"))?;
            direct_map_figures(&f, &host)?;
            let mut note = format!(
                "{host} (walk and checks {:.0} ms)",
                walked_in.as_secs_f64() * 1e3
            );
            if test.board.is_xen() {
                let budget = crate::budget::check(&run.defmt_lines, &host)?;
                note.push_str(&format!("; {budget}"));
            }
            return Ok(note);
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
        }
        Expect::PageFault => page_fault(run)?,
        Expect::StackOverflow => stack_overflow(run)?,
        Expect::PassWith(texts) => {
            passed(run)?;
            for text in texts {
                if !run.defmt_lines.iter().any(|l| l.contains(text)) {
                    return Err(format!("passed, but no defmt line says {text:?}"));
                }
            }
        }
        Expect::SeedBug => seed_bug(run)?,
        // The comparison itself needs the corpus: `suite` runs it.
        Expect::Conformance { .. } => passed(run)?,
        Expect::Refusals => {
            passed(run)?;
            crate::refusals::check(run, test.guest_args)?
        }
        Expect::Strategies => {
            passed(run)?;
            crate::strategies::check(run, test.mem_mib)?
        }
        Expect::RuntimeMap => {
            passed(run)?;
            let line = run
                .defmt_lines
                .iter()
                .find(|l| l.contains(crate::runtime_map::MARKER))
                .ok_or("no `RESULT runtime_map` defmt line")?;
            crate::runtime_map::check(test.board, test.guest_args, test.mem_mib << 20, line)?;
        }
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
        }
    }
    Ok(String::new())
}

/// The runner's ordered output of a passing `direct_map` run follows the example's program
/// order: the figures (defmt) and the backend's report (defmt) before `direct_map: PASS` (the
/// console), the exit gate's line after it.
fn in_guest_order(run: &BootResult) -> Result<(), String> {
    use crate::order::Source;
    let find = |source: Source, text: &str| {
        run.output
            .iter()
            .position(|l| l.source == source && l.text.contains(text))
            .ok_or(format!("{text:?} is not in the ordered output"))
    };
    let figures = find(Source::Defmt, crate::figures::MARKER)?;
    let pass = find(Source::Console, "direct_map: PASS")?;
    let last_defmt_before = run.output[..pass]
        .iter()
        .rposition(|l| l.source == Source::Defmt);
    if figures > pass || last_defmt_before.is_none() {
        return Err(format!(
            "out of order: the figures are line {figures} of the output, `direct_map: PASS` \
             line {pass}"
        ));
    }
    // The backend's report is the last thing the example logs before it returns.
    let report_after = run.output[pass..].iter().any(|l| {
        l.source == Source::Defmt
            && (l.text.contains("xen-pv hypercalls, total") || l.text.contains("entries stored"))
    });
    if report_after {
        return Err("out of order: the backend's report comes after `direct_map: PASS`".into());
    }
    Ok(())
}

/// The `fault` example: the board's `#PF` report, with CR2 the address the example says it
/// reads (its `fault: reading 0x.., which is not mapped` line).
fn page_fault(run: &BootResult) -> Result<(), String> {
    failed(run)?;
    if mentions(run, "no page fault was raised") {
        return Err("the read of the unmapped address returned".into());
    }
    let address = run
        .defmt_lines
        .iter()
        .find_map(|l| {
            let rest = l.split_once("fault: reading 0x")?.1;
            let hex = rest.strip_suffix(", which is not mapped")?;
            u64::from_str_radix(hex, 16).ok()
        })
        .ok_or("no `fault: reading 0x.., which is not mapped` defmt line")?;
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

/// `fault.kind=stack`: the recursion started, and the fault that ended it is reported from
/// outside the example, with the `rsp` it faulted at in the guard page or the stack's lowest
/// page (the image's `__pvmmu_stack_guard`, not the guest's word). Bare metal: the board's
/// `#DF` report (the `#PF` on the guard page could not be pushed; the `#DF` runs on the IST
/// stack) and `Fail`. Xen dom0: Xen's report that it could not deliver the fault
/// (`domain_crash_sync called from entry.S`), the crashed domain's registers, and Xen's
/// reboot (QEMU exits 0 with `-no-reboot`).
fn stack_overflow(run: &BootResult) -> Result<(), String> {
    let guard = run
        .stack_guard
        .ok_or("the image has no __pvmmu_stack_guard symbol (no guard page)")?;
    if !mentions(run, "fault: overflowing the boot stack") {
        return Err("the example never started overflowing the stack".into());
    }
    if mentions(run, "no fault was raised") {
        return Err("the recursion returned: the stack never overflowed".into());
    }
    let rsp = match run.board {
        Board::Native => {
            failed(run)?;
            let report = "CPU EXCEPTION 8 (#DF double fault)";
            let line = run
                .console_text
                .lines()
                .find(|l| l.contains(report))
                .ok_or_else(|| format!("no {report:?} report on the console"))?;
            hex_after(line, "RSP 0x").ok_or("the #DF report has no RSP")?
        }
        Board::Xen => {
            if run.verdict != Verdict::Unexpected(0) {
                return Err(format!(
                    "expected Xen to crash dom0 and reboot, got: {}",
                    verdict_reason(run)
                ));
            }
            let text = &run.console_text;
            let sync = "domain_crash_sync called from entry.S";
            if !text.contains(sync) {
                return Err(format!("Xen's log does not say {sync:?}"));
            }
            let crashed = "Domain 0 (vcpu#0) crashed";
            let (_, dump) = text
                .split_once(crashed)
                .ok_or_else(|| format!("Xen's log does not say {crashed:?}"))?;
            if !dump.contains("Hardware Dom0 crashed") {
                return Err("Xen's log does not say it rebooted after dom0's crash".into());
            }
            hex_after(dump, "rsp: ").ok_or("Xen's register dump has no rsp")?
        }
        Board::XenDomU => return Err("no stack-overflow check for a domU".into()),
    };
    let pages = guard..guard + 2 * 4096;
    if !pages.contains(&rsp) {
        return Err(format!(
            "the fault's rsp {rsp:#x} is not at the guard page {guard:#x} (or the page above)"
        ));
    }
    Ok(())
}

/// The hexadecimal number right after the first `prefix` in `text`.
fn hex_after(text: &str, prefix: &str) -> Option<u64> {
    let rest = text.split_once(prefix)?.1;
    let end = rest
        .find(|c: char| !c.is_ascii_hexdigit())
        .unwrap_or(rest.len());
    u64::from_str_radix(&rest[..end], 16).ok()
}

/// `pgt_buf`'s frames as the guest logs them: `pgt_buf = PfnRange { start: S, end: E }`.
pub fn pgt_buf(lines: &[String]) -> Result<Pfns, String> {
    lines
        .iter()
        .find_map(|l| {
            let rest = l.split_once("pgt_buf = PfnRange { start: ")?.1;
            let (s, rest) = rest.split_once(", end: ")?;
            let e = rest.strip_suffix(" }")?;
            Some((s.parse().ok()?, e.parse().ok()?))
        })
        .ok_or_else(|| "no `pgt_buf = PfnRange { start: .., end: .. }` defmt line".into())
}

/// Xen's bootstrap page tables as Xen's own log places them (` Page tables:   A->B`, virtual,
/// with ` virt_base = 0x..`), in pfns: not the guest's word.
pub fn xen_boot_tables(console: &str) -> Result<Pfns, String> {
    let virt_base = console
        .lines()
        .find_map(|l| {
            let v = l.split_once("virt_base        = 0x")?.1.trim();
            u64::from_str_radix(v, 16).ok()
        })
        .ok_or("Xen's log has no `virt_base = 0x..` line")?;
    console
        .lines()
        .find_map(|l| {
            let (a, b) = l.split_once(" Page tables:")?.1.trim().split_once("->")?;
            let a = u64::from_str_radix(a.trim(), 16).ok()?;
            let b = u64::from_str_radix(b.trim(), 16).ok()?;
            Some((
                (a.checked_sub(virt_base)?) >> 12,
                (b.checked_sub(virt_base)?) >> 12,
            ))
        })
        .ok_or_else(|| "Xen's log has no ` Page tables: A->B` line".into())
}

/// The host's own walk of the tables the CPU used at the exit gate.
fn host_verdict(test: &BootTest, run: &BootResult) -> Result<Report, String> {
    host_report(test.board, test.mem_mib, run)
}

/// The host verifier's walk of a run on `board` with `mem_mib` (the machine's, or dom0's)
/// from what the host captured at the exit gate.
pub fn host_report(board: Board, mem_mib: u64, run: &BootResult) -> Result<Report, String> {
    let cap = match &run.capture {
        Some(Ok(c)) => c,
        Some(Err(e)) => return Err(format!("the host could not capture the machine: {e}")),
        None => return Err("the guest never reached the exit gate: nothing captured".into()),
    };
    let pgt_buf = pgt_buf(&run.defmt_lines)?;
    let (dom0_pages, xen_boot_tables) = match board {
        Board::Native => (0, (0, 0)),
        Board::Xen => (mem_mib << 8, xen_boot_tables(&run.console_text)?),
        Board::XenDomU => (
            mem_mib << 8,
            cap.boot_tables
                .ok_or("dom0 did not say where the domU's bootstrap tables are")?,
        ),
    };
    let machine = Machine {
        board,
        layout: cap.layout,
        dom0_pages,
        xen_boot_tables,
    };
    verify::verify(cap.mem.as_ref(), &cap.regs, &machine, pgt_buf)
        .map_err(|e| format!("host verifier: {e}"))
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
        Verdict::NoShutdown { reason: Some(r) } => {
            format!("the domU shut down with reason {r}, neither poweroff (0) nor crash (3)")
        }
        Verdict::NoShutdown { reason: None } => {
            let why = run
                .host_failed
                .as_deref()
                .unwrap_or("xl create failed or dom0 stopped");
            format!("the domU never shut down: {why}")
        }
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

/// The figures of a passing `direct_map` run against the host's own walk and expectation:
/// every number the guest printed must be one the host derived without it.
pub fn direct_map_figures(f: &Figures, host: &Report) -> Result<(), String> {
    let fail = |what: String| Err(format!("{what} in {f:?}"));
    if f.ram_bytes != host.ram_bytes {
        return fail(format!(
            "ram_bytes {} != {} the host gave (and found mapped)",
            f.ram_bytes, host.ram_bytes
        ));
    }
    if f.pages != host.expected || host.leaves != host.expected {
        return fail(format!(
            "pages {:?}, the host walked {:?} and expects {:?} (4K, 2M, 1G)",
            f.pages, host.leaves, host.expected
        ));
    }
    if f.computed != host.dm_tables || f.tables_used != host.tables_used() {
        return fail(format!(
            "computed {} / tables_used {}, the host walked {} tables below the root (+1)",
            f.computed, f.tables_used, host.dm_tables
        ));
    }
    if f.tail_released != host.tail_frames {
        return fail(format!(
            "tail_released {} != {} frames of pgt_buf that are no table",
            f.tail_released, host.tail_frames
        ));
    }
    if f.leaves_checked != host.total_leaves() {
        return fail(format!(
            "leaves_checked {} != {} leaves the host walked",
            f.leaves_checked,
            host.total_leaves()
        ));
    }
    if f.cross_checked == 0 || f.cross_checked != host.tail_frames {
        return fail(format!(
            "cross_checked {} != the {} tail frames",
            f.cross_checked, host.tail_frames
        ));
    }
    if f.pages_touched == 0 {
        return fail("no page touched".into());
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
            output: Vec::new(),
            qemu_stderr: String::new(),
            elapsed: Duration::from_millis(300),
            frames_file: None,
            host_console: String::new(),
            host_failed: None,
            capture: None,
            stack_guard: None,
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

    /// What the host's walk found at 6 GiB (its expectation from the q35 layout).
    fn host_6g() -> Report {
        let layout = crate::guest_mem::RamLayout::q35(6 << 30);
        let ram = verify::native_ram(&layout);
        let expected = verify::count(verify::largest_pages(&ram).into_iter().map(|p| p.1));
        Report {
            root: 0x100000,
            tables_walked: 12,
            dm_tables: 5,
            leaves: expected,
            expected,
            ram_bytes: ram.iter().map(|(s, e)| e - s).sum(),
            ram_pages: 1572734,
            writable_table_mappings: 14,
            tables_in_large_pages: 0,
            pgt_buf: (256, 326),
            tail_frames: 64,
            tail_mappings: 0,
            pgt_buf_boot_mappings: 0,
            tables_outside_boot_mapping: 0,
        }
    }

    #[test]
    fn direct_map_6g_passes_and_each_check_bites() {
        assert_eq!(direct_map_figures(&figures_6g(), &host_6g()), Ok(()));
        let bad = [
            Figures {
                tables_used: 7,
                ..figures_6g()
            },
            Figures {
                computed: 6,
                tables_used: 7,
                ..figures_6g()
            },
            // The headroom was 64, but the host counts 63 frames of pgt_buf that are no table.
            Figures {
                tail_released: 63,
                cross_checked: 63,
                ..figures_6g()
            },
            // The example's verifier checked one leaf per run.
            Figures {
                leaves_checked: 7,
                ..figures_6g()
            },
            Figures {
                cross_checked: 0,
                ..figures_6g()
            },
            Figures {
                pages_touched: 0,
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
            assert!(
                direct_map_figures(&f, &host_6g()).is_err(),
                "{f:?} accepted"
            );
        }
        // The guest agrees with itself, but the host walked something else.
        let walked_small = Report {
            leaves: [894 + 4 * 512 * 512, 1022, 0],
            ..host_6g()
        };
        assert!(direct_map_figures(&figures_6g(), &walked_small).is_err());
        let fewer_tables = Report {
            dm_tables: 4,
            ..host_6g()
        };
        assert!(direct_map_figures(&figures_6g(), &fewer_tables).is_err());
    }

    #[test]
    fn direct_map_without_a_capture_fails() {
        let t = test_at("direct_map", 1024);
        let line = "INFO RESULT direct_map Figures { ram_bytes: 1073209344, computed: 4, \
            tables_used: 5, tail_released: 64, pages: [894, 510, 0], leaves_checked: 1404, \
            pages_touched: 16376, cross_checked: 64 }";
        let r = run(
            Verdict::Pass,
            "",
            &["INFO pgt_buf = PfnRange { start: 256, end: 325 }", line],
        );
        let e = check(&t, &r).unwrap_err();
        assert!(e.contains("exit gate"), "{e}");
    }

    #[test]
    fn parses_the_guest_pgt_buf_and_xens_bootstrap_tables() {
        let lines = ["INFO pgt_buf = PfnRange { start: 833, end: 932 }".to_string()];
        assert_eq!(pgt_buf(&lines), Ok((833, 932)));
        assert!(pgt_buf(&lines[..0]).is_err());
        let xen = "(XEN) [    0.953605]     virt_base        = 0x0\n\
            (XEN) [    0.957618]  Page tables:   000000000033b000->0000000000340000\n";
        assert_eq!(xen_boot_tables(xen), Ok((0x33b, 0x340)));
        assert!(xen_boot_tables("").is_err());
    }

    #[test]
    fn fail_with_needs_the_fail_status_and_every_text() {
        let t = NATIVE[6];
        let Expect::FailWith(texts) = t.expect else {
            panic!("row 6 is a bad-map test")
        };
        let console = format!("{}\n", texts[0]);
        let defmt = format!("ERROR {}  (memview.rs:16)", texts[1]);
        assert_eq!(
            check(&t, &run(Verdict::Fail, &console, &[&defmt])),
            Ok(String::new())
        );
        assert!(check(&t, &run(Verdict::Timeout, &console, &[&defmt])).is_err());
        assert!(check(&t, &run(Verdict::Unexpected(0), &console, &[&defmt])).is_err());
        assert!(check(&t, &run(Verdict::Pass, &console, &[&defmt])).is_err());
        assert!(check(&t, &run(Verdict::Fail, &console, &[])).is_err());
    }

    #[test]
    fn a_stack_overflow_must_stop_at_the_guard_page() {
        let native = NATIVE
            .iter()
            .find(|t| t.expect == Expect::StackOverflow)
            .expect("a native stack-overflow row");
        let started = ["INFO fault: overflowing the boot stack"];
        let report = "*** CPU EXCEPTION 8 (#DF double fault), error code 0x0, RIP \
                      0x00000000002004b7, RSP 0x0000000000223e40\n";
        let at = |guard: Option<u64>, verdict, console: &str, defmt: &[&str]| {
            let mut r = run(verdict, console, defmt);
            r.stack_guard = guard;
            check(native, &r)
        };
        assert_eq!(
            at(Some(0x223000), Verdict::Fail, report, &started),
            Ok(String::new())
        );
        // The page above the guard (the stack's lowest) still counts; further up does not.
        assert!(at(Some(0x222000), Verdict::Fail, report, &started).is_ok());
        assert!(at(Some(0x221000), Verdict::Fail, report, &started).is_err());
        assert!(at(Some(0x224000), Verdict::Fail, report, &started).is_err());
        assert!(at(None, Verdict::Fail, report, &started).is_err());
        assert!(at(Some(0x223000), Verdict::Fail, report, &[]).is_err());
        assert!(at(Some(0x223000), Verdict::Unexpected(0), report, &started).is_err());
        let pf = report.replace("8 (#DF double fault)", "14 (#PF page fault)");
        assert!(at(Some(0x223000), Verdict::Fail, &pf, &started).is_err());

        let xen = crate::matrix::XEN
            .iter()
            .find(|t| t.expect == Expect::StackOverflow)
            .expect("a Xen stack-overflow row");
        let log = "(XEN) [    4.201432] domain_crash_sync called from entry.S: fault at \
                   ffff82d0403602d0 x86_64/entry.S#domain_crash_page_fault_6x8+0/0x4\n\
                   (XEN) [    4.202083] Domain 0 (vcpu#0) crashed on cpu#0:\n\
                   (XEN) [    4.213108] rbp: 0000000000000000   rsp: 0000000000245bb0   r8:  0\n\
                   (XEN) [    4.225666] Hardware Dom0 crashed: rebooting machine in 5 seconds.\n";
        let on_xen = |guard: u64, verdict, console: &str| {
            let mut r = run(verdict, console, &started);
            r.board = Board::Xen;
            r.stack_guard = Some(guard);
            check(xen, &r)
        };
        assert_eq!(
            on_xen(0x245000, Verdict::Unexpected(0), log),
            Ok(String::new())
        );
        assert!(on_xen(0x247000, Verdict::Unexpected(0), log).is_err());
        assert!(on_xen(0x245000, Verdict::Fail, log).is_err());
        let undelivered = log.replace("domain_crash_sync", "domain_crash");
        assert!(on_xen(0x245000, Verdict::Unexpected(0), &undelivered).is_err());
        let kept = log.replace("Hardware Dom0 crashed", "Dom0 kept");
        assert!(on_xen(0x245000, Verdict::Unexpected(0), &kept).is_err());
    }

    #[test]
    fn page_fault_needs_the_report_with_cr2() {
        let t = test_at("fault", 1024);
        let report = "*** CPU EXCEPTION 14 (#PF page fault), error code 0x0, RIP 0x2002dc\n    \
                      CR2 0x0000700000000000: not present on read\n";
        let says = ["INFO fault: reading 0x700000000000, which is not mapped"];
        assert_eq!(
            check(&t, &run(Verdict::Fail, report, &says)),
            Ok(String::new())
        );
        assert!(check(&t, &run(Verdict::Fail, report, &[])).is_err());
        assert!(check(&t, &run(Verdict::Unexpected(0), report, &says)).is_err());
        let other = report.replace("0x0000700000000000", "0x0000000000000000");
        assert!(check(&t, &run(Verdict::Fail, &other, &says)).is_err());
        let elsewhere = ["INFO fault: reading 0x700000001000, which is not mapped"];
        assert!(check(&t, &run(Verdict::Fail, report, &elsewhere)).is_err());
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
            Ok(String::new())
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
        assert_eq!(
            check(&t, &run(Verdict::Pass, console, &defmt)),
            Ok(String::new())
        );
        assert!(check(&t, &run(Verdict::Pass, console, &defmt[..3])).is_err());
        assert!(check(&t, &run(Verdict::Pass, "", &defmt)).is_err());
        assert!(check(&t, &run(Verdict::Fail, console, &defmt)).is_err());
    }
}
