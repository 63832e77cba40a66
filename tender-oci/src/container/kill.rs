//! `kill`: signals the init, which forwards to the tender.

use std::path::Path;

use nix::sys::signal::{kill as send_signal, Signal};
use nix::unistd::Pid;

use super::{load, sys, OciError};
use crate::cgroups::Cgroups;
use crate::state::Status;

/// Parses `TERM`, `SIGTERM`, `15`.
pub fn parse_signal(s: &str) -> Result<Signal, OciError> {
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| OciError::BadSignal(s.to_owned()));
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
    name.parse().map_err(|_| OciError::BadSignal(s.to_owned()))
}

/// `kill`: signals the init (which forwards to the tender); `all`: every process in the cgroup.
pub fn kill(root: &Path, id: &str, signal: Signal, all: bool) -> Result<(), OciError> {
    let (_, record, status) = load(root, id)?;
    if status == Status::Stopped {
        return Err(OciError::WrongState { id: id.into(), status: "stopped", fix: "container not running" });
    }
    send_signal(Pid::from_raw(record.pid), signal).map_err(sys(format!("kill {} {signal}", record.pid)))?;
    if all {
        for pid in (Cgroups { dirs: record.cgroups.clone() }).pids() {
            let _ = send_signal(Pid::from_raw(pid), signal);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_like_runc() {
        assert_eq!(parse_signal("TERM").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("sigkill").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("15").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("9").unwrap(), Signal::SIGKILL);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("999").is_err());
    }
}
