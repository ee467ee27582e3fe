//! [`Input`]: fuzzer bytes read as structured values. Past the end every read returns zero, so
//! every byte string is a valid input and short inputs are cheap.

/// A cursor over the fuzzer's bytes.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    /// Reads from `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    /// Whether every byte was read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// One byte (0 past the end).
    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// Little-endian `u16`.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    /// Little-endian `u32`.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// Little-endian `u64`.
    pub fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }

    /// A value in `0..n` (`n > 0`) from one byte.
    pub fn below(&mut self, n: u8) -> u8 {
        self.u8() % n
    }

    /// Whether the next byte is odd.
    pub fn bool(&mut self) -> bool {
        self.u8() & 1 != 0
    }

    /// An address with structure: mostly small page multiples near interesting places (0, 4
    /// GiB, the last frame numbers, the end of the address space), sometimes not page aligned,
    /// sometimes raw.
    pub fn addr(&mut self) -> u64 {
        const PAGE: u64 = 4096;
        let max_pfn_addr = hal_core::addr::MAX_PFN << 12;
        let sel = self.u8();
        let pages = u64::from(self.u8());
        let base = match sel & 7 {
            0..=2 => 0,
            3 => 1 << 32,
            4 => max_pfn_addr - 128 * PAGE,
            5 => u64::MAX - 255 * PAGE + 1,
            6 => 1 << 30,
            _ => return self.u64(),
        };
        let sub = if sel & 0x18 == 0x18 {
            u64::from(self.u16() & 0xfff)
        } else {
            0
        };
        base.wrapping_add(pages * PAGE).wrapping_add(sub)
    }
}
