//! Decoding the defmt frames a kernel writes to COM2, live, from the file QEMU writes them to.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use defmt_decoder::{DecodeError, Frame, Location, Table};
use defmt_parser::Level;

/// Follows `frames` (a file QEMU is appending to) and decodes it with the defmt table of `elf`
/// until `stop` is set and the file is drained; each decoded line is passed to `on_line`.
///
/// Returns the decoded lines (`"INFO message"`, with `(file:line)` for warnings and errors).
/// An ELF without a defmt table yields no lines.
pub fn follow(
    elf: &[u8],
    frames: &Path,
    stop: &AtomicBool,
    on_line: &dyn Fn(&str),
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
            let line = match decoder.decode() {
                Ok(frame) => render(&frame, &locations),
                Err(DecodeError::UnexpectedEof) => break,
                Err(DecodeError::Malformed) => "(malformed defmt frame skipped)".to_string(),
            };
            on_line(&line);
            lines.push(line);
        }
        if got == 0 {
            if done {
                return Ok(lines);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Decodes `frames` (a complete capture) with the defmt table of `elf`; as [`follow`].
pub fn decode(elf: &[u8], frames: &[u8]) -> Result<Vec<String>> {
    let Some(table) = Table::parse(elf).context("reading the ELF's defmt table")? else {
        return Ok(Vec::new());
    };
    let locations = table.get_locations(elf).unwrap_or_default();
    let mut decoder = table.new_stream_decoder();
    decoder.received(frames);
    let mut lines = Vec::new();
    loop {
        match decoder.decode() {
            Ok(frame) => lines.push(render(&frame, &locations)),
            Err(DecodeError::UnexpectedEof) => return Ok(lines),
            Err(DecodeError::Malformed) => lines.push("(malformed defmt frame skipped)".into()),
        }
    }
}

/// One decoded frame as a line.
fn render(frame: &Frame<'_>, locations: &BTreeMap<u64, Location>) -> String {
    let text = frame.display(false).to_string();
    match (frame.level(), locations.get(&frame.index())) {
        (Some(Level::Warn | Level::Error), Some(loc)) => {
            format!("{text}  ({}:{})", loc.file.display(), loc.line)
        }
        _ => text,
    }
}
