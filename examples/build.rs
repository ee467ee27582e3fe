//! Link arguments for the example kernels only (`-examples`): the boards' link script, no C
//! runtime, a static image without build-id, 4 KiB segment alignment, and defmt's table.
//! The library and host unit tests link normally.

use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let script = manifest.join("../boards/link/kernel.ld");
    let script = script
        .canonicalize()
        .unwrap_or_else(|e| panic!("link script {}: {e}", script.display()));
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rustc-link-arg-examples=-T{}", script.display());
    for arg in [
        "-nostartfiles",
        "-nostdlib",
        "-static",
        "-Wl,--build-id=none",
        "-Wl,-z,max-page-size=4096",
        "-Wl,--icf=all",
        "-Tdefmt.x",
    ] {
        println!("cargo:rustc-link-arg-examples={arg}");
    }
}
