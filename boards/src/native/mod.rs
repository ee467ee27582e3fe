//! The bare-metal board: QEMU (or any PVH loader) boots the ELF through its
//! `XEN_ELFNOTE_PHYS32_ENTRY` note.
//!
//! Boot sequence: `boot` (the only inline assembly of this board) enters in 32-bit protected
//! mode with `EBX` = `hvm_start_info`, zeroes `.bss`, identity-maps the first 4 GiB with 2 MiB
//! pages, enables SSE, PAE, long mode and paging, and calls the example's `entry!` glue, which
//! calls `start`: COM1 console, GDT/TSS/IDT (`cpu`, faults reported by `fault`), the defmt
//! logger on COM2, the memory map from [`start_info`], then the example.
//!
//! `boot`, `cpu`, `fault` and `start` exist only in kernel builds (`panic = "abort"`, not
//! `cfg(test)`).

mod board;
#[cfg(all(panic = "abort", not(test)))]
mod boot;
#[cfg(all(panic = "abort", not(test)))]
mod cpu;
mod entry;
#[cfg(all(panic = "abort", not(test)))]
mod fault;
#[cfg(any(test, panic = "abort"))]
mod gate;
mod mmu;
#[cfg(all(panic = "abort", not(test)))]
mod start;
pub mod start_info;
pub mod test_memmap;

pub use board::NativeBoard;
#[cfg(all(panic = "abort", not(test)))]
#[doc(hidden)]
pub use start::start;
