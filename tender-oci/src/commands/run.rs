//! `run`: create, start, wait (unless `--detach`), delete (unless `--keep`).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use tender_oci::container::{self, CreateArgs};
use tender_oci::logging::Logger;

pub fn run(a: liboci_cli::Run, root: &Path, log: &mut Logger) -> anyhow::Result<ExitCode> {
    let id = &a.container_id;
    let pid = container::create(&CreateArgs {
        root,
        id,
        bundle: &a.bundle,
        pid_file: a.pid_file.as_deref(),
        console_socket: a.console_socket.as_deref(),
    })
    .with_context(|| format!("create container `{id}` from bundle {}", a.bundle.display()))?;
    for w in container::start(root, id).with_context(|| format!("start container `{id}`"))? {
        log.warn(&w.to_string());
    }
    if a.detach {
        return Ok(ExitCode::SUCCESS);
    }
    // We cloned the init, so we can wait for it.
    let status = loop {
        match waitpid(Pid::from_raw(pid), None) {
            Ok(WaitStatus::Exited(_, code)) => break code,
            Ok(WaitStatus::Signaled(_, sig, _)) => break 128 + sig as i32,
            Ok(_) | Err(nix::Error::EINTR) => continue,
            Err(e) => return Err(e).context(format!("wait for container `{id}`")),
        }
    };
    if !a.keep {
        for w in container::delete(root, id, true).with_context(|| format!("delete container `{id}`"))? {
            log.warn(&w.to_string());
        }
    }
    Ok(ExitCode::from(u8::try_from(status & 0xff).unwrap_or(u8::MAX)))
}
