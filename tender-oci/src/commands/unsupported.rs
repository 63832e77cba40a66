//! Verbs runc has and a unikernel runtime does not.

use std::process::ExitCode;

pub fn unsupported(verb: &str, why: &str) -> anyhow::Result<ExitCode> {
    anyhow::bail!("{verb} is not supported by tender-oci: {why}")
}
