//! One file per verb. `anyhow` lives here only, for context on the way out.

pub mod create;
pub mod delete;
pub mod features;
pub mod kill;
pub mod list;
pub mod ps;
pub mod run;
pub mod start;
pub mod state;
pub mod unsupported;

use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;
use tender_oci::logging::Logger;

/// The verbs: runc's, with youki's argument structs (our own only for `kill`, whose
/// signal runc makes optional).
#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Create a container: the guest is loaded and waits for `start`.
    Create(liboci_cli::Create),
    /// Start a created container.
    Start(liboci_cli::Start),
    /// Print the state of a container as JSON.
    State(liboci_cli::State),
    /// Send a signal (default SIGTERM) to the container.
    Kill(kill::KillArgs),
    /// Delete a container and everything it holds.
    Delete(liboci_cli::Delete),
    /// Create and start a container, wait for it and delete it.
    Run(liboci_cli::Run),
    /// Print the runtime's features as JSON.
    Features(liboci_cli::Features),
    /// List containers.
    List(liboci_cli::List),
    /// List the container's processes.
    Ps(liboci_cli::Ps),
    /// Not supported: a unikernel container has no programs to exec.
    Exec(liboci_cli::Exec),
    /// Not supported.
    Pause(liboci_cli::Pause),
    /// Not supported.
    Resume(liboci_cli::Resume),
    /// Not supported.
    Update(liboci_cli::Update),
    /// Not supported.
    Events(liboci_cli::Events),
    /// Not supported.
    Checkpoint(liboci_cli::Checkpoint),
    /// Not supported.
    Spec(liboci_cli::Spec),
}

impl Cmd {
    /// The container the verb acts on, and for `create`/`run` its bundle (to tell a pod
    /// sandbox, see `tender_oci::delegate`). `None` for verbs on no one container.
    pub fn target(&self) -> Option<(&str, Option<&Path>)> {
        Some(match self {
            Cmd::Create(a) => (&a.container_id, Some(&a.bundle)),
            Cmd::Run(a) => (&a.container_id, Some(&a.bundle)),
            Cmd::Start(a) => (&a.container_id, None),
            Cmd::State(a) => (&a.container_id, None),
            Cmd::Kill(a) => (&a.container_id, None),
            Cmd::Delete(a) => (&a.container_id, None),
            Cmd::Ps(a) => (&a.container_id, None),
            Cmd::Exec(a) => (&a.container_id, None),
            Cmd::Pause(a) => (&a.container_id, None),
            Cmd::Resume(a) => (&a.container_id, None),
            Cmd::Update(a) => (&a.container_id, None),
            Cmd::Events(a) => (&a.container_id, None),
            Cmd::Checkpoint(a) => (&a.container_id, None),
            Cmd::Features(_) | Cmd::List(_) | Cmd::Spec(_) => return None,
        })
    }

    /// Whether the verb goes to runc: a pod sandbox being created, or a container whose
    /// state is runc's.
    pub fn delegated(&self, root: &Path) -> Option<&str> {
        use tender_oci::delegate;
        let (id, bundle) = self.target()?;
        let to_runc = match bundle {
            Some(b) => delegate::bundle_is_sandbox(b),
            None => delegate::delegated(root, id),
        };
        to_runc.then_some(id)
    }
}

/// Runs one verb.
pub fn dispatch(cmd: Cmd, root: &Path, log: &mut Logger) -> anyhow::Result<ExitCode> {
    match cmd {
        Cmd::Create(a) => create::create(a, root).map(|()| ExitCode::SUCCESS),
        Cmd::Start(a) => start::start(a, root, log).map(|()| ExitCode::SUCCESS),
        Cmd::State(a) => state::state(a, root).map(|()| ExitCode::SUCCESS),
        Cmd::Kill(a) => kill::kill(a, root).map(|()| ExitCode::SUCCESS),
        Cmd::Delete(a) => delete::delete(a, root, log).map(|()| ExitCode::SUCCESS),
        Cmd::Run(a) => run::run(a, root, log),
        Cmd::Features(_) => features::features().map(|()| ExitCode::SUCCESS),
        Cmd::List(a) => list::list(a, root).map(|()| ExitCode::SUCCESS),
        Cmd::Ps(a) => ps::ps(a, root).map(|()| ExitCode::SUCCESS),
        Cmd::Exec(_) => {
            unsupported::unsupported("exec", "a unikernel container runs one guest and has no programs to exec")
        }
        Cmd::Pause(_) | Cmd::Resume(_) => {
            unsupported::unsupported("pause/resume", "freezing a guest is not implemented")
        }
        Cmd::Update(_) => {
            unsupported::unsupported("update", "resources are fixed when the guest starts (its memory is mapped once)")
        }
        Cmd::Events(_) => unsupported::unsupported("events", "not implemented"),
        Cmd::Checkpoint(_) => unsupported::unsupported("checkpoint", "not implemented"),
        Cmd::Spec(_) => unsupported::unsupported("spec", "write config.json yourself; see the README's Dockerfile"),
    }
}

/// The error and its causes, each cause added only if the text so far does not already
/// hold it (typed errors often print their source themselves).
pub fn message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}
