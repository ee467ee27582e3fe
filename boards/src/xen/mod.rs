//! The Xen PV board: a 64-bit PV guest, booted by Xen as dom0 or created by the toolstack
//! (`xl create`) as an unprivileged domU. One image does both; the board reads the role from
//! `start_info.flags` (`SIF_INITDOMAIN`) before anything else and the examples never see it.
//!
//! - `entry`: notes, hypercall page, entry and exception stubs (the board's only asm);
//! - `boot`: the Rust boot sequence up to `main::<XenBoard>`;
//! - [`board`]: [`XenBoard`], [`Role`], the [`Platform`](crate::Platform) impl and accessors;
//! - [`bootstrap`]: the boot-time check of the initial mapping;
//! - [`memmap`]: the domain's RAM and the bootstrap reservations, for memblock;
//! - [`mmu`]: the MMU backend (`backend-xen-pv`'s `XenPv`) and the board's
//!   [`MmuPlatform`](crate::MmuPlatform) impl;
//! - [`shared`]: the shared_info mapping (event mask, #PF address);
//! - `guard`: the boot stack's guard page (unmapped at boot);
//! - `traps`: the trap table and exception reports;
//! - [`console`]: a domU's console ring and the framing that carries defmt over it;
//! - `domu`: a domU's console, defmt sink and exit.
//!
//! # dom0 and domU: what differs, and how the board handles it
//!
//! | | dom0 (Xen's builder, `xen/arch/x86/pv/dom0_build.c`) | domU (libxenguest, `xc_dom_x86.c`, via `xl`) |
//! |---|---|---|
//! | `start_info.flags` | `SIF_PRIVILEGED \| SIF_INITDOMAIN` and the PM bits: `0x303` measured | `0` |
//! | `console` union | `console.dom0` (a VGA/VESA info offset and size; unused) | `console.domU`: the mfn of a `xencons_interface` ring page and its event channel |
//! | `store_mfn`, `store_evtchn` | 0 | the xenstore ring and its channel (reported, unused) |
//! | `nr_pages` | `dom0_mem` (16384 at 64 MiB) | xl's `memory` (16384 at 64 MiB) |
//! | `cmd_line` | the multiboot module's string | xl's `extra` |
//! | layout at entry | image, P2M, start_info, page tables, boot stack | image, P2M, start_info, **xenstore page, console page**, page tables, boot stack |
//! | P2M | `mfn_list`, inside the initial mapping | the same (no `INIT_P2M` note, so `first_p2m_pfn` = `nr_p2m_frames` = 0) |
//! | initial tables | at `pt_base`, L4 first, pinned, read-only, CR3 = `P2M[pfn(pt_base)]` | the same |
//! | mapped at entry | `[0, mapped_end)`, 4 KiB pages, `va = pfn * 4096`, all writable but the tables; `mapped_end` = boot stack end rounded up to 4 MiB with at least 512 KiB of padding | the same rule (libxenguest counts the padding into the rounding; the result is equal) |
//! | console | `console_io(CONSOLEIO_write)` | **refused** (`-EPERM`: Xen's default XSM policy allows it to privileged or `is_console` domains only, or with `CONFIG_VERBOSE_DEBUG`, which Debian's release build lacks): the ring instead |
//! | defmt | COM2 after `PHYSDEVOP_set_iopl(1)` | no I/O ports (a domU's port rangeset is empty): framed over the console ring |
//! | exit | isa-debug-exit (port 0xf4) after `set_iopl` | `SCHEDOP_shutdown`: `poweroff` for Pass, `crash` for Fail, read back through xl; a setup error (a refused guest argument) is a crash after the exit status record 0x12 on the console stream |
//! | exit gate (the host's walk of the live tables) | waits for the host, which stops the machine and walks from CR3 | the same gate, opened differently: dom0 sees the gate's line in the domU's console log, reads the domU's CR3 with `xenctx` and says it on its console; the host walks the domU's tables from that CR3 in the machine's RAM (nothing is stopped: the domU only spins there), copies what its checks read, and writes the gate word through the domU's own mapping of it |
//! | a crash Xen cannot deliver | Xen reboots the machine after 5 s | the domain is crashed; xl reports reason 3 |
//! | MMU hypercalls (`mmu_update`, `mmuext_op`, `update_va_mapping`, `multicall`) | Xen's type rules | the same rules and errnos (measured: the writable pin is refused with -22 in both); a domU may not set PCD/PWT/PAT bits without cache permission, which the backend never sets |
//!
//! Measured at 64 MiB (debug image): dom0 has start_info at `0x2e8000` and its page tables
//! right after it; a domU has start_info at `0x2ec000`, xenstore at pfn `0x2ed`, the console
//! ring at pfn `0x2ee`, page tables from `0x2ef000` (5 frames in both), and both map
//! `[0, 4 MiB)`. The direct-map figures are identical in both roles at 64 and 512 MiB.
//!
//! In code: `boot::start` peeks at `flags` and `console` ([`backend_xen_pv::Peek`]) before
//! validating the rest, so that a domU never calls `set_iopl` or `console_io` and can report a
//! bad `start_info` on its own console. A domU maps its console ring over a page of the
//! board's `.bss` from the machine address (as shared_info is mapped), before the walk of the
//! bootstrap tables, which is told about that one changed mapping. The layout check accepts
//! the extra pages (it only requires start_info to end before the page tables); `reserved`
//! keeps `[0, bootstrap_end)`, xenstore and console pages included, out of memblock (and
//! reserves those two pages apart if a toolstack ever placed them elsewhere). Nothing
//! else changes: the backend, the P2M and the bootstrap handle are the same in both roles.
//!
//! Console in a domU: the board is the only producer of the ring's output half; it keeps its
//! own `out_prod`, validates dom0's `out_cons` on every read (a ring whose indices disagree is
//! dropped, never indexed out of bounds), notifies with `EVTCHNOP_send`, and waits with
//! `SCHEDOP_yield` (bounded) when the ring is full. Before shutting down it waits until dom0
//! has read everything, so the host gets the last line.

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
#[cfg(all(panic = "abort", not(test)))]
pub mod guard;
pub mod memmap;
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
