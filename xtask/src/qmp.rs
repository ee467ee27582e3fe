//! A minimal QMP client (QEMU's JSON monitor on a Unix socket): `stop`, `cont`, and HMP's
//! `info registers` through `human-monitor-command`, which is where CR3 comes from.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

/// A QMP session in command mode.
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Connects to the socket QEMU listens on and leaves capabilities negotiation.
    pub fn connect(path: &Path) -> Result<Self> {
        let stream = UnixStream::connect(path)
            .with_context(|| format!("connecting to QMP at {}", path.display()))?;
        stream.set_read_timeout(Some(Duration::from_secs(20)))?;
        let writer = stream.try_clone()?;
        let mut q = Self {
            reader: BufReader::new(stream),
            writer,
        };
        let greeting = q.message()?;
        if greeting.get("QMP").is_none() {
            bail!("not a QMP greeting: {greeting}");
        }
        q.execute("qmp_capabilities", None)?;
        Ok(q)
    }

    fn message(&mut self) -> Result<Value> {
        let mut line = String::new();
        if self.reader.read_line(&mut line).context("reading QMP")? == 0 {
            bail!("QMP closed (QEMU exited?)");
        }
        serde_json::from_str(&line).with_context(|| format!("bad QMP message {line:?}"))
    }

    /// Runs `command`; returns its `return` value (events in between are skipped).
    pub fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value> {
        let mut msg = json!({ "execute": command });
        if let Some(a) = arguments {
            msg["arguments"] = a;
        }
        writeln!(self.writer, "{msg}").context("writing QMP")?;
        loop {
            let m = self.message()?;
            if let Some(r) = m.get("return") {
                return Ok(r.clone());
            }
            if let Some(e) = m.get("error") {
                bail!("QMP {command}: {e}");
            }
        }
    }

    /// `cont`, for a guest that may make QEMU exit at once: QEMU closing the connection
    /// before it answers counts as done (it only exits while running).
    pub fn cont(&mut self) -> Result<()> {
        writeln!(self.writer, "{}", json!({ "execute": "cont" })).context("writing QMP")?;
        loop {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(()),
                Err(e) => return Err(e).context("reading QMP"),
                Ok(_) => {
                    let m: Value = serde_json::from_str(&line)
                        .with_context(|| format!("bad QMP message {line:?}"))?;
                    if m.get("return").is_some() {
                        return Ok(());
                    }
                    if let Some(e) = m.get("error") {
                        bail!("QMP cont: {e}");
                    }
                }
            }
        }
    }

    /// An HMP command's text output.
    pub fn hmp(&mut self, line: &str) -> Result<String> {
        let r = self.execute(
            "human-monitor-command",
            Some(json!({ "command-line": line })),
        )?;
        r.as_str()
            .map(str::to_string)
            .with_context(|| format!("HMP {line:?} returned {r}"))
    }
}

/// What the host takes from `info registers` (the first CPU's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Registers {
    /// CR0.
    pub cr0: u64,
    /// CR3.
    pub cr3: u64,
    /// CR4.
    pub cr4: u64,
    /// IA32_EFER.
    pub efer: u64,
    /// The current privilege level.
    pub cpl: u8,
}

impl Registers {
    /// CR4.PAE.
    pub const CR4_PAE: u64 = 1 << 5;
    /// CR4.LA57.
    pub const CR4_LA57: u64 = 1 << 12;
    /// CR0.PG.
    pub const CR0_PG: u64 = 1 << 31;
    /// EFER.LMA.
    pub const EFER_LMA: u64 = 1 << 10;

    /// Parses HMP's `info registers` text.
    pub fn parse(text: &str) -> Result<Self> {
        let hex = |name: &str| -> Result<u64> {
            let at = text
                .find(&format!("{name}="))
                .with_context(|| format!("no {name}= in `info registers`"))?;
            let v: String = text[at + name.len() + 1..]
                .chars()
                .take_while(char::is_ascii_hexdigit)
                .collect();
            u64::from_str_radix(&v, 16).with_context(|| format!("{name}={v:?}"))
        };
        Ok(Self {
            cr0: hex("CR0")?,
            cr3: hex("CR3")?,
            cr4: hex("CR4")?,
            efer: hex("EFER")?,
            cpl: hex("CPL")? as u8,
        })
    }

    /// Whether the CPU runs with 4-level long-mode paging (what the walker walks).
    pub fn four_level_paging(&self) -> bool {
        self.cr0 & Self::CR0_PG != 0
            && self.cr4 & Self::CR4_PAE != 0
            && self.cr4 & Self::CR4_LA57 == 0
            && self.efer & Self::EFER_LMA != 0
    }

    /// The root table's physical address (CR3 without PCID / flag bits).
    pub fn root(&self) -> u64 {
        self.cr3 & crate::walker::ADDR
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_info_registers() {
        let text = "RAX=0000000000000000 RBX=0000000000000000\r\n\
            RIP=0000000000200abc RFL=00000002 [-------] CPL=3 II=0 A20=1 SMM=0 HLT=0\r\n\
            CR0=80050033 CR2=0000000000000000 CR3=000000003e73b000 CR4=000006b0\r\n\
            EFER=0000000000000d01\r\n";
        let r = Registers::parse(text).unwrap();
        assert_eq!(r.cr3, 0x3e73b000);
        assert_eq!(r.root(), 0x3e73b000);
        assert_eq!(r.cpl, 3);
        assert!(r.four_level_paging());
        assert!(Registers::parse("CR0=1 CR3=2").is_err());
        let no_lma = text.replace("d01", "101");
        assert!(!Registers::parse(&no_lma).unwrap().four_level_paging());
    }
}
