//! The lifecycle verbs, as runc implements them, one file each (as youki's): `create`
//! leaves the init waiting on the start fifo; `start` opens it; `kill` signals the init;
//! `delete` removes what `create` made. A failed `create` leaves nothing behind: no
//! process, cgroup, state or tap (taps vanish with the init that holds them).

mod create;
mod delete;
mod kill;
mod list;
mod start;
mod state;

use std::path::{Path, PathBuf};

pub use create::{create, CreateArgs};
pub use delete::delete;
pub use kill::{kill, parse_signal};
pub use list::{list, pids, ListEntry};
pub use start::start;
pub use state::{state, state_json};

use crate::bundle;
use crate::cgroups::CgroupError;
use crate::hooks::HookError;
use crate::state::{Record, StateDir, StateError, Status};

/// Everything a verb can fail with. Messages name the container, file or field.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// Bad bundle.
    #[error(transparent)]
    Bundle(#[from] bundle::BundleError),
    /// State directory.
    #[error(transparent)]
    State(#[from] StateError),
    /// Cgroups.
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    /// A hook failed.
    #[error(transparent)]
    Hook(#[from] HookError),
    /// The guest ELF could not be read. The reason is spelled as Go spells errno
    /// ("no such file or directory", "permission denied"): docker matches those words to
    /// exit 127 or 126, as for runc's "exec: …: no such file or directory".
    #[error(
        "process.args[0] {path}: {}: the image must contain the unikernel at this path (a volume will not do)",
        errno_text(why)
    )]
    GuestRead {
        /// Path inside the container.
        path: PathBuf,
        /// Why (not an error `source`: the message holds it already, in Go's words, and
        /// Rust's "No such file or directory (os error 2)" after it would only repeat it).
        why: std::io::Error,
    },
    /// Not a Solo5 guest.
    #[error("process.args[0] {path} is not a Solo5 unikernel the tender can run: {source}")]
    GuestLoad {
        /// Path inside the container.
        path: PathBuf,
        /// Why.
        source: tender::loader::LoadError,
    },
    /// The guest's ABI is not the monitor the image's urunc settings name.
    #[error(
        "{}hypervisor is `{monitor}`, but {path} is built for solo5-{target}: make them agree",
        crate::urunc::PREFIX
    )]
    MonitorMismatch {
        /// Path inside the container.
        path: PathBuf,
        /// What the image says.
        monitor: &'static str,
        /// What the guest is.
        target: &'static str,
    },
    /// A Solo5 guest for another target.
    #[error("process.args[0] {path} is built for solo5-{target}; the tender runs solo5-spt and solo5-hvt guests")]
    GuestTarget {
        /// Path inside the container.
        path: PathBuf,
        /// Its target.
        target: &'static str,
    },
    /// Block device settings vs the manifest.
    #[error("{0}")]
    Devices(String),
    /// The guest has net devices but no namespace of its own.
    #[error("the guest declares net device `{device}`, but the container {why}; tender-oci moves the container's eth0 to the guest, so it needs a network namespace of its own (use a docker network, e.g. the default bridge)")]
    NetNamespace {
        /// First net device.
        device: String,
        /// What the config asks instead.
        why: &'static str,
    },
    /// Terminal without console socket.
    #[error("process.terminal is true but no --console-socket was given: the pty master has nowhere to go")]
    NoConsoleSocket,
    /// A syscall step in the runtime.
    #[error("{what}: {source}")]
    Sys {
        /// Which step.
        what: String,
        /// Why.
        source: nix::Error,
    },
    /// I/O on a runtime file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The init failed during setup.
    #[error("container init: {0}")]
    Init(String),
    /// The init died during setup.
    #[error("container init died during setup ({0})")]
    InitDied(String),
    /// Wrong state for the verb.
    #[error("container `{id}` is {status}: {fix}")]
    WrongState {
        /// Id.
        id: String,
        /// Its status.
        status: &'static str,
        /// What to do.
        fix: &'static str,
    },
    /// Unknown signal name.
    #[error("unknown signal `{0}`: give a name (TERM, SIGKILL) or a number")]
    BadSignal(String),
}

/// An I/O error as Go prints errno: strerror in lower case, without Rust's "(os error N)".
fn errno_text(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => {
            let desc = nix::errno::Errno::from_raw(n).desc();
            let mut chars = desc.chars();
            chars.next().map(|c| c.to_lowercase().chain(chars).collect()).unwrap_or_default()
        }
        None => e.to_string(),
    }
}

/// Maps a failed syscall step to [`OciError::Sys`], naming the step.
pub(crate) fn sys(what: impl Into<String>) -> impl FnOnce(nix::Error) -> OciError {
    let what = what.into();
    move |source| OciError::Sys { what, source }
}

/// The container's state directory and record, for every verb but `create`.
pub(crate) fn load(root: &Path, id: &str) -> Result<(StateDir, Record, Status), OciError> {
    let dir = StateDir::existing(root, id)?;
    let Some(record) = dir.load()? else {
        return Err(OciError::WrongState { id: id.to_owned(), status: "creating", fix: "wait for create to finish" });
    };
    let status = dir.status(Some(&record));
    Ok((dir, record, status))
}
