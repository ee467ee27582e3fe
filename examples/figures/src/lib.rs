#![no_std]
#![warn(missing_docs)]
//! What pvmmu's example kernels report and the runner (`xtask`) checks, defined once: the
//! `direct_map` example's [`Figures`], the line it logs them on ([`MARKER`]) with its parser,
//! and the constants the runner checks the runs against ([`DIRECT_MAP_HEADROOM`],
//! [`FAULT_ADDRESS`]).
//!
//! The kernels log `RESULT direct_map Figures { ram_bytes: .., .. }` through defmt (the
//! derived `defmt::Format`, with the `defmt` feature); the runner decodes the line on the host
//! and [`Figures::parse`]s it back. No dependencies, so the runner (a workspace of its own, on
//! the host) can depend on it by path.

use core::fmt;

/// Frames `pgt_buf` holds beyond the exact count in the `direct_map` example: the tail
/// `finish` releases, all of it, so the runner expects `tail_released` to equal it.
pub const DIRECT_MAP_HEADROOM: u64 = 64;

/// The address the `fault` example reads: a canonical lower-half address in PML4 slot 224,
/// which neither board maps (bare metal maps `[0, 4 GiB)`, a Xen PV domain its own image and
/// boot data near 0). The runner expects the board's `#PF` report to name it as CR2.
pub const FAULT_ADDRESS: u64 = 0x0000_7000_0000_0000;

/// What the line carrying the figures contains, just before the fields.
pub const MARKER: &str = "RESULT direct_map Figures {";

/// The figures of one `direct_map` run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Figures {
    /// Bytes of RAM mapped.
    pub ram_bytes: u64,
    /// Tables computed (below the root).
    pub computed: u64,
    /// Frames taken from `pgt_buf` (tables + root).
    pub tables_used: u64,
    /// Tail frames released by `finish`.
    pub tail_released: u64,
    /// Pages mapped: 4 KiB, 2 MiB, 1 GiB.
    pub pages: [u64; 3],
    /// Leaves walked and checked.
    pub leaves_checked: u64,
    /// Pages touched through the new map by the CPU.
    pub pages_touched: u64,
    /// Tail frames read back through a second mapping (the board's `alias`).
    pub cross_checked: u64,
}

/// Why a line could not be read as [`Figures`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// No line carries [`MARKER`].
    NoLine,
    /// The line has no closing `}`.
    Unclosed,
    /// A field is not `name: value`.
    NotAField,
    /// A `[` list has no closing `]`.
    UnclosedList,
    /// A field the figures do not have.
    UnknownField,
    /// A value is not a decimal number.
    BadNumber(Field),
    /// `pages` does not hold exactly three counts.
    PageCount,
    /// A field is missing.
    Missing(Field),
}

/// A field of [`Figures`], by position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field(pub usize);

/// The fields, in the order the derived formats write them.
pub const FIELDS: [&str; 8] = [
    "ram_bytes",
    "computed",
    "tables_used",
    "tail_released",
    "pages",
    "leaves_checked",
    "pages_touched",
    "cross_checked",
];

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(FIELDS.get(self.0).copied().unwrap_or("?"))
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoLine => write!(f, "no `{MARKER} .. }}` line among the decoded defmt lines"),
            Self::Unclosed => f.write_str("the figures have no closing `}`"),
            Self::NotAField => f.write_str("expected `name: value`"),
            Self::UnclosedList => f.write_str("a `[` list has no closing `]`"),
            Self::UnknownField => f.write_str("a field the figures do not have"),
            Self::BadNumber(field) => write!(f, "{field}: not a decimal number"),
            Self::PageCount => f.write_str("pages: expected 3 counts"),
            Self::Missing(field) => write!(f, "field {field} missing"),
        }
    }
}

impl core::error::Error for ParseError {}

impl Figures {
    /// Bytes the mapped pages cover.
    pub const fn mapped_bytes(&self) -> u64 {
        self.pages[0] * (4 << 10) + self.pages[1] * (2 << 20) + self.pages[2] * (1 << 30)
    }

    /// The figures of the first of `lines` that carries [`MARKER`].
    pub fn find<S: AsRef<str>>(lines: &[S]) -> Result<Self, ParseError> {
        let line = lines
            .iter()
            .map(AsRef::as_ref)
            .find(|l| l.contains(MARKER))
            .ok_or(ParseError::NoLine)?;
        Self::parse(line)
    }

    /// Parses one line carrying [`MARKER`]; every field must be present.
    pub fn parse(line: &str) -> Result<Self, ParseError> {
        let start = line.find(MARKER).ok_or(ParseError::NoLine)? + MARKER.len();
        let body = &line[start..];
        let body = &body[..body.rfind('}').ok_or(ParseError::Unclosed)?];
        let mut f = Self::default();
        let mut seen = [false; FIELDS.len()];
        let mut rest = body.trim();
        while !rest.is_empty() {
            let (key, after) = rest.split_once(':').ok_or(ParseError::NotAField)?;
            let key = key.trim();
            let i = FIELDS
                .iter()
                .position(|k| *k == key)
                .ok_or(ParseError::UnknownField)?;
            let after = after.trim_start();
            let (value, tail) = if let Some(list) = after.strip_prefix('[') {
                list.split_once(']').ok_or(ParseError::UnclosedList)?
            } else {
                after.split_once(',').unwrap_or((after, ""))
            };
            rest = tail.trim_start().trim_start_matches(',').trim_start();
            let num = |s: &str| {
                s.trim()
                    .parse::<u64>()
                    .map_err(|_| ParseError::BadNumber(Field(i)))
            };
            match i {
                0 => f.ram_bytes = num(value)?,
                1 => f.computed = num(value)?,
                2 => f.tables_used = num(value)?,
                3 => f.tail_released = num(value)?,
                4 => {
                    let mut items = value.split(',');
                    for p in f.pages.iter_mut() {
                        *p = num(items.next().ok_or(ParseError::PageCount)?)?;
                    }
                    if items.next().is_some() {
                        return Err(ParseError::PageCount);
                    }
                }
                5 => f.leaves_checked = num(value)?,
                6 => f.pages_touched = num(value)?,
                _ => f.cross_checked = num(value)?,
            }
            seen[i] = true;
        }
        if let Some(missing) = seen.iter().position(|s| !s) {
            return Err(ParseError::Missing(Field(missing)));
        }
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::format;

    const LINE: &str = "INFO RESULT direct_map Figures { ram_bytes: 6441918464, computed: 5, \
        tables_used: 6, tail_released: 64, pages: [894, 1022, 4], leaves_checked: 1920, \
        pages_touched: 98296, cross_checked: 64 }";

    const SIXG: Figures = Figures {
        ram_bytes: 6441918464,
        computed: 5,
        tables_used: 6,
        tail_released: 64,
        pages: [894, 1022, 4],
        leaves_checked: 1920,
        pages_touched: 98296,
        cross_checked: 64,
    };

    #[test]
    fn parses_the_examples_line() {
        let f = Figures::parse(LINE).unwrap();
        assert_eq!(f, SIXG);
        assert_eq!(f.mapped_bytes(), f.ram_bytes);
    }

    /// The derived `Debug` writes what the derived `defmt::Format` writes (same field order
    /// and syntax): the parser reads it back, so a field added, renamed or reordered on one
    /// side only fails here.
    #[test]
    fn reads_back_what_the_derived_format_writes() {
        let line = format!("INFO RESULT direct_map {SIXG:?}");
        assert_eq!(Figures::parse(&line), Ok(SIXG));
    }

    #[test]
    fn finds_the_line_among_others() {
        let lines = ["INFO phase plan: 3 cycles", LINE];
        assert_eq!(Figures::find(&lines).unwrap().computed, 5);
        assert_eq!(Figures::find(&lines[..1]), Err(ParseError::NoLine));
    }

    #[test]
    fn refuses_incomplete_or_malformed_lines() {
        let p = |s: &str| Figures::parse(s);
        assert_eq!(
            p("RESULT direct_map Figures { ram_bytes: 1 }"),
            Err(ParseError::Missing(Field(1)))
        );
        assert_eq!(
            p(&LINE.replace("[894, 1022, 4]", "[894, 1022]")),
            Err(ParseError::PageCount)
        );
        assert_eq!(
            p(&LINE.replace("computed: 5", "computed: x")),
            Err(ParseError::BadNumber(Field(1)))
        );
        assert_eq!(
            p(&LINE.replace("computed", "bogus")),
            Err(ParseError::UnknownField)
        );
        assert_eq!(
            p("RESULT direct_map Figures { ram_bytes: 1"),
            Err(ParseError::Unclosed)
        );
    }
}
