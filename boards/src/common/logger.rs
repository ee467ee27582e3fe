//! The defmt global logger: rzcobs-encoded frames on COM2 (port 0x2f8), on both boards, or
//! into a board's own sink (a Xen domU has no ports: its frames go over the console ring).
//!
//! Frames are dropped until a board calls [`init`], which it does once it may drive COM2
//! (at once on bare metal; after `PHYSDEVOP_set_iopl` in a Xen PV dom0), or [`init_sink`]. A frame is a
//! critical section: the board's [`IrqMask`] keeps interrupt (or event) delivery off while it
//! is being written. Re-entering the logger (a fault or panic while a frame is open) is
//! detected; the panic and fault handlers check [`is_busy`] and then report on the console only.

use core::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

use super::uart::{Uart16550, COM2};

/// How the logger masks interrupt delivery around a frame.
#[derive(Debug)]
pub struct IrqMask {
    /// Disables delivery; returns whether it was enabled before.
    pub disable: fn() -> bool,
    /// Restores what `disable` returned.
    pub restore: fn(bool),
}

impl IrqMask {
    /// `cli` / `sti` on RFLAGS.IF (bare metal).
    pub const CPU: IrqMask = IrqMask {
        disable: cpu_disable,
        restore: cpu_restore,
    };
}

fn cpu_disable() -> bool {
    let was = x86_64::instructions::interrupts::are_enabled();
    x86_64::instructions::interrupts::disable();
    was
}

fn cpu_restore(was_enabled: bool) {
    if was_enabled {
        x86_64::instructions::interrupts::enable();
    }
}

/// The board's mask; null until [`init`] (frames are dropped until then).
static MASK: AtomicPtr<IrqMask> = AtomicPtr::new(core::ptr::null_mut());
/// The board's sink (a `fn(&[u8])`); null means COM2.
static SINK: AtomicPtr<()> = AtomicPtr::new(core::ptr::null_mut());
/// A frame is open.
static TAKEN: AtomicBool = AtomicBool::new(false);

/// COM2, used only once [`init`] ran (the board then has I/O privilege for it).
// SAFETY: 0x2f8 is COM2; it is driven only after `init`, whose caller has I/O privilege.
const FRAMES: Uart16550 = unsafe { Uart16550::new(COM2) };

/// Starts sending defmt frames on COM2, with `mask` guarding each frame.
///
/// Call once the CPU may use ports 0x2f8..0x300.
pub fn init(mask: &'static IrqMask) {
    FRAMES.init();
    MASK.store(mask as *const IrqMask as *mut IrqMask, Ordering::Release);
}

/// Starts sending defmt frames to `sink` instead of COM2, with `mask` guarding each frame.
/// The sink is called only inside a frame (with the logger's lock held).
pub fn init_sink(mask: &'static IrqMask, sink: fn(&[u8])) {
    SINK.store(sink as *mut (), Ordering::Release);
    MASK.store(mask as *const IrqMask as *mut IrqMask, Ordering::Release);
}

/// Whether a defmt frame is being written right now (so logging would re-enter the logger).
pub fn is_busy() -> bool {
    TAKEN.load(Ordering::Relaxed)
}

#[cfg(all(panic = "abort", not(test)))]
mod global {
    use core::sync::atomic::Ordering;

    use super::{IrqMask, FRAMES, MASK, SINK, TAKEN};
    use crate::common::racy_cell::RacyCell;

    fn mask() -> &'static IrqMask {
        let p = MASK.load(Ordering::Acquire);
        if p.is_null() {
            &IrqMask::CPU
        } else {
            // SAFETY: the only non-null value stored is a `&'static IrqMask` (see `init`).
            unsafe { &*p }
        }
    }

    fn send(bytes: &[u8]) {
        if MASK.load(Ordering::Acquire).is_null() {
            return;
        }
        let sink = SINK.load(Ordering::Acquire);
        if sink.is_null() {
            FRAMES.write_bytes(bytes);
        } else {
            // SAFETY: the only non-null value ever stored is a `fn(&[u8])` (see `init_sink`).
            let sink = unsafe { core::mem::transmute::<*mut (), fn(&[u8])>(sink) };
            sink(bytes);
        }
    }

    #[defmt::global_logger]
    struct Com2Logger;

    // Each frame carries the number of console lines written before it: the runner orders
    // the two outputs by it (`xtask/src/order.rs`).
    defmt::timestamp!("{=u32}", crate::common::console::lines());

    /// Interrupt state to restore when the open frame ends; only touched with `TAKEN` held.
    static RESTORE: RacyCell<bool> = RacyCell::new(false);
    /// The frame encoder; only touched with `TAKEN` held.
    static ENCODER: RacyCell<defmt::Encoder> = RacyCell::new(defmt::Encoder::new());

    // SAFETY: `acquire` masks interrupts and takes `TAKEN` (panicking on re-entry), so the
    // encoder is used by one frame at a time; `release` gives both back in reverse order.
    unsafe impl defmt::Logger for Com2Logger {
        fn acquire() {
            let was_enabled = (mask().disable)();
            if TAKEN.swap(true, Ordering::Acquire) {
                panic!("defmt logger re-entered");
            }
            // SAFETY: `TAKEN` is held and interrupts are masked: nothing else uses these.
            unsafe {
                *RESTORE.get() = was_enabled;
                (*ENCODER.get()).start_frame(send);
            }
        }

        unsafe fn flush() {}

        unsafe fn release() {
            // SAFETY: defmt calls `release` only after `acquire`, so we hold `TAKEN`.
            let was_enabled = unsafe {
                (*ENCODER.get()).end_frame(send);
                *RESTORE.get()
            };
            TAKEN.store(false, Ordering::Release);
            (mask().restore)(was_enabled);
        }

        unsafe fn write(bytes: &[u8]) {
            // SAFETY: defmt calls `write` only between `acquire` and `release`.
            unsafe { (*ENCODER.get()).write(bytes, send) }
        }
    }
}
