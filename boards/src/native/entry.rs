//! The native board's part of [`entry!`](crate::entry).

/// The native board's entry glue: defines `__pvmmu_native_entry`, which the PVH boot stub
/// calls in 64-bit mode with the `hvm_start_info` physical address, and runs `main` on the
/// [`NativeBoard`](crate::native::NativeBoard). In a `panic = "unwind"` build (`cargo test`)
/// it only type-checks `main` against the board.
#[doc(hidden)]
#[macro_export]
macro_rules! __native_entry {
    ($main:path) => {
        /// Called once by the PVH boot stub (`boards::native`), never by Rust code.
        #[cfg(panic = "abort")]
        #[unsafe(no_mangle)]
        extern "C" fn __pvmmu_native_entry(start_info_paddr: u64) -> ! {
            // SAFETY: only the boot stub calls this symbol, once, with the loader's EBX.
            unsafe { $crate::native::start(start_info_paddr, $main) }
        }
        #[cfg(panic = "unwind")]
        const _: fn(&mut $crate::native::NativeBoard) -> $crate::Outcome = $main;
    };
}
