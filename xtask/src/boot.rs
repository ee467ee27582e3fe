//! Booting one kernel ELF in QEMU and judging the run: the core of `xtask boot`, reusable by a
//! boot-test matrix.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::elf::{self, XEN_ELFNOTE_ENTRY, XEN_ELFNOTE_PHYS32_ENTRY};
use crate::mem_size::MemSize;
use crate::{defmt_stream, qemu, xen};

/// QEMU's exit status for isa-debug-exit value 0x10 (`Outcome::Pass`).
pub const STATUS_PASS: i32 = 33;
/// QEMU's exit status for isa-debug-exit value 0x11 (`Outcome::Fail`).
pub const STATUS_FAIL: i32 = 35;

/// Which board boots the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Board {
    /// Bare metal: QEMU's PVH loader.
    Native,
    /// Xen PV dom0 under Xen 4.17 in QEMU.
    Xen,
}

impl Board {
    /// The board an ELF is for when not told: Xen if it has `XEN_ELFNOTE_ENTRY`, else native
    /// if it has the PVH note; `None` for a host binary.
    pub fn detect(note_types: &[u32]) -> Option<Self> {
        if note_types.contains(&XEN_ELFNOTE_ENTRY) {
            Some(Self::Xen)
        } else if note_types.contains(&XEN_ELFNOTE_PHYS32_ENTRY) {
            Some(Self::Native)
        } else {
            None
        }
    }

    /// Memory when not told: the machine's for native, dom0's for Xen.
    pub const fn default_mem(self) -> MemSize {
        match self {
            Self::Native => MemSize::from_mib(1024),
            Self::Xen => MemSize::from_mib(256),
        }
    }

    /// Timeout when not told.
    pub const fn default_timeout(self) -> Duration {
        match self {
            Self::Native => Duration::from_secs(30),
            Self::Xen => Duration::from_secs(120),
        }
    }
}

impl std::str::FromStr for Board {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "native" | "pvh" => Ok(Self::Native),
            "xen" | "xen-pv" => Ok(Self::Xen),
            _ => Err(format!("unknown board {s:?} (native or xen)")),
        }
    }
}

impl fmt::Display for Board {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Native => "native",
            Self::Xen => "xen",
        })
    }
}

/// How to boot.
#[derive(Clone, Debug, Default)]
pub struct BootOptions {
    /// The board; `None` detects it from the ELF's notes ([`Board::detect`]).
    pub board: Option<Board>,
    /// Native: the machine's memory; Xen: dom0's (`dom0_mem`). `None`: [`Board::default_mem`].
    pub mem: Option<MemSize>,
    /// Kill QEMU after this long. `None`: [`Board::default_timeout`].
    pub timeout: Option<Duration>,
    /// Print the console and decoded defmt lines as they arrive.
    pub echo: bool,
    /// The guest's command line: `-append` on bare metal, appended to the `-initrd` module
    /// under Xen.
    pub guest_args: Vec<String>,
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The example exited `Pass` (status 33).
    Pass,
    /// The example exited `Fail`, or a panic or CPU exception did (status 35).
    Fail,
    /// QEMU exited with another status: 0 after a triple fault or reset (`-no-reboot`), or
    /// Xen rebooting after a guest crash; 1 for a QEMU error.
    Unexpected(i32),
    /// QEMU was killed by a signal.
    Signalled,
    /// Still running at the timeout; killed.
    Timeout,
}

impl Verdict {
    fn from_status(status: Option<ExitStatus>) -> Self {
        match status.map(|s| s.code()) {
            None => Self::Timeout,
            Some(None) => Self::Signalled,
            Some(Some(STATUS_PASS)) => Self::Pass,
            Some(Some(STATUS_FAIL)) => Self::Fail,
            Some(Some(code)) => Self::Unexpected(code),
        }
    }

    /// The runner's exit status: 0 only for [`Verdict::Pass`], 1 for an example's `Fail`, 2
    /// for a run that ended without a verdict.
    pub const fn exit_code(self) -> u8 {
        match self {
            Self::Pass => 0,
            Self::Fail => 1,
            _ => 2,
        }
    }
}

/// What a boot produced.
#[derive(Clone, Debug)]
pub struct BootResult {
    /// The board it ran on.
    pub board: Board,
    /// Machine (native) or dom0 (Xen) memory.
    pub mem: MemSize,
    /// QEMU's exit code (`None` if killed).
    pub status: Option<i32>,
    /// The judgement.
    pub verdict: Verdict,
    /// COM1 (and for Xen, Xen's log), escape sequences removed.
    pub console_text: String,
    /// The decoded defmt lines.
    pub defmt_lines: Vec<String>,
    /// QEMU's stderr.
    pub qemu_stderr: String,
    /// Wall time of the QEMU run.
    pub elapsed: Duration,
    /// The raw defmt frames, kept when the run did not pass.
    pub frames_file: Option<PathBuf>,
}

impl BootResult {
    /// One line saying how the run ended.
    pub fn summary(&self) -> String {
        let how = match self.verdict {
            Verdict::Pass => "PASS".to_string(),
            Verdict::Fail => "FAIL: the example reported failure (panic, fault or check)".into(),
            Verdict::Unexpected(0) => "FAIL: QEMU exited 0 without the debug-exit device \
                (triple fault, reset, or Xen rebooted after a guest crash)"
                .into(),
            Verdict::Unexpected(c) => format!("FAIL: QEMU exited with status {c}"),
            Verdict::Signalled => "FAIL: QEMU was killed by a signal".into(),
            Verdict::Timeout => "FAIL: timed out (QEMU killed)".into(),
        };
        format!(
            "{how} [{} board, mem {}, {:.2} s]",
            self.board,
            self.mem,
            self.elapsed.as_secs_f64()
        )
    }
}

/// Boots `elf` per `opts`, waits for it (bounded by the timeout), decodes its defmt frames.
///
/// Errors are setup failures (not a kernel, no QEMU, no Xen); how the guest ended is in
/// [`BootResult::verdict`].
pub fn boot(elf: &Path, opts: &BootOptions) -> Result<BootResult> {
    let bytes = std::fs::read(elf).with_context(|| format!("reading {}", elf.display()))?;
    let notes = elf::xen_note_types(&bytes).with_context(|| elf.display().to_string())?;
    let board = match (opts.board, Board::detect(&notes)) {
        (Some(b), _) => b,
        (None, Some(b)) => b,
        (None, None) => bail!(
            "{} carries no Xen/PVH entry note: not a kernel",
            elf.display()
        ),
    };
    let mem = opts.mem.unwrap_or(board.default_mem());
    let timeout = opts.timeout.unwrap_or(board.default_timeout());
    let frames = frames_path();
    std::fs::File::create(&frames).with_context(|| format!("creating {}", frames.display()))?;
    let cmd = match board {
        Board::Native => qemu::native_command(elf, &opts.guest_args, mem, &frames),
        Board::Xen => {
            let xen = xen::provision(&crate::workspace_root().join("target/xen"))?;
            qemu::xen_command(&xen, elf, &opts.guest_args, mem, &frames)?
        }
    };

    let echo = opts.echo;
    let print = |line: &str| {
        if echo {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", line.trim_end_matches('\n'));
        }
    };
    let print_defmt = |line: &str| print(&format!("defmt: {line}"));
    let stop = AtomicBool::new(false);
    let (run, defmt_lines) = std::thread::scope(|s| {
        let decoder = s.spawn(|| defmt_stream::follow(&bytes, &frames, &stop, &print_defmt));
        let run = qemu::run(cmd, timeout, echo, &print);
        stop.store(true, Ordering::Release);
        (run, decoder.join().expect("defmt decoder thread"))
    });
    let run = run?;
    let defmt_lines = defmt_lines?;
    let verdict = Verdict::from_status(run.status);
    let frames_file = if verdict == Verdict::Pass {
        let _ = std::fs::remove_file(&frames);
        None
    } else {
        Some(frames)
    };
    Ok(BootResult {
        board,
        mem,
        status: run.status.and_then(|s| s.code()),
        verdict,
        console_text: qemu::clean(&run.console),
        defmt_lines,
        qemu_stderr: String::from_utf8_lossy(&run.stderr).into_owned(),
        elapsed: run.elapsed,
        frames_file,
    })
}

/// A fresh file name for one run's COM2 capture.
fn frames_path() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("pvmmu-{}-{n}-com2.bin", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn board_detection_prefers_xen() {
        assert_eq!(Board::detect(&[18]), Some(Board::Native));
        assert_eq!(Board::detect(&[6, 5, 8, 1, 2]), Some(Board::Xen));
        assert_eq!(Board::detect(&[18, 1]), Some(Board::Xen));
        assert_eq!(Board::detect(&[]), None);
    }
}
