//! The `direct_map` example's verification result, as it logs it via defmt:
//! `RESULT direct_map Figures { ram_bytes: .., computed: .., tables_used: .., tail_released: ..,
//! pages: [.., .., ..], leaves_checked: .., pages_touched: .., cross_checked: .. }`.

use anyhow::{bail, Context, Result};

/// The marker the line starts with (after the log level).
pub const MARKER: &str = "RESULT direct_map Figures {";

/// The figures of one `direct_map` run (see `pvmmu_examples::direct_map::Figures`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
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
    /// Pages touched through the new map.
    pub pages_touched: u64,
    /// Tail frames cross-checked through the boot mapping.
    pub cross_checked: u64,
}

impl Figures {
    /// Bytes the mapped pages cover.
    pub fn mapped_bytes(&self) -> u64 {
        self.pages[0] * (4 << 10) + self.pages[1] * (2 << 20) + self.pages[2] * (1 << 30)
    }

    /// The figures of the first line of `lines` that carries [`MARKER`].
    pub fn find(lines: &[String]) -> Result<Self> {
        let line = lines
            .iter()
            .find(|l| l.contains(MARKER))
            .with_context(|| format!("no `{MARKER} .. }}` line among the decoded defmt lines"))?;
        Self::parse(line).with_context(|| format!("cannot parse {line:?}"))
    }

    /// Parses one line carrying [`MARKER`]; every field must be present.
    pub fn parse(line: &str) -> Result<Self> {
        let start = line.find(MARKER).context("no RESULT marker")? + MARKER.len();
        let body = &line[start..];
        let body = &body[..body.rfind('}').context("no closing `}`")?];
        let mut f = Self::default();
        let mut seen = [false; 8];
        let mut rest = body.trim();
        while !rest.is_empty() {
            let (key, after) = rest.split_once(':').context("expected `name: value`")?;
            let after = after.trim_start();
            let (value, tail) = if let Some(list) = after.strip_prefix('[') {
                let (inside, tail) = list.split_once(']').context("unclosed `[`")?;
                (inside, tail)
            } else {
                after.split_once(',').unwrap_or((after, ""))
            };
            rest = tail.trim_start().trim_start_matches(',').trim_start();
            let num = |s: &str| -> Result<u64> {
                s.trim()
                    .parse()
                    .with_context(|| format!("{}: bad number {s:?}", key.trim()))
            };
            let (slot, i) = match key.trim() {
                "ram_bytes" => (&mut f.ram_bytes, 0),
                "computed" => (&mut f.computed, 1),
                "tables_used" => (&mut f.tables_used, 2),
                "tail_released" => (&mut f.tail_released, 3),
                "leaves_checked" => (&mut f.leaves_checked, 5),
                "pages_touched" => (&mut f.pages_touched, 6),
                "cross_checked" => (&mut f.cross_checked, 7),
                "pages" => {
                    let items: Vec<&str> = value.split(',').collect();
                    if items.len() != 3 {
                        bail!("pages: expected 3 counts, got {value:?}");
                    }
                    for (p, s) in f.pages.iter_mut().zip(items) {
                        *p = num(s)?;
                    }
                    seen[4] = true;
                    continue;
                }
                other => bail!("unknown field {other:?}"),
            };
            *slot = num(value)?;
            seen[i] = true;
        }
        if let Some(missing) = seen.iter().position(|s| !s) {
            bail!("field #{missing} missing");
        }
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = "INFO RESULT direct_map Figures { ram_bytes: 6441918464, computed: 5, \
        tables_used: 6, tail_released: 64, pages: [894, 1022, 4], leaves_checked: 1920, \
        pages_touched: 98296, cross_checked: 64 }";

    #[test]
    fn parses_the_examples_line() {
        let f = Figures::parse(LINE).unwrap();
        assert_eq!(
            f,
            Figures {
                ram_bytes: 6441918464,
                computed: 5,
                tables_used: 6,
                tail_released: 64,
                pages: [894, 1022, 4],
                leaves_checked: 1920,
                pages_touched: 98296,
                cross_checked: 64,
            }
        );
        assert_eq!(f.mapped_bytes(), f.ram_bytes);
    }

    #[test]
    fn finds_the_line_among_others() {
        let lines = vec!["INFO phase plan: 3 cycles".to_string(), LINE.to_string()];
        assert_eq!(Figures::find(&lines).unwrap().computed, 5);
        assert!(Figures::find(&lines[..1]).is_err());
    }

    #[test]
    fn refuses_incomplete_or_malformed_lines() {
        assert!(Figures::parse("RESULT direct_map Figures { ram_bytes: 1 }").is_err());
        assert!(Figures::parse(&LINE.replace("[894, 1022, 4]", "[894, 1022]")).is_err());
        assert!(Figures::parse(&LINE.replace("computed: 5", "computed: x")).is_err());
        assert!(Figures::parse(&LINE.replace("computed", "bogus")).is_err());
        assert!(Figures::parse("RESULT direct_map Figures { ram_bytes: 1").is_err());
    }
}
