//! `xtask size`: how big a kernel image is, against the image-size budget.
//!
//! The budget is for a release image carrying both boards (`cargo build --release --example
//! direct_map --features xen-pv`): at most [`LOADED_BUDGET`] bytes loaded (the file bytes of
//! the `PT_LOAD` segments, what a loader copies) and at most [`MEMORY_BUDGET`] of memory in
//! all (the span of the `PT_LOAD` segments, from the lowest segment's start to the highest
//! one's end, `.bss` and the `NOLOAD` hypercall page included: what the image occupies once
//! loaded). Both are read from the ELF's program headers, not from the link script.

use std::fmt;

use anyhow::{Context, Result};
use object::elf::{FileHeader64, PT_LOAD, SHT_NOBITS};
use object::read::elf::{FileHeader, ProgramHeader, SectionHeader};
use object::Endianness;

use crate::matrix::FeatureSet;

/// Loaded bytes a release image carrying both boards may have.
pub const LOADED_BUDGET: u64 = 96 * 1024;
/// Memory in all a release image carrying both boards may occupy.
pub const MEMORY_BUDGET: u64 = 256 * 1024;

/// One allocated section: name, size, and whether it takes file bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    /// `.text`, `.bss`, ...
    pub name: String,
    /// Its size in memory.
    pub size: u64,
    /// `false` for `NOBITS` sections (`.bss`, the `NOLOAD` hypercall page).
    pub in_file: bool,
}

/// An image's size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageSize {
    /// The sections placed in memory (`SHF_ALLOC`), in address order.
    pub sections: Vec<Section>,
    /// The sum of the `PT_LOAD` segments' file sizes.
    pub loaded: u64,
    /// From the lowest `PT_LOAD` start to the highest `PT_LOAD` end.
    pub memory: u64,
}

/// Measures the ELF image `elf`.
pub fn measure(elf: &[u8]) -> Result<ImageSize> {
    let header = FileHeader64::<Endianness>::parse(elf).context("not an ELF64 file")?;
    let endian = header.endian().context("bad ELF header")?;
    let (mut loaded, mut lo, mut hi) = (0u64, u64::MAX, 0u64);
    for ph in header
        .program_headers(endian, elf)
        .context("bad program headers")?
    {
        if ph.p_type(endian) != PT_LOAD || ph.p_memsz(endian) == 0 {
            continue;
        }
        let start = ph.p_paddr(endian);
        let end = start
            .checked_add(ph.p_memsz(endian))
            .context("a PT_LOAD segment runs past the address space")?;
        loaded += ph.p_filesz(endian);
        lo = lo.min(start);
        hi = hi.max(end);
    }
    let memory = hi.saturating_sub(lo.min(hi));
    let sections_table = header
        .sections(endian, elf)
        .context("bad section headers")?;
    let mut sections: Vec<(u64, Section)> = Vec::new();
    for sh in sections_table.iter() {
        if sh.sh_flags(endian) & u64::from(object::elf::SHF_ALLOC) == 0 || sh.sh_size(endian) == 0 {
            continue;
        }
        let name = sections_table
            .section_name(endian, sh)
            .context("bad section name")?;
        sections.push((
            sh.sh_addr(endian),
            Section {
                name: String::from_utf8_lossy(name).into_owned(),
                size: sh.sh_size(endian),
                in_file: sh.sh_type(endian) != SHT_NOBITS,
            },
        ));
    }
    sections.sort_by_key(|(addr, _)| *addr);
    Ok(ImageSize {
        sections: sections.into_iter().map(|(_, s)| s).collect(),
        loaded,
        memory,
    })
}

/// [`measure`] of the file at `path`.
pub fn measure_file(path: &std::path::Path) -> Result<ImageSize> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    measure(&bytes).with_context(|| path.display().to_string())
}

/// Builds the image the budget is for (release `direct_map`, both boards) into
/// `target/xtask-size/` and returns its path; cargo's output goes to `target/xtask-size/build.log`.
pub fn build_budget_image(root: &std::path::Path) -> Result<std::path::PathBuf> {
    let work = root.join("target/xtask-size");
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let log = work.join("build.log");
    crate::steps::build_release_image(root, "direct_map", FeatureSet::XenPv, &work, &log)
        .with_context(|| format!("building the release image (log: {})", log.display()))
}

fn kib(bytes: u64) -> f64 {
    bytes as f64 / 1024.0
}

impl ImageSize {
    /// `Err` naming every budget the image exceeds.
    pub fn check(&self) -> Result<(), String> {
        let over: Vec<String> = [self.check_loaded(), self.check_memory()]
            .into_iter()
            .filter_map(Result::err)
            .collect();
        if over.is_empty() {
            Ok(())
        } else {
            Err(over.join("; "))
        }
    }

    /// `Err` if the loaded bytes exceed [`LOADED_BUDGET`].
    pub fn check_loaded(&self) -> Result<(), String> {
        if self.loaded <= LOADED_BUDGET {
            return Ok(());
        }
        Err(format!(
            "loaded {:.1} KiB exceeds {:.0} KiB by {} bytes",
            kib(self.loaded),
            kib(LOADED_BUDGET),
            self.loaded - LOADED_BUDGET
        ))
    }

    /// `Err` if the memory in all exceeds [`MEMORY_BUDGET`].
    pub fn check_memory(&self) -> Result<(), String> {
        if self.memory <= MEMORY_BUDGET {
            return Ok(());
        }
        Err(format!(
            "memory {:.1} KiB exceeds {:.0} KiB by {} bytes",
            kib(self.memory),
            kib(MEMORY_BUDGET),
            self.memory - MEMORY_BUDGET
        ))
    }
}

impl fmt::Display for ImageSize {
    /// `loaded 91.8 KiB (budget 96), memory 240.0 KiB (budget 256): .text 80.0, ...`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "loaded {:.1} KiB ({} bytes, budget {:.0} KiB), memory in all {:.1} KiB ({} bytes, \
             budget {:.0} KiB):",
            kib(self.loaded),
            self.loaded,
            kib(LOADED_BUDGET),
            kib(self.memory),
            self.memory,
            kib(MEMORY_BUDGET)
        )?;
        for (i, s) in self.sections.iter().enumerate() {
            let sep = if i == 0 { " " } else { ", " };
            let kind = if s.in_file { "" } else { " not loaded" };
            write!(f, "{sep}{} {:.1}{kind}", s.name, kib(s.size))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The xtask's own ELF (a host binary): its sizes against `object`'s independent reading
    /// of the same file through the generic (section-based) API.
    #[test]
    fn sections_match_objects_reading() {
        use object::{Object, ObjectSection, ObjectSegment, SectionKind};
        let path = std::env::current_exe().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let size = measure(&bytes).unwrap();
        let file = object::File::parse(&*bytes).unwrap();
        let text = file.section_by_name(".text").unwrap();
        let ours = size.sections.iter().find(|s| s.name == ".text").unwrap();
        assert_eq!(ours.size, text.size());
        assert!(ours.in_file);
        if let Some(bss) = file
            .sections()
            .find(|s| s.kind() == SectionKind::UninitializedData)
        {
            let name = bss.name().unwrap();
            let ours = size.sections.iter().find(|s| s.name == name).unwrap();
            assert!(!ours.in_file, "{name} counted as file bytes");
        }
        // Every allocated file-backed section lies in a loaded segment: the loaded bytes cover
        // them, and the span covers everything.
        // object's segments are the `PT_LOAD`s: their file ranges and address ranges.
        let loaded: u64 = file.segments().map(|s| s.file_range().1).sum();
        let lo = file.segments().map(|s| s.address()).min().unwrap();
        let hi = file
            .segments()
            .map(|s| s.address() + s.size())
            .max()
            .unwrap();
        assert_eq!(size.loaded, loaded);
        assert_eq!(size.memory, hi - lo);
        let in_file: u64 = size
            .sections
            .iter()
            .filter(|s| s.in_file)
            .map(|s| s.size)
            .sum();
        assert!(size.loaded >= in_file, "{size}");
        assert!(size.memory >= size.loaded, "{size}");
    }

    #[test]
    fn budgets_are_checked_on_both_counts() {
        let at = |loaded, memory| ImageSize {
            sections: Vec::new(),
            loaded,
            memory,
        };
        assert!(at(LOADED_BUDGET, MEMORY_BUDGET).check().is_ok());
        let e = at(LOADED_BUDGET + 1, MEMORY_BUDGET).check().unwrap_err();
        assert!(e.contains("loaded") && e.contains("by 1 bytes"), "{e}");
        let e = at(LOADED_BUDGET, MEMORY_BUDGET + 5).check().unwrap_err();
        assert!(e.contains("memory") && e.contains("by 5 bytes"), "{e}");
        assert!(at(LOADED_BUDGET + 1, MEMORY_BUDGET + 1)
            .check()
            .unwrap_err()
            .contains("; "));
        assert!(at(LOADED_BUDGET + 1, MEMORY_BUDGET).check_memory().is_ok());
        assert!(at(LOADED_BUDGET, MEMORY_BUDGET + 1).check_loaded().is_ok());
    }
}
