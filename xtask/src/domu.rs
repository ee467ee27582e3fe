//! The Xen host for `--board xen-domu`: Xen 4.17 with a Linux dom0 in QEMU, all from Debian's
//! packages, which runs example kernels as unprivileged PV domUs through Xen's own toolstack
//! (`xl create`), several per boot.
//!
//! # Provisioning (cached under `target/xen-domu/`)
//! `apt-get download` of [`PACKAGES`] (plus the kernel package `linux-image-amd64` depends on),
//! each unpacked with `dpkg-deb -x` into `root/`; nothing is installed and nothing comes from
//! anywhere but the package archive. From that tree the runner assembles `initrd-base.cpio`
//! (an uncompressed newc archive): busybox, `xl`, `xenstored`, `xenconsoled`, `xen-init-dom0`
//! and the shared libraries they need (found by walking `DT_NEEDED` with `readelf`, so a
//! missing library fails loudly), and the Xen modules Debian builds as modules (privcmd,
//! evtchn, gntdev, gntalloc, xenfs). The hypervisor is [`crate::xen::provision`]'s.
//!
//! # A run
//! Each run appends a second archive to the base (Linux unpacks both): `/init`
//! (`domu_init.sh`) and one `/jobs/N/{kernel,params}` per domU. QEMU multiboots Xen with
//! the Debian kernel as dom0 (`console=hvc0`, Xen's COM1) and that initrd. dom0's init runs
//! each job with `xl create -F`, reads the shutdown reason back from xl, and sends the domU's
//! console (xenconsoled's log of the console ring, byte for byte) over COM2 in a
//! `PVMMU-DOMU-BEGIN`/`END` envelope, which QEMU writes to a file. The runner splits each
//! domU's stream into text and defmt ([`split`], the framing of
//! `boards/src/xen/console.rs`) and decodes the defmt with that job's ELF.
//!
//! # The host's walk of a domU
//! The machine's RAM is a file (as on the other boards), so the host reads any machine frame.
//! Every domU waits at the exit gate; dom0 sees the gate's line in the console log, and says
//! on its console (which the host reads live) `pvmmu-dom0: gate N cr3=.. boot_tables=..`: the
//! domU's CR3 from `xenctx` (a machine address) and the bootstrap page tables from libxc's log
//! (`xl -vvv`). The host walks from that CR3 with its own walker, copies every page the
//! verifier reads ([`Snapshot`]: the domain's frames are reused by the next job), and writes
//! the gate word, found through the domU's own tables. The `direct_map` rows are then judged
//! as dom0's are ([`crate::verify`]), with the domU's configured memory as its page count.
//!
//! Outcomes: shutdown reason 0 (poweroff) is Pass, 3 (crash) is Fail, anything else (reboot,
//! no shutdown, killed at the timeout) is a run without a verdict.
//!
//! QEMU's CPU is `max` without SMAP, SMEP and PKU: with them, Debian's 6.1 kernel dies as a
//! PV dom0 under TCG at its first exception (Xen cannot write the bounce frame).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crate::boot::{Board, BootResult, Capture, Verdict, GATE_OPEN, GATE_SYMBOL};
use crate::guest_mem::{self, RamFile, RamLayout, Snapshot};
use crate::mem_size::MemSize;
use crate::qmp::Registers;
use crate::verify::{self, Machine, Pfns};
use crate::{defmt_stream, elf, order, qemu, walker, xen};

/// The Debian 12 packages the host is made of (the kernel's versioned package is found from
/// [`KERNEL_META`]).
pub const PACKAGES: &[&str] = &[
    "busybox-static",
    "xen-utils-4.17",
    "xen-utils-common",
    "libxenmisc4.17",
    "libxenstore4",
    "libxencall1",
    "libxenevtchn1",
    "libxenforeignmemory1",
    "libxengnttab1",
    "libxentoollog1",
    "libxendevicemodel1",
    "libxenhypfs1",
    "libxentoolcore1",
    "libyajl2",
    "libc6",
    "libgcc-s1",
    "liblzma5",
    "libuuid1",
    "zlib1g",
    "libzstd1",
];
/// The metapackage naming Debian's current 6.1 kernel.
pub const KERNEL_META: &str = "linux-image-amd64";
/// The programs dom0 runs, besides busybox.
const PROGRAMS: &[&str] = &["xl", "xenstored", "xenconsoled", "xen-init-dom0", "xenctx"];
/// Where Debian puts them.
const XEN_BIN: &str = "usr/lib/xen-4.17/bin";
/// Libraries loaded without a `DT_NEEDED` entry (glibc opens libgcc_s for thread cancel).
const DLOPENED: &[&str] = &["libgcc_s.so.1"];
/// The kernel modules, in load order (xenfs needs privcmd).
const MODULES: &[&str] = &[
    "xen-privcmd",
    "xen-evtchn",
    "xen-gntdev",
    "xen-gntalloc",
    "xenfs",
];
/// dom0's init.
const INIT: &str = include_str!("domu_init.sh");
/// dom0's memory.
pub const DOM0_MEM: MemSize = MemSize::from_mib(256);
/// How long dom0 may take to boot before the first domU (TCG, 2 shared cores).
pub const DOM0_BOOT_TIMEOUT: Duration = Duration::from_secs(150);

/// What a run boots: Xen, dom0's kernel and the base initrd.
#[derive(Clone, Debug)]
pub struct Host {
    /// The hypervisor.
    pub xen: PathBuf,
    /// dom0's kernel (`vmlinuz`).
    pub kernel: PathBuf,
    /// The base initrd (without `/init` and the jobs).
    pub initrd: PathBuf,
}

/// Provisions the host into `dir` (reusing what is cached there) and Xen into `xen_dir`.
pub fn provision(dir: &Path, xen_dir: &Path) -> Result<Host> {
    let xen = xen::provision(xen_dir)?;
    let initrd = dir.join("initrd-base.cpio");
    let kernel = dir.join("vmlinuz");
    // What the cached base was made from; a change of the lists rebuilds it.
    let recipe = format!("{PACKAGES:?} {PROGRAMS:?} {DLOPENED:?} {MODULES:?}\n");
    let stamp = dir.join("initrd-base.recipe");
    let cached = std::fs::read_to_string(&stamp).is_ok_and(|s| s == recipe);
    if cached && initrd.is_file() && kernel.is_file() {
        return Ok(Host {
            xen,
            kernel,
            initrd,
        });
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let debs = dir.join("debs");
    std::fs::create_dir_all(&debs)?;
    let mut packages: Vec<String> = PACKAGES.iter().map(|s| s.to_string()).collect();
    packages.push(kernel_package()?);
    let root = dir.join("root");
    let _ = std::fs::remove_dir_all(&root);
    let missing: Vec<&str> = packages
        .iter()
        .filter(|p| find_deb(&debs, p).ok().flatten().is_none())
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        download(&debs, &missing)?;
    }
    for p in &packages {
        let deb =
            find_deb(&debs, p)?.with_context(|| format!("apt-get download left no {p}_*.deb"))?;
        run(
            Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root),
            &format!("dpkg-deb -x {}", deb.display()),
        )?;
    }
    let boot = root.join("boot");
    let vmlinuz = std::fs::read_dir(&boot)
        .with_context(|| format!("reading {}", boot.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("vmlinuz-"))
        })
        .context("the kernel package has no boot/vmlinuz-*")?;
    let archive = base_archive(&root)?;
    let tmp = dir.join("initrd-base.cpio.tmp");
    std::fs::write(&tmp, archive).context("writing the base initrd")?;
    std::fs::copy(&vmlinuz, &kernel).context("copying vmlinuz")?;
    std::fs::rename(&tmp, &initrd).context("writing the base initrd")?;
    std::fs::write(&stamp, recipe).context("writing the base initrd's recipe")?;
    // The unpacked tree (mostly kernel modules) is not needed any more; the .debs stay cached.
    let _ = std::fs::remove_dir_all(&root);
    Ok(Host {
        xen,
        kernel,
        initrd,
    })
}

/// The versioned kernel package `linux-image-amd64` depends on (`apt-cache depends`).
fn kernel_package() -> Result<String> {
    let out = Command::new("apt-cache")
        .args(["depends", KERNEL_META])
        .output()
        .context("running apt-cache (Debian's apt is needed to provision the Xen host)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .find(|p| p.starts_with("linux-image-"))
        .map(str::to_string)
        .with_context(|| {
            format!(
                "`apt-cache depends {KERNEL_META}` names no kernel package (run apt-get update?): {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
}

fn find_deb(dir: &Path, package: &str) -> Result<Option<PathBuf>> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with(&format!("{package}_")) && name.ends_with(".deb") {
            return Ok(Some(path));
        }
    }
    Ok(None)
}

/// `apt-get download` of `packages` into `dir`, in one call.
fn download(dir: &Path, packages: &[&str]) -> Result<()> {
    eprintln!(
        "xtask: downloading {} packages for the Xen host into {}",
        packages.len(),
        dir.display()
    );
    let out = Command::new("apt-get")
        .arg("download")
        .args(packages)
        .current_dir(dir)
        .output()
        .context("running apt-get (Debian's apt is needed to provision the Xen host)")?;
    if !out.status.success() {
        bail!(
            "`apt-get download {}` failed ({}); try `apt-get update` first: {}",
            packages.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd.output().with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!("{what} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// The libraries `elf` names in `DT_NEEDED` (`readelf -d`).
fn needed(elf: &Path) -> Result<Vec<String>> {
    let out = Command::new("readelf")
        .arg("-d")
        .arg(elf)
        .output()
        .context("running readelf (binutils)")?;
    if !out.status.success() {
        bail!("readelf -d {} failed", elf.display());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| Some(l.split_once('[')?.1.split_once(']')?.0.to_string()))
        .collect())
}

/// The base archive: busybox, the Xen programs and their libraries, the modules, xl.conf.
fn base_archive(root: &Path) -> Result<Vec<u8>> {
    let lib_dirs = [
        root.join("lib/x86_64-linux-gnu"),
        root.join("usr/lib/x86_64-linux-gnu"),
    ];
    let find_lib = |name: &str| lib_dirs.iter().map(|d| d.join(name)).find(|p| p.exists());
    let mut cpio = Cpio::default();
    for d in [
        "bin",
        "dev",
        "etc",
        "etc/xen",
        "lib",
        "lib/modules",
        "lib/x86_64-linux-gnu",
        "lib64",
        "proc",
        "run",
        "sys",
        "tmp",
        "usr",
        "usr/lib",
        "usr/lib/xen-4.17",
        XEN_BIN,
        "var",
        "jobs",
    ] {
        cpio.dir(d);
    }
    cpio.file("bin/busybox", &read(&root.join("bin/busybox"))?, 0o755);
    cpio.symlink("bin/sh", "busybox");
    cpio.symlink(
        "lib64/ld-linux-x86-64.so.2",
        "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
    );
    let conf = root.join("etc/xen/xl.conf");
    cpio.file("etc/xen/xl.conf", &read(&conf)?, 0o644);

    let mut todo: Vec<(String, PathBuf)> = Vec::new();
    for p in PROGRAMS {
        let path = root.join(XEN_BIN).join(p);
        cpio.file(&format!("{XEN_BIN}/{p}"), &read(&path)?, 0o755);
        todo.push((p.to_string(), path));
    }
    let mut libs: BTreeSet<String> = ["ld-linux-x86-64.so.2".to_string()].into();
    libs.extend(DLOPENED.iter().map(|s| s.to_string()));
    for l in libs.clone() {
        let path = find_lib(&l).with_context(|| format!("{l} is in none of the packages"))?;
        todo.push((l, path));
    }
    while let Some((who, path)) = todo.pop() {
        for lib in needed(&path)? {
            if libs.insert(lib.clone()) {
                let p = find_lib(&lib).with_context(|| {
                    format!("{lib} (needed by {who}) is in none of the unpacked packages")
                })?;
                todo.push((lib, p));
            }
        }
    }
    for l in &libs {
        let path = find_lib(l).expect("found above");
        cpio.file(&format!("lib/x86_64-linux-gnu/{l}"), &read(&path)?, 0o755);
    }
    let modules = root.join("lib/modules");
    for m in MODULES {
        let file = find_file(&modules, &format!("{m}.ko"))?
            .with_context(|| format!("kernel module {m}.ko not in the kernel package"))?;
        cpio.file(&format!("lib/modules/{m}.ko"), &read(&file)?, 0o644);
    }
    Ok(cpio.finish())
}

fn read(p: &Path) -> Result<Vec<u8>> {
    std::fs::read(p).with_context(|| format!("reading {}", p.display()))
}

/// The first file named `name` under `dir` (depth first).
fn find_file(dir: &Path, name: &str) -> Result<Option<PathBuf>> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            if let Some(f) = find_file(&path, name)? {
                return Ok(Some(f));
            }
        } else if path.file_name().and_then(|n| n.to_str()) == Some(name) {
            return Ok(Some(path));
        }
    }
    Ok(None)
}

/// A `newc` cpio archive, as the Linux initramfs unpacker reads it.
#[derive(Default)]
pub struct Cpio {
    out: Vec<u8>,
    ino: u32,
}

impl Cpio {
    fn entry(&mut self, name: &str, mode: u32, data: &[u8]) {
        self.ino += 1;
        let fields = [
            self.ino,
            mode,
            0,
            0,
            1,
            0,
            data.len() as u32,
            0,
            0,
            0,
            0,
            name.len() as u32 + 1,
            0,
        ];
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08X}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while self.out.len() % 4 != 0 {
            self.out.push(0);
        }
    }

    /// A directory.
    pub fn dir(&mut self, name: &str) {
        self.entry(name, 0o040_755, &[]);
    }

    /// A regular file with permission bits `perm`.
    pub fn file(&mut self, name: &str, data: &[u8], perm: u32) {
        self.entry(name, 0o100_000 | perm, data);
    }

    /// A symbolic link.
    pub fn symlink(&mut self, name: &str, target: &str) {
        self.entry(name, 0o120_777, target.as_bytes());
    }

    /// The archive, with its trailer.
    pub fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[]);
        self.out
    }
}

/// One domU to run.
#[derive(Clone, Debug)]
pub struct Job {
    /// The example kernel.
    pub elf: PathBuf,
    /// The domU's memory.
    pub mem: MemSize,
    /// Its command line (`extra`, start_info's `cmd_line`).
    pub args: Vec<String>,
    /// How long dom0 lets it run.
    pub timeout: Duration,
}

/// What dom0 reported for one job.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    /// The domU's console stream (framed text and defmt).
    pub stream: Vec<u8>,
    /// xl's shutdown reason code, `None` if the domain did not shut down.
    pub reason: Option<u32>,
    /// xl's exit status (137: killed at the timeout).
    pub xl_status: i32,
    /// dom0's uptime when `xl create` started and when it returned.
    pub t: (f64, f64),
}

/// dom0's COM2 stream: the reports by job index, whether dom0 finished, and a host failure.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Envelopes {
    /// Reports by job.
    pub reports: std::collections::BTreeMap<usize, Report>,
    /// `PVMMU-ALL-DONE` was seen.
    pub done: bool,
    /// `PVMMU-HOST-FAILED` and its message.
    pub host_failed: Option<String>,
}

/// Parses dom0's COM2 stream (see `domu_init.sh`).
pub fn parse_envelopes(mut s: &[u8]) -> Envelopes {
    let mut env = Envelopes::default();
    fn line(s: &[u8]) -> Option<(&str, &[u8])> {
        let end = s.iter().position(|&b| b == b'\n')?;
        Some((std::str::from_utf8(&s[..end]).ok()?, &s[end + 1..]))
    }
    while !s.is_empty() {
        let Some((l, rest)) = line(s) else { break };
        if l == "PVMMU-ALL-DONE" {
            env.done = true;
            s = rest;
        } else if let Some(msg) = l.strip_prefix("PVMMU-HOST-FAILED ") {
            env.host_failed = Some(msg.to_string());
            s = rest;
        } else if let Some(head) = l.strip_prefix("PVMMU-DOMU-BEGIN ") {
            let mut w = head.split(' ');
            let (Some(Ok(n)), Some(Ok(size))) = (
                w.next().map(str::parse::<usize>),
                w.next().map(str::parse::<usize>),
            ) else {
                s = rest;
                continue;
            };
            if rest.len() < size + 1 {
                break;
            }
            let stream = rest[..size].to_vec();
            let Some((end, after)) = line(&rest[size + 1..]) else {
                break;
            };
            s = after;
            let field = |k: &str| {
                end.split(' ')
                    .find_map(|w| w.strip_prefix(k)?.strip_prefix('='))
                    .unwrap_or("")
            };
            if !end.starts_with(&format!("PVMMU-DOMU-END {n} ")) {
                continue;
            }
            env.reports.insert(
                n,
                Report {
                    stream,
                    reason: field("reason").parse().ok(),
                    xl_status: field("xl").parse().unwrap_or(-1),
                    t: (
                        field("t0").parse().unwrap_or(0.0),
                        field("t1").parse().unwrap_or(0.0),
                    ),
                },
            );
        } else {
            s = rest;
        }
    }
    env
}

/// A domU's console stream, split.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Split {
    /// The text.
    pub text: Vec<u8>,
    /// The defmt bytes (rzcobs frames, as on COM2).
    pub defmt: Vec<u8>,
    /// The exit status record's code (isa-debug-exit's value), the last if several.
    pub status: Option<u8>,
}

/// Splits a domU's console stream (the framing of `boards/src/xen/console.rs`: `0 0` is a NUL
/// of text, `0 0xff c` the exit status record, `0 n` starts `n` defmt bytes).
pub fn split(stream: &[u8]) -> Split {
    let (mut text, mut defmt, mut status) = (Vec::new(), Vec::new(), None);
    let mut i = 0;
    while i < stream.len() {
        match stream[i] {
            0 => match stream.get(i + 1) {
                Some(0) => {
                    text.push(0);
                    i += 2;
                }
                Some(0xff) => {
                    status = stream.get(i + 2).copied().or(status);
                    i += 3;
                }
                Some(&n) => {
                    let end = (i + 2 + n as usize).min(stream.len());
                    defmt.extend_from_slice(&stream[i + 2..end]);
                    i = end;
                }
                None => break,
            },
            b => {
                text.push(b);
                i += 1;
            }
        }
    }
    Split {
        text,
        defmt,
        status,
    }
}

/// isa-debug-exit's setup-error value (`boards::common::exit::SETUP_ERROR`).
const STATUS_SETUP_ERROR: u8 = 0x12;

/// The verdict of a report: poweroff Pass, crash Fail (a setup error when the status record
/// says so), anything else no verdict.
pub fn verdict(report: Option<&Report>, qemu_timed_out: bool) -> Verdict {
    let status = report.and_then(|r| split(&r.stream).status);
    match report {
        None if qemu_timed_out => Verdict::Timeout,
        None => Verdict::NoShutdown { reason: None },
        Some(r) => match r.reason {
            Some(0) => Verdict::Pass,
            Some(3) if status == Some(STATUS_SETUP_ERROR) => Verdict::GuestSetupError,
            Some(3) => Verdict::Fail,
            None if r.xl_status == 137 => Verdict::Timeout,
            reason => Verdict::NoShutdown { reason },
        },
    }
}

/// Runs `jobs` as domUs in one boot of the host; one result per job, in order.
pub fn run_batch(jobs: &[Job], qemu_args: &[String], echo: bool) -> Result<Vec<BootResult>> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let root = crate::workspace_root();
    let host = provision(&root.join("target/xen-domu"), &root.join("target/xen"))?;
    let work = root.join("target/xen-domu/runs");
    std::fs::create_dir_all(&work)?;
    let id = std::process::id();
    let initrd = work.join(format!("initrd-{id}.cpio"));
    let com2 = work.join(format!("com2-{id}.bin"));

    let mut images = Vec::new();
    let mut cpio = Cpio::default();
    cpio.file("init", INIT.as_bytes(), 0o755);
    let mut max_mem = 0;
    let mut total = DOM0_BOOT_TIMEOUT;
    for (i, job) in jobs.iter().enumerate() {
        let elf = read(&job.elf)?;
        let args = job.args.join(" ");
        if args.contains(['"', '\'', '\n', '\\', '$', '`']) {
            bail!("domU arguments cannot contain quotes, `\\`, `$` or newlines: {args:?}");
        }
        cpio.dir(&format!("jobs/{i}"));
        cpio.file(&format!("jobs/{i}/kernel"), &elf, 0o644);
        let params = format!(
            "MEM={}\nTIMEOUT={}\nARGS=\"{args}\"\n",
            job.mem.mib(),
            job.timeout.as_secs().max(1)
        );
        cpio.file(&format!("jobs/{i}/params"), params.as_bytes(), 0o644);
        max_mem = max_mem.max(job.mem.mib());
        total += job.timeout + Duration::from_secs(5);
        images.push(elf);
    }
    let mut all = read(&host.initrd)?;
    all.extend_from_slice(&cpio.finish());
    std::fs::write(&initrd, &all).context("writing the run's initrd")?;
    std::fs::File::create(&com2)?;

    let machine = MemSize::from_mib((DOM0_MEM.mib() + max_mem + 256).max(1024));
    let gates = images
        .iter()
        .map(|elf| elf::symbol_address(elf, GATE_SYMBOL))
        .collect::<Result<Vec<u64>>>()
        .context("finding the exit gate in a domU's ELF")?;
    let ram_path = guest_mem::ram_dir().join(format!("pvmmu-{id}-domu-ram"));
    let ram = RamFile::create(&ram_path, RamLayout::q35(machine.mib() << 20))
        .with_context(|| format!("creating {}", ram_path.display()))?;
    // Installed here if missing, as for every other boot (the domU batch may be the first).
    let mut cmd = Command::new(qemu::qemu()?);
    cmd.args([
        "-machine",
        "q35",
        "-cpu",
        "max,-smap,-smep,-pku",
        "-accel",
        "tcg",
    ])
    .arg("-object")
    .arg(format!(
        "memory-backend-file,id=pvmmu.ram,size={}M,mem-path={},share=on",
        machine.mib(),
        path_str(ram.path())?
    ))
    .args(["-machine", "q35,memory-backend=pvmmu.ram"])
    .arg("-m")
    .arg(machine.to_string())
    .args(["-display", "none", "-no-reboot", "-net", "none"])
    .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"])
    .args(["-serial", "mon:stdio", "-serial"])
    .arg(format!("file:{}", com2.display()))
    .arg("-kernel")
    .arg(&host.xen)
    .arg("-append")
    .arg(format!(
        "loglvl=all guest_loglvl=all console=com1 console_timestamps=boot \
             dom0_mem={DOM0_MEM},max:{DOM0_MEM}"
    ))
    .arg("-initrd")
    .arg(format!(
        "{} console=hvc0 quiet,{}",
        path_str(&host.kernel)?,
        path_str(&initrd)?
    ));
    cmd.args(qemu_args);
    let captures: Mutex<BTreeMap<usize, Result<Capture, String>>> = Mutex::default();
    let print = |line: &str| {
        if echo && line.contains("pvmmu-dom0:") {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", line.trim_end());
        }
        if let Some(gate) = parse_gate(line) {
            let Some(&gate_va) = gates.get(gate.job) else {
                return;
            };
            let c = at_gate(&ram, &gate, gate_va, jobs[gate.job].mem);
            if let Ok(mut m) = captures.lock() {
                m.insert(gate.job, c);
            }
        }
    };
    let run = qemu::run(cmd, total, echo, &print, None);
    drop(ram);
    let mut captures = captures.into_inner().unwrap_or_default();
    let _ = std::fs::remove_file(&initrd);
    let run = run?;
    if run.status.and_then(|s| s.code()) == Some(1) {
        bail!(
            "QEMU failed to start the Xen host (status 1): {}",
            String::from_utf8_lossy(&run.stderr).trim()
        );
    }
    let stream = std::fs::read(&com2).unwrap_or_default();
    let _ = std::fs::remove_file(&com2);
    let env = parse_envelopes(&stream);
    let host_console = qemu::clean(&run.console);
    let timed_out = run.status.is_none();
    let mut results = Vec::new();
    for (i, (job, elf)) in jobs.iter().zip(&images).enumerate() {
        let report = env.reports.get(&i);
        let Split { text, defmt, .. } = report.map(|r| split(&r.stream)).unwrap_or_default();
        let stamped = defmt_stream::decode_stamped(elf, &defmt)?;
        let console_text = qemu::clean(&text);
        let mut merger = order::Merger::new(order::ConsoleKind::GuestOnly, |_| {});
        for (stamp, line) in &stamped {
            merger.defmt(*stamp, line);
        }
        for line in console_text.lines() {
            merger.console(line);
        }
        merger.finish();
        let output = merger.into_lines();
        let defmt_lines = stamped.into_iter().map(|(_, l)| l).collect();
        let verdict = verdict(report, timed_out);
        let elapsed = report.map_or(run.elapsed, |r| {
            Duration::from_secs_f64((r.t.1 - r.t.0).max(0.0))
        });
        results.push(BootResult {
            board: Board::XenDomU,
            mem: job.mem,
            status: run.status.and_then(|s| s.code()),
            verdict,
            console_text,
            defmt_lines,
            output,
            qemu_stderr: String::from_utf8_lossy(&run.stderr).into_owned(),
            elapsed,
            frames_file: None,
            capture: captures.remove(&i),
            host_console: host_console.clone(),
            host_failed: env.host_failed.clone(),
            stack_guard: elf::symbol_address(elf, crate::stack::GUARD_SYMBOL).ok(),
        });
    }
    Ok(results)
}

/// dom0's line at a domU's exit gate: `pvmmu-dom0: gate N cr3=HEX boot_tables=PFN+COUNT`
/// (hex; `none` where dom0 found nothing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gate {
    /// The job.
    pub job: usize,
    /// The domU's CR3 (a machine address), if xenctx gave one.
    pub cr3: Option<u64>,
    /// The domain builder's bootstrap tables (pfns), if libxc's log gave them.
    pub boot_tables: Option<Pfns>,
}

/// Parses dom0's gate line (see [`Gate`]).
pub fn parse_gate(line: &str) -> Option<Gate> {
    let rest = line.split_once("pvmmu-dom0: gate ")?.1.trim_end();
    let mut w = rest.split(' ');
    let job = w.next()?.parse().ok()?;
    let field = |k: &str, s: &str| s.strip_prefix(k)?.strip_prefix('=').map(str::to_string);
    let cr3 = field("cr3", w.next()?)?;
    let bt = field("boot_tables", w.next()?)?;
    let cr3 = u64::from_str_radix(&cr3, 16).ok();
    let boot_tables = bt.split_once('+').and_then(|(a, n)| {
        let a = u64::from_str_radix(a, 16).ok()?;
        Some((a, a.checked_add(u64::from_str_radix(n, 16).ok()?)?))
    });
    Some(Gate {
        job,
        cr3,
        boot_tables,
    })
}

/// At a domU's exit gate (it spins there): copy what the verifier reads of its tables from the
/// machine's RAM (walking from its CR3 with the host's walker), then open the gate.
fn at_gate(ram: &RamFile, gate: &Gate, gate_va: u64, mem: MemSize) -> Result<Capture, String> {
    let held = std::time::Instant::now();
    let cr3 = gate.cr3.ok_or("dom0 found no CR3 for the domU (xenctx)")?;
    // A 64-bit PV guest always runs with 4-level long-mode paging (Xen's own).
    let regs = Registers {
        cr0: Registers::CR0_PG,
        cr3,
        cr4: Registers::CR4_PAE,
        efer: Registers::EFER_LMA,
        cpl: 3,
    };
    let machine = Machine {
        board: Board::XenDomU,
        layout: ram.layout(),
        dom0_pages: mem.mib() << 8,
        xen_boot_tables: gate.boot_tables.unwrap_or((0, 0)),
    };
    // One trial verification over the live RAM decides which pages are copied: the real one,
    // once the run's pgt_buf is known, reads no page it did not.
    let (snap, _) = Snapshot::record(ram, |m| {
        let _ = verify::verify(m, &regs, &machine, (0, machine.dom0_pages));
    });
    let leaf = walker::translate(ram, regs.root(), gate_va)
        .map_err(|e| format!("walking to the gate {gate_va:#x}: {e}"))?
        .ok_or_else(|| format!("the gate {gate_va:#x} is not mapped under CR3 {cr3:#x}"))?;
    let gate_pa = leaf.pa + (gate_va & (leaf.size.bytes() - 1));
    let before = walker::PhysMem::read_u64(ram, gate_pa)?;
    if before != 0 {
        return Err(format!(
            "the gate word at {gate_pa:#x} holds {before:#x}, not 0: wrong frame?"
        ));
    }
    ram.write_u64(gate_pa, GATE_OPEN)?;
    Ok(Capture {
        regs,
        mem: Arc::new(snap),
        layout: ram.layout(),
        boot_tables: gate.boot_tables,
        gate_pa,
        held: held.elapsed(),
        stack: Err("not measured for a domU (no release domU row)".into()),
    })
}

/// The last `n` lines of Xen's and of dom0's console in `host_console` (COM1: Xen's lines
/// start with `(XEN)`), indented, for failure reports.
pub fn host_tail(host_console: &str, n: usize) -> String {
    let (xen, dom0): (Vec<&str>, Vec<&str>) =
        host_console.lines().partition(|l| l.starts_with("(XEN)"));
    let mut s = format!("Xen console (last {n} lines):\n");
    for l in &xen[xen.len().saturating_sub(n)..] {
        s.push_str(&format!("  | {l}\n"));
    }
    s.push_str(&format!("dom0 console (last {n} lines):\n"));
    for l in &dom0[dom0.len().saturating_sub(n)..] {
        s.push_str(&format!("  | {l}\n"));
    }
    s
}

fn path_str(p: &Path) -> Result<&str> {
    let s = p.to_str().context("path is not UTF-8")?;
    if s.contains([',', ' ']) {
        bail!("QEMU's -initrd cannot take a path with ',' or ' ': {s}");
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_separates_text_nul_and_defmt() {
        let s = b"ab\0\x03xyz\0\0c\0\x01q\0\xff\x11";
        let got = split(s);
        assert_eq!(got.text, b"ab\0c");
        assert_eq!(got.defmt, b"xyzq");
        assert_eq!(got.status, Some(0x11));
        // A chunk cut short by the end of the stream keeps what arrived.
        let cut = split(b"t\0\x05ab");
        assert_eq!(
            (cut.text, cut.defmt, cut.status),
            (b"t".to_vec(), b"ab".to_vec(), None)
        );
        assert_eq!(split(b"t\0").text, b"t");
        assert_eq!(split(b"t\0\xff").status, None);
    }

    #[test]
    fn envelopes_parse_and_verdicts_follow_the_reason() {
        let mut s =
            b"noise\nPVMMU-DOMU-BEGIN 0 5\nab\ncd\nPVMMU-DOMU-END 0 reason=0 xl=0 t0=1.5 t1=2.25\n"
                .to_vec();
        s.extend_from_slice(
            b"PVMMU-DOMU-BEGIN 1 0\n\nPVMMU-DOMU-END 1 reason=none xl=137 t0=3 t1=63\n",
        );
        s.extend_from_slice(
            b"PVMMU-DOMU-BEGIN 2 1\n\0\nPVMMU-DOMU-END 2 reason=3 xl=0 t0=0 t1=0\n",
        );
        s.extend_from_slice(b"PVMMU-ALL-DONE\n");
        let env = parse_envelopes(&s);
        assert!(env.done);
        let r0 = &env.reports[&0];
        assert_eq!(r0.stream, b"ab\ncd");
        assert_eq!(r0.reason, Some(0));
        assert_eq!(r0.t, (1.5, 2.25));
        assert_eq!(verdict(Some(r0), false), Verdict::Pass);
        assert_eq!(verdict(env.reports.get(&1), false), Verdict::Timeout);
        assert_eq!(verdict(env.reports.get(&2), false), Verdict::Fail);
        let setup = Report {
            stream: b"refused\n\0\xff\x12".to_vec(),
            reason: Some(3),
            ..r0.clone()
        };
        assert_eq!(verdict(Some(&setup), false), Verdict::GuestSetupError);
        assert_eq!(verdict(None, true), Verdict::Timeout);
        assert_eq!(verdict(None, false), Verdict::NoShutdown { reason: None });
        let reboot = Report {
            reason: Some(1),
            ..r0.clone()
        };
        assert_eq!(
            verdict(Some(&reboot), false),
            Verdict::NoShutdown { reason: Some(1) }
        );
        // A truncated stream keeps what is complete.
        let env = parse_envelopes(&s[..40]);
        assert!(env.reports.is_empty() && !env.done);
    }

    #[test]
    fn gate_lines_parse() {
        let g = parse_gate("pvmmu-dom0: gate 3 cr3=0000000039117000 boot_tables=311+5\r").unwrap();
        assert_eq!(
            g,
            Gate {
                job: 3,
                cr3: Some(0x3911_7000),
                boot_tables: Some((0x311, 0x316)),
            }
        );
        let none = parse_gate("pvmmu-dom0: gate 0 cr3=none boot_tables=none").unwrap();
        assert_eq!((none.cr3, none.boot_tables), (None, None));
        assert_eq!(parse_gate("pvmmu-dom0: job 0: shutdown reason 0"), None);
        assert_eq!(parse_gate("pvmmu-dom0: gate x cr3=1 boot_tables=1+1"), None);
    }

    #[test]
    fn host_tail_splits_xen_from_dom0() {
        let t = host_tail("(XEN) a\nb\n(XEN) c\nd\n", 1);
        assert_eq!(
            t,
            "Xen console (last 1 lines):\n  | (XEN) c\ndom0 console (last 1 lines):\n  | d\n"
        );
    }

    #[test]
    fn cpio_entries_are_newc_and_aligned() {
        let mut c = Cpio::default();
        c.dir("a");
        c.file("a/b", b"hello", 0o644);
        let out = c.finish();
        assert!(out.starts_with(b"070701"));
        assert_eq!(out.len() % 4, 0);
        assert!(out.windows(5).any(|w| w == b"hello"));
        assert!(out.windows(10).any(|w| w == b"TRAILER!!!"));
    }
}
