//! `create`.

use std::path::Path;

use anyhow::Context;
use tender_oci::container::{self, CreateArgs};

pub fn create(a: liboci_cli::Create, root: &Path) -> anyhow::Result<()> {
    container::create(&CreateArgs {
        root,
        id: &a.container_id,
        bundle: &a.bundle,
        pid_file: a.pid_file.as_deref(),
        console_socket: a.console_socket.as_deref(),
    })
    .with_context(|| format!("create container `{}` from bundle {}", a.container_id, a.bundle.display()))?;
    Ok(())
}
