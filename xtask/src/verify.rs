//! The verdict from outside the guest: the page tables the CPU uses at the exit gate (CR3 from
//! QEMU's monitor, tables from the machine's RAM file), walked by the host's own walker
//! ([`crate::walker`]) and checked against what the host knows without asking the guest:
//!
//! - bare metal: the q35 RAM layout for the `-m` it passed, minus what SeaBIOS withholds
//!   (measured, see [`native_ram`]); every RAM page mapped once at [`DIRECT_MAP_BASE`] + pa,
//!   present, writable, executable, supervisor-only, with the largest page alignment allows,
//!   nothing else in the direct map's slots, no table frame of the direct map inside a large
//!   page;
//! - Xen PV dom0 and domU: every pfn of the domain (`dom0_mem`, or xl's `memory` for a domU,
//!   whose tables the host copies at its gate, see [`crate::domu`]) mapped once at
//!   base + pfn * 4096 by a 4 KiB leaf whose machine frame Xen's own M2P table (read through
//!   Xen's read-only slot) gives to that pfn, so the frames are distinct and the domain's;
//!   read-only exactly where the frame is a page table (of the live tree, or of the bootstrap
//!   tables as Xen's log, or libxc's for a domU, places them); and nowhere in the whole live
//!   tree (Xen's slots 256..272 left out) a writable mapping of a page-table frame.
//!
//! The one thing taken from the guest is where its `pgt_buf` is: every table of the direct map
//! (and the root) must lie inside it, and the rest of it is the released tail.

use std::collections::{HashMap, HashSet};
use std::fmt;

use crate::boot::Board;
use crate::guest_mem::{RamLayout, FOUR_GIB};
use crate::qmp::Registers;
use crate::walker::{self, Leaf, PageSize, PhysMem, Tree, PAGE};

/// The direct map's base: Linux's `page_offset_base` for 4-level paging (L4 slot 273).
pub const DIRECT_MAP_BASE: u64 = 0xffff_8880_0000_0000;
/// The direct map's region: Linux's 64 TiB (L4 slots 273..401). Nothing but the direct map
/// may be mapped there.
pub const DIRECT_MAP_SPAN: u64 = 64 << 40;
/// The L4 slots Xen reserves for itself in a 64-bit PV guest's root.
pub const XEN_SLOTS: std::ops::Range<usize> = 256..272;
/// Xen's read-only machine-to-phys table, mapped into every 64-bit PV guest
/// (`RO_MPT_VIRT_START`, L4 slot 256): one `unsigned long` pfn per machine frame.
pub const XEN_M2P: u64 = 0xffff_8000_0000_0000;

/// SeaBIOS (QEMU 7.2, q35, PVH boot) reports RAM below 1 MiB only up to the EBDA here.
pub const SEABIOS_EBDA: u64 = 0x9_fc00;
/// ... and RAM again from 1 MiB.
pub const SEABIOS_LOW_END: u64 = 0x10_0000;
/// ... and keeps this much at the top of low RAM for itself (reserved in its e820), at every
/// `-m` measured (128M, 1G, 2815M, 2816M, 3G, 6G, 16G).
pub const SEABIOS_HIGH_TABLES: u64 = 132 << 10;

/// A frame range `[start, end)` in pfns.
pub type Pfns = (u64, u64);

/// The RAM a bare-metal guest gets on q35 with `layout`, as SeaBIOS's e820 gives it, in whole
/// pages `[start, end)` (bytes): `[0, EBDA)`, `[1 MiB, top of low RAM - 132 KiB)`, high RAM.
pub fn native_ram(layout: &RamLayout) -> Vec<(u64, u64)> {
    let mut r = vec![
        (0, SEABIOS_EBDA & !(PAGE - 1)),
        (
            SEABIOS_LOW_END,
            layout.below_4g.saturating_sub(SEABIOS_HIGH_TABLES) & !(PAGE - 1),
        ),
    ];
    if layout.above_4g > 0 {
        r.push((FOUR_GIB, FOUR_GIB + (layout.above_4g & !(PAGE - 1))));
    }
    r.retain(|&(s, e)| s < e);
    r
}

/// The pages that map `ranges` with the largest size alignment allows at each step (1 GiB
/// where an aligned GiB fits, else 2 MiB likewise, else 4 KiB): `(pa, size)` in order.
pub fn largest_pages(ranges: &[(u64, u64)]) -> Vec<(u64, PageSize)> {
    let mut out = Vec::new();
    for &(start, end) in ranges {
        let mut pa = start;
        while pa < end {
            let size = [PageSize::Size1G, PageSize::Size2M]
                .into_iter()
                .find(|s| pa % s.bytes() == 0 && pa + s.bytes() <= end)
                .unwrap_or(PageSize::Size4K);
            out.push((pa, size));
            pa += size.bytes();
        }
    }
    out
}

/// Pages per size (4 KiB, 2 MiB, 1 GiB).
pub fn count(pages: impl IntoIterator<Item = PageSize>) -> [u64; 3] {
    let mut c = [0; 3];
    for s in pages {
        c[s.index()] += 1;
    }
    c
}

/// What the host found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// The root (CR3).
    pub root: u64,
    /// Distinct table frames in the live tree (Xen's slots not walked).
    pub tables_walked: u64,
    /// Of them, the direct map's below the root.
    pub dm_tables: u64,
    /// Direct-map leaves per size (4 KiB, 2 MiB, 1 GiB), as walked.
    pub leaves: [u64; 3],
    /// The host's expectation of the same (largest pages over the RAM it knows).
    pub expected: [u64; 3],
    /// RAM bytes the host expects mapped (and found mapped).
    pub ram_bytes: u64,
    /// 4 KiB RAM pages the direct map covers.
    pub ram_pages: u64,
    /// Leaves in the live tree that map a page-table frame writable.
    pub writable_table_mappings: u64,
    /// Direct-map tables (and root) inside a large page of the direct map.
    pub tables_in_large_pages: u64,
    /// `pgt_buf` as the guest reported it.
    pub pgt_buf: Pfns,
    /// `pgt_buf` frames that are no table: the released tail.
    pub tail_frames: u64,
    /// Under Xen: the tail frames' mappings in the live tree (all writable), `m * K`.
    pub tail_mappings: u64,
    /// Under Xen: the mappings of `pgt_buf`'s frames in the live tree outside the direct map
    /// (the domain builder's initial mapping): the entries that making the buffer read-only
    /// had to change, before any table of the direct map existed.
    pub pgt_buf_boot_mappings: u64,
    /// Under Xen: the tables taken from `pgt_buf` (the direct map's and the root) that no
    /// mapping outside the direct map reaches: the ones the backend filled through a scratch
    /// page (or queued).
    pub tables_outside_boot_mapping: u64,
}

impl Report {
    /// Leaves of the direct map.
    pub fn total_leaves(&self) -> u64 {
        self.leaves.iter().sum()
    }

    /// Tables taken from `pgt_buf`: the direct map's and the root.
    pub fn tables_used(&self) -> u64 {
        self.dm_tables + 1
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "host walk from CR3 {:#x}: {} tables walked ({} in the direct map + root), leaves \
             4K/2M/1G {}/{}/{} (expected {}/{}/{}), {} RAM pages covered, {} writable \
             mappings of table frames, tail {} frames ({} mappings)",
            self.root,
            self.tables_walked,
            self.dm_tables,
            self.leaves[0],
            self.leaves[1],
            self.leaves[2],
            self.expected[0],
            self.expected[1],
            self.expected[2],
            self.ram_pages,
            self.writable_table_mappings,
            self.tail_frames,
            self.tail_mappings
        )
    }
}

/// What the host knows about the machine it started.
#[derive(Clone, Copy, Debug)]
pub struct Machine {
    /// The board.
    pub board: Board,
    /// The machine's RAM layout (what QEMU got).
    pub layout: RamLayout,
    /// Xen: the domain's pages (`dom0_mem` / 4096).
    pub dom0_pages: u64,
    /// Xen: the bootstrap page tables as Xen's log places them (pfns).
    pub xen_boot_tables: Pfns,
}

/// Walks the live tree from `regs`' CR3 and checks the direct map (see the module docs).
pub fn verify(
    mem: &dyn PhysMem,
    regs: &Registers,
    machine: &Machine,
    pgt_buf: Pfns,
) -> Result<Report, String> {
    if !regs.four_level_paging() {
        return Err(format!("not 4-level long-mode paging: {regs:x?}"));
    }
    let root = regs.root();
    let tree = match machine.board {
        Board::Native => walker::walk(mem, root, &|_| true),
        Board::Xen | Board::XenDomU => walker::walk(mem, root, &|s| !XEN_SLOTS.contains(&s)),
    }
    .map_err(|e| format!("walking from CR3 {:#x}: {e}", regs.cr3))?;
    let mut r = Report {
        root,
        tables_walked: tree.table_frames().len() as u64,
        pgt_buf,
        ..Report::default()
    };
    let dm: Vec<Leaf> = tree
        .leaves_in(DIRECT_MAP_BASE, DIRECT_MAP_BASE + DIRECT_MAP_SPAN)
        .copied()
        .collect();
    r.leaves = count(dm.iter().map(|l| l.size));
    r.ram_pages = dm.iter().map(|l| l.size.bytes() / PAGE).sum();
    let dm_tables: HashSet<u64> = tree
        .tables
        .iter()
        .filter(|t| t.level < 4 && t.va >= DIRECT_MAP_BASE)
        .filter(|t| t.va < DIRECT_MAP_BASE + DIRECT_MAP_SPAN)
        .map(|t| t.pa)
        .collect();
    r.dm_tables = dm_tables.len() as u64;
    match machine.board {
        Board::Native => native(&tree, &dm, &dm_tables, machine, &mut r)?,
        Board::Xen | Board::XenDomU => xen(mem, &tree, &dm, &dm_tables, machine, &mut r)?,
    }
    Ok(r)
}

fn in_pfns(pfn: u64, r: Pfns) -> bool {
    (r.0..r.1).contains(&pfn)
}

fn native(
    tree: &Tree,
    dm: &[Leaf],
    dm_tables: &HashSet<u64>,
    machine: &Machine,
    r: &mut Report,
) -> Result<(), String> {
    let ram = native_ram(&machine.layout);
    let expected = largest_pages(&ram);
    r.expected = count(expected.iter().map(|&(_, s)| s));
    r.ram_bytes = ram.iter().map(|(s, e)| e - s).sum();
    for (i, want) in expected.iter().enumerate() {
        let (pa, size) = *want;
        let va = DIRECT_MAP_BASE + pa;
        match dm.get(i) {
            Some(l) if l.va == va && l.pa == pa && l.size == size => {}
            Some(l) if l.va < va => {
                return Err(format!(
                    "the direct map maps {:#x} (pa {:#x}, {}), which is no RAM the host gave \
                     (next RAM page: pa {pa:#x})",
                    l.va, l.pa, l.size
                ))
            }
            Some(l) if l.va == va && l.pa == pa => {
                return Err(format!(
                    "pa {pa:#x} is mapped with a {} page, the largest that fits is {size}",
                    l.size
                ))
            }
            Some(l) if l.va == va => {
                return Err(format!(
                    "va {va:#x} maps pa {:#x} ({}), expected pa {pa:#x} ({size})",
                    l.pa, l.size
                ))
            }
            _ => {
                return Err(format!(
                    "RAM at pa {pa:#x} ({size} expected at {va:#x}) is not mapped by the \
                     direct map"
                ))
            }
        }
    }
    if let Some(l) = dm.get(expected.len()) {
        return Err(format!(
            "the direct map maps {:#x} (pa {:#x}, {}) beyond the RAM the host gave",
            l.va, l.pa, l.size
        ));
    }
    if let Some(l) = dm.iter().find(|l| !l.writable || l.nx || l.user) {
        return Err(format!(
            "the direct map's leaf at {:#x} is {}writable, {}executable, {}: expected \
             writable, executable, supervisor",
            l.va,
            if l.writable { "" } else { "not " },
            if l.nx { "not " } else { "" },
            if l.user { "user" } else { "supervisor" }
        ));
    }
    tables_in_pgt_buf(dm_tables, r, |pa| Ok(pa / PAGE))?;
    let own: Vec<u64> = dm_tables
        .iter()
        .copied()
        .chain([r.root])
        .collect::<Vec<_>>();
    r.tables_in_large_pages = own
        .iter()
        .filter(|&&t| dm.iter().any(|l| l.size != PageSize::Size4K && l.covers(t)))
        .count() as u64;
    if r.tables_in_large_pages > 0 {
        return Err(format!(
            "{} of the direct map's table frames lie inside large pages of it",
            r.tables_in_large_pages
        ));
    }
    // Bare metal has no rule against writable tables: counted, not judged.
    let all: HashSet<u64> = tree.table_frames().keys().copied().collect();
    r.writable_table_mappings = writable_table_mappings(tree, &all).len() as u64;
    Ok(())
}

/// Every table of the direct map, and the root, inside `pgt_buf` (`pfn_of` turns a table's
/// address into the guest's pfn); the rest of `pgt_buf` is the tail.
fn tables_in_pgt_buf(
    dm_tables: &HashSet<u64>,
    r: &mut Report,
    mut pfn_of: impl FnMut(u64) -> Result<u64, String>,
) -> Result<(), String> {
    for &t in dm_tables.iter().chain([&r.root]) {
        let pfn = pfn_of(t)?;
        if !in_pfns(pfn, r.pgt_buf) {
            return Err(format!(
                "the table at {t:#x} (pfn {pfn:#x}) is not in pgt_buf [{:#x}, {:#x})",
                r.pgt_buf.0, r.pgt_buf.1
            ));
        }
    }
    let len = r.pgt_buf.1.saturating_sub(r.pgt_buf.0);
    r.tail_frames = len
        .checked_sub(r.tables_used())
        .ok_or_else(|| format!("pgt_buf holds {len} frames, fewer than its tables"))?;
    Ok(())
}

/// The leaves that map one of `tables` writable.
fn writable_table_mappings<'t>(tree: &'t Tree, tables: &HashSet<u64>) -> Vec<&'t Leaf> {
    let large: Vec<u64> = tables.iter().copied().collect();
    tree.leaves
        .iter()
        .filter(|l| l.writable)
        .filter(|l| match l.size {
            PageSize::Size4K => tables.contains(&l.pa),
            _ => large.iter().any(|&t| l.covers(t)),
        })
        .collect()
}

fn xen(
    mem: &dyn PhysMem,
    tree: &Tree,
    dm: &[Leaf],
    dm_tables: &HashSet<u64>,
    machine: &Machine,
    r: &mut Report,
) -> Result<(), String> {
    let n = machine.dom0_pages;
    r.expected = [n, 0, 0];
    r.ram_bytes = n * PAGE;
    // Xen's M2P, read a page at a time through Xen's own mapping of it.
    let mut m2p_pages: HashMap<u64, Vec<u64>> = HashMap::new();
    let root = r.root;
    let mut m2p = |mfn: u64| -> Result<u64, String> {
        let va = XEN_M2P + mfn * 8;
        let page = va & !(PAGE - 1);
        let entries = match m2p_pages.entry(page) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let l = walker::translate(mem, root, page)
                    .map_err(|e| format!("reading Xen's M2P: {e}"))?
                    .ok_or_else(|| format!("Xen's M2P is not mapped at {page:#x}"))?;
                e.insert(mem.read_table(l.pa + (page - l.va))?)
            }
        };
        Ok(entries[((va - page) / 8) as usize])
    };
    let all: HashSet<u64> = tree.table_frames().keys().copied().collect();
    let mut mfns: HashMap<u64, u64> = HashMap::with_capacity(dm.len());
    for (pfn, l) in (0u64..).zip(dm) {
        let va = DIRECT_MAP_BASE + pfn * PAGE;
        if pfn >= n {
            return Err(format!(
                "the direct map maps {:#x} (machine {:#x}), beyond the domain's {n} pages",
                l.va, l.pa
            ));
        }
        if l.va != va {
            return Err(format!(
                "pfn {pfn:#x} is not mapped at {va:#x} (the next mapping is at {:#x})",
                l.va
            ));
        }
        if l.size != PageSize::Size4K {
            return Err(format!("a {} page at {va:#x}: Xen PV has none", l.size));
        }
        if machine.layout.file_offset(l.pa).is_none() {
            return Err(format!("pfn {pfn:#x} maps {:#x}, which is no RAM", l.pa));
        }
        let mfn = l.pa / PAGE;
        if let Some(other) = mfns.insert(mfn, pfn) {
            return Err(format!(
                "pfns {other:#x} and {pfn:#x} both map machine frame {mfn:#x}"
            ));
        }
        let owner = m2p(mfn)?;
        if owner != pfn {
            return Err(format!(
                "pfn {pfn:#x} maps machine frame {mfn:#x}, which Xen's M2P gives to \
                 {owner:#x}: not this domain's frame for that pfn"
            ));
        }
        let table = all.contains(&l.pa) || in_pfns(pfn, machine.xen_boot_tables);
        if l.writable == table || l.nx {
            return Err(format!(
                "pfn {pfn:#x} (machine {mfn:#x}) is mapped {}{} at {va:#x}, but it is {}a \
                 page-table frame",
                if l.writable { "writable" } else { "read-only" },
                if l.nx { ", no-execute" } else { "" },
                if table { "" } else { "not " }
            ));
        }
    }
    if (dm.len() as u64) < n {
        return Err(format!(
            "the direct map has {} leaves, the domain {n} pages: pfn {:#x} is not mapped",
            dm.len(),
            dm.len()
        ));
    }
    // Xen's rule, checked independently: no writable mapping of any page-table frame, the
    // live tree's or the bootstrap tables'.
    let mut tables = all.clone();
    for pfn in machine.xen_boot_tables.0..machine.xen_boot_tables.1 {
        if let Some(l) = dm.get(pfn as usize) {
            tables.insert(l.pa);
        }
    }
    let bad = writable_table_mappings(tree, &tables);
    r.writable_table_mappings = bad.len() as u64;
    if let Some(l) = bad.first() {
        return Err(format!(
            "{} writable mappings of page-table frames in the live tree, e.g. {:#x} -> \
             machine {:#x}",
            bad.len(),
            l.va,
            l.pa
        ));
    }
    tables_in_pgt_buf(dm_tables, r, |pa| m2p(pa / PAGE))?;
    // The tail: pgt_buf frames that are no table, writable in every mapping of the live tree.
    let tail: HashSet<u64> = (r.pgt_buf.0..r.pgt_buf.1)
        .filter_map(|pfn| dm.get(pfn as usize).map(|l| l.pa))
        .filter(|pa| !all.contains(pa))
        .collect();
    if tail.len() as u64 != r.tail_frames {
        return Err(format!(
            "pgt_buf's tail is {} frames, {} by the table count",
            tail.len(),
            r.tail_frames
        ));
    }
    let buf: HashSet<u64> = (r.pgt_buf.0..r.pgt_buf.1)
        .filter_map(|pfn| dm.get(pfn as usize).map(|l| l.pa))
        .collect();
    let in_dm = |va: u64| (DIRECT_MAP_BASE..DIRECT_MAP_BASE + DIRECT_MAP_SPAN).contains(&va);
    let boot_mapped: Vec<u64> = tree
        .leaves
        .iter()
        .filter(|l| l.size == PageSize::Size4K && buf.contains(&l.pa) && !in_dm(l.va))
        .map(|l| l.pa)
        .collect();
    r.pgt_buf_boot_mappings = boot_mapped.len() as u64;
    let boot_mapped: HashSet<u64> = boot_mapped.into_iter().collect();
    r.tables_outside_boot_mapping = buf
        .iter()
        .filter(|pa| all.contains(pa) && !boot_mapped.contains(pa))
        .count() as u64;
    for l in tree.leaves.iter().filter(|l| tail.contains(&l.pa)) {
        if !l.writable {
            return Err(format!(
                "the released tail frame {:#x} is still read-only at {:#x}",
                l.pa, l.va
            ));
        }
        r.tail_mappings += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::walker::{BufMem, P, RW};

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    #[test]
    fn native_expectation_at_the_matrix_sizes() {
        let pages = |mib: u64| {
            count(
                largest_pages(&native_ram(&RamLayout::q35(mib * MIB)))
                    .into_iter()
                    .map(|p| p.1),
            )
        };
        // 6 GiB: the guest's measured figures.
        assert_eq!(pages(6 * 1024), [894, 1022, 4]);
        assert_eq!(pages(3 * 1024), [894, 1022, 1]);
        assert_eq!(pages(16 * 1024), [894, 1022, 14]);
        let ram: u64 = native_ram(&RamLayout::q35(6 * GIB))
            .iter()
            .map(|(s, e)| e - s)
            .sum();
        assert_eq!(ram, 6441918464);
        assert_eq!(pages(128), [159 + 256 + 479, 62, 0]);
    }

    /// A synthetic Xen PV domain of 8 pages (pfn n on machine frame 0x200 + n), its direct map
    /// in slot 273 and Xen's M2P in slot 256.
    fn xen_machine() -> (BufMem, Machine, Registers) {
        // Frames: 0x100.. the domain's 8 pages; 0x200 root, 0x201 L3, 0x202 L2, 0x203 L1
        // (direct map); 0x210.. M2P tables and page.
        let mut m = BufMem::new(0, 0x220);
        let f = |n: u64| n * PAGE;
        let (root, l3, l2, l1) = (f(0x200), f(0x201), f(0x202), f(0x203));
        m.set(root, 273, l3 | P | RW);
        m.set(l3, 0, l2 | P | RW);
        m.set(l2, 0, l1 | P | RW);
        // The domain's pfns 0..8 are mfns 0x200..0x208: pfn 0..4 the tables (read-only).
        for pfn in 0..8u64 {
            let mfn = 0x200 + pfn;
            let rw = if pfn < 4 { 0 } else { RW };
            m.set(l1, pfn as usize, f(mfn) | P | rw);
        }
        // M2P: slot 256 -> 0x210 (L3) -> 0x211 (L2) -> 0x212 (L1) -> 0x213, 0x217 (its
        // pages for mfns 0..512, 512..1024).
        m.set(root, 256, f(0x210) | P);
        m.set(f(0x210), 0, f(0x211) | P);
        m.set(f(0x211), 0, f(0x212) | P);
        m.set(f(0x212), 0, f(0x213) | P);
        m.set(f(0x212), 1, f(0x217) | P);
        for mfn in 0..1024u64 {
            let v = if (0x200..0x208).contains(&mfn) {
                mfn - 0x200
            } else {
                u64::MAX
            };
            let page = if mfn < 512 { 0x213 } else { 0x217 };
            m.set(f(page), (mfn % 512) as usize, v);
        }
        let machine = Machine {
            board: Board::Xen,
            layout: RamLayout {
                below_4g: f(0x220),
                above_4g: 0,
            },
            dom0_pages: 8,
            xen_boot_tables: (8, 8),
        };
        let regs = Registers {
            cr0: 1 << 31,
            cr3: root,
            cr4: 1 << 5,
            efer: 1 << 10,
            cpl: 3,
        };
        (m, machine, regs)
    }

    #[test]
    fn xen_tree_passes_and_reports() {
        let (m, machine, regs) = xen_machine();
        // pgt_buf pfns 0..6: 4 tables, 2 tail frames.
        let r = verify(&m, &regs, &machine, (0, 6)).unwrap();
        assert_eq!(r.leaves, [8, 0, 0]);
        assert_eq!(r.dm_tables, 3);
        assert_eq!(r.tail_frames, 2);
        assert_eq!(r.tail_mappings, 2);
        assert_eq!(r.writable_table_mappings, 0);
        assert_eq!(r.tables_walked, 4);
    }

    #[test]
    fn xen_planted_bugs_fail() {
        let l1 = 0x203 * PAGE;
        // A table frame (the L2, pfn 2) mapped writable in the direct map.
        let (mut m, machine, regs) = xen_machine();
        m.set(l1, 2, (0x202 * PAGE) | P | RW);
        let e = verify(&m, &regs, &machine, (0, 6)).unwrap_err();
        assert!(e.contains("writable"), "{e}");
        // A writable alias of the L1 elsewhere in the tree (slot 0).
        let (mut m, machine, regs) = xen_machine();
        m.set(0x200 * PAGE, 0, (0x214 * PAGE) | P | RW);
        m.set(0x214 * PAGE, 0, (0x215 * PAGE) | P | RW);
        m.set(0x215 * PAGE, 0, (0x216 * PAGE) | P | RW);
        m.set(0x216 * PAGE, 9, l1 | P | RW);
        let e = verify(&m, &regs, &machine, (0, 6)).unwrap_err();
        assert!(e.contains("writable mappings of page-table frames"), "{e}");
        // A frame that is not the domain's for that pfn (M2P disagrees).
        let (mut m, machine, regs) = xen_machine();
        m.set(l1, 5, (0x20f * PAGE) | P | RW);
        let e = verify(&m, &regs, &machine, (0, 6)).unwrap_err();
        assert!(e.contains("M2P"), "{e}");
        // Two pfns on one frame.
        let (mut m, machine, regs) = xen_machine();
        m.set(l1, 5, (0x204 * PAGE) | P | RW);
        assert!(verify(&m, &regs, &machine, (0, 6)).is_err());
        // A missing page.
        let (mut m, machine, regs) = xen_machine();
        m.set(l1, 7, 0);
        let e = verify(&m, &regs, &machine, (0, 6)).unwrap_err();
        assert!(e.contains("not mapped"), "{e}");
        // A table outside pgt_buf.
        let (m, machine, regs) = xen_machine();
        assert!(verify(&m, &regs, &machine, (1, 6)).is_err());
        // The tail still read-only.
        let (mut m, machine, regs) = xen_machine();
        m.set(l1, 4, (0x204 * PAGE) | P);
        assert!(verify(&m, &regs, &machine, (0, 6)).is_err());
    }

    #[test]
    fn largest_pages_by_alignment() {
        let p = largest_pages(&[(0x1000, 0x40_1000)]);
        assert_eq!(count(p.iter().map(|x| x.1)), [511 + 1, 1, 0]);
        let p = largest_pages(&[(0, 2 * GIB + 4096)]);
        assert_eq!(count(p.iter().map(|x| x.1)), [1, 0, 2]);
    }
}
