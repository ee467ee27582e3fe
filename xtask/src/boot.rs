//! Booting one kernel ELF in QEMU and judging the run: the core of `xtask boot`, reusable by a
//! boot-test matrix.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::elf::{self, XEN_ELFNOTE_ENTRY, XEN_ELFNOTE_PHYS32_ENTRY};
use crate::guest_mem::{self, RamFile, RamLayout};
use crate::mem_size::MemSize;
use crate::qmp::{Qmp, Registers};
use crate::{defmt_stream, domu, order, qemu, walker, xen};

/// The boards' exit gate (`boards/src/common/exit.rs`): the symbol the guest waits on, the
/// value that opens it, and the console line saying the guest is there.
pub const GATE_SYMBOL: &str = "PVMMU_EXIT_GATE";
/// See [`GATE_SYMBOL`].
pub const GATE_OPEN: u64 = 0x4e45_504f_4554_4147;
/// See [`GATE_SYMBOL`].
pub const GATE_MARKER: &str = "pvmmu: at the exit gate";

/// QEMU's exit status for isa-debug-exit value 0x10 (`Outcome::Pass`).
pub const STATUS_PASS: i32 = 33;
/// QEMU's exit status for isa-debug-exit value 0x11 (`Outcome::Fail`).
pub const STATUS_FAIL: i32 = 35;
/// QEMU's exit status for isa-debug-exit value 0x12: the guest refused its arguments.
pub const STATUS_SETUP_ERROR: i32 = 37;

/// Which board boots the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Board {
    /// Bare metal: QEMU's PVH loader.
    Native,
    /// Xen PV dom0 under Xen 4.17 in QEMU.
    Xen,
    /// Xen PV domU, created by `xl` in a Linux dom0 under Xen 4.17 in QEMU ([`crate::domu`]).
    XenDomU,
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
            Self::XenDomU => MemSize::from_mib(64),
        }
    }

    /// Whether the image runs as a Xen PV guest (dom0 or domU).
    pub const fn is_xen(self) -> bool {
        matches!(self, Self::Xen | Self::XenDomU)
    }

    /// Timeout when not told: it grows with memory (Xen's own boot and dom0's build take
    /// about 5.5 s per GiB of dom0 memory under TCG; a native guest's direct map, less).
    pub fn default_timeout(self, mem: MemSize) -> Duration {
        let gib = mem.mib().div_ceil(1024);
        match self {
            Self::Native => Duration::from_secs(30 + 2 * gib),
            Self::Xen => Duration::from_secs(120 + 10 * gib),
            // The domU's own time, on top of dom0's boot (`domu::DOM0_BOOT_TIMEOUT`).
            Self::XenDomU => Duration::from_secs(60 + 10 * gib),
        }
    }

    /// The ELF note an image must carry to boot on this board.
    pub const fn entry_note(self) -> u32 {
        match self {
            Self::Native => XEN_ELFNOTE_PHYS32_ENTRY,
            Self::Xen | Self::XenDomU => XEN_ELFNOTE_ENTRY,
        }
    }

    /// The least memory the board can boot `image_end` (one past the image's last loaded
    /// byte, `.bss` and boot stacks included) in, rounded up to whole MiB: bare metal at least
    /// 3 MiB (measured: below, QEMU's PVH loader has no room for the image at 2 MiB); a Xen
    /// dom0 at least 4 MiB (Xen's smallest dom0 that booted here).
    pub fn min_mem(self, image_end: u64) -> MemSize {
        let mib = image_end.div_ceil(1 << 20);
        match self {
            Self::Native => MemSize::from_mib(mib.max(3)),
            Self::Xen | Self::XenDomU => MemSize::from_mib(mib.max(4)),
        }
    }
}

impl std::str::FromStr for Board {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "native" | "pvh" => Ok(Self::Native),
            "xen" | "xen-pv" => Ok(Self::Xen),
            "xen-domu" => Ok(Self::XenDomU),
            _ => Err(format!("unknown board {s:?} (native, xen or xen-domu)")),
        }
    }
}

impl fmt::Display for Board {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Native => "native",
            Self::Xen => "xen",
            Self::XenDomU => "xen-domu",
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
    /// Extra QEMU arguments, appended after the runner's own (a later `-machine` or `-smp`
    /// overrides the runner's).
    pub qemu_args: Vec<String>,
    /// Keep the raw defmt frames of a run that did not pass (they are deleted otherwise).
    pub keep_frames: bool,
    /// Xen only: a file Xen loads as dom0's initial module (`start_info.mod_start`).
    pub module: Option<PathBuf>,
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
    /// QEMU itself failed (status 1: bad arguments, no memory for the guest, a missing
    /// firmware file): a setup error, not the guest's.
    QemuError,
    /// The guest refused how it was started (an unknown `pvmmu.*` argument): status 37.
    GuestSetupError,
    /// A domU ended without poweroff or crash: `reason` is xl's shutdown reason code if it
    /// shut down otherwise (1 reboot, 2 suspend, 4 watchdog, 5 soft reset), `None` if it
    /// never did (xl failed, or dom0 did not report it).
    NoShutdown {
        /// xl's reason code.
        reason: Option<u32>,
    },
}

impl Verdict {
    fn from_status(status: Option<ExitStatus>) -> Self {
        match status.map(|s| s.code()) {
            None => Self::Timeout,
            Some(None) => Self::Signalled,
            Some(Some(STATUS_PASS)) => Self::Pass,
            Some(Some(STATUS_FAIL)) => Self::Fail,
            Some(Some(1)) => Self::QemuError,
            Some(Some(STATUS_SETUP_ERROR)) => Self::GuestSetupError,
            Some(Some(code)) => Self::Unexpected(code),
        }
    }

    /// The runner's exit status: 0 only for [`Verdict::Pass`], 1 for an example's `Fail`, 2
    /// for a run that ended without a verdict, 3 when QEMU itself failed.
    pub const fn exit_code(self) -> u8 {
        match self {
            Self::Pass => 0,
            Self::Fail => 1,
            Self::QemuError | Self::GuestSetupError => 3,
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
    /// The console and defmt lines in the order the guest wrote them ([`crate::order`]).
    pub output: Vec<order::Line>,
    /// QEMU's stderr.
    pub qemu_stderr: String,
    /// Wall time of the QEMU run.
    pub elapsed: Duration,
    /// The raw defmt frames, kept when the run did not pass.
    pub frames_file: Option<PathBuf>,
    /// What the host captured at the exit gate: `None` if the guest never got there (on
    /// xen-domu: if dom0 never reported the gate).
    pub capture: Option<Result<Capture, String>>,
    /// xen-domu: the host's console (Xen's and dom0's, COM1); empty on the other boards,
    /// whose console is `console_text`.
    pub host_console: String,
    /// xen-domu: dom0's own failure message, if its init gave up.
    pub host_failed: Option<String>,
    /// The address of the boot stack's guard page (the image's `__pvmmu_stack_guard`), if
    /// the image has the symbol.
    pub stack_guard: Option<u64>,
}

/// The machine as the host found it at the exit gate, stopped: the registers from QEMU's
/// monitor, and its RAM (the backing file, which after the run still holds the memory of
/// that moment: past the gate the guest only exits).
#[derive(Clone)]
pub struct Capture {
    /// The first CPU's registers while stopped at the gate.
    pub regs: Registers,
    /// The machine's RAM (xen-domu: the pages the host copied at the gate).
    pub mem: Arc<dyn walker::PhysMem + Send + Sync>,
    /// The machine's RAM layout (what QEMU got).
    pub layout: RamLayout,
    /// xen-domu: the domU's bootstrap page tables as libxc's log places them (pfns).
    pub boot_tables: Option<crate::verify::Pfns>,
    /// Where the gate word was (physical/machine address), found by walking from CR3.
    pub gate_pa: u64,
    /// How long the guest was held at the gate (stop to cont).
    pub held: Duration,
    /// The boot stack's high-water mark at the gate ([`crate::stack`]).
    pub stack: Result<crate::stack::StackUse, String>,
}

impl fmt::Debug for Capture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Capture")
            .field("regs", &self.regs)
            .field("layout", &self.layout)
            .field("boot_tables", &self.boot_tables)
            .field("gate_pa", &self.gate_pa)
            .field("held", &self.held)
            .finish_non_exhaustive()
    }
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
            Verdict::QemuError => "SETUP ERROR: QEMU failed to start the machine".into(),
            Verdict::GuestSetupError => {
                "SETUP ERROR: the guest refused its command line (see the console)".into()
            }
            Verdict::NoShutdown { reason: Some(r) } => {
                format!("FAIL: the domU shut down with reason {r}, neither poweroff nor crash")
            }
            Verdict::NoShutdown { reason: None } => {
                "FAIL: the domU never shut down (xl or dom0 failed; see the host console)".into()
            }
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
            "{} carries no Xen/PVH entry note: not a kernel, or a kernel built without a \
             board (enable the `native` or `xen-pv` feature)",
            elf.display()
        ),
    };
    if !notes.contains(&board.entry_note()) {
        let feature = match board {
            Board::Native => "native",
            Board::Xen | Board::XenDomU => "xen-pv",
        };
        bail!(
            "{} has no entry note for the {board} board: build it with the `{feature}` \
             feature (notes present: {notes:?})",
            elf.display()
        );
    }
    let mem = opts.mem.unwrap_or(board.default_mem());
    let need = board.min_mem(elf::load_end(&bytes).with_context(|| elf.display().to_string())?);
    if mem.mib() < need.mib() {
        bail!(
            "--mem {mem} is too little for {} on the {board} board: the image needs at \
             least {need}",
            elf.display()
        );
    }
    let timeout = opts.timeout.unwrap_or(board.default_timeout(mem));
    if board == Board::XenDomU {
        return boot_domu(elf, opts, mem, timeout);
    }
    let gate_va = elf::symbol_address(&bytes, GATE_SYMBOL).with_context(|| {
        format!(
            "{}: no {GATE_SYMBOL} symbol (the boards' exit gate)",
            elf.display()
        )
    })?;
    let stack_vas = elf::symbol_address(&bytes, crate::stack::BOTTOM_SYMBOL)
        .and_then(|b| Ok((b, elf::symbol_address(&bytes, crate::stack::TOP_SYMBOL)?)))
        .map_err(|e| format!("{}: the boot stack's symbols: {e:#}", elf.display()));
    let stack_guard = elf::symbol_address(&bytes, crate::stack::GUARD_SYMBOL).ok();
    let frames = frames_path()?;
    std::fs::File::create(&frames).with_context(|| format!("creating {}", frames.display()))?;
    if board == Board::Native && opts.module.is_some() {
        bail!("a module is for Xen's dom0 only");
    }
    let machine = match board {
        Board::Native => mem,
        Board::Xen => qemu::xen_machine_mem(mem),
        Board::XenDomU => bail!("xen-domu boots through domu::run_batch"),
    };
    let ram_path = guest_mem::ram_dir().join(scratch_name("ram"));
    let ram = Arc::new(
        RamFile::create(&ram_path, RamLayout::q35(machine.mib() << 20))
            .with_context(|| format!("creating {}", ram_path.display()))?,
    );
    let qmp_path = std::env::temp_dir().join(scratch_name("qmp.sock"));
    let _ = std::fs::remove_file(&qmp_path);
    let host = qemu::Host {
        ram_file: ram.path(),
        qmp: &qmp_path,
    };
    let mut cmd = match board {
        Board::Native => qemu::native_command(elf, &opts.guest_args, mem, &frames, &host)?,
        Board::Xen => {
            let xen = xen::provision(&crate::workspace_root().join("target/xen"))?;
            qemu::xen_command(
                &xen,
                elf,
                &opts.guest_args,
                opts.module.as_deref(),
                mem,
                &frames,
                &host,
            )?
        }
        Board::XenDomU => bail!("xen-domu boots through domu::run_batch"),
    };
    let capture: Mutex<Option<Result<Capture, String>>> = Mutex::new(None);
    let at_gate = || {
        let c = open_gate(&qmp_path, &ram, gate_va, &stack_vas).map_err(|e| format!("{e:#}"));
        if let Ok(mut slot) = capture.lock() {
            *slot = Some(c);
        }
    };
    cmd.args(&opts.qemu_args);

    let echo = opts.echo;
    let kind = match board {
        Board::Native => order::ConsoleKind::GuestOnly,
        Board::Xen | Board::XenDomU => order::ConsoleKind::Xen,
    };
    let merger = Mutex::new(order::Merger::new(kind, |line: &order::Line| {
        if echo {
            let _ = writeln!(std::io::stdout().lock(), "{}", line.display());
        }
    }));
    let with_merger = |f: &mut dyn FnMut(&mut order::Merger<'_>)| {
        if let Ok(mut m) = merger.lock() {
            f(&mut m);
        }
    };
    let on_console = |line: &str| with_merger(&mut |m| m.console(line));
    let on_defmt = |event: defmt_stream::Event<'_>| {
        with_merger(&mut |m| match event {
            defmt_stream::Event::Line(stamp, text) => m.defmt(stamp, text),
            defmt_stream::Event::Drained => m.drained(),
        })
    };
    let stop = AtomicBool::new(false);
    let (run, defmt_lines) = std::thread::scope(|s| {
        let decoder = s.spawn(|| defmt_stream::follow(&bytes, &frames, &stop, &on_defmt));
        let marker = qemu::OnMarker {
            text: GATE_MARKER,
            then: &at_gate,
        };
        let run = qemu::run(cmd, timeout, echo, &on_console, Some(marker));
        stop.store(true, Ordering::Release);
        (run, decoder.join().expect("defmt decoder thread"))
    });
    let output = match merger.into_inner() {
        Ok(mut m) => {
            m.finish();
            m.into_lines()
        }
        Err(_) => Vec::new(),
    };
    let _ = std::fs::remove_file(&qmp_path);
    let run = run?;
    let defmt_lines = defmt_lines?;
    let capture = capture.into_inner().unwrap_or(None);
    let verdict = Verdict::from_status(run.status);
    let frames_file = if verdict != Verdict::Pass && opts.keep_frames {
        Some(frames)
    } else {
        let _ = std::fs::remove_file(&frames);
        None
    };
    if verdict == Verdict::QemuError {
        bail!(
            "QEMU failed to start the machine (status 1): {}",
            String::from_utf8_lossy(&run.stderr).trim()
        );
    }
    Ok(BootResult {
        board,
        mem,
        status: run.status.and_then(|s| s.code()),
        verdict,
        console_text: qemu::clean(&run.console),
        defmt_lines,
        output,
        qemu_stderr: String::from_utf8_lossy(&run.stderr).into_owned(),
        elapsed: run.elapsed,
        frames_file,
        capture,
        host_console: String::new(),
        host_failed: None,
        stack_guard,
    })
}

/// `boot` on the xen-domu board: one job in one boot of the Xen host; with `echo`, dom0's
/// progress lines live, then the domU's console and decoded defmt lines.
fn boot_domu(
    elf: &Path,
    opts: &BootOptions,
    mem: MemSize,
    timeout: Duration,
) -> Result<BootResult> {
    let job = domu::Job {
        elf: elf.to_path_buf(),
        mem,
        args: opts.guest_args.clone(),
        timeout,
    };
    let run = domu::run_batch(std::slice::from_ref(&job), &opts.qemu_args, opts.echo)?
        .pop()
        .context("the Xen host returned no result")?;
    if opts.echo {
        let mut out = std::io::stdout().lock();
        for l in &run.output {
            let _ = writeln!(out, "{}", l.display());
        }
    }
    Ok(run)
}

/// A fresh file name for one run's COM2 capture, under `target/xtask/runs/`.
fn frames_path() -> Result<PathBuf> {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let dir = crate::workspace_root().join("target/xtask/runs");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir.join(format!("pvmmu-{}-{n}-com2.bin", std::process::id())))
}

/// At the exit gate: stop the machine, read its registers, find the gate word by walking the
/// guest's page tables from CR3 (the host's walker), open it, let the machine go on.
fn open_gate(
    qmp: &Path,
    ram: &Arc<RamFile>,
    gate_va: u64,
    stack_vas: &Result<(u64, u64), String>,
) -> Result<Capture> {
    let mut q = Qmp::connect(qmp)?;
    q.execute("stop", None)?;
    let stopped = Instant::now();
    // QEMU has the file mapped and we hold it open: its name is no longer needed, and a run
    // killed from here on leaves nothing behind in /dev/shm.
    ram.unlink();
    let regs = Registers::parse(&q.hmp("info registers")?)?;
    if !regs.four_level_paging() {
        bail!("the CPU does not use 4-level long-mode paging at the gate: {regs:x?}");
    }
    let leaf = walker::translate(ram.as_ref(), regs.root(), gate_va)
        .map_err(|e| anyhow::anyhow!("walking to the gate {gate_va:#x}: {e}"))?
        .with_context(|| format!("the gate {gate_va:#x} is not mapped under CR3"))?;
    let gate_pa = leaf.pa + (gate_va & (leaf.size.bytes() - 1));
    let before = walker::PhysMem::read_u64(ram.as_ref(), gate_pa).map_err(anyhow::Error::msg)?;
    if before != 0 {
        bail!("the gate word at {gate_pa:#x} holds {before:#x}, not 0: wrong frame?");
    }
    let stack = stack_vas
        .clone()
        .and_then(|(bottom, top)| crate::stack::measure(ram.as_ref(), regs.root(), bottom, top));
    ram.write_u64(gate_pa, GATE_OPEN)
        .map_err(anyhow::Error::msg)?;
    // The guest exits as soon as it runs again: QEMU may be gone before it answers `cont`,
    // which is as good as an answer.
    q.cont()?;
    Ok(Capture {
        regs,
        mem: Arc::clone(ram) as Arc<dyn walker::PhysMem + Send + Sync>,
        layout: ram.layout(),
        boot_tables: None,
        gate_pa,
        held: stopped.elapsed(),
        stack,
    })
}

/// A fresh file name for one run's scratch file (RAM, QMP socket).
fn scratch_name(what: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("pvmmu-{}-{n}-{what}", std::process::id())
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

    #[test]
    fn the_domu_board_by_name() {
        assert_eq!("xen-domu".parse::<Board>(), Ok(Board::XenDomU));
        assert_eq!(Board::XenDomU.to_string(), "xen-domu");
        assert!(Board::XenDomU.is_xen() && Board::Xen.is_xen() && !Board::Native.is_xen());
        assert_eq!(Board::XenDomU.entry_note(), XEN_ELFNOTE_ENTRY);
        assert_eq!(Verdict::NoShutdown { reason: Some(1) }.exit_code(), 2);
    }

    #[test]
    fn memory_floors_and_timeouts() {
        // The native image loads at 2 MiB: a 62 KiB image needs 3 MiB, one ending past 3 MiB
        // needs 4.
        assert_eq!(Board::Native.min_mem(0x20_f800).mib(), 3);
        assert_eq!(Board::Native.min_mem(0x30_0001).mib(), 4);
        assert_eq!(Board::Native.min_mem(0).mib(), 3);
        assert_eq!(Board::Xen.min_mem(0x10_0000).mib(), 4);
        let small = Board::Xen.default_timeout(MemSize::from_mib(64));
        let big = Board::Xen.default_timeout(MemSize::from_mib(23 * 1024));
        assert!(big.as_secs() >= 23 * 6 + 120 && small < big);
        assert_eq!(Verdict::from_status(None).exit_code(), 2);
    }
}
