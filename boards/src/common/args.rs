//! The guest command line's `pvmmu.*` keys: each board knows its own, and refuses any other
//! (a typo must not pass silently as "no test hook"). Words without the prefix belong to
//! somebody else and are left alone.

use core::fmt;

use super::console::{self, Text};

/// The prefix of the keys pvmmu's boards read.
pub const PREFIX: &str = "pvmmu.";

/// A `pvmmu.*` word this board does not know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownKey<'a> {
    /// The whole word, as given.
    pub word: &'a str,
}

impl UnknownKey<'_> {
    /// Writes the `Display` text without `core::fmt`.
    pub fn write_to<W: FnMut(&str)>(&self, t: &mut Text<W>) {
        // Quoted by hand: `{:?}` of a str pulls in escaping and Unicode tables (3 KiB).
        t.str("unknown guest argument \"")
            .str(self.word)
            .str("\" on this board");
    }
}

impl fmt::Display for UnknownKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        console::display(f, |t| self.write_to(t))
    }
}

impl core::error::Error for UnknownKey<'_> {}

/// Checks every `pvmmu.KEY=VALUE` (or `pvmmu.KEY`) word of `cmdline` against `known` (keys
/// without the prefix, e.g. `"test-memmap"`).
pub fn check<'a>(cmdline: &'a str, known: &[&str]) -> Result<(), UnknownKey<'a>> {
    for word in cmdline.split_ascii_whitespace() {
        if let Some(rest) = word.strip_prefix(PREFIX) {
            let key = rest.split('=').next().unwrap_or(rest);
            if !known.contains(&key) {
                return Err(UnknownKey { word });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_refused_others_left_alone() {
        let known = ["test-memmap"];
        assert_eq!(check("", &known), Ok(()));
        assert_eq!(check("quiet console=ttyS0 pvmmuX=1", &known), Ok(()));
        assert_eq!(check("pvmmu.test-memmap=zero", &known), Ok(()));
        assert_eq!(
            check("a pvmmu.test-memap=zero", &known),
            Err(UnknownKey {
                word: "pvmmu.test-memap=zero"
            })
        );
        assert_eq!(
            check("pvmmu.verbose", &known),
            Err(UnknownKey {
                word: "pvmmu.verbose"
            })
        );
        assert!(check("pvmmu.test-memmap=zero", &[]).is_err());
    }
}
