//! A domU's console: the `xencons_interface` ring page of `start_info.console.domU`, written by
//! the guest and read by dom0's `xenconsoled`, plus the framing that carries the defmt frames
//! over the same ring as the text.
//!
//! # The ring (public `io/console.h`)
//! The guest produces into `out[2048]` and advances `out_prod`; xenconsoled consumes and
//! advances `out_cons`. Both indices run freely (wrapping `u32`), an index masked by 2047 is
//! the array slot. The guest is the only producer, so it keeps its own `out_prod` and never
//! re-reads the shared one; it only reads `out_cons`, which dom0 writes and which is therefore
//! validated on every read: `prod - cons` must not exceed 2048. A ring that breaks this is
//! marked broken and further output is dropped (nothing panics on what dom0 writes there).
//! After publishing new bytes the guest notifies dom0 with `EVTCHNOP_send` on
//! `console.domU.evtchn`; when the ring is full it notifies and yields until dom0 has read.
//!
//! # Framing (text and defmt on one byte stream)
//! The stream is text, except that byte `0x00` ([`ESC`]) starts an escape:
//! - `0x00 0x00`: one literal `0x00` of text;
//! - `0x00 n` with `n` in `1..=254`: the next `n` bytes are defmt data (rzcobs frames,
//!   concatenated across chunks exactly as they would appear on COM2);
//! - `0x00 0xff c`: the exit status record, written once before the shutdown: `c` is the
//!   value a board with I/O privilege would write to isa-debug-exit (0x10 Pass, 0x11 Fail,
//!   0x12 setup error). xl's shutdown reason stays the verdict; the record only tells a
//!   setup error (which also shuts down as crash) from the example's failure.
//!
//! The runner (`xtask/src/domu.rs`) splits the stream the same way. A chunk is written with one
//! call, so text and defmt interleave only at chunk boundaries.

use core::ptr;
use core::sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicU32, Ordering};

use backend_xen_pv::hypercall::abi::xencons;

/// The escape byte of the framing.
pub const ESC: u8 = 0x00;
/// Most defmt bytes in one chunk.
pub const MAX_CHUNK: usize = 254;
/// The length byte that marks the exit status record instead of a defmt chunk.
pub const STATUS: u8 = 0xff;

/// Why the ring refused output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, defmt::Format)]
pub enum RingError {
    /// No ring attached.
    Detached,
    /// `out_prod - out_cons` exceeded the ring's size: dom0's index is not one the guest's
    /// output allows. The ring stays broken.
    Corrupt {
        /// The guest's producer index.
        prod: u32,
        /// The consumer index read from the page.
        cons: u32,
    },
}

/// The guest's side of the output ring. All state is atomic so that a fault report written
/// while another write was interrupted (the trap handler never returns into it) stays sound:
/// the report simply overwrites the unpublished bytes of the interrupted write.
pub struct OutRing {
    page: AtomicPtr<u8>,
    prod: AtomicU32,
    broken: AtomicBool,
}

impl OutRing {
    /// A ring not attached to a page yet (writes are refused).
    pub const fn new() -> Self {
        Self {
            page: AtomicPtr::new(ptr::null_mut()),
            prod: AtomicU32::new(0),
            broken: AtomicBool::new(false),
        }
    }

    /// Attaches the ring page at `page`, taking over the producer index found there (0 on a
    /// fresh page; the toolstack clears it).
    ///
    /// # Safety
    /// `page` is a 4 KiB `struct xencons_interface`, mapped read-write for the rest of the
    /// program, whose output half nobody but this `OutRing` produces into.
    pub unsafe fn attach(&self, page: *mut u8) -> Result<(), RingError> {
        // SAFETY: the caller guarantees the page is mapped; the index is an aligned u32.
        let prod = unsafe { ptr::read_volatile(page.add(xencons::OUT_PROD).cast::<u32>()) };
        self.prod.store(prod, Ordering::Relaxed);
        self.broken.store(false, Ordering::Relaxed);
        self.page.store(page, Ordering::Release);
        self.pending().map(|_| ())
    }

    fn page(&self) -> Result<*mut u8, RingError> {
        let p = self.page.load(Ordering::Acquire);
        if p.is_null() || self.broken.load(Ordering::Relaxed) {
            return Err(RingError::Detached);
        }
        Ok(p)
    }

    /// Bytes written but not yet consumed by dom0 (validated).
    pub fn pending(&self) -> Result<u32, RingError> {
        let page = self.page()?;
        // SAFETY: `attach`'s contract: the page stays mapped; out_cons is an aligned u32 that
        // dom0 writes, hence the volatile read.
        let cons = unsafe { ptr::read_volatile(page.add(xencons::OUT_CONS).cast::<u32>()) };
        // Read the index before reusing the slots it frees (Xen's `mb()` here).
        fence(Ordering::SeqCst);
        let prod = self.prod.load(Ordering::Relaxed);
        let used = prod.wrapping_sub(cons);
        if used > xencons::OUT_SIZE {
            self.broken.store(true, Ordering::Relaxed);
            return Err(RingError::Corrupt { prod, cons });
        }
        Ok(used)
    }

    /// Copies as much of `bytes` as fits and publishes it; returns how many were taken (0 when
    /// the ring is full).
    pub fn push(&self, bytes: &[u8]) -> Result<usize, RingError> {
        let page = self.page()?;
        let free = (xencons::OUT_SIZE - self.pending()?) as usize;
        let n = free.min(bytes.len());
        let prod = self.prod.load(Ordering::Relaxed);
        for (i, &b) in bytes[..n].iter().enumerate() {
            let slot = prod.wrapping_add(i as u32) & (xencons::OUT_SIZE - 1);
            // SAFETY: `slot` < OUT_SIZE, so the byte lies in `out`; the slot is free (dom0
            // consumed it), and only this producer writes there.
            unsafe { ptr::write_volatile(page.add(xencons::OUT + slot as usize), b) };
        }
        let prod = prod.wrapping_add(n as u32);
        self.prod.store(prod, Ordering::Relaxed);
        // The bytes before the index (Xen's `wmb()`).
        fence(Ordering::SeqCst);
        // SAFETY: as in `pending`; out_prod is ours to write.
        unsafe { ptr::write_volatile(page.add(xencons::OUT_PROD).cast::<u32>(), prod) };
        Ok(n)
    }
}

impl Default for OutRing {
    fn default() -> Self {
        Self::new()
    }
}

/// Frames text: `emit` is called with pieces of the framed stream (NULs doubled).
pub fn frame_text(text: &[u8], emit: &mut dyn FnMut(&[u8])) {
    for (i, run) in text.split(|&b| b == ESC).enumerate() {
        if i > 0 {
            emit(&[ESC, ESC]);
        }
        if !run.is_empty() {
            emit(run);
        }
    }
}

/// Frames defmt data into chunks of at most [`MAX_CHUNK`] bytes; each chunk (header and data)
/// goes to `emit` in one call.
pub fn frame_defmt(data: &[u8], emit: &mut dyn FnMut(&[u8])) {
    for piece in data.chunks(MAX_CHUNK) {
        let mut chunk = [0u8; MAX_CHUNK + 2];
        chunk[0] = ESC;
        chunk[1] = piece.len() as u8;
        chunk[2..2 + piece.len()].copy_from_slice(piece);
        emit(&chunk[..2 + piece.len()]);
    }
}

/// The exit status record for isa-debug-exit value `code`.
pub const fn frame_status(code: u8) -> [u8; 3] {
    [ESC, STATUS, code]
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::vec::Vec;

    use super::*;

    #[repr(C, align(4096))]
    struct Page([u8; 4096]);

    fn index(page: &Page, at: usize) -> u32 {
        u32::from_le_bytes(page.0[at..at + 4].try_into().unwrap())
    }

    fn set_index(page: &mut Page, at: usize, v: u32) {
        page.0[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }

    /// What dom0 would read: the bytes between `cons` and `prod`, and `cons` moved up.
    fn consume(page: &mut Page) -> Vec<u8> {
        let (cons, prod) = (
            index(page, xencons::OUT_CONS),
            index(page, xencons::OUT_PROD),
        );
        let out = (0..prod.wrapping_sub(cons))
            .map(|i| page.0[xencons::OUT + (cons.wrapping_add(i) & 2047) as usize])
            .collect();
        set_index(page, xencons::OUT_CONS, prod);
        out
    }

    #[test]
    fn writes_wrap_fill_and_resume() {
        let mut page = std::boxed::Box::new(Page([0; 4096]));
        // Start near the u32 wrap to cover index overflow.
        set_index(&mut page, xencons::OUT_PROD, u32::MAX - 10);
        set_index(&mut page, xencons::OUT_CONS, u32::MAX - 10);
        let ring = OutRing::new();
        assert_eq!(ring.push(b"x"), Err(RingError::Detached));
        let p: *mut Page = &mut *page;
        // SAFETY: the page lives (boxed) for the whole test; only `ring` produces into it.
        unsafe { ring.attach(p.cast()) }.unwrap();
        let data: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        assert_eq!(ring.push(&data), Ok(2048));
        assert_eq!(ring.push(&data[2048..]), Ok(0), "full");
        // SAFETY: the test plays dom0 between pushes; no push runs concurrently.
        let got = consume(unsafe { &mut *p });
        assert_eq!(got, data[..2048]);
        assert_eq!(ring.push(&data[2048..]), Ok(952));
        assert_eq!(ring.pending(), Ok(952));
        // SAFETY: as above.
        assert_eq!(consume(unsafe { &mut *p }), data[2048..]);
        assert_eq!(ring.pending(), Ok(0));
    }

    #[test]
    fn a_bad_consumer_index_breaks_the_ring_without_panicking() {
        let mut page = std::boxed::Box::new(Page([0; 4096]));
        let ring = OutRing::new();
        let p: *mut Page = &mut *page;
        // SAFETY: as in the test above.
        unsafe { ring.attach(p.cast()) }.unwrap();
        assert_eq!(ring.push(b"abc"), Ok(3));
        // dom0 claims to have consumed more than was written.
        // SAFETY: no push runs concurrently.
        set_index(unsafe { &mut *p }, xencons::OUT_CONS, 100);
        assert_eq!(
            ring.push(b"d"),
            Err(RingError::Corrupt { prod: 3, cons: 100 })
        );
        assert_eq!(ring.push(b"d"), Err(RingError::Detached));
        // A page whose indices are already inconsistent is refused at attach.
        let mut bad = std::boxed::Box::new(Page([0; 4096]));
        set_index(&mut bad, xencons::OUT_PROD, 5000);
        let ring = OutRing::new();
        let b: *mut Page = &mut *bad;
        // SAFETY: as above.
        let attached = unsafe { ring.attach(b.cast()) };
        assert_eq!(
            attached,
            Err(RingError::Corrupt {
                prod: 5000,
                cons: 0
            })
        );
    }

    #[test]
    fn framing_escapes_nul_and_chunks_defmt() {
        let mut out = Vec::new();
        frame_text(b"a\0b\0\0", &mut |p| out.extend_from_slice(p));
        assert_eq!(out, b"a\0\0b\0\0\0\0");
        let mut chunks = Vec::new();
        let data: Vec<u8> = (1..=300u32).map(|i| i as u8).collect();
        frame_defmt(&data, &mut |c| chunks.push(c.to_vec()));
        assert_eq!(chunks.len(), 2);
        assert_eq!(&chunks[0][..2], &[0, 254]);
        assert_eq!(&chunks[0][2..], &data[..254]);
        assert_eq!(&chunks[1][..2], &[0, 46]);
        assert_eq!(&chunks[1][2..], &data[254..]);
        assert!(chunks.iter().all(|c| c[1] != STATUS));
        assert_eq!(frame_status(0x12), [0, 0xff, 0x12]);
        let mut none = 0;
        frame_defmt(&[], &mut |_| none += 1);
        assert_eq!(none, 0);
    }
}
