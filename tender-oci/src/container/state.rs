//! `state`: the OCI state JSON.

use std::path::Path;

use super::OciError;
use crate::state::{Record, StateDir, Status};

/// The OCI state JSON.
pub fn state_json(record: &Record, status: Status) -> String {
    serde_json::to_string(&record.oci_state(status)).expect("state serialises")
}

/// `state`: the OCI state JSON.
pub fn state(root: &Path, id: &str) -> Result<String, OciError> {
    let dir = StateDir::existing(root, id)?;
    match dir.load()? {
        Some(record) => Ok(state_json(&record, dir.status(Some(&record)))),
        None => {
            Ok(serde_json::json!({"ociVersion": crate::state::OCI_VERSION, "id": id, "status": "creating", "pid": 0,
            "bundle": "", "annotations": {}})
            .to_string())
        }
    }
}
