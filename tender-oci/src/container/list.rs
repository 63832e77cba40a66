//! `list` and `ps`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{load, OciError};
use crate::cgroups::Cgroups;
use crate::state::{StateDir, Status};

/// One row of `list`.
#[derive(Debug, serde::Serialize)]
pub struct ListEntry {
    /// Id.
    pub id: String,
    /// Init pid.
    pub pid: i32,
    /// Status.
    pub status: &'static str,
    /// Bundle.
    pub bundle: PathBuf,
    /// Created.
    pub created: String,
    /// Owner.
    pub owner: &'static str,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
}

/// `list`.
pub fn list(root: &Path) -> Result<Vec<ListEntry>, OciError> {
    let mut out = Vec::new();
    for id in crate::state::list(root)? {
        let Some(dir) = StateDir::open(root, &id)? else { continue };
        let Ok(Some(record)) = dir.load() else { continue };
        let status = dir.status(Some(&record));
        out.push(ListEntry {
            pid: if status == Status::Stopped { 0 } else { record.pid },
            status: status.as_str(),
            bundle: record.bundle,
            created: record.created,
            owner: "",
            annotations: record.annotations,
            id,
        });
    }
    Ok(out)
}

/// `ps`: pids in the container's cgroup.
pub fn pids(root: &Path, id: &str) -> Result<Vec<i32>, OciError> {
    let (_, record, _) = load(root, id)?;
    Ok(Cgroups { dirs: record.cgroups }.pids())
}
