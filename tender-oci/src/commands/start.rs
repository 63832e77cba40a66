//! `start`.

use std::path::Path;

use anyhow::Context;
use tender_oci::container;
use tender_oci::logging::Logger;

pub fn start(a: liboci_cli::Start, root: &Path, log: &mut Logger) -> anyhow::Result<()> {
    let warnings =
        container::start(root, &a.container_id).with_context(|| format!("start container `{}`", a.container_id))?;
    for w in warnings {
        log.warn(&w.to_string());
    }
    Ok(())
}
