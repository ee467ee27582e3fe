//! Memory sizes as given on the command line: `512M`, `6G`, `1024` (MiB), `1.5G`.

use std::fmt;
use std::str::FromStr;

/// A memory size in MiB.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct MemSize {
    mib: u64,
}

impl MemSize {
    /// `mib` MiB.
    pub const fn from_mib(mib: u64) -> Self {
        Self { mib }
    }

    /// The size in MiB.
    pub const fn mib(self) -> u64 {
        self.mib
    }
}

impl fmt::Display for MemSize {
    /// `NM`, the form both QEMU's `-m` and Xen's `dom0_mem` accept.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}M", self.mib)
    }
}

impl FromStr for MemSize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s
            .trim()
            .trim_end_matches(['B', 'b'])
            .trim_end_matches(['i', 'I']);
        let (num, unit_mib) = match t.char_indices().last() {
            Some((i, 'K' | 'k')) => (&t[..i], 1.0 / 1024.0),
            Some((i, 'M' | 'm')) => (&t[..i], 1.0),
            Some((i, 'G' | 'g')) => (&t[..i], 1024.0),
            Some((i, 'T' | 't')) => (&t[..i], 1024.0 * 1024.0),
            _ => (t, 1.0),
        };
        let value: f64 = num
            .trim()
            .parse()
            .map_err(|_| format!("bad memory size {s:?} (e.g. 512M, 6G)"))?;
        let mib = value * unit_mib;
        if !(1.0..=(16.0 * 1024.0 * 1024.0)).contains(&mib) || mib.fract() != 0.0 {
            return Err(format!(
                "memory size {s:?} must be a whole number of MiB, 1M..16T"
            ));
        }
        Ok(Self { mib: mib as u64 })
    }
}

#[cfg(test)]
mod tests {
    use super::MemSize;

    #[test]
    fn parses_common_forms() {
        let p = |s: &str| s.parse::<MemSize>().map(MemSize::mib);
        assert_eq!(p("512M"), Ok(512));
        assert_eq!(p("6G"), Ok(6144));
        assert_eq!(p("6GiB"), Ok(6144));
        assert_eq!(p("1.5g"), Ok(1536));
        assert_eq!(p("1024"), Ok(1024));
        assert_eq!(p("2048K"), Ok(2));
        assert!(p("12X").is_err());
        assert!(p("0").is_err());
        assert!(p("100K").is_err());
        assert_eq!(MemSize::from_mib(6144).to_string(), "6144M");
    }
}
