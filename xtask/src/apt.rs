//! Tools the runner needs, installed from Debian's packages when they are missing, as root on
//! Debian (or Ubuntu), the way Xen is provisioned: QEMU for every boot, a C++ compiler for the
//! fuzz targets' libFuzzer. The runner says what it installs; it never does so silently.

use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// Whether `name` is an executable file on `PATH`.
pub fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).is_file()))
}

/// Whether we run as root.
fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// Makes sure `binary` is on `PATH`: if it is missing, installs Debian's `package` (`apt-get
/// update`, then `apt-get install -y --no-install-recommends PACKAGE`), saying so on stderr
/// with `why`; an error that says how to get it where we may not (not root, no `apt-get`).
pub fn provide(binary: &str, package: &str, why: &str) -> Result<()> {
    if on_path(binary) {
        return Ok(());
    }
    let cannot = if !on_path("apt-get") {
        Some("there is no apt-get on PATH to install it with")
    } else if !is_root() {
        Some("the runner installs it itself only when run as root")
    } else {
        None
    };
    if let Some(why_not) = cannot {
        bail!(
            "{binary} not found ({why}): install Debian's {package} (`apt-get install \
             {package}` as root, or your system's package); {why_not}"
        );
    }
    eprintln!(
        "xtask: {binary} not found ({why}): installing Debian's {package} (apt-get update; \
         apt-get install -y --no-install-recommends {package}); this takes a minute"
    );
    for args in [
        &["update", "-q"][..],
        &["install", "-y", "-q", "--no-install-recommends", package][..],
    ] {
        let status = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .status()
            .context("running apt-get")?;
        if !status.success() {
            bail!("`apt-get {}` failed ({status})", args.join(" "));
        }
    }
    if !on_path(binary) {
        bail!("apt-get installed {package}, but {binary} is still not on PATH");
    }
    Ok(())
}
