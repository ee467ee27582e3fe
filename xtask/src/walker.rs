//! The host's own x86-64 page-table walker (4-level paging), over any physical memory the host
//! can read: guest RAM in QEMU's memory file, or a byte buffer in tests.
//!
//! Written for the xtask alone: it shares no code with hal-core's walker, so a bug there (or in
//! the guest's self-check) cannot hide itself here.

use std::collections::HashMap;
use std::fmt;

/// Present.
pub const P: u64 = 1 << 0;
/// Writable.
pub const RW: u64 = 1 << 1;
/// User-accessible.
pub const US: u64 = 1 << 2;
/// Page size (a leaf at L3 or L2).
pub const PS: u64 = 1 << 7;
/// No-execute.
pub const NX: u64 = 1 << 63;
/// Physical address bits of a table pointer or 4 KiB leaf (bits 12..51).
pub const ADDR: u64 = 0x000f_ffff_ffff_f000;

/// Entries per table.
pub const ENTRIES: usize = 512;
/// Bytes per 4 KiB frame.
pub const PAGE: u64 = 4096;

/// Physical memory the walker reads.
pub trait PhysMem {
    /// Fills `buf` from physical address `pa`; `Err` says why it cannot (not RAM, I/O error).
    fn read(&self, pa: u64, buf: &mut [u8]) -> Result<(), String>;

    /// The little-endian word at `pa`.
    fn read_u64(&self, pa: u64) -> Result<u64, String> {
        let mut b = [0u8; 8];
        self.read(pa, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// The 512 entries of the table frame at `pa` (4 KiB aligned).
    fn read_table(&self, pa: u64) -> Result<Vec<u64>, String> {
        let mut b = vec![0u8; PAGE as usize];
        self.read(pa, &mut b)?;
        Ok(b.chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
            .collect())
    }
}

/// A leaf's page size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PageSize {
    /// 4 KiB (an L1 entry).
    Size4K,
    /// 2 MiB (an L2 entry with PS).
    Size2M,
    /// 1 GiB (an L3 entry with PS).
    Size1G,
}

impl PageSize {
    /// All sizes, smallest first (the order of the guest's `pages` figure).
    pub const ALL: [Self; 3] = [Self::Size4K, Self::Size2M, Self::Size1G];

    /// Bytes it maps.
    pub const fn bytes(self) -> u64 {
        match self {
            Self::Size4K => 1 << 12,
            Self::Size2M => 1 << 21,
            Self::Size1G => 1 << 30,
        }
    }

    /// 0, 1, 2: its index in `[4K, 2M, 1G]` counts.
    pub const fn index(self) -> usize {
        match self {
            Self::Size4K => 0,
            Self::Size2M => 1,
            Self::Size1G => 2,
        }
    }
}

impl fmt::Display for PageSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Size4K => "4 KiB",
            Self::Size2M => "2 MiB",
            Self::Size1G => "1 GiB",
        })
    }
}

/// One mapping found by the walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leaf {
    /// First virtual address it maps (canonical).
    pub va: u64,
    /// First physical address it maps.
    pub pa: u64,
    /// Its size.
    pub size: PageSize,
    /// Writable at every level (what the CPU grants).
    pub writable: bool,
    /// User-accessible at every level.
    pub user: bool,
    /// No-execute at some level.
    pub nx: bool,
}

impl Leaf {
    /// One past the last physical address it maps.
    pub fn pa_end(&self) -> u64 {
        self.pa + self.size.bytes()
    }

    /// Whether it maps the frame at `pa`.
    pub fn covers(&self, pa: u64) -> bool {
        (self.pa..self.pa_end()).contains(&pa)
    }
}

/// One table frame found by the walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Table {
    /// Its physical address.
    pub pa: u64,
    /// 4 (the root) to 1.
    pub level: u8,
    /// The first virtual address it maps.
    pub va: u64,
}

/// Everything reachable from a root (in the slots walked).
#[derive(Clone, Debug, Default)]
pub struct Tree {
    /// Table frames, in walk order (the root first); a frame referenced twice appears twice.
    pub tables: Vec<Table>,
    /// Leaves, in virtual-address order.
    pub leaves: Vec<Leaf>,
}

impl Tree {
    /// The distinct table frames.
    pub fn table_frames(&self) -> HashMap<u64, Table> {
        self.tables.iter().map(|t| (t.pa, *t)).collect()
    }

    /// Leaves whose virtual address lies in `[start, end)`.
    pub fn leaves_in(&self, start: u64, end: u64) -> impl Iterator<Item = &Leaf> {
        self.leaves
            .iter()
            .filter(move |l| l.va >= start && l.va < end)
    }
}

/// Why a walk stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WalkError {
    /// A table frame could not be read.
    Unreadable {
        /// Its physical address.
        pa: u64,
        /// The level it would be.
        level: u8,
        /// Why.
        why: String,
    },
    /// A present entry with bits set that the CPU treats as reserved (PS in an L4 entry, or
    /// address bits below a large page's alignment).
    Reserved {
        /// The entry's virtual address range start.
        va: u64,
        /// Its level.
        level: u8,
        /// The entry.
        entry: u64,
    },
    /// More entries than any sane tree holds (a loop through shared tables).
    TooLarge,
}

impl fmt::Display for WalkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreadable { pa, level, why } => {
                write!(f, "the L{level} table at {pa:#x} is unreadable: {why}")
            }
            Self::Reserved { va, level, entry } => write!(
                f,
                "the L{level} entry for {va:#x} has reserved bits set: {entry:#018x}"
            ),
            Self::TooLarge => f.write_str("the tree holds more than 2^26 entries"),
        }
    }
}

/// The canonical virtual address of L4 slot `slot`.
pub const fn slot_va(slot: usize) -> u64 {
    let va = (slot as u64) << 39;
    if slot >= 256 {
        va | 0xffff_0000_0000_0000
    } else {
        va
    }
}

/// The L4 slot of `va`.
pub const fn slot_of(va: u64) -> usize {
    ((va >> 39) & 511) as usize
}

const MAX_ENTRIES: u64 = 1 << 26;

/// Walks every present entry under `root` in the L4 slots `slots` accepts.
pub fn walk(
    mem: &dyn PhysMem,
    root: u64,
    slots: &dyn Fn(usize) -> bool,
) -> Result<Tree, WalkError> {
    let mut tree = Tree::default();
    let mut budget = MAX_ENTRIES;
    let l4 = read(mem, root, 4)?;
    tree.tables.push(Table {
        pa: root,
        level: 4,
        va: 0,
    });
    for (slot, &e) in l4.iter().enumerate() {
        if e & P == 0 || !slots(slot) {
            continue;
        }
        let va = slot_va(slot);
        if e & PS != 0 {
            return Err(WalkError::Reserved {
                va,
                level: 4,
                entry: e,
            });
        }
        let rights = Rights::of(e);
        sub(mem, e & ADDR, 3, va, rights, &mut tree, &mut budget)?;
    }
    Ok(tree)
}

/// The mapping of `va` under `root`, or `None` if no present leaf maps it.
pub fn translate(mem: &dyn PhysMem, root: u64, va: u64) -> Result<Option<Leaf>, WalkError> {
    let mut table = root;
    let mut rights = Rights::ALL;
    for level in (1..=4u8).rev() {
        let shift = 12 + 9 * (level as u32 - 1);
        let index = ((va >> shift) & 511) as usize;
        let t = read(mem, table, level)?;
        let e = t[index];
        if e & P == 0 {
            return Ok(None);
        }
        rights = rights.and(e);
        let base = va & !((1u64 << shift) - 1);
        if level == 1 || (e & PS != 0) {
            if level == 4 {
                return Err(WalkError::Reserved {
                    va: base,
                    level,
                    entry: e,
                });
            }
            return leaf(base, level, e, rights).map(Some);
        }
        table = e & ADDR;
    }
    Ok(None)
}

/// What the levels above grant.
#[derive(Clone, Copy)]
struct Rights {
    writable: bool,
    user: bool,
    nx: bool,
}

impl Rights {
    const ALL: Self = Self {
        writable: true,
        user: true,
        nx: false,
    };

    fn of(e: u64) -> Self {
        Self::ALL.and(e)
    }

    fn and(self, e: u64) -> Self {
        Self {
            writable: self.writable && e & RW != 0,
            user: self.user && e & US != 0,
            nx: self.nx || e & NX != 0,
        }
    }
}

fn read(mem: &dyn PhysMem, pa: u64, level: u8) -> Result<Vec<u64>, WalkError> {
    mem.read_table(pa)
        .map_err(|why| WalkError::Unreadable { pa, level, why })
}

fn leaf(va: u64, level: u8, e: u64, rights: Rights) -> Result<Leaf, WalkError> {
    let (size, mask) = match level {
        1 => (PageSize::Size4K, ADDR),
        2 => (PageSize::Size2M, 0x000f_ffff_ffe0_0000),
        _ => (PageSize::Size1G, 0x000f_ffff_c000_0000),
    };
    // Bit 12 of a large-page entry is PAT; the bits between it and the alignment are reserved.
    if level > 1 && e & ADDR & !mask & !(1 << 12) != 0 {
        return Err(WalkError::Reserved {
            va,
            level,
            entry: e,
        });
    }
    Ok(Leaf {
        va,
        pa: e & mask,
        size,
        writable: rights.writable,
        user: rights.user,
        nx: rights.nx,
    })
}

fn sub(
    mem: &dyn PhysMem,
    pa: u64,
    level: u8,
    va: u64,
    rights: Rights,
    tree: &mut Tree,
    budget: &mut u64,
) -> Result<(), WalkError> {
    let t = read(mem, pa, level)?;
    tree.tables.push(Table { pa, level, va });
    let shift = 12 + 9 * (level as u32 - 1);
    for (i, &e) in t.iter().enumerate() {
        if e & P == 0 {
            continue;
        }
        *budget = budget.checked_sub(1).ok_or(WalkError::TooLarge)?;
        let eva = va | ((i as u64) << shift);
        let r = rights.and(e);
        if level == 1 || e & PS != 0 {
            tree.leaves.push(leaf(eva, level, e, r)?);
        } else {
            sub(mem, e & ADDR, level - 1, eva, r, tree, budget)?;
        }
    }
    Ok(())
}

/// Physical memory in a byte buffer starting at physical address `base`: for tests, and for
/// building synthetic trees.
#[derive(Clone, Debug)]
pub struct BufMem {
    /// Physical address of `bytes[0]`.
    pub base: u64,
    /// The memory.
    pub bytes: Vec<u8>,
}

impl BufMem {
    /// `frames` zeroed frames from `base`.
    pub fn new(base: u64, frames: usize) -> Self {
        Self {
            base,
            bytes: vec![0; frames * PAGE as usize],
        }
    }

    /// Writes entry `index` of the table at `table`.
    pub fn set(&mut self, table: u64, index: usize, entry: u64) {
        let at = (table - self.base) as usize + index * 8;
        self.bytes[at..at + 8].copy_from_slice(&entry.to_le_bytes());
    }
}

impl PhysMem for BufMem {
    fn read(&self, pa: u64, buf: &mut [u8]) -> Result<(), String> {
        let start = pa
            .checked_sub(self.base)
            .ok_or_else(|| format!("{pa:#x} is below the buffer"))?;
        let end = start + buf.len() as u64;
        if end > self.bytes.len() as u64 {
            return Err(format!("{pa:#x} is beyond the buffer"));
        }
        buf.copy_from_slice(&self.bytes[start as usize..end as usize]);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames 0..8 at 0x10_0000: L4 at 0, L3 at 1, L2 at 2, L1 at 3.
    fn tree() -> BufMem {
        let b = 0x10_0000;
        let mut m = BufMem::new(b, 8);
        m.set(b, 273, (b + PAGE) | P | RW);
        m.set(b + PAGE, 0, (b + 2 * PAGE) | P | RW);
        m.set(b + PAGE, 1, 0x4000_0000 | P | RW | PS); // 1 GiB at va slot273 + 1 GiB
        m.set(b + 2 * PAGE, 0, (b + 3 * PAGE) | P | RW);
        m.set(b + 2 * PAGE, 1, 0x20_0000 | P | RW | PS | NX); // 2 MiB
        for i in 0..4 {
            m.set(b + 3 * PAGE, i, (i as u64 * PAGE) | P | RW);
        }
        // The L1 maps its own table frames too, one of them writable, one read-only.
        m.set(b + 3 * PAGE, 10, (b + 3 * PAGE) | P | RW);
        m.set(b + 3 * PAGE, 11, (b + 2 * PAGE) | P);
        m
    }

    #[test]
    fn walks_every_level_and_size() {
        let m = tree();
        let t = walk(&m, 0x10_0000, &|_| true).unwrap();
        assert_eq!(t.tables.len(), 4);
        let counts = PageSize::ALL.map(|s| t.leaves.iter().filter(|l| l.size == s).count());
        assert_eq!(counts, [6, 1, 1]);
        let base = slot_va(273);
        assert_eq!(base, 0xffff_8880_0000_0000);
        assert_eq!(t.leaves[0].va, base);
        assert_eq!(t.leaves[0].pa, 0);
        let big = t
            .leaves
            .iter()
            .find(|l| l.size == PageSize::Size2M)
            .unwrap();
        assert_eq!(
            (big.va, big.pa, big.nx),
            (base + (2 << 20), 0x20_0000, true)
        );
        let huge = t
            .leaves
            .iter()
            .find(|l| l.size == PageSize::Size1G)
            .unwrap();
        assert_eq!((huge.va, huge.pa), (base + (1 << 30), 0x4000_0000));
        assert!(walk(&m, 0x10_0000, &|s| s != 273)
            .unwrap()
            .leaves
            .is_empty());
    }

    #[test]
    fn finds_the_planted_writable_table_mapping() {
        let m = tree();
        let t = walk(&m, 0x10_0000, &|_| true).unwrap();
        let tables = t.table_frames();
        let bad: Vec<&Leaf> = t
            .leaves
            .iter()
            .filter(|l| l.writable && tables.keys().any(|&pa| l.covers(pa)))
            .collect();
        // The writable 4 KiB mapping of the L1 itself; the read-only one of the L2 is fine;
        // no large page covers a table.
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].pa, 0x10_0000 + 3 * PAGE);
    }

    #[test]
    fn rights_are_the_and_of_every_level() {
        let mut m = tree();
        // The L3 entry above the L2 read-only: every leaf below it becomes read-only.
        m.set(0x10_0000 + PAGE, 0, (0x10_0000 + 2 * PAGE) | P);
        let t = walk(&m, 0x10_0000, &|_| true).unwrap();
        assert!(t
            .leaves
            .iter()
            .filter(|l| l.size != PageSize::Size1G)
            .all(|l| !l.writable));
        assert!(t.leaves.iter().all(|l| !l.user));
    }

    #[test]
    fn translate_agrees_with_walk() {
        let m = tree();
        let base = slot_va(273);
        let l = translate(&m, 0x10_0000, base + 3 * PAGE + 5)
            .unwrap()
            .unwrap();
        assert_eq!(
            (l.pa, l.size, l.writable),
            (3 * PAGE, PageSize::Size4K, true)
        );
        let l = translate(&m, 0x10_0000, base + (1 << 30) + 12345)
            .unwrap()
            .unwrap();
        assert_eq!((l.pa, l.size), (0x4000_0000, PageSize::Size1G));
        assert_eq!(translate(&m, 0x10_0000, base + 100 * PAGE).unwrap(), None);
        assert_eq!(translate(&m, 0x10_0000, 0).unwrap(), None);
    }

    #[test]
    fn bad_trees_are_errors_not_panics() {
        let mut m = tree();
        m.set(0x10_0000, 1, 0xdead_0000 | P);
        assert!(matches!(
            walk(&m, 0x10_0000, &|_| true),
            Err(WalkError::Unreadable { level: 3, .. })
        ));
        let mut m = tree();
        m.set(0x10_0000, 2, P | PS);
        assert!(matches!(
            walk(&m, 0x10_0000, &|_| true),
            Err(WalkError::Reserved { level: 4, .. })
        ));
        let mut m = tree();
        m.set(0x10_0000 + 2 * PAGE, 5, 0x20_2000 | P | PS); // 2 MiB page not aligned
        assert!(matches!(
            walk(&m, 0x10_0000, &|_| true),
            Err(WalkError::Reserved { level: 2, .. })
        ));
        // A loop: the L1 slot points back at the root as if it were a table; the walk ends.
        let mut m = tree();
        m.set(0x10_0000 + 2 * PAGE, 7, 0x10_0000 | P | RW);
        let t = walk(&m, 0x10_0000, &|_| true).unwrap();
        assert_eq!(t.tables.len(), 5);
        assert!(walk(&m, 0x9000_0000, &|_| true).is_err());
    }
}
