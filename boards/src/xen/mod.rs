//! The Xen PV board: a 64-bit PV guest booted by Xen as dom0.
//!
//! - `entry`: notes, hypercall page, entry and exception stubs (the board's only asm);
//! - `boot`: the Rust boot sequence up to `main::<XenBoard>`;
//! - [`board`]: [`XenBoard`], its [`Platform`](crate::Platform) impl and accessors;
//! - [`bootstrap`]: the boot-time check of the initial mapping;
//! - [`mmu`]: the MMU backend (`backend-xen-pv`'s `XenPv`) and the board's
//!   [`MmuPlatform`](crate::MmuPlatform) impl;
//! - [`shared`]: the shared_info mapping (event mask, #PF address);
//! - `traps`: the trap table and exception reports.
//!
//! Console: Xen's (`HYPERVISOR_console_io`). defmt frames: COM2, after `PHYSDEVOP_set_iopl(1)`.
//! Exit: isa-debug-exit on port 0xf4, or `SCHEDOP_shutdown(reboot)` without I/O privilege.

// The entry, boot and trap code only exist in kernel images: `panic = "abort"` builds outside
// `cfg(test)`. Host unit tests and `cargo test`'s builds of the examples (`panic = "unwind"`,
// no defmt logger) link `std` and never boot, like the native board's.
pub mod board;
#[cfg(all(panic = "abort", not(test)))]
#[doc(hidden)]
pub mod boot;
pub mod bootstrap;
pub mod console;
#[cfg(all(panic = "abort", not(test)))]
pub mod domu;
#[cfg(all(panic = "abort", not(test)))]
mod entry;
pub mod mmu;
pub mod probe;
pub mod shared;
#[cfg(all(panic = "abort", not(test)))]
pub mod traps;

pub use board::{Role, XenBoard};

/// The Xen PV board's entry glue: the Rust function the entry stub calls, which boots the
/// board and runs `main::<XenBoard>`. In a `panic = "unwind"` build (`cargo test`) it only
/// type-checks `main` against the board.
#[doc(hidden)]
#[macro_export]
macro_rules! __xen_entry {
    ($main:path) => {
        #[cfg(panic = "unwind")]
        const _: fn(&mut $crate::xen::XenBoard) -> $crate::Outcome = $main;
        /// The Xen PV entry's Rust half (called by the board's entry stub).
        ///
        /// # Safety
        /// Only the entry stub calls it, once, with Xen's `rsi` and `rsp`.
        #[cfg(panic = "abort")]
        #[unsafe(no_mangle)]
        unsafe extern "C" fn __pvmmu_xen_main(start_info: u64, boot_rsp: u64) -> ! {
            // SAFETY: called once by the entry stub, with Xen's rsi and rsp.
            unsafe { $crate::xen::boot::start(start_info, boot_rsp, $main) }
        }
    };
}
