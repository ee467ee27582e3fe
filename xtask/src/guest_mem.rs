//! The machine's RAM as the host sees it: QEMU q35's layout for the `-m` the runner passed, and
//! the file that backs it (`-object memory-backend-file,share=on`), readable (and, for the exit
//! gate, writable) by physical address while and after the guest runs.
//!
//! q35 (QEMU 7.2, `pc_q35_init`): with `-m` of 2816 MiB (0xb000_0000) or more, low RAM ends at
//! 2 GiB and the rest starts at 4 GiB; below that, all of it is low RAM. The backend file holds
//! low RAM first, then high RAM: physical `4 GiB + x` is file offset `below_4g + x`.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::walker::{PhysMem, PAGE};

const GIB: u64 = 1 << 30;
/// Where high RAM starts.
pub const FOUR_GIB: u64 = 4 * GIB;

/// Where the machine's RAM is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RamLayout {
    /// RAM `[0, below_4g)`.
    pub below_4g: u64,
    /// RAM `[4 GiB, 4 GiB + above_4g)`.
    pub above_4g: u64,
}

impl RamLayout {
    /// q35's layout for `-m ram` bytes.
    pub const fn q35(ram: u64) -> Self {
        let lowmem = if ram >= 0xb000_0000 {
            2 * GIB
        } else {
            0xb000_0000
        };
        if ram >= lowmem {
            Self {
                below_4g: lowmem,
                above_4g: ram - lowmem,
            }
        } else {
            Self {
                below_4g: ram,
                above_4g: 0,
            }
        }
    }

    /// All RAM bytes.
    pub const fn size(&self) -> u64 {
        self.below_4g + self.above_4g
    }

    /// The RAM ranges `[start, end)`.
    pub fn ranges(&self) -> Vec<(u64, u64)> {
        let mut r = vec![(0, self.below_4g)];
        if self.above_4g > 0 {
            r.push((FOUR_GIB, FOUR_GIB + self.above_4g));
        }
        r
    }

    /// Where physical address `pa` is in the backing file, if it is RAM.
    pub const fn file_offset(&self, pa: u64) -> Option<u64> {
        if pa < self.below_4g {
            Some(pa)
        } else if pa >= FOUR_GIB && pa - FOUR_GIB < self.above_4g {
            Some(self.below_4g + (pa - FOUR_GIB))
        } else {
            None
        }
    }
}

/// The machine's RAM in its backing file; the file is removed when this is dropped.
#[derive(Debug)]
pub struct RamFile {
    path: PathBuf,
    file: File,
    layout: RamLayout,
}

impl RamFile {
    /// Creates the (sparse) file QEMU will map as RAM of `layout.size()` bytes.
    pub fn create(path: &Path, layout: RamLayout) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        file.set_len(layout.size())?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            layout,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The layout.
    pub fn layout(&self) -> RamLayout {
        self.layout
    }

    /// Machine pages of RAM.
    pub fn pages(&self) -> u64 {
        self.layout.size() / 4096
    }

    /// Removes the file's name (QEMU and this handle keep the memory); idempotent.
    pub fn unlink(&self) {
        let _ = std::fs::remove_file(&self.path);
    }

    /// Writes `value` at physical address `pa` (visible to the running guest: QEMU maps the
    /// file shared).
    pub fn write_u64(&self, pa: u64, value: u64) -> Result<(), String> {
        let off = self.offset(pa, 8)?;
        self.file
            .write_all_at(&value.to_le_bytes(), off)
            .map_err(|e| format!("writing {pa:#x}: {e}"))
    }

    fn offset(&self, pa: u64, len: u64) -> Result<u64, String> {
        let off = self
            .layout
            .file_offset(pa)
            .ok_or_else(|| format!("{pa:#x} is not RAM"))?;
        let last = pa
            .checked_add(len.saturating_sub(1))
            .and_then(|l| self.layout.file_offset(l));
        if last != Some(off + len.saturating_sub(1)) {
            return Err(format!("[{pa:#x}, +{len:#x}) is not contiguous RAM"));
        }
        Ok(off)
    }
}

impl PhysMem for RamFile {
    fn read(&self, pa: u64, buf: &mut [u8]) -> Result<(), String> {
        let off = self.offset(pa, buf.len() as u64)?;
        self.file
            .read_exact_at(buf, off)
            .map_err(|e| format!("reading {pa:#x}: {e}"))
    }
}

impl Drop for RamFile {
    fn drop(&mut self) {
        self.unlink();
    }
}

/// Where to put the RAM files: `/dev/shm` when it exists (no disk writes), else the temp dir.
pub fn ram_dir() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn q35_splits_at_2816_mib() {
        assert_eq!(RamLayout::q35(128 * MIB).ranges(), vec![(0, 128 * MIB)]);
        assert_eq!(RamLayout::q35(2815 * MIB).ranges(), vec![(0, 2815 * MIB)]);
        let l = RamLayout::q35(2816 * MIB);
        assert_eq!(
            l.ranges(),
            vec![(0, 2 * GIB), (FOUR_GIB, FOUR_GIB + 768 * MIB)]
        );
        let l = RamLayout::q35(6 * GIB);
        assert_eq!(l.file_offset(FOUR_GIB), Some(2 * GIB));
        assert_eq!(l.file_offset(FOUR_GIB + 4 * GIB - 1), Some(6 * GIB - 1));
        assert_eq!(l.file_offset(FOUR_GIB + 4 * GIB), None);
        assert_eq!(l.file_offset(3 * GIB), None);
        assert_eq!(l.file_offset(2 * GIB - 1), Some(2 * GIB - 1));
    }

    #[test]
    fn file_reads_and_writes_by_physical_address() {
        let dir = std::env::temp_dir();
        let path = dir.join(format!("pvmmu-ramfile-test-{}", std::process::id()));
        let layout = RamLayout {
            below_4g: 2 * 4096,
            above_4g: 4096,
        };
        let f = RamFile::create(&path, layout).unwrap();
        f.write_u64(FOUR_GIB + 8, 0x1122).unwrap();
        f.write_u64(4096, 7).unwrap();
        assert_eq!(f.read_u64(FOUR_GIB + 8).unwrap(), 0x1122);
        assert_eq!(f.read_u64(4096).unwrap(), 7);
        assert!(f.read_u64(2 * 4096).is_err());
        assert!(f.read_u64(2 * 4096 - 4).is_err());
        assert!(f.read_u64(u64::MAX).is_err());
        drop(f);
        assert!(!path.exists());
    }
}

/// Some pages of a machine's RAM, copied while they were live: a domU's page tables and the
/// part of Xen's M2P they need, taken at its exit gate (its frames are reused once it is gone).
/// A read of anything not copied is an error, so a check cannot pass on memory it never saw.
#[derive(Debug, Default)]
pub struct Snapshot {
    pages: std::collections::HashMap<u64, Vec<u8>>,
}

impl Snapshot {
    /// Copies every page that `f` reads through the [`PhysMem`] it is given (over `mem`).
    pub fn record<T>(mem: &dyn PhysMem, f: impl FnOnce(&dyn PhysMem) -> T) -> (Self, T) {
        let rec = Recorder {
            mem,
            pages: std::cell::RefCell::new(std::collections::HashMap::new()),
        };
        let out = f(&rec);
        (
            Self {
                pages: rec.pages.into_inner(),
            },
            out,
        )
    }

    /// How many pages were copied.
    pub fn pages(&self) -> usize {
        self.pages.len()
    }
}

impl PhysMem for Snapshot {
    fn read(&self, pa: u64, buf: &mut [u8]) -> Result<(), String> {
        copy_pages(pa, buf, |page| {
            self.pages
                .get(&page)
                .map(Vec::as_slice)
                .ok_or_else(|| format!("{page:#x} was not copied at the exit gate"))
        })
    }
}

/// Fills `buf` from `pa` a page at a time, each page's bytes from `page(its address)`.
fn copy_pages<'p>(
    pa: u64,
    buf: &mut [u8],
    page: impl Fn(u64) -> Result<&'p [u8], String>,
) -> Result<(), String> {
    let mut done = 0;
    while done < buf.len() {
        let a = pa + done as u64;
        let off = (a & (PAGE - 1)) as usize;
        let n = (PAGE as usize - off).min(buf.len() - done);
        buf[done..done + n].copy_from_slice(&page(a & !(PAGE - 1))?[off..off + n]);
        done += n;
    }
    Ok(())
}

struct Recorder<'a> {
    mem: &'a dyn PhysMem,
    pages: std::cell::RefCell<std::collections::HashMap<u64, Vec<u8>>>,
}

impl PhysMem for Recorder<'_> {
    fn read(&self, pa: u64, buf: &mut [u8]) -> Result<(), String> {
        let end = pa
            .checked_add(buf.len() as u64)
            .ok_or_else(|| format!("a read at {pa:#x} wraps"))?;
        let mut page = pa & !(PAGE - 1);
        while page < end {
            if !self.pages.borrow().contains_key(&page) {
                let mut p = vec![0u8; PAGE as usize];
                self.mem.read(page, &mut p)?;
                self.pages.borrow_mut().insert(page, p);
            }
            page += PAGE;
        }
        let pages = self.pages.borrow();
        copy_pages(pa, buf, |page| {
            pages
                .get(&page)
                .map(Vec::as_slice)
                .ok_or_else(|| format!("{page:#x} was not recorded"))
        })
    }
}

#[cfg(test)]
mod snapshot_tests {
    use super::*;
    use crate::walker::BufMem;

    #[test]
    fn a_snapshot_holds_what_was_read_and_refuses_the_rest() {
        let mut mem = BufMem::new(0x1000, 4);
        mem.set(0x2000, 3, 0xdead_beef);
        let (snap, word) = Snapshot::record(&mem, |m| m.read_u64(0x2000 + 3 * 8));
        assert_eq!(word, Ok(0xdead_beef));
        assert_eq!(snap.pages(), 1);
        assert_eq!(snap.read_u64(0x2018), Ok(0xdead_beef));
        assert_eq!(snap.read_u64(0x2000), Ok(0));
        assert!(snap.read_u64(0x3000).is_err());
        assert!(snap.read_u64(0x1ffc).is_err());
    }
}
