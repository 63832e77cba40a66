//! The state directory: `ROOT/ID/` holds `state.json` (what `create` set up) and, until
//! `start`, `exec.fifo` (the container's init blocks opening it for writing).
//!
//! Status is computed, as runc does: the init process gone (or a zombie, or its pid reused)
//! → stopped; the fifo still there → created; else running.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Hook;
use serde::{Deserialize, Serialize};

/// Name of the start fifo in the state directory.
pub const FIFO: &str = "exec.fifo";
const RECORD: &str = "state.json";

/// State directory errors.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// ID with characters that could escape the state root.
    #[error("invalid container id `{0}`: use 1 to 1024 characters of [A-Za-z0-9_+.-], not `.` or `..`")]
    BadId(String),
    /// Create of an existing id.
    #[error("container `{0}` already exists (delete it first: tender-oci delete --force {0})")]
    Exists(String),
    /// Unknown id.
    #[error("container `{0}` does not exist")]
    NotFound(String),
    /// I/O on the state directory.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Corrupt state.json.
    #[error("{path}: corrupt container state: {source}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
}

/// What `create` recorded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// Container id.
    pub id: String,
    /// Bundle directory.
    pub bundle: PathBuf,
    /// Root filesystem.
    pub rootfs: PathBuf,
    /// The init's pid (host namespace).
    pub pid: i32,
    /// Its start time (`/proc/PID/stat` field 22), to tell pid reuse.
    pub pid_start_time: u64,
    /// Creation time, RFC 3339.
    pub created: String,
    /// Config annotations.
    pub annotations: BTreeMap<String, String>,
    /// The cgroup directories the container was put in.
    pub cgroups: Vec<PathBuf>,
    /// Hooks for `start`.
    pub poststart: Vec<Hook>,
    /// Hooks for `delete`.
    pub poststop: Vec<Hook>,
    /// The guest's command line, as the tender will pass it (for debugging).
    pub guest_cmdline: String,
    /// The network namespace the container joined by path, if any: `delete` removes the
    /// guest's redirects there (see [`crate::net`]) if the init could not.
    #[serde(default)]
    pub netns: Option<PathBuf>,
    /// The namespace interfaces redirected to the guest.
    #[serde(default)]
    pub net_ifaces: Vec<String>,
}

/// Container status (OCI runtime spec).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Being created (hooks running).
    Creating,
    /// Created, waiting for start.
    Created,
    /// The guest runs.
    Running,
    /// The init has exited.
    Stopped,
}

impl Status {
    /// The spec's word.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Stopped => "stopped",
        }
    }
}

/// OCI state, as `runc state` prints it (the spec's fields plus runc's `rootfs`, `created`, `owner`).
#[derive(Debug, Serialize)]
pub struct OciState<'a> {
    /// Spec version.
    #[serde(rename = "ociVersion")]
    pub oci_version: &'static str,
    /// Id.
    pub id: &'a str,
    /// Init pid (0 when stopped, as runc prints).
    pub pid: i32,
    /// Status.
    pub status: &'static str,
    /// Bundle.
    pub bundle: &'a Path,
    /// Rootfs.
    pub rootfs: &'a Path,
    /// Creation time.
    pub created: &'a str,
    /// Owner (always empty: rootful only).
    pub owner: &'static str,
    /// Annotations.
    pub annotations: &'a BTreeMap<String, String>,
}

/// The OCI runtime spec version we implement.
pub const OCI_VERSION: &str = "1.0.2";

impl Record {
    /// The state to print or hand to hooks.
    pub fn oci_state(&self, status: Status) -> OciState<'_> {
        OciState {
            oci_version: OCI_VERSION,
            id: &self.id,
            pid: if status == Status::Stopped { 0 } else { self.pid },
            status: status.as_str(),
            bundle: &self.bundle,
            rootfs: &self.rootfs,
            created: &self.created,
            owner: "",
            annotations: &self.annotations,
        }
    }
}

/// `ROOT/ID`.
#[derive(Debug, Clone)]
pub struct StateDir {
    /// The directory.
    pub path: PathBuf,
    /// The container id.
    pub id: String,
}

/// Checks a container id (it becomes a directory name).
pub fn check_id(id: &str) -> Result<(), StateError> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && id != "."
        && id != ".."
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"_+.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(StateError::BadId(id.to_owned()))
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StateError + '_ {
    move |source| StateError::Io { path: path.to_owned(), source }
}

impl StateDir {
    /// Makes `ROOT/ID` (and ROOT, mode 0700). Fails if the id exists.
    pub fn create(root: &Path, id: &str) -> Result<Self, StateError> {
        check_id(id)?;
        fs::create_dir_all(root).map_err(io_err(root))?;
        let path = root.join(id);
        match fs::create_dir(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(StateError::Exists(id.to_owned())),
            Err(e) => return Err(io_err(&path)(e)),
        }
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).map_err(io_err(&path))?;
        Ok(Self { path, id: id.to_owned() })
    }

    /// Opens `ROOT/ID`; `Ok(None)` if it does not exist.
    pub fn open(root: &Path, id: &str) -> Result<Option<Self>, StateError> {
        check_id(id)?;
        let path = root.join(id);
        Ok(path.is_dir().then(|| Self { path, id: id.to_owned() }))
    }

    /// Opens `ROOT/ID` or fails with [`StateError::NotFound`].
    pub fn existing(root: &Path, id: &str) -> Result<Self, StateError> {
        Self::open(root, id)?.ok_or_else(|| StateError::NotFound(id.to_owned()))
    }

    /// The start fifo.
    pub fn fifo(&self) -> PathBuf {
        self.path.join(FIFO)
    }

    /// Writes state.json atomically.
    pub fn save(&self, record: &Record) -> Result<(), StateError> {
        let tmp = self.path.join(".state.json.tmp");
        let json = serde_json::to_vec_pretty(record).expect("state serialises");
        fs::write(&tmp, json).map_err(io_err(&tmp))?;
        let path = self.path.join(RECORD);
        fs::rename(&tmp, &path).map_err(io_err(&path))
    }

    /// Reads state.json; `Ok(None)` while `create` has not written it yet.
    pub fn load(&self) -> Result<Option<Record>, StateError> {
        let path = self.path.join(RECORD);
        match fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map(Some).map_err(|source| StateError::Corrupt { path, source })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// The container's status.
    pub fn status(&self, record: Option<&Record>) -> Status {
        match record {
            None => Status::Creating,
            Some(r) if !crate::proc::alive(r.pid, r.pid_start_time) => Status::Stopped,
            Some(_) if self.fifo().exists() => Status::Created,
            Some(_) => Status::Running,
        }
    }

    /// Removes the directory.
    pub fn remove(&self) -> Result<(), StateError> {
        match fs::remove_dir_all(&self.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err(&self.path)(e)),
            _ => Ok(()),
        }
    }
}

/// Ids under `root`, sorted.
pub fn list(root: &Path) -> Result<Vec<String>, StateError> {
    let entries = match fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(root)(e)),
    };
    let mut ids: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|id| check_id(id).is_ok())
        .collect();
    ids.sort();
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_cannot_escape_the_root() {
        for bad in ["", ".", "..", "a/b", "../x", "a b", "x\0"] {
            assert!(check_id(bad).is_err(), "{bad:?}");
        }
        for good in ["abc", "74111aabc2776b06", "my-ctr_1.2+x", "..x"] {
            assert!(check_id(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn state_dir_lifecycle() {
        let root = std::env::temp_dir().join(format!("tender-oci-state-test-{}", std::process::id()));
        let dir = StateDir::create(&root, "c1").unwrap();
        assert!(matches!(StateDir::create(&root, "c1"), Err(StateError::Exists(_))));
        assert_eq!(dir.status(None), Status::Creating);
        let record = Record {
            id: "c1".into(),
            bundle: "/b".into(),
            rootfs: "/b/rootfs".into(),
            pid: std::process::id() as i32,
            pid_start_time: crate::proc::start_time(std::process::id() as i32).unwrap(),
            created: "2024-01-01T00:00:00Z".into(),
            annotations: BTreeMap::new(),
            cgroups: vec![],
            poststart: vec![],
            poststop: vec![],
            guest_cmdline: String::new(),
            netns: None,
            net_ifaces: vec![],
        };
        dir.save(&record).unwrap();
        let loaded = dir.load().unwrap().unwrap();
        assert_eq!(dir.status(Some(&loaded)), Status::Running);
        fs::write(dir.fifo(), b"").unwrap();
        assert_eq!(dir.status(Some(&loaded)), Status::Created);
        let gone = Record { pid_start_time: loaded.pid_start_time + 1, ..loaded };
        assert_eq!(dir.status(Some(&gone)), Status::Stopped);
        let json = serde_json::to_value(gone.oci_state(Status::Stopped)).unwrap();
        assert_eq!(json["pid"], 0);
        assert_eq!(json["status"], "stopped");
        assert_eq!(list(&root).unwrap(), ["c1"]);
        dir.remove().unwrap();
        assert!(StateDir::open(&root, "c1").unwrap().is_none());
        let _ = fs::remove_dir_all(&root);
    }
}
