//! What the runner needs to know about an ELF: is it a kernel, and for which board.
//!
//! A kernel carries Xen ELF notes (name `"Xen"`) in a `PT_NOTE` segment: the native board's
//! `XEN_ELFNOTE_PHYS32_ENTRY` (18, the PVH entry) and/or the Xen PV board's
//! `XEN_ELFNOTE_ENTRY` (1).

use std::path::Path;

use anyhow::{Context, Result};
use object::elf::{FileHeader64, PT_LOAD, PT_NOTE};
use object::read::elf::{FileHeader, ProgramHeader};
use object::{Endianness, Object, ObjectSymbol};

/// `XEN_ELFNOTE_ENTRY`: the PV entry point (Xen PV board).
pub const XEN_ELFNOTE_ENTRY: u32 = 1;
/// `XEN_ELFNOTE_PHYS32_ENTRY`: the 32-bit PVH entry point (native board).
pub const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

/// The Xen note types an ELF carries, in file order (empty for a host binary).
pub fn xen_note_types(elf: &[u8]) -> Result<Vec<u32>> {
    let header = FileHeader64::<Endianness>::parse(elf).context("not an ELF64 file")?;
    let endian = header.endian().context("bad ELF header")?;
    let mut types = Vec::new();
    for ph in header
        .program_headers(endian, elf)
        .context("bad program headers")?
    {
        if ph.p_type(endian) != PT_NOTE {
            continue;
        }
        if let Some(mut notes) = ph.notes(endian, elf).context("bad PT_NOTE segment")? {
            while let Some(note) = notes.next().context("bad note")? {
                if note.name() == b"Xen" {
                    types.push(note.n_type(endian));
                }
            }
        }
    }
    Ok(types)
}

/// [`xen_note_types`] of the file at `path`.
pub fn xen_note_types_of(path: &Path) -> Result<Vec<u32>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    xen_note_types(&bytes).with_context(|| path.display().to_string())
}

/// One past the highest physical byte a `PT_LOAD` segment occupies (file and `.bss` alike),
/// or 0 if the ELF loads nothing: how much memory the image needs below it.
pub fn load_end(elf: &[u8]) -> Result<u64> {
    let header = FileHeader64::<Endianness>::parse(elf).context("not an ELF64 file")?;
    let endian = header.endian().context("bad ELF header")?;
    let mut end = 0u64;
    for ph in header
        .program_headers(endian, elf)
        .context("bad program headers")?
    {
        if ph.p_type(endian) != PT_LOAD || ph.p_memsz(endian) == 0 {
            continue;
        }
        let seg_end = ph
            .p_paddr(endian)
            .checked_add(ph.p_memsz(endian))
            .context("a PT_LOAD segment runs past the address space")?;
        end = end.max(seg_end);
    }
    Ok(end)
}

/// The address of the symbol `name` in the ELF's symbol table.
pub fn symbol_address(elf: &[u8], name: &str) -> Result<u64> {
    let file = object::File::parse(elf).context("not an object file")?;
    file.symbols()
        .find(|s| s.name() == Ok(name))
        .map(|s| s.address())
        .with_context(|| format!("no symbol {name}"))
}
