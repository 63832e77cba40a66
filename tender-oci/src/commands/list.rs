//! `list [--format table|json] [--quiet]`.

use std::path::Path;

use tender_oci::container;

pub fn list(a: liboci_cli::List, root: &Path) -> anyhow::Result<()> {
    let entries = container::list(root)?;
    if a.quiet {
        entries.iter().for_each(|e| println!("{}", e.id));
    } else if a.format == "json" {
        println!("{}", serde_json::to_string(&entries)?);
    } else {
        println!("ID\tPID\tSTATUS\tBUNDLE\tCREATED\tOWNER");
        for e in &entries {
            println!("{}\t{}\t{}\t{}\t{}\t{}", e.id, e.pid, e.status, e.bundle.display(), e.created, e.owner);
        }
    }
    Ok(())
}
