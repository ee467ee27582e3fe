//! The guest's two outputs, console (COM1, or Xen's console) and defmt (COM2), put back in the
//! order the guest wrote them.
//!
//! The two reach the host on different paths (a pipe read as it comes, a file polled and
//! decoded), so arrival order says nothing. The boards stamp every defmt frame with the number
//! of console lines the guest had completed when it wrote the frame (`boards::common::console::
//! lines`, the frames' defmt timestamp): a frame stamped `k` comes after the guest's `k`-th
//! console line and before its `k+1`-th. [`Merger`] holds each side back until that order is
//! known:
//!
//! - a frame stamped `k` waits until the guest's first `k` console lines are out;
//! - the guest's console line `i` waits until no frame written before it can still be
//!   undecoded: either a decoded frame stamped `i` or more is waiting (every earlier frame was
//!   decoded before it), or the decoder has caught up with the frame file in a read that
//!   began after the line arrived (the guest wrote any earlier frame before the line, and the
//!   frame file is written as the guest writes the port). Two completed catch-ups
//!   ([`Merger::drained`]) after the line's arrival guarantee the second one began after it.
//!
//! Console lines that are not the guest's (Xen's own log) keep their place among the console
//! lines; where they fall among the frames is not the guest's to say.

use std::collections::VecDeque;

/// Where a line of the ordered output came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// The console (the guest's, or Xen's log around it).
    Console,
    /// A decoded defmt frame.
    Defmt,
}

/// One line of the ordered output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// Its source.
    pub source: Source,
    /// The text, without the newline (a defmt line as [`crate::defmt_stream`] renders it).
    pub text: String,
}

impl Line {
    /// The line as the runner prints it: console lines as they are, defmt lines after
    /// `defmt: `.
    pub fn display(&self) -> String {
        match self.source {
            Source::Console => self.text.clone(),
            Source::Defmt => format!("defmt: {}", self.text),
        }
    }
}

/// Which console lines are the guest's (counted against the frames' stamps).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsoleKind {
    /// Every line is the guest's (bare metal: only the kernel writes COM1; a domU's ring).
    GuestOnly,
    /// Xen's serial console: Xen's own lines start with `(XEN)`, the hardware domain's
    /// `console_io` text is passed through as it is. Lines before Xen's first are firmware's.
    Xen,
}

/// A console line waiting for its turn.
#[derive(Debug)]
struct Pending {
    text: String,
    /// Its number among the guest's lines (1-based); `None` for a line that is not the guest's.
    guest_line: Option<u64>,
    /// [`Merger::drains`] when it arrived.
    arrived_at: u64,
}

/// See the module docs. Lines leave through `sink` in order, and are kept ([`Merger::lines`]).
pub struct Merger<'a> {
    kind: ConsoleKind,
    seen_xen: bool,
    guest_lines_in: u64,
    guest_lines_out: u64,
    drains: u64,
    console: VecDeque<Pending>,
    defmt: VecDeque<(u64, String)>,
    out: Vec<Line>,
    sink: Box<dyn FnMut(&Line) + Send + 'a>,
}

impl<'a> Merger<'a> {
    /// A merger for a console of `kind`, handing each line to `sink` once its place is known.
    pub fn new(kind: ConsoleKind, sink: impl FnMut(&Line) + Send + 'a) -> Self {
        Self {
            kind,
            seen_xen: false,
            guest_lines_in: 0,
            guest_lines_out: 0,
            drains: 0,
            console: VecDeque::new(),
            defmt: VecDeque::new(),
            out: Vec::new(),
            sink: Box::new(sink),
        }
    }

    fn is_guest(&mut self, line: &str) -> bool {
        match self.kind {
            ConsoleKind::GuestOnly => true,
            ConsoleKind::Xen => {
                if line.starts_with("(XEN)") {
                    self.seen_xen = true;
                    false
                } else {
                    self.seen_xen
                }
            }
        }
    }

    /// A complete console line arrived.
    pub fn console(&mut self, text: &str) {
        let text = text.trim_end_matches('\n').to_string();
        let guest_line = self.is_guest(&text).then(|| {
            self.guest_lines_in += 1;
            self.guest_lines_in
        });
        self.console.push_back(Pending {
            text,
            guest_line,
            arrived_at: self.drains,
        });
        self.release(false);
    }

    /// A defmt frame was decoded: `stamp` is its timestamp (the guest's console lines before
    /// it), `None` for a frame without one (it is placed after every console line so far).
    pub fn defmt(&mut self, stamp: Option<u64>, text: &str) {
        let stamp = stamp.unwrap_or(self.guest_lines_in);
        self.defmt.push_back((stamp, text.to_string()));
        self.release(false);
    }

    /// The decoder read the frame file to its end (and decoded everything in it).
    pub fn drained(&mut self) {
        self.drains += 1;
        self.release(false);
    }

    /// Both streams ended: everything still held goes out, in the order known (frames whose
    /// console lines never came, last).
    pub fn finish(&mut self) {
        self.release(true);
        while let Some((_, text)) = self.defmt.pop_front() {
            self.emit(Source::Defmt, text);
        }
    }

    /// The lines so far, in order.
    pub fn lines(&self) -> &[Line] {
        &self.out
    }

    /// The lines, in order, once [`Merger::finish`]ed.
    pub fn into_lines(self) -> Vec<Line> {
        self.out
    }

    fn emit(&mut self, source: Source, text: String) {
        let line = Line { source, text };
        (self.sink)(&line);
        self.out.push(line);
    }

    fn release(&mut self, ended: bool) {
        loop {
            if let Some(&(stamp, _)) = self.defmt.front() {
                if stamp <= self.guest_lines_out {
                    let (_, text) = self.defmt.pop_front().expect("front exists");
                    self.emit(Source::Defmt, text);
                    continue;
                }
            }
            let Some(front) = self.console.front() else {
                return;
            };
            let ready = match front.guest_line {
                None => true,
                // A frame waits (stamped past `guest_lines_out`, so at least this line's
                // number), or two catch-ups since the line came, or nothing more will come.
                Some(_) => ended || !self.defmt.is_empty() || self.drains >= front.arrived_at + 2,
            };
            if !ready {
                return;
            }
            let p = self.console.pop_front().expect("front exists");
            if let Some(n) = p.guest_line {
                self.guest_lines_out = n;
            }
            self.emit(Source::Console, p.text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(m: &Merger<'_>) -> Vec<String> {
        m.lines().iter().map(Line::display).collect()
    }

    /// The guest wrote: c1, d(1), d(1), c2, c3, d(3). Frames are decoded late (after every
    /// console line arrived): the order still comes out as written.
    #[test]
    fn frames_decoded_late_keep_their_place() {
        let mut m = Merger::new(ConsoleKind::GuestOnly, |_| {});
        m.console("c1");
        m.console("c2");
        m.console("c3");
        // Nothing may go yet: a frame written before c1 could still be in the file.
        assert!(m.lines().is_empty());
        m.defmt(Some(1), "INFO a");
        m.defmt(Some(1), "INFO b");
        m.defmt(Some(3), "INFO c");
        m.finish();
        assert_eq!(
            texts(&m),
            [
                "c1",
                "defmt: INFO a",
                "defmt: INFO b",
                "c2",
                "c3",
                "defmt: INFO c"
            ]
        );
    }

    /// Frames decoded before their console lines arrive (Xen buffers its console) wait for
    /// them.
    #[test]
    fn frames_wait_for_their_console_lines() {
        let mut m = Merger::new(ConsoleKind::GuestOnly, |_| {});
        m.defmt(Some(0), "INFO first");
        m.defmt(Some(2), "INFO after two");
        assert_eq!(texts(&m), ["defmt: INFO first"]);
        m.console("one");
        m.console("two");
        assert_eq!(
            texts(&m),
            ["defmt: INFO first", "one", "two", "defmt: INFO after two"]
        );
    }

    /// A console line goes out live once two catch-ups of the decoder followed it, not before.
    #[test]
    fn console_lines_go_after_two_catch_ups() {
        let mut m = Merger::new(ConsoleKind::GuestOnly, |_| {});
        m.drained();
        m.console("line");
        m.drained();
        assert!(
            m.lines().is_empty(),
            "the first catch-up may have begun before the line"
        );
        m.drained();
        assert_eq!(texts(&m), ["line"]);
    }

    /// Xen's lines are not counted as the guest's, nor is what comes before Xen's first; the
    /// guest's frame follows the guest's line it is stamped after at once.
    #[test]
    fn xen_lines_are_not_the_guests() {
        let mut m = Merger::new(ConsoleKind::Xen, |_| {});
        m.console("SeaBIOS");
        m.console("(XEN) Xen version 4.17");
        m.console("guest one");
        m.console("(XEN) Freed 656kB init memory");
        m.defmt(Some(1), "INFO after guest one");
        m.console("guest two");
        m.finish();
        assert_eq!(
            texts(&m),
            [
                "SeaBIOS",
                "(XEN) Xen version 4.17",
                "guest one",
                "defmt: INFO after guest one",
                "(XEN) Freed 656kB init memory",
                "guest two"
            ]
        );
    }

    /// The sink sees exactly the kept lines, in order; frames whose lines never came end it.
    #[test]
    fn sink_and_leftovers() {
        let seen = std::sync::Mutex::new(Vec::new());
        let mut m = Merger::new(ConsoleKind::GuestOnly, |l: &Line| {
            seen.lock().unwrap().push(l.display())
        });
        m.defmt(Some(5), "INFO orphan");
        m.console("only");
        m.finish();
        let kept = texts(&m);
        drop(m);
        assert_eq!(kept, ["only", "defmt: INFO orphan"]);
        assert_eq!(*seen.lock().unwrap(), kept);
    }
}
