//! `delete [--force]`.

use std::path::Path;

use anyhow::Context;
use tender_oci::container;
use tender_oci::logging::Logger;

pub fn delete(a: liboci_cli::Delete, root: &Path, log: &mut Logger) -> anyhow::Result<()> {
    let warnings = container::delete(root, &a.container_id, a.force)
        .with_context(|| format!("delete container `{}`", a.container_id))?;
    for w in warnings {
        log.warn(&w.to_string());
    }
    Ok(())
}
