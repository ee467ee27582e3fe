//! Decoding the defmt frames a kernel writes to COM2, live, from the file QEMU writes them to.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use defmt_decoder::{DecodeError, Frame, Location, Table};
use defmt_parser::Level;

/// What [`follow`] reports as it goes.
#[derive(Clone, Copy, Debug)]
pub enum Event<'a> {
    /// A decoded frame: its timestamp (the boards stamp each frame with the number of console
    /// lines the guest had completed, see [`crate::order`]) and its line.
    Line(Option<u64>, &'a str),
    /// The file was read to its end and everything in it decoded.
    Drained,
}

/// Follows `frames` (a file QEMU is appending to) and decodes it with the defmt table of `elf`
/// until `stop` is set and the file is drained; each decoded line, and each time the decoder
/// caught up with the file, is passed to `on_event`.
///
/// Returns the decoded lines (`"INFO message"`, with `(file:line)` for warnings and errors).
/// An ELF without a defmt table yields no lines.
pub fn follow(
    elf: &[u8],
    frames: &Path,
    stop: &AtomicBool,
    on_event: &dyn Fn(Event<'_>),
) -> Result<Vec<String>> {
    let Some(table) = Table::parse(elf).context("reading the ELF's defmt table")? else {
        return Ok(Vec::new());
    };
    let locations = table.get_locations(elf).unwrap_or_default();
    let mut decoder = table.new_stream_decoder();
    let mut lines = Vec::new();
    let mut file = None;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let done = stop.load(Ordering::Acquire);
        if file.is_none() {
            file = std::fs::File::open(frames).ok();
        }
        let mut got = 0;
        if let Some(f) = file.as_mut() {
            got = f.read(&mut buf).context("reading the defmt frames")?;
            decoder.received(&buf[..got]);
        }
        loop {
            let (stamp, line) = match decoder.decode() {
                Ok(frame) => (stamp(&frame), render(&frame, &locations)),
                Err(DecodeError::UnexpectedEof) => break,
                Err(DecodeError::Malformed) => (None, "(malformed defmt frame skipped)".into()),
            };
            on_event(Event::Line(stamp, &line));
            lines.push(line);
        }
        if got == 0 {
            on_event(Event::Drained);
            if done {
                return Ok(lines);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Decodes `frames` (a complete capture) with the defmt table of `elf`; as [`follow`].
pub fn decode(elf: &[u8], frames: &[u8]) -> Result<Vec<String>> {
    Ok(decode_stamped(elf, frames)?
        .into_iter()
        .map(|(_, l)| l)
        .collect())
}

/// [`decode`], with each line's timestamp (see [`Event::Line`]).
pub fn decode_stamped(elf: &[u8], frames: &[u8]) -> Result<Vec<(Option<u64>, String)>> {
    let Some(table) = Table::parse(elf).context("reading the ELF's defmt table")? else {
        return Ok(Vec::new());
    };
    let locations = table.get_locations(elf).unwrap_or_default();
    let mut decoder = table.new_stream_decoder();
    decoder.received(frames);
    let mut lines = Vec::new();
    loop {
        match decoder.decode() {
            Ok(frame) => lines.push((stamp(&frame), render(&frame, &locations))),
            Err(DecodeError::UnexpectedEof) => return Ok(lines),
            Err(DecodeError::Malformed) => {
                lines.push((None, "(malformed defmt frame skipped)".into()))
            }
        }
    }
}

/// A frame's timestamp as a number (the boards' is a `u32` count), `None` if it has none.
fn stamp(frame: &Frame<'_>) -> Option<u64> {
    frame.display_timestamp()?.to_string().trim().parse().ok()
}

/// One decoded frame as a line: `LEVEL message` (the timestamp is for ordering only).
fn render(frame: &Frame<'_>, locations: &BTreeMap<u64, Location>) -> String {
    let message = frame.display_message().to_string();
    let text = match frame.level() {
        Some(level) => format!("{} {message}", level.as_str().to_uppercase()),
        None => message,
    };
    match (frame.level(), locations.get(&frame.index())) {
        (Some(Level::Warn | Level::Error), Some(loc)) => {
            format!("{text}  ({}:{})", loc.file.display(), loc.line)
        }
        _ => text,
    }
}
