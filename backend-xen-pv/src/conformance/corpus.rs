//! The corpus's wire format: sequences of fixed-size raw operations on a few frames, and the
//! per-operation results.
//!
//! ```text
//! corpus   = MAGIC (8 bytes) · sequences (u32 LE) · sequence*
//! sequence = ops (u16 LE) · op*
//! op       = code · frame · index (u16 LE) · target · flags · count · arg   (8 bytes)
//! result   = ret (i8: 0 or -errno, or one of the REPLAY_* codes) · extra (u8)
//! ```
//! `extra` is the success count of a batch, or for a store the [`StoreOutcome`] code.

/// The corpus's first bytes.
pub const MAGIC: [u8; 8] = *b"PVMMUCF1";
/// Frames the operations act on.
pub const FRAMES: usize = 4;
/// The first of the slots the operations write entries into (in every frame, and in the live
/// root): `SCRATCH..SCRATCH + SCRATCH_SLOTS`.
pub const SCRATCH: u16 = 300;
/// Number of scratch slots.
pub const SCRATCH_SLOTS: u16 = 4;
/// Bytes of one encoded operation.
pub const OP_BYTES: usize = 8;
/// `frame`/`target` naming the live (boot) root instead of one of the frames.
pub const ROOT: u8 = 0xfe;
/// `target` for an all-zero (not present) entry.
pub const NONE: u8 = 0xff;
/// Most entries one `Write` may carry.
pub const MAX_COUNT: u8 = 8;

/// `ret` of an operation the replayer would not run: it could not be done safely (a
/// `NewRoot` to tables that do not map the running kernel).
pub const REPLAY_UNSAFE: i8 = 127;
/// `ret` of an operation that cannot be decoded.
pub const REPLAY_BAD_OP: i8 = 126;

/// What an operation does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Code {
    /// `update_va_mapping` of the frame's own mapping to read-only.
    Protect = 1,
    /// `update_va_mapping` of the frame's own mapping back to writable.
    Release = 2,
    /// One `mmu_update` of `count` entries at `index..` of `frame` (or of the live root), each
    /// the entry for `target` with `flags` (or 0 for [`NONE`]).
    Write = 3,
    /// `MMUEXT_PIN_L<arg>_TABLE` of `frame`.
    Pin = 4,
    /// `MMUEXT_UNPIN_TABLE` of `frame`.
    Unpin = 5,
    /// One `mmu_update` copying every present guest entry of the live root (but the scratch
    /// slots) into the same slots of `frame`.
    Inherit = 6,
    /// `MMUEXT_NEW_BASEPTR` to `frame` (or back to the live root).
    NewRoot = 7,
    /// A store of the entry for `target`/`flags` (or 0) to entry `index` of `frame`, through
    /// the frame's own mapping.
    Store = 8,
    /// A store of 0 to the last 8 bytes of the page that the scratch slots chosen by `arg`
    /// (2 bits per level, L4 highest) map in the current root.
    StoreVia = 9,
    /// 512 stores of 0 through the frame's own mapping (stops at the first fault).
    Zero = 10,
}

impl Code {
    /// The code of byte `b`.
    pub const fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            1 => Self::Protect,
            2 => Self::Release,
            3 => Self::Write,
            4 => Self::Pin,
            5 => Self::Unpin,
            6 => Self::Inherit,
            7 => Self::NewRoot,
            8 => Self::Store,
            9 => Self::StoreVia,
            10 => Self::Zero,
            _ => return None,
        })
    }
}

/// Entry flag sets an operation may use (`flags` indexes this table).
pub mod flags {
    const P: u64 = 1;
    const RW: u64 = 1 << 1;
    const USER: u64 = 1 << 2;
    const PCD: u64 = 1 << 4;
    const A: u64 = 1 << 5;
    const D: u64 = 1 << 6;
    const PSE: u64 = 1 << 7;
    const GLOBAL: u64 = 1 << 8;
    const NX: u64 = 1 << 63;

    /// Writable (a table entry, or a writable leaf).
    pub const WRITABLE: u8 = 0;
    /// Read-only.
    pub const READ_ONLY: u8 = 1;
    /// Writable large page (PSE).
    pub const LARGE: u8 = 2;
    /// Read-only large page.
    pub const LARGE_RO: u8 = 3;
    /// Writable, global.
    pub const GLOBAL_RW: u8 = 4;
    /// Writable, cache disabled.
    pub const UNCACHED: u8 = 5;
    /// Read-only, no-execute.
    pub const RO_NX: u8 = 6;
    /// Read-only, without `USER` (Xen adds it, and marks the entry a kernel one).
    pub const KERNEL_RO: u8 = 7;

    /// The bits of each set.
    pub const TABLE: [u64; 8] = [
        P | RW | USER | A | D,
        P | USER | A,
        P | RW | USER | A | D | PSE,
        P | USER | A | PSE,
        P | RW | USER | A | D | GLOBAL,
        P | RW | USER | A | D | PCD,
        P | USER | A | NX,
        P | A,
    ];
}

/// One operation, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Op {
    /// What it does.
    pub code: Code,
    /// The frame (0..FRAMES) or [`ROOT`].
    pub frame: u8,
    /// An entry index.
    pub index: u16,
    /// The frame an entry points at, [`ROOT`], or [`NONE`].
    pub target: u8,
    /// An index into [`flags::TABLE`].
    pub flags: u8,
    /// Entries of a `Write`.
    pub count: u8,
    /// The level of a `Pin`; the slots of a `StoreVia`.
    pub arg: u8,
}

impl Op {
    /// An operation with everything but `code` zero.
    pub const fn new(code: Code) -> Self {
        Self {
            code,
            frame: 0,
            index: 0,
            target: NONE,
            flags: 0,
            count: 1,
            arg: 0,
        }
    }

    /// The 8 bytes of the operation.
    pub const fn encode(&self) -> [u8; OP_BYTES] {
        let i = self.index.to_le_bytes();
        [
            self.code as u8,
            self.frame,
            i[0],
            i[1],
            self.target,
            self.flags,
            self.count,
            self.arg,
        ]
    }

    /// Decodes 8 bytes; `None` for an unknown code.
    pub fn decode(b: &[u8; OP_BYTES]) -> Option<Self> {
        Some(Self {
            code: Code::from_u8(b[0])?,
            frame: b[1],
            index: u16::from_le_bytes([b[2], b[3]]),
            target: b[4],
            flags: b[5],
            count: b[6],
            arg: b[7],
        })
    }
}

/// How a store ended (the `extra` byte of its result).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum StoreOutcome {
    /// The store took effect.
    Done = 0,
    /// `#PF` on a present, read-only mapping (error code bit 0 set).
    ReadOnly = 1,
    /// `#PF` on a not-present entry.
    NotPresent = 2,
    /// Another fault (non-canonical, Xen's area, a large page in the model).
    Other = 3,
}

/// Why a corpus cannot be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum CorpusError {
    /// It does not start with [`MAGIC`].
    Magic,
    /// It ends inside sequence number `.0`.
    Truncated(u32),
}

/// A corpus, read lazily.
#[derive(Clone, Copy, Debug)]
pub struct Corpus<'a> {
    bytes: &'a [u8],
    sequences: u32,
}

impl<'a> Corpus<'a> {
    /// Checks the header.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, CorpusError> {
        if bytes.len() < 12 || bytes[..8] != MAGIC {
            return Err(CorpusError::Magic);
        }
        let sequences = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        Ok(Self {
            bytes: &bytes[12..],
            sequences,
        })
    }

    /// Sequences the header announces.
    pub const fn len(&self) -> u32 {
        self.sequences
    }

    /// Whether it announces none.
    pub const fn is_empty(&self) -> bool {
        self.sequences == 0
    }

    /// The sequences, each as its raw operations (`OP_BYTES` each); an `Err` ends the walk.
    pub fn sequences(&self) -> Sequences<'a> {
        Sequences {
            rest: self.bytes,
            left: self.sequences,
            n: 0,
        }
    }
}

/// Iterator over a corpus's sequences.
#[derive(Clone, Debug)]
pub struct Sequences<'a> {
    rest: &'a [u8],
    left: u32,
    n: u32,
}

impl<'a> Iterator for Sequences<'a> {
    type Item = Result<&'a [u8], CorpusError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let n = self.n;
        self.n += 1;
        let Some((len, rest)) = self.rest.split_first_chunk::<2>() else {
            self.left = 0;
            return Some(Err(CorpusError::Truncated(n)));
        };
        let bytes = usize::from(u16::from_le_bytes(*len)) * OP_BYTES;
        if rest.len() < bytes {
            self.left = 0;
            return Some(Err(CorpusError::Truncated(n)));
        }
        let (ops, rest) = rest.split_at(bytes);
        self.rest = rest;
        Some(Ok(ops))
    }
}
