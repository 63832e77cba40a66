//! `kill ID [SIGNAL]`.

use std::path::Path;

use anyhow::Context;
use tender_oci::container;

/// runc's `kill`: the signal is optional (SIGTERM), unlike in liboci-cli's struct.
#[derive(clap::Args, Debug)]
pub struct KillArgs {
    /// Container id.
    #[arg(value_parser = clap::builder::NonEmptyStringValueParser::new(), required = true)]
    pub container_id: String,
    /// Signal name (TERM, SIGKILL) or number.
    #[arg(default_value = "SIGTERM")]
    pub signal: String,
    /// Signal every process in the container's cgroup, not only its init.
    #[arg(short, long)]
    pub all: bool,
}

pub fn kill(a: KillArgs, root: &Path) -> anyhow::Result<()> {
    let signal = container::parse_signal(&a.signal)?;
    container::kill(root, &a.container_id, signal, a.all)
        .with_context(|| format!("kill container `{}` with {signal}", a.container_id))
}
