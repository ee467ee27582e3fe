//! The project's task runner: boots example kernels in QEMU, bare metal through the PVH entry
//! or as a Xen PV dom0 under Xen-in-QEMU, decodes their defmt frames and maps their result to
//! an exit status.
//!
//! [`boot::boot`] is the reusable core (the `boot` subcommand and the boot-test matrix both
//! call it); `defmt_stream`, `elf`, `mem_size`, `qemu` and `xen` are its parts. [`suite::run`]
//! is `xtask test`: the cargo [`steps`], the boot [`matrix`], judged by [`checks`] (the
//! `direct_map` example's [`figures`] among them).

pub mod apt;
pub mod boot;
pub mod budget;
pub mod checks;
pub mod conformance;
pub mod defmt_stream;
pub mod domu;
pub mod elf;
pub mod figures;
pub mod fuzz;
pub mod guest_mem;
pub mod matrix;
pub mod mem_size;
pub mod order;
pub mod qemu;
pub mod qmp;
pub mod refusals;
pub mod runtime_map;
pub mod size;
pub mod stack;
pub mod steps;
pub mod strategies;
pub mod suite;
pub mod summary;
pub mod verify;
pub mod walker;
pub mod xen;

/// The workspace root (the directory holding `xtask/`).
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}
