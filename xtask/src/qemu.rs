//! Running QEMU: the command lines for both boards, and a bounded, captured run.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::mem_size::MemSize;

/// The emulator binary.
pub const QEMU: &str = "qemu-system-x86_64";

/// Where the machine's RAM lives and how the host reaches the monitor.
#[derive(Clone, Debug)]
pub struct Host<'a> {
    /// The file backing all of the machine's RAM (shared with QEMU).
    pub ram_file: &'a Path,
    /// The QMP socket QEMU listens on.
    pub qmp: &'a Path,
}

/// Arguments both boards share: q35 under TCG, no display, no network, no reboot (a triple
/// fault or reset ends QEMU with status 0), isa-debug-exit on port 0xf4, COM1 on stdio (text),
/// COM2 into `frames` (defmt); RAM in `host.ram_file` (shared, so the host reads and writes
/// what the guest sees) and QMP on `host.qmp`.
fn common(cmd: &mut Command, machine_mem: MemSize, frames: &Path, host: &Host<'_>) {
    cmd.args(["-cpu", "max", "-accel", "tcg"])
        .arg("-object")
        .arg(format!(
            "memory-backend-file,id=pvmmu.ram,size={}M,mem-path={},share=on",
            machine_mem.mib(),
            host.ram_file.display().to_string().replace(',', ",,")
        ))
        .args(["-machine", "q35,memory-backend=pvmmu.ram"])
        .arg("-m")
        .arg(format!("{}M", machine_mem.mib()))
        .arg("-qmp")
        .arg(format!("unix:{},server=on,wait=off", host.qmp.display()))
        .args(["-display", "none", "-no-reboot", "-net", "none"])
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
        .args(["-serial", "mon:stdio", "-serial"])
        .arg(format!("file:{}", frames.display()));
}

/// Bare metal: QEMU loads `elf` itself through its PVH note; `guest_args`, joined by spaces,
/// become the kernel command line (`-append`, which QEMU hands over as
/// `hvm_start_info.cmdline_paddr`).
pub fn native_command(
    elf: &Path,
    guest_args: &[String],
    mem: MemSize,
    frames: &Path,
    host: &Host<'_>,
) -> Result<Command> {
    let mut cmd = Command::new(qemu()?);
    common(&mut cmd, mem, frames, host);
    cmd.arg("-kernel").arg(elf);
    if !guest_args.is_empty() {
        cmd.arg("-append").arg(guest_args.join(" "));
    }
    Ok(cmd)
}

/// The emulator, installed from Debian's package (`apt-get install qemu-system-x86`) when it
/// is missing and we may (root, `apt-get` present), as Xen is provisioned; otherwise an error
/// that says how to get it.
pub fn qemu() -> Result<&'static str> {
    crate::apt::provide(QEMU, "qemu-system-x86", "every boot needs it")?;
    Ok(QEMU)
}

/// The machine memory for a Xen boot with `dom0_mem`: 512 MiB more (at least 1 GiB) for Xen.
pub fn xen_machine_mem(dom0_mem: MemSize) -> MemSize {
    MemSize::from_mib((dom0_mem.mib() + 512).max(1024))
}

/// Xen PV: QEMU multiboots `xen`, which boots `elf` as dom0 with `dom0_mem` (and `module`, if
/// given, as dom0's initial module); the machine has
/// [`xen_machine_mem`].
pub fn xen_command(
    xen: &Path,
    elf: &Path,
    guest_args: &[String],
    module: Option<&Path>,
    dom0_mem: MemSize,
    frames: &Path,
    host: &Host<'_>,
) -> Result<Command> {
    let elf_str = elf.to_str().context("ELF path is not UTF-8")?;
    if elf_str.contains([',', ' ']) {
        bail!("QEMU's -initrd cannot take a path with ',' or ' ': {elf_str}");
    }
    let machine = xen_machine_mem(dom0_mem);
    let mut cmd = Command::new(qemu()?);
    common(&mut cmd, machine, frames, host);
    cmd.arg("-kernel").arg(xen).arg("-append").arg(format!(
        "loglvl=all guest_loglvl=all console=com1 console_timestamps=boot dom0=verbose \
         dom0_mem={dom0_mem}"
    ));
    let module_path = module;
    let mut module = elf_str.to_string();
    for a in guest_args {
        module.push(' ');
        module.push_str(&a.replace(',', ",,"));
    }
    if let Some(m) = module_path {
        let m = m.to_str().context("module path is not UTF-8")?;
        if m.contains([',', ' ']) {
            bail!("QEMU's -initrd cannot take a path with ',' or ' ': {m}");
        }
        module.push(',');
        module.push_str(m);
    }
    cmd.arg("-initrd").arg(module);
    Ok(cmd)
}

/// What a bounded QEMU run left behind.
#[derive(Debug)]
pub struct RunOutput {
    /// QEMU's exit status, or `None` when it was killed at the timeout.
    pub status: Option<ExitStatus>,
    /// Everything QEMU wrote to stdout (COM1 and the muxed monitor).
    pub console: Vec<u8>,
    /// QEMU's own diagnostics.
    pub stderr: Vec<u8>,
    /// Wall time from spawn to exit.
    pub elapsed: Duration,
}

/// A console line to react to: when a line containing `text` first completes, `then` runs
/// (on a thread of its own, so the console keeps being drained meanwhile).
pub struct OnMarker<'a> {
    /// The text.
    pub text: &'a str,
    /// What to do.
    pub then: &'a (dyn Fn() + Sync),
}

/// Runs `cmd` for at most `timeout`, capturing stdout and stderr; console lines are passed to
/// `on_line` as they complete (escape sequences removed); with `echo`, QEMU's stderr is copied
/// to ours at the end. `marker` is acted on once.
pub fn run(
    mut cmd: Command,
    timeout: Duration,
    echo: bool,
    on_line: &(dyn Fn(&str) + Sync),
    marker: Option<OnMarker<'_>>,
) -> Result<RunOutput> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            anyhow::anyhow!(
                "{QEMU} not found: install it with `apt-get install qemu-system-x86` \
                 (Debian/Ubuntu, as root)"
            )
        } else {
            anyhow::anyhow!("starting {QEMU}: {e}")
        }
    })?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let (seen, wait) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|s| {
        if let Some(m) = &marker {
            s.spawn(move || {
                if wait.recv().is_ok() {
                    (m.then)();
                }
            });
        }
        let text = marker.as_ref().map(|m| m.text);
        let console = s.spawn(move || -> Vec<u8> {
            let mut all = Vec::new();
            let mut line = Vec::new();
            let mut buf = [0u8; 4096];
            let mut seen = Some(seen);
            while let Ok(n @ 1..) = stdout.read(&mut buf) {
                all.extend_from_slice(&buf[..n]);
                for &b in &buf[..n] {
                    line.push(b);
                    if b == b'\n' {
                        let l = clean(&line);
                        if text.is_some_and(|t| l.contains(t)) {
                            if let Some(tx) = seen.take() {
                                let _ = tx.send(());
                            }
                        }
                        on_line(&l);
                        line.clear();
                    }
                }
            }
            if !line.is_empty() {
                on_line(&clean(&line));
            }
            all
        });
        let errors = s.spawn(move || {
            let mut all = Vec::new();
            let _ = stderr.read_to_end(&mut all);
            all
        });
        let status = wait_bounded(&mut child, timeout)?;
        let elapsed = start.elapsed();
        let console = console.join().expect("console reader");
        let stderr = errors.join().expect("stderr reader");
        if echo && !stderr.is_empty() {
            let _ = std::io::stderr().write_all(&stderr);
        }
        Ok(RunOutput {
            status,
            console,
            stderr,
            elapsed,
        })
    })
}

/// Waits for `child` until `timeout`, then kills it (`Ok(None)`).
fn wait_bounded(child: &mut Child, timeout: Duration) -> Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().context("waiting for QEMU")? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `bytes` as text without ANSI/VT escape sequences (firmware resets and clears the terminal
/// otherwise) and without carriage returns.
pub fn clean(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            // CSI: parameters and intermediates, then one final byte in '@'..='~'; anything
            // else after ESC is a two-character sequence such as ESC c (reset).
            '\x1b' => {
                if chars.next() == Some('[') {
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
            }
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::clean;

    #[test]
    fn clean_strips_escapes() {
        assert_eq!(
            clean(b"\x1bc\x1b[?7l\x1b[2J\x1b[0mSeaBIOS\r\n"),
            "SeaBIOS\n"
        );
        assert_eq!(clean(b"plain text\n"), "plain text\n");
    }
}
