//! `state`.

use std::path::Path;

use anyhow::Context;
use tender_oci::container;

pub fn state(a: liboci_cli::State, root: &Path) -> anyhow::Result<()> {
    let json =
        container::state(root, &a.container_id).with_context(|| format!("state of container `{}`", a.container_id))?;
    println!("{json}");
    Ok(())
}
