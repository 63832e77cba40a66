//! The guest command line, after the runtime consumed its `--solo5:LEVEL` words.

use core::fmt;

use crate::console::LogLevel;

/// The application's command line: what the tender received after the guest's
/// file name, joined with single spaces, minus leading `--solo5:…` words.
///
/// It is bytes, not `str`: the tender passes its arguments through unchanged.
#[derive(Clone, Copy)]
pub struct Cmdline {
    bytes: &'static [u8],
}

impl Cmdline {
    pub(crate) const fn new(bytes: &'static [u8]) -> Self {
        Self { bytes }
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &'static [u8] {
        self.bytes
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// True if there is nothing after the `--solo5:` words.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Whitespace-separated words.
    pub fn args(&self) -> impl Iterator<Item = &'static [u8]> + use<> {
        self.bytes.split(|b| b.is_ascii_whitespace()).filter(|w| !w.is_empty())
    }

    /// Word `n` (0-based), if present and valid UTF-8.
    pub fn arg(&self, n: usize) -> Option<&'static str> {
        core::str::from_utf8(self.args().nth(n)?).ok()
    }

    /// Word `n` parsed as `T` (an integer, an `Ipv4Addr`, …).
    pub fn parse_arg<T: core::str::FromStr>(&self, n: usize) -> Option<T> {
        self.arg(n)?.parse().ok()
    }
}

/// Shows the command line, invalid UTF-8 as U+FFFD.
impl fmt::Display for Cmdline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.bytes.utf8_chunks() {
            f.write_str(chunk.valid())?;
            if !chunk.invalid().is_empty() {
                f.write_str("\u{FFFD}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Cmdline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// Consumes leading `--solo5:quiet|error|warn|info|debug` words, as Solo5's
/// `cmdline_parse` does (a word counts only if followed by whitespace or the end).
/// Returns the last level named, if any, and the rest of the line with leading
/// whitespace removed.
pub(crate) fn take_solo5_options(mut line: &[u8]) -> (Option<LogLevel>, &[u8]) {
    const PREFIX: &[u8] = b"--solo5:";
    const LEVELS: [(&[u8], LogLevel); 5] = [
        (b"quiet", LogLevel::Error),
        (b"error", LogLevel::Error),
        (b"warn", LogLevel::Warn),
        (b"info", LogLevel::Info),
        (b"debug", LogLevel::Debug),
    ];
    let mut level = None;
    line = line.trim_ascii_start();
    loop {
        let word_len = line.iter().position(u8::is_ascii_whitespace).unwrap_or(line.len());
        let (word, rest) = line.split_at(word_len);
        let Some(name) = word.strip_prefix(PREFIX) else { break };
        let Some(&(_, l)) = LEVELS.iter().find(|(n, _)| *n == name) else { break };
        level = Some(l);
        line = rest.trim_ascii_start();
    }
    (level, line)
}
