//! Where errors and warnings go: the `--log` file (JSON lines with `--log-format json`, as
//! containerd reads them: `{"level":"error","msg":"…","time":"…"}`), else stderr.
//!
//! An error goes to stderr as well, as runc's does (its `fatal` writes both): callers
//! that do not read the log file see only the command's output. containerd's shim, for
//! one, reports `runc update` and `runc delete` failures with their combined stdout and
//! stderr, and nothing from the log; without the stderr line the user reads an empty
//! reason.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

/// The runtime's log.
#[derive(Debug)]
pub struct Logger {
    file: Option<File>,
    json: bool,
}

impl Logger {
    /// Opens `--log` for appending (stderr if absent or unopenable).
    pub fn new(path: Option<&Path>, format: Option<&str>) -> Self {
        let file = path.and_then(|p| OpenOptions::new().create(true).append(true).open(p).ok());
        Logger { file, json: format == Some("json") }
    }

    /// Logs an error, and writes it to stderr too when the log is a file.
    pub fn error(&mut self, msg: &str) {
        self.write("error", msg);
        if self.file.is_some() {
            let _ = writeln!(std::io::stderr(), "tender-oci: {msg}");
        }
    }

    /// Logs a warning.
    pub fn warn(&mut self, msg: &str) {
        self.write("warning", msg);
    }

    fn write(&mut self, level: &str, msg: &str) {
        let time = crate::proc::now_rfc3339();
        let line = if self.json {
            serde_json::json!({ "level": level, "msg": msg, "time": time }).to_string()
        } else {
            format!("time=\"{time}\" level={level} msg={msg:?}")
        };
        match &mut self.file {
            Some(f) => {
                let _ = writeln!(f, "{line}");
            }
            None => {
                let _ = writeln!(std::io::stderr(), "tender-oci: {level}: {msg}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_as_containerd_reads_them() {
        let path = std::env::temp_dir().join(format!("tender-oci-log-test-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let mut log = Logger::new(Some(&path), Some("json"));
        log.error("container `x` does not exist");
        log.warn("w");
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines[0]["level"], "error");
        assert_eq!(lines[0]["msg"], "container `x` does not exist");
        assert!(lines[0]["time"].as_str().unwrap().ends_with('Z'));
        assert_eq!(lines[1]["level"], "warning");
        let _ = std::fs::remove_file(&path);
    }
}
