//! A **test hook**: `pvmmu.test-memmap=VALUE` on the kernel command line makes the native board
//! report a deliberately broken firmware memory map, so that boot tests can check that a bad
//! map fails the run with the intended error (and does not hang or triple-fault).
//!
//! | value      | what the board reports instead of the loader's map                      | expected failure |
//! |------------|---------------------------------------------------------------------------|------------------|
//! | `overlap`  | a second RAM entry starting inside the first RAM entry                    | `MapError::Overlap` |
//! | `unsorted` | the first two entries swapped                                             | `MapError::Unsorted` |
//! | `zero`     | a zero-length RAM entry after the first RAM entry                         | `MapError::ZeroLength` |
//! | `tiny`     | RAM only where the board reserves anyway (first MiB, image) + 16 pages    | `pgt_buf` allocation: `OutOfMemory` |
//!
//! `tiny` leaves [`TINY_SLACK_PAGES`] free frames: fewer than the 64 frames of headroom the
//! `direct_map` example adds to `pgt_buf`, so its allocation fails however few tables the map
//! needs. QEMU passes `-append TEXT` to a PVH kernel as `hvm_start_info.cmdline_paddr`; the
//! runner passes guest arguments given after `--` that way
//! (`cargo run --example direct_map -- --mem 1G -- pvmmu.test-memmap=overlap`).
//!
//! Without the parameter nothing changes. The hook only alters what [`Platform::memory_map`]
//! returns; the hardware and the loader's table are untouched.
//!
//! [`Platform::memory_map`]: crate::Platform::memory_map

use hal_core::memmap::{MemRegion, RegionKind};

use super::board::LOW_MEMORY_END;
use super::start_info::MAX_REGIONS;

/// The command-line parameter.
pub const PARAM: &str = "pvmmu.test-memmap=";
/// Free RAM pages `tiny` leaves after the image.
pub const TINY_SLACK_PAGES: u64 = 16;
const PAGE: u64 = 4096;

/// How the map is broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, defmt::Format)]
pub enum Perturbation {
    /// A RAM entry overlapping the one before it.
    Overlap,
    /// The first two entries in the wrong order.
    Unsorted,
    /// A zero-length entry.
    Zero,
    /// Too little RAM for `pgt_buf`.
    Tiny,
}

/// The value of `pvmmu.test-memmap=` is none of the known ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, defmt::Format)]
pub struct UnknownPerturbation;

impl Perturbation {
    /// Every perturbation.
    pub const ALL: [Self; 4] = [Self::Overlap, Self::Unsorted, Self::Zero, Self::Tiny];

    /// The parameter's value for this perturbation.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Overlap => "overlap",
            Self::Unsorted => "unsorted",
            Self::Zero => "zero",
            Self::Tiny => "tiny",
        }
    }

    /// The perturbation a command line asks for: `None` without [`PARAM`]; the last one wins.
    pub fn from_cmdline(cmdline: &str) -> Result<Option<Self>, UnknownPerturbation> {
        let mut found = None;
        for word in cmdline.split_ascii_whitespace() {
            if let Some(value) = word.strip_prefix(PARAM) {
                let p = Self::ALL.into_iter().find(|p| p.name() == value);
                found = Some(p.ok_or(UnknownPerturbation)?);
            }
        }
        Ok(found)
    }

    /// Breaks `map` (the loader's, in order); `image` is the kernel image `[start, end)`.
    pub fn apply(self, map: &mut heapless::Vec<MemRegion, MAX_REGIONS>, image: (u64, u64)) {
        let first_ram = map
            .iter()
            .position(|r| r.kind == RegionKind::Ram && r.len >= 2 * PAGE);
        match self {
            Self::Overlap => {
                if let Some(i) = first_ram {
                    let r = map[i];
                    let half = (r.len / 2) & !(PAGE - 1);
                    let inner = MemRegion {
                        start: r.start + half,
                        len: r.len - half,
                        kind: RegionKind::Ram,
                    };
                    insert(map, i + 1, inner);
                }
            }
            Self::Unsorted => {
                if map.len() >= 2 {
                    map.swap(0, 1);
                }
            }
            Self::Zero => {
                let i = first_ram.unwrap_or(0);
                let end = map.get(i).map_or(0, |r| r.start.wrapping_add(r.len));
                let empty = MemRegion {
                    start: end,
                    len: 0,
                    kind: RegionKind::Ram,
                };
                insert(map, i + 1, empty);
            }
            Self::Tiny => {
                let keep = [
                    (0, LOW_MEMORY_END),
                    (
                        image.0 & !(PAGE - 1),
                        image.1.div_ceil(PAGE) * PAGE + TINY_SLACK_PAGES * PAGE,
                    ),
                ];
                let mut out = heapless::Vec::new();
                for r in map.iter() {
                    if r.kind != RegionKind::Ram {
                        let _ = out.push(*r);
                        continue;
                    }
                    let end = r.start.saturating_add(r.len);
                    for (ks, ke) in keep {
                        let (s, e) = (r.start.max(ks), end.min(ke));
                        if s < e {
                            let _ = out.push(MemRegion {
                                start: s,
                                len: e - s,
                                kind: RegionKind::Ram,
                            });
                        }
                    }
                }
                *map = out;
            }
        }
    }
}

/// Inserts `r` at `index` (at the end if `index` is past it); drops the last entry if full.
fn insert(map: &mut heapless::Vec<MemRegion, MAX_REGIONS>, index: usize, r: MemRegion) {
    if map.is_full() {
        map.pop();
    }
    let index = index.min(map.len());
    let _ = map.insert(index, r);
}

impl core::fmt::Display for UnknownPerturbation {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("unknown pvmmu.test-memmap value (known: overlap, unsorted, zero, tiny)")
    }
}

impl core::error::Error for UnknownPerturbation {}

#[cfg(test)]
mod tests {
    use super::*;
    use hal_core::memblock::{MapError, Memblock};

    /// QEMU q35's map at 1 GiB.
    fn q35_1g() -> heapless::Vec<MemRegion, MAX_REGIONS> {
        let e = |start: u64, end: u64, kind| MemRegion {
            start,
            len: end - start,
            kind,
        };
        heapless::Vec::from_slice(&[
            e(0, 0x9fc00, RegionKind::Ram),
            e(0x9fc00, 0xa0000, RegionKind::Reserved),
            e(0xf0000, 0x100000, RegionKind::Reserved),
            e(0x100000, 0x3ffdf000, RegionKind::Ram),
            e(0x3ffdf000, 0x4000_0000, RegionKind::Reserved),
            e(0xb000_0000, 0xc000_0000, RegionKind::Reserved),
        ])
        .unwrap()
    }

    const IMAGE: (u64, u64) = (0x200000, 0x263000);

    fn refused(p: Perturbation) -> MapError {
        let mut map = q35_1g();
        p.apply(&mut map, IMAGE);
        // SAFETY: a test map of no real memory; nothing is dereferenced.
        match unsafe { Memblock::<128>::from_firmware(&map) } {
            Ok(_) => panic!("{p:?}: the perturbed map was accepted"),
            Err(e) => e,
        }
    }

    #[test]
    fn parses_the_parameter() {
        let p = Perturbation::from_cmdline;
        assert_eq!(p(""), Ok(None));
        assert_eq!(p("quiet other=1"), Ok(None));
        assert_eq!(
            p("pvmmu.test-memmap=overlap"),
            Ok(Some(Perturbation::Overlap))
        );
        assert_eq!(
            p("a pvmmu.test-memmap=zero  b"),
            Ok(Some(Perturbation::Zero))
        );
        for q in Perturbation::ALL {
            assert_eq!(p(&format!("{PARAM}{}", q.name())), Ok(Some(q)));
        }
        assert_eq!(p("pvmmu.test-memmap=bogus"), Err(UnknownPerturbation));
        assert_eq!(p("pvmmu.test-memmap="), Err(UnknownPerturbation));
    }

    #[test]
    fn the_unperturbed_map_is_accepted() {
        // SAFETY: as above.
        assert!(unsafe { Memblock::<128>::from_firmware(&q35_1g()) }.is_ok());
    }

    #[test]
    fn each_perturbation_gives_its_map_error() {
        assert_eq!(
            refused(Perturbation::Overlap),
            MapError::Overlap { index: 1 }
        );
        assert_eq!(
            refused(Perturbation::Unsorted),
            MapError::Unsorted { index: 1 }
        );
        assert_eq!(
            refused(Perturbation::Zero),
            MapError::ZeroLength { index: 1 }
        );
    }

    #[test]
    fn tiny_leaves_fewer_free_frames_than_the_headroom() {
        let mut map = q35_1g();
        Perturbation::Tiny.apply(&mut map, IMAGE);
        // SAFETY: as above.
        let (mut mb, _) =
            unsafe { Memblock::<128>::from_firmware(&map) }.expect("tiny is a valid map");
        mb.reserve(0, LOW_MEMORY_END).unwrap();
        mb.reserve(IMAGE.0, IMAGE.1).unwrap();
        assert_eq!(mb.free_bytes(), TINY_SLACK_PAGES * PAGE);
        // Non-RAM entries are kept, RAM is cut to the two windows.
        assert_eq!(map.iter().filter(|r| r.kind != RegionKind::Ram).count(), 4);
        assert_eq!(
            map.iter()
                .filter(|r| r.kind == RegionKind::Ram)
                .map(|r| (r.start, r.start + r.len))
                .collect::<std::vec::Vec<_>>(),
            [(0, 0x9fc00), (0x200000, 0x263000 + 16 * 4096)]
        );
    }
}
