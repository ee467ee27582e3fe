//! The unprivileged role: a domU's console, defmt and exit, none of which uses I/O privilege or
//! `console_io`.
//!
//! - Console: the ring of `start_info.console.domU` ([`super::console`]), mapped over a page of
//!   the board's `.bss` (as shared_info is) from its machine address, so it works before the
//!   P2M is validated and whatever the new page tables do with the direct map.
//! - defmt: the same ring, framed ([`super::console::frame_defmt`]); frames are staged until
//!   a frame ends (or 255 bytes), so that a frame costs a few notifications, not one per byte.
//! - Exit: `SCHEDOP_shutdown(poweroff)` for Pass, `(crash)` for Fail, once dom0 has read the
//!   whole ring; the toolstack reports the reason (`xl`: "reason code 0" / "3").

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use backend_xen_pv::hypercall::abi::{shutdown, uvmf};
use backend_xen_pv::{Counted, DomUConsole, RawHypercall, XenErrno, XenHypercalls};

use super::console::{frame_defmt, frame_status, frame_text, OutRing, RingError, MAX_CHUNK};
use crate::common::exit;
use crate::common::racy_cell::RacyCell;
use crate::Outcome;

#[repr(C, align(4096))]
struct Page([u8; 4096]);

/// The virtual page the console ring is mapped over.
static mut WINDOW: Page = Page([0; 4096]);
/// The ring, once mapped.
static RING: OutRing = OutRing::new();
/// The console's event channel (0: none yet).
static EVTCHN: AtomicU32 = AtomicU32::new(0);
/// The console ring's machine frame once mapped (0: not mapped).
static RING_MFN: AtomicU64 = AtomicU64::new(0);
/// defmt bytes of the open frame not yet sent; only the logger's sink touches it.
static STAGED: RacyCell<heapless::Vec<u8, MAX_CHUNK>> = RacyCell::new(heapless::Vec::new());

/// PTE bits for the mapping: present, writable (Xen adds `_PAGE_USER` for the ring-3 kernel).
const PTE_PRESENT_RW: u64 = 0b11;
/// Yields before the board gives up on a ring dom0 does not drain (output is then dropped).
const MAX_WAIT: u32 = 2_000_000;
/// Yields between notifications while waiting (xenconsoled rate-limits a domain's events).
const NOTIFY_EVERY: u32 = 1024;

/// Why the console could not be set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, defmt::Format)]
pub enum ConsoleError {
    /// `update_va_mapping` refused the ring's frame.
    Map(XenErrno),
    /// The ring's indices are inconsistent.
    Ring(RingError),
}

fn hypercalls() -> &'static Counted<XenHypercalls> {
    super::boot::hypercalls()
}

/// Maps the console ring of `console` and makes it the board's console.
pub fn init(hv: &Counted<XenHypercalls>, console: DomUConsole) -> Result<u64, ConsoleError> {
    let va = &raw mut WINDOW as u64;
    // SAFETY: WINDOW is a page of our own `.bss` that no Rust reference points into (only the
    // raw pointer handed to RING uses it), so retargeting its mapping invalidates nothing; the
    // console page belongs to this domain and Xen lets it map it writable.
    let ret = unsafe {
        hv.update_va_mapping(
            va,
            (console.mfn << 12) | PTE_PRESENT_RW,
            uvmf::INVLPG | uvmf::LOCAL,
        )
    };
    XenErrno::check(ret).map_err(ConsoleError::Map)?;
    RING_MFN.store(console.mfn, Ordering::Relaxed);
    EVTCHN.store(console.evtchn, Ordering::Relaxed);
    // SAFETY: the window now maps the domain's console page for the rest of the run, and this
    // board is its only producer.
    unsafe { RING.attach(va as *mut u8) }.map_err(ConsoleError::Ring)?;
    Ok(va)
}

/// The console window's va and the machine frame it maps, once [`init`] mapped it.
pub fn console_window() -> Option<(u64, u64)> {
    let mfn = RING_MFN.load(Ordering::Relaxed);
    (mfn != 0).then_some((&raw const WINDOW as u64, mfn))
}

fn notify(hv: &Counted<XenHypercalls>) {
    let port = EVTCHN.load(Ordering::Relaxed);
    if port != 0 {
        let _ = hv.event_channel_send(port);
    }
}

/// Writes all of `bytes` (already framed), waiting for dom0 while the ring is full.
fn write_all(mut bytes: &[u8]) {
    let hv = hypercalls();
    let mut waited = 0u32;
    while !bytes.is_empty() {
        match RING.push(bytes) {
            Ok(0) => {
                if waited % NOTIFY_EVERY == 0 {
                    notify(hv);
                }
                waited += 1;
                if waited > MAX_WAIT {
                    return;
                }
                let _ = hv.sched_yield();
            }
            Ok(n) => {
                bytes = &bytes[n..];
                waited = 0;
            }
            Err(_) => return,
        }
    }
    notify(hv);
}

/// The board's console writer in a domU.
pub fn console_write(s: &str) {
    frame_text(s.as_bytes(), &mut |piece| write_all(piece));
}

/// The defmt logger's sink in a domU (called only by the logger, with its lock held).
pub fn defmt_sink(bytes: &[u8]) {
    // SAFETY: the logger calls its sink only between acquire and release, with `TAKEN` held,
    // so nothing else touches STAGED meanwhile.
    let staged = unsafe { &mut *STAGED.get() };
    for &b in bytes {
        // Cannot fail: the buffer is sent as soon as it is full.
        let _ = staged.push(b);
        if b == 0 || staged.is_full() {
            frame_defmt(staged, &mut |chunk| write_all(chunk));
            staged.clear();
        }
    }
}

/// Waits until dom0 has read everything written (bounded); whether it has.
pub fn drain() -> bool {
    let hv = hypercalls();
    for waited in 0..MAX_WAIT {
        match RING.pending() {
            Ok(0) => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
        if waited % NOTIFY_EVERY == 0 {
            notify(hv);
        }
        let _ = hv.sched_yield();
    }
    false
}

/// The exit hook in a domU: the status record, drain the console, then `SCHEDOP_shutdown`
/// with the reason the host reads back (poweroff: Pass, crash: Fail).
pub fn exit(outcome: Outcome) -> ! {
    let reason = match outcome {
        Outcome::Pass => shutdown::POWEROFF,
        Outcome::Fail => shutdown::CRASH,
    };
    shut_down(exit::code(outcome) as u8, reason)
}

/// The domU's setup error (a refused guest argument): status record 0x12, then crash, so the
/// runner reports a setup error as it does for dom0's isa-debug-exit 0x12.
pub fn setup_error() -> ! {
    shut_down(exit::SETUP_ERROR as u8, shutdown::CRASH)
}

fn shut_down(code: u8, reason: u32) -> ! {
    write_all(&frame_status(code));
    drain();
    let hv = hypercalls();
    hv.sched_shutdown(reason);
    // Only reached if Xen refused the shutdown: crash is the one no domain is refused.
    hv.sched_shutdown(shutdown::CRASH);
    loop {
        core::hint::spin_loop();
    }
}
