//! A polled 16550 UART on the legacy I/O ports (COM1 0x3f8, COM2 0x2f8).

use x86_64::instructions::port::Port;

/// Base port of COM1, the human-readable console of the native board.
pub const COM1: u16 = 0x3f8;
/// Base port of COM2, which carries defmt frames on both boards.
pub const COM2: u16 = 0x2f8;

/// Register offsets from the base port.
const DATA: u16 = 0; // THR / RBR, DLL when DLAB = 1
const IER: u16 = 1; // DLM when DLAB = 1
const FCR: u16 = 2;
const LCR: u16 = 3;
const MCR: u16 = 4;
const LSR: u16 = 5;
/// LSR: transmit holding register empty.
const LSR_THRE: u8 = 1 << 5;
/// How long `write_byte` polls LSR before sending anyway (no UART must not hang the kernel).
const POLL_LIMIT: u32 = 100_000;

/// A 16550-compatible UART, transmit only, polled.
#[derive(Clone, Copy, Debug)]
pub struct Uart16550 {
    base: u16,
}

impl Uart16550 {
    /// A handle to the UART at `base`.
    ///
    /// # Safety
    /// `base..base + 8` must be a 16550 UART (or nothing) that the caller may drive, and the
    /// CPU must have I/O privilege for those ports whenever the handle is used (always on bare
    /// metal; after `PHYSDEVOP_set_iopl` in a Xen PV guest).
    pub const unsafe fn new(base: u16) -> Self {
        Self { base }
    }

    /// Programs 115200 baud 8N1 with FIFOs on and interrupts off.
    pub fn init(&self) {
        self.out(IER, 0x00);
        self.out(LCR, 0x80); // DLAB: divisor latch
        self.out(DATA, 0x01); // divisor 1: 115200 baud
        self.out(IER, 0x00);
        self.out(LCR, 0x03); // 8N1, DLAB off
        self.out(FCR, 0xc7); // FIFOs on, cleared, 14-byte threshold
        self.out(MCR, 0x03); // DTR | RTS
    }

    /// Sends one byte, waiting (bounded) for the transmitter.
    pub fn write_byte(&self, byte: u8) {
        let mut spins = 0;
        while self.inp(LSR) & LSR_THRE == 0 && spins < POLL_LIMIT {
            core::hint::spin_loop();
            spins += 1;
        }
        self.out(DATA, byte);
    }

    /// Sends every byte of `bytes`.
    pub fn write_bytes(&self, bytes: &[u8]) {
        for &b in bytes {
            self.write_byte(b);
        }
    }

    fn out(&self, reg: u16, value: u8) {
        // SAFETY: `new`'s contract: these ports are a UART we may drive, with I/O privilege.
        unsafe { Port::<u8>::new(self.base + reg).write(value) }
    }

    fn inp(&self, reg: u16) -> u8 {
        // SAFETY: as in `out`; reading LSR has no side effect.
        unsafe { Port::<u8>::new(self.base + reg).read() }
    }
}
