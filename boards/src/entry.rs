//! [`entry!`](crate::entry): one registration line per example, glue per board.
//!
//! `entry!(main)` expands every board's glue macro. Each board defines its `__<board>_entry`
//! macro twice: the real glue when its feature is on (it defines the `#[no_mangle]` function
//! the board's boot code calls, which runs `main::<ThatBoard>` and exits with its
//! [`Outcome`](crate::Outcome)), and an empty fallback when it is off.
//!
//! `cargo test` builds every target, examples included, with `panic = "unwind"`, which a
//! `no_std` binary cannot have on stable Rust. In such a build `entry!` links `std` instead
//! (which brings the panic runtime) and the board glue only type-checks `main`: the result is
//! a well-formed ELF that is never booted. Kernels proper are `panic = "abort"` builds
//! (`cargo build` / `cargo run`).

/// Registers `main` as the example's entry point on every board the image is built for.
///
/// `main` must be a function `fn main<P: boards::Platform>(p: &mut P) -> boards::Outcome`.
/// Use it once, at the crate root of a `#![no_std] #![no_main]` binary.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[cfg(panic = "unwind")]
        extern crate std;
        $crate::__native_entry!($main);
        $crate::__xen_entry!($main);
        $crate::__some_board!();
    };
}

/// With no board feature an image would have no entry at all: say so at build time.
#[cfg(not(any(feature = "native", feature = "xen-pv")))]
#[doc(hidden)]
#[macro_export]
macro_rules! __some_board {
    () => {
        compile_error!(
            "pvmmu: this kernel is built without a board: enable the `native` (bare metal, \
             PVH) and/or `xen-pv` feature"
        );
    };
}

/// At least one board is built in: nothing to say.
#[cfg(any(feature = "native", feature = "xen-pv"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __some_board {
    () => {};
}

/// The native board's entry glue when the `native` feature is off: nothing.
#[cfg(not(feature = "native"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __native_entry {
    ($main:path) => {};
}

/// The Xen PV board's entry glue when the `xen-pv` feature is off: nothing.
#[cfg(not(feature = "xen-pv"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __xen_entry {
    ($main:path) => {};
}
