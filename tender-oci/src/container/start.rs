//! `start`: opens the start fifo, which lets the waiting init run the guest.

use std::os::fd::AsFd;
use std::path::Path;

use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::stat::Mode;

use super::{load, state_json, sys, OciError};
use crate::hooks::{self, HookError};
use crate::state::Status;

/// `start`: lets the waiting init run the guest. Returns poststart hook failures (the spec
/// makes them warnings).
pub fn start(root: &Path, id: &str) -> Result<Vec<HookError>, OciError> {
    let (dir, record, status) = load(root, id)?;
    if status != Status::Created {
        return Err(OciError::WrongState {
            id: id.into(),
            status: status.as_str(),
            fix: "only a created container can be started",
        });
    }
    let fifo_path = dir.fifo();
    let fifo = nix::fcntl::open(&fifo_path, OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(sys(format!("open {}", fifo_path.display())))?;
    loop {
        let mut fds = [PollFd::new(fifo.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(50u16)) {
            Ok(n) if n > 0 => {
                let mut byte = [0u8; 1];
                match nix::unistd::read(&fifo, &mut byte) {
                    Ok(1) => break,
                    Ok(_) | Err(nix::Error::EAGAIN) => {}
                    Err(e) => return Err(sys(format!("read {}", fifo_path.display()))(e)),
                }
            }
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(e) => return Err(sys("poll the start fifo")(e)),
        }
        if !crate::proc::alive(record.pid, record.pid_start_time) {
            let _ = std::fs::remove_file(&fifo_path);
            return Err(OciError::WrongState {
                id: id.into(),
                status: "stopped",
                fix: "its init exited before start; see the container's output",
            });
        }
    }
    let _ = std::fs::remove_file(&fifo_path);
    let warnings = match hooks::run_all("poststart", &record.poststart, &state_json(&record, Status::Running)) {
        Ok(()) => Vec::new(),
        Err(e) => vec![e],
    };
    Ok(warnings)
}
