//! `tender-oci`: an OCI runtime that runs Solo5 unikernel images with the tender.
//!
//! Docker and containerd call it exactly as they call runc (see the README, "OCI
//! runtime"). The library holds the logic; the binary (`src/main.rs`, `src/commands/`)
//! parses runc's command line with youki's `liboci-cli` and maps errors to exit status 1.
//!
//! * [`bundle`]: `config.json` → [`bundle::Plan`] (pure).
//! * [`cmdline`]: the tender's command line, network words for the guest (pure).
//! * [`container`]: the verbs: create, start, state, kill, delete, list, ps.
//! * [`init`]: the container's init process (namespaces, network, root, start fifo, pid 1).
//! * [`cgroups`], [`mounts`], [`net`] (over [`netlink`]), [`hooks`]: the pieces the init and `create` use.
//! * [`delegate`]: pod sandboxes (pause containers) handed to runc.
//! * [`state`]: the state directory; [`sync`]: create ⇄ init messages; [`logging`].
//! * [`urunc`]: images built for urunc (annotations, `/urunc.json`) that hold Solo5 guests.

pub mod bundle;
pub mod cgroups;
pub mod cmdline;
pub mod container;
pub mod delegate;
pub mod hooks;
pub mod init;
pub mod logging;
pub mod mounts;
pub mod net;
pub mod netlink;
pub mod proc;
pub mod state;
pub mod sync;
pub mod urunc;

/// Default `--root`.
pub const DEFAULT_ROOT: &str = "/run/tender-oci";
