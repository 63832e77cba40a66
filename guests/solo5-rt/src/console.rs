//! Console output (`solo5_console_write`), `print!`/`println!` and Solo5's log levels.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU8, Ordering};

use crate::platform::imp as platform;

/// Writes `bytes` to the console (the tender's stdout): `write(1, …)` on spt,
/// PUTS on hvt. Like Solo5, the result is ignored and nothing is retried: there
/// is nobody to report a console error to.
pub fn write(bytes: &[u8]) {
    platform::console_write(bytes);
}

/// Formats into a small stack buffer and writes whole buffers, so a typical
/// `println!` is one `write` syscall (Solo5's log formats into 320 bytes the same way).
struct BufferedConsole {
    buf: [u8; 256],
    len: usize,
}

impl BufferedConsole {
    const fn new() -> Self {
        Self { buf: [0; 256], len: 0 }
    }

    fn flush(&mut self) {
        write(&self.buf[..self.len]);
        self.len = 0;
    }
}

impl Write for BufferedConsole {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s.as_bytes();
        while !rest.is_empty() {
            if self.len == self.buf.len() {
                self.flush();
            }
            let n = rest.len().min(self.buf.len() - self.len);
            self.buf[self.len..self.len + n].copy_from_slice(&rest[..n]);
            self.len += n;
            rest = &rest[n..];
        }
        Ok(())
    }
}

/// Backend of [`print!`](crate::print) and [`println!`](crate::println).
#[doc(hidden)]
pub fn _print(args: fmt::Arguments<'_>) {
    let mut out = BufferedConsole::new();
    // Our write_str never fails; a failing Display impl just ends the output early.
    let _ = out.write_fmt(args);
    out.flush();
}

/// Prints to the console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::_print(format_args!($($arg)*)) };
}

/// Prints to the console, with a newline.
#[macro_export]
macro_rules! println {
    () => { $crate::console::_print(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::console::_print(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Solo5's log levels (`bindings/log.c`); a message is shown if its level is at
/// most the current one. `--solo5:quiet` means [`LogLevel::Error`].
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Aborts and failed assertions only.
    Error = 0,
    /// Warnings too.
    Warn = 1,
    /// The default: banner, `solo5_exit(N) called`, `solo5_abort() called`.
    Info = 2,
    /// Everything.
    Debug = 3,
}

static LOG_LEVEL: AtomicU8 = AtomicU8::new(LogLevel::Info as u8);

/// The current log level.
pub fn log_level() -> LogLevel {
    match LOG_LEVEL.load(Ordering::Relaxed) {
        0 => LogLevel::Error,
        1 => LogLevel::Warn,
        2 => LogLevel::Info,
        _ => LogLevel::Debug,
    }
}

pub(crate) fn set_log_level(level: LogLevel) {
    LOG_LEVEL.store(level as u8, Ordering::Relaxed);
}

/// Prints `args` if `level` is enabled. Solo5's own messages start with `Solo5: `.
pub(crate) fn log(level: LogLevel, args: fmt::Arguments<'_>) {
    if level <= log_level() {
        _print(args);
    }
}
