//! Provisioning Xen from Debian's package: the hypervisor binary QEMU multiboots.
//!
//! `target/xen/` gets the `.deb` (`apt-get download`, or `$PVMMU_XEN_DEB`), its unpacked tree
//! (`dpkg-deb -x`; installing it would run bootloader hooks) and the uncompressed
//! `xen-4.17-amd64` (QEMU's multiboot loader wants the 32-bit ELF, not the `.gz`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The Debian package carrying the hypervisor.
pub const PACKAGE: &str = "xen-hypervisor-4.17-amd64";
/// The hypervisor inside the package, gzipped.
const XEN_GZ: &str = "boot/xen-4.17-amd64.gz";
/// The uncompressed hypervisor in `dir`.
const XEN: &str = "xen-4.17-amd64";

/// Returns the uncompressed hypervisor in `dir`, downloading and unpacking it when missing.
///
/// With `$PVMMU_XEN_DEB` set, that package is used: unpacked again whenever it is not the one
/// the cached hypervisor came from (a missing file is an error that names the variable).
pub fn provision(dir: &Path) -> Result<PathBuf> {
    let xen = dir.join(XEN);
    let stamp = dir.join("source");
    let wanted = match std::env::var_os("PVMMU_XEN_DEB") {
        Some(p) => {
            let p = PathBuf::from(p);
            let meta = std::fs::metadata(&p).with_context(|| {
                format!("PVMMU_XEN_DEB={}: cannot read the package", p.display())
            })?;
            Some((p.clone(), format!("{} {}", p.display(), meta.len())))
        }
        None => None,
    };
    let cached_from = std::fs::read_to_string(&stamp).ok();
    let fresh = match &wanted {
        Some((_, id)) => cached_from.as_deref() == Some(id.as_str()),
        None => true,
    };
    if xen.is_file() && fresh {
        return Ok(xen);
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let deb = match &wanted {
        Some((p, _)) => p.clone(),
        None => match find_deb(dir)? {
            Some(deb) => deb,
            None => download(dir)?,
        },
    };
    let root = dir.join("root");
    run(
        Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root),
        "dpkg-deb",
    )?;
    let out = Command::new("gunzip")
        .arg("-c")
        .arg(root.join(XEN_GZ))
        .output()
        .context("running gunzip")?;
    if !out.status.success() {
        bail!(
            "gunzip {}: {}",
            root.join(XEN_GZ).display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let tmp = dir.join(format!("{XEN}.tmp"));
    std::fs::write(&tmp, &out.stdout).context("writing the hypervisor")?;
    std::fs::rename(&tmp, &xen).context("writing the hypervisor")?;
    let id = match wanted {
        Some((_, id)) => id,
        None => String::from("apt-get download"),
    };
    std::fs::write(&stamp, id).context("writing the provisioning stamp")?;
    Ok(xen)
}

/// A `xen-hypervisor-4.17-amd64_*.deb` already in `dir`.
fn find_deb(dir: &Path) -> Result<Option<PathBuf>> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with(&format!("{PACKAGE}_")) && name.ends_with(".deb") {
            return Ok(Some(path));
        }
    }
    Ok(None)
}

/// `apt-get download` into `dir`.
fn download(dir: &Path) -> Result<PathBuf> {
    eprintln!("xtask: downloading {PACKAGE} into {}", dir.display());
    let status = Command::new("apt-get")
        .args(["download", PACKAGE])
        .current_dir(dir)
        .status();
    match status {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "apt-get not found: put {PACKAGE}_*.deb (Debian 12) into {} or set PVMMU_XEN_DEB",
            dir.display()
        ),
        Err(e) => bail!("running apt-get: {e}"),
        Ok(s) if !s.success() => bail!(
            "`apt-get download {PACKAGE}` failed ({s}); try `apt-get update` first, or put the \
             .deb into {} or set PVMMU_XEN_DEB",
            dir.display()
        ),
        Ok(_) => find_deb(dir)?.context("apt-get download left no .deb"),
    }
}

fn run(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd.output().with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        bail!("{what} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}
