//! `delete`: removes a stopped (or, with `--force`, any) container and what it holds.

use std::path::Path;
use std::time::Duration;

use nix::sys::signal::{kill as send_signal, Signal};
use nix::unistd::Pid;

use super::{state_json, OciError};
use crate::cgroups::Cgroups;
use crate::hooks::{self, HookError};
use crate::state::{StateDir, StateError, Status};

/// How long `delete --force` waits for a SIGKILLed init to disappear.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// `delete`: removes a stopped (or, with `force`, any) container. Returns poststop hook
/// failures (warnings). An unknown id with `force` is not an error.
pub fn delete(root: &Path, id: &str, force: bool) -> Result<Vec<HookError>, OciError> {
    let Some(dir) = StateDir::open(root, id)? else {
        return if force { Ok(Vec::new()) } else { Err(StateError::NotFound(id.to_owned()).into()) };
    };
    let Some(record) = dir.load()? else {
        // create died before writing the record: its own cleanup did not run.
        if force {
            dir.remove()?;
            return Ok(Vec::new());
        }
        return Err(OciError::WrongState {
            id: id.into(),
            status: "creating",
            fix: "wait for create, or delete --force",
        });
    };
    match dir.status(Some(&record)) {
        Status::Stopped => {}
        Status::Running if !force => {
            return Err(OciError::WrongState {
                id: id.into(),
                status: "running",
                fix: "stop it first (kill ID TERM) or use delete --force",
            })
        }
        _ => {
            let _ = send_signal(Pid::from_raw(record.pid), Signal::SIGKILL);
            crate::proc::wait_gone(record.pid, record.pid_start_time, KILL_WAIT);
        }
    }
    if let Some(netns) = &record.netns {
        // The init removes the guest's redirects when the guest ends; not if it was killed.
        crate::net::teardown_in(netns, &record.net_ifaces, id)
            .map_err(|e| OciError::Init(format!("network namespace {}: {e}", netns.display())))?;
    }
    Cgroups { dirs: record.cgroups.clone() }.remove()?;
    let warnings = match hooks::run_all("poststop", &record.poststop, &state_json(&record, Status::Stopped)) {
        Ok(()) => Vec::new(),
        Err(e) => vec![e],
    };
    dir.remove()?;
    Ok(warnings)
}
