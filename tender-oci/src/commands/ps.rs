//! `ps [--format table|json] ID`.

use std::path::Path;

use anyhow::Context;
use tender_oci::container;

pub fn ps(a: liboci_cli::Ps, root: &Path) -> anyhow::Result<()> {
    let pids =
        container::pids(root, &a.container_id).with_context(|| format!("ps of container `{}`", a.container_id))?;
    if a.format == "json" {
        println!("{}", serde_json::to_string(&pids)?);
    } else {
        println!("PID\tCMD");
        for pid in pids {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            println!("{pid}\t{}", comm.trim());
        }
    }
    Ok(())
}
