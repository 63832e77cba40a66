//! The lifecycle verbs, as runc implements them: `create` leaves the init waiting on the
//! start fifo; `start` opens it; `kill` signals the init; `delete` removes what `create`
//! made. A failed `create` leaves nothing behind: no process, cgroup, state or tap (taps
//! live in the container's network namespace, which dies with the init).

use std::collections::BTreeMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use hypercall_abi::elf::AbiTarget;
use hypercall_abi::mft::MftType;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill as send_signal, Signal};
use nix::sys::stat::Mode;
use nix::unistd::Pid;

use crate::bundle::{self, NetNs, Plan};
use crate::cgroups::{CgroupError, Cgroups};
use crate::hooks::{self, HookError};
use crate::init::{self, InitConfig};
use crate::state::{Record, StateDir, StateError, Status};
use crate::sync::{self, Msg};

/// Stack for the cloned init. It runs the network setup, the mounts and, after fork, the
/// tender's setup on it; 8 MiB is the usual main-thread stack.
const INIT_STACK: usize = 8 << 20;
/// How long `delete --force` waits for a SIGKILLed init to disappear.
const KILL_WAIT: Duration = Duration::from_secs(10);

/// Everything a verb can fail with. Messages name the container, file or field.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    /// Bad bundle.
    #[error(transparent)]
    Bundle(#[from] bundle::BundleError),
    /// State directory.
    #[error(transparent)]
    State(#[from] StateError),
    /// Cgroups.
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    /// A hook failed.
    #[error(transparent)]
    Hook(#[from] HookError),
    /// The guest ELF could not be read. The reason is spelled as Go spells errno
    /// ("no such file or directory", "permission denied"): docker matches those words to
    /// exit 127 or 126, as for runc's "exec: …: no such file or directory".
    #[error(
        "process.args[0] {path}: {}: the image must contain the unikernel at this path (a volume will not do)",
        errno_text(why)
    )]
    GuestRead {
        /// Path inside the container.
        path: PathBuf,
        /// Why (not an error `source`: the message holds it already, in Go's words, and
        /// Rust's "No such file or directory (os error 2)" after it would only repeat it).
        why: std::io::Error,
    },
    /// Not a Solo5 guest.
    #[error("process.args[0] {path} is not a Solo5 unikernel the tender can run: {source}")]
    GuestLoad {
        /// Path inside the container.
        path: PathBuf,
        /// Why.
        source: tender::loader::LoadError,
    },
    /// The guest's ABI is not the monitor the image's urunc settings name.
    #[error(
        "{}hypervisor is `{monitor}`, but {path} is built for solo5-{target}: make them agree",
        crate::urunc::PREFIX
    )]
    MonitorMismatch {
        /// Path inside the container.
        path: PathBuf,
        /// What the image says.
        monitor: &'static str,
        /// What the guest is.
        target: &'static str,
    },
    /// A Solo5 guest for another target.
    #[error("process.args[0] {path} is built for solo5-{target}; the tender runs solo5-spt and solo5-hvt guests")]
    GuestTarget {
        /// Path inside the container.
        path: PathBuf,
        /// Its target.
        target: &'static str,
    },
    /// Block device settings vs the manifest.
    #[error("{0}")]
    Devices(String),
    /// The guest has net devices but no namespace of its own.
    #[error("the guest declares net device `{device}`, but the container {why}; tender-oci moves the container's eth0 to the guest, so it needs a network namespace of its own (use a docker network, e.g. the default bridge)")]
    NetNamespace {
        /// First net device.
        device: String,
        /// What the config asks instead.
        why: &'static str,
    },
    /// Terminal without console socket.
    #[error("process.terminal is true but no --console-socket was given: the pty master has nowhere to go")]
    NoConsoleSocket,
    /// A syscall step in the runtime.
    #[error("{what}: {source}")]
    Sys {
        /// Which step.
        what: String,
        /// Why.
        source: nix::Error,
    },
    /// I/O on a runtime file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The init failed during setup.
    #[error("container init: {0}")]
    Init(String),
    /// The init died during setup.
    #[error("container init died during setup ({0})")]
    InitDied(String),
    /// Wrong state for the verb.
    #[error("container `{id}` is {status}: {fix}")]
    WrongState {
        /// Id.
        id: String,
        /// Its status.
        status: &'static str,
        /// What to do.
        fix: &'static str,
    },
    /// Unknown signal name.
    #[error("unknown signal `{0}`: give a name (TERM, SIGKILL) or a number")]
    BadSignal(String),
}

/// An I/O error as Go prints errno: strerror in lower case, without Rust's "(os error N)".
fn errno_text(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => {
            let desc = nix::errno::Errno::from_raw(n).desc();
            let mut chars = desc.chars();
            chars.next().map(|c| c.to_lowercase().chain(chars).collect()).unwrap_or_default()
        }
        None => e.to_string(),
    }
}

fn sys(what: impl Into<String>) -> impl FnOnce(nix::Error) -> OciError {
    let what = what.into();
    move |source| OciError::Sys { what, source }
}

/// `create` arguments.
#[derive(Debug, Clone)]
pub struct CreateArgs<'a> {
    /// `--root`.
    pub root: &'a Path,
    /// Container id.
    pub id: &'a str,
    /// `--bundle`.
    pub bundle: &'a Path,
    /// `--pid-file`.
    pub pid_file: Option<&'a Path>,
    /// `--console-socket`.
    pub console_socket: Option<&'a Path>,
}

/// The guest as `create` sees it.
struct Guest {
    manifest: tender::loader::Manifest,
    nets: Vec<String>,
    kvm: bool,
}

/// Reads the guest ELF from the rootfs (resolved inside it) and checks it against the plan.
fn check_guest(plan: &Plan) -> Result<Guest, OciError> {
    let path = plan.guest.clone();
    let rerr = |why: std::io::Error| OciError::GuestRead { path: path.clone(), why };
    let root = nix::fcntl::open(&plan.rootfs, OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| OciError::Io { path: plan.rootfs.clone(), source: e.into() })?;
    // O_NONBLOCK: a FIFO at the path must not block `create`; GuestFile refuses anything
    // but a regular file before reading, and reads no more than its size.
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd: OwnedFd = nix::fcntl::openat2(&root, &plan.guest, how).map_err(|e| rerr(e.into()))?;
    let bytes = tender::guest_file::GuestFile::from_file(std::fs::File::from(fd)).map_err(rerr)?;
    let image = tender::loader::GuestImage::parse(&bytes, plan.mem_mib << 20)
        .map_err(|source| OciError::GuestLoad { path: path.clone(), source })?;
    let kvm = match image.target {
        AbiTarget::Spt => false,
        AbiTarget::Hvt => true,
        other => return Err(OciError::GuestTarget { path, target: other.name() }),
    };
    if let Some(monitor) = plan.monitor.filter(|m| (*m == crate::urunc::Monitor::Hvt) != kvm) {
        return Err(OciError::MonitorMismatch { path, monitor: monitor.name(), target: image.target.name() });
    }
    let manifest = image.manifest;
    let of_type = |t: MftType| -> Vec<String> {
        manifest
            .devices()
            .filter(|(_, e)| e.device_type == t as u32)
            .map(|(_, e)| String::from_utf8_lossy(e.name_bytes()).into_owned())
            .collect()
    };
    let nets = of_type(MftType::NetBasic);
    // The one manifest-vs-devices check (the tender's), on a spec with the plan's block
    // devices and every declared net device (tender-oci attaches each to a tap).
    let mut probe = tender::spec::RunSpec::new(&plan.guest);
    for (name, path) in &plan.blocks {
        let block = tender::spec::BlockSpec { path: path.clone(), block_size: tender::spec::DEFAULT_BLOCK_SIZE };
        probe.blocks.insert(name.clone(), block);
    }
    for name in &nets {
        let net = tender::spec::NetSpec { tap: tender::spec::TapSpec::Named(String::new()), mac: None };
        probe.nets.insert(name.clone(), net);
    }
    tender::devices::check_names(&manifest, &probe).map_err(|e| OciError::Devices(device_advice(e)))?;
    if let Some(device) = nets.first() {
        let why = match &plan.namespaces.net {
            NetNs::New => None,
            NetNs::Host => Some("uses the host's network namespace (--network host)"),
            NetNs::Join(path) if same_namespace(path, Path::new("/proc/self/ns/net")) => {
                Some("uses the host's network namespace (--network host)")
            }
            // A pod's or another engine's namespace: the guest takes its interface.
            NetNs::Join(_) => None,
        };
        if let Some(why) = why {
            return Err(OciError::NetNamespace { device: device.clone(), why });
        }
    }
    Ok(Guest { manifest, nets, kvm })
}

/// The device check's error, with the advice an OCI user needs (annotations and
/// environment variables attach block devices here, not flags).
fn device_advice(e: tender::devices::DeviceError) -> String {
    use tender::devices::DeviceError;
    match e {
        DeviceError::NotAttached { name, option: "--block", .. } => format!(
            "the guest declares block device `{name}` but nothing attaches it: set the annotation {}{name}=/path/in/container or the environment variable {}{name}=/path/in/container (e.g. ENV in the Dockerfile)",
            bundle::BLOCK_ANNOTATION_PREFIX,
            bundle::BLOCK_ENV_PREFIX
        ),
        DeviceError::NotDeclared { name, option: "--block", declared, .. } => format!(
            "block device `{name}` is attached by the config, but the guest declares no such block device (it declares: {declared})"
        ),
        other => other.to_string(),
    }
}

/// Whether two namespace files name the same namespace (docker's `--network host` is a
/// path to the runtime's own namespace).
fn same_namespace(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Undoes a partial `create`.
struct Cleanup<'a> {
    state: Option<&'a StateDir>,
    cgroups: Option<Cgroups>,
    child: Option<Pid>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            let _ = send_signal(child, Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(child, None);
        }
        if let Some(cg) = self.cgroups.take() {
            let _ = cg.remove();
        }
        if let Some(state) = self.state.take() {
            let _ = state.remove();
        }
    }
}

/// `create`: returns the init's pid, waiting on the start fifo.
pub fn create(args: &CreateArgs<'_>) -> Result<i32, OciError> {
    let bundle_dir =
        std::fs::canonicalize(args.bundle).map_err(|source| OciError::Io { path: args.bundle.to_owned(), source })?;
    let plan = bundle::load(&bundle_dir)?;
    if plan.terminal && args.console_socket.is_none() {
        return Err(OciError::NoConsoleSocket);
    }
    let guest = check_guest(&plan)?;
    // The engine shows create's stderr as the container's output (it is the container's
    // stdio), so the user reads these where they read the guest's.
    for w in &plan.warnings {
        eprintln!("tender-oci: warning: {w}");
    }

    let state = StateDir::create(args.root, args.id)?;
    let mut cleanup = Cleanup { state: Some(&state), cgroups: None, child: None };
    let cgroups = Cgroups::create(plan.cgroups_path.as_deref(), args.id, &plan.resources)?;
    cleanup.cgroups = Some(cgroups.clone());
    nix::unistd::mkfifo(&state.fifo(), Mode::from_bits_truncate(0o622))
        .map_err(sys(format!("mkfifo {}", state.fifo().display())))?;

    let (parent_end, child_end) = sync::pair().map_err(sys("socketpair"))?;
    let cfg = InitConfig {
        id: args.id,
        plan: &plan,
        manifest: &guest.manifest,
        nets: &guest.nets,
        kvm: guest.kvm,
        state_dir: &state.path,
        console_socket: args.console_socket,
        cgroups: &cgroups,
    };
    let mut stack = vec![0u8; INIT_STACK];
    let mut child_end = Some(child_end);
    let entry = Box::new(|| {
        let fd = child_end.take().expect("the init runs once");
        init::main(&cfg, fd)
    });
    // SAFETY: without CLONE_VM the child gets a copy of this address space, like fork; this
    // process is single-threaded (no thread was spawned), so no lock can be held by a thread
    // that does not exist in the child. The stack is ours, writable and outlives the call
    // in this process; the child runs on its own copy of it.
    let pid = unsafe { nix::sched::clone(entry, &mut stack, init::clone_flags(&plan), Some(libc::SIGCHLD)) }
        .map_err(sys("clone the container init"))?;
    cleanup.child = Some(pid);
    drop(child_end);

    expect(&parent_end, |m| matches!(m, Msg::NsReady))?;
    let start_time = crate::proc::start_time(pid.as_raw()).unwrap_or(0);
    let mut record = Record {
        id: args.id.to_owned(),
        bundle: bundle_dir.clone(),
        rootfs: plan.rootfs.clone(),
        pid: pid.as_raw(),
        pid_start_time: start_time,
        created: crate::proc::now_rfc3339(),
        annotations: plan.annotations.clone(),
        cgroups: cgroups.dirs.clone(),
        poststart: plan.hooks.poststart.clone(),
        poststop: plan.hooks.poststop.clone(),
        guest_cmdline: String::new(),
        netns: match &plan.namespaces.net {
            NetNs::Join(path) => Some(path.clone()),
            _ => None,
        },
        net_ifaces: Vec::new(),
    };
    let hook_state = state_json(&record, Status::Created);
    hooks::run_all("prestart", &plan.hooks.prestart, &hook_state)?;
    hooks::run_all("createRuntime", &plan.hooks.create_runtime, &hook_state)?;
    sync::send_msg(&parent_end, &Msg::Go).map_err(|e| OciError::InitDied(e.to_string()))?;
    let Msg::Ready { guest_cmdline, net_ifaces } = expect(&parent_end, |m| matches!(m, Msg::Ready { .. }))? else {
        unreachable!("expect checked the variant")
    };
    record.guest_cmdline = guest_cmdline;
    record.net_ifaces = net_ifaces;
    state.save(&record)?;
    if let Some(pid_file) = args.pid_file {
        write_pid_file(pid_file, pid.as_raw())?;
    }
    // Success: keep everything.
    cleanup.child = None;
    cleanup.cgroups = None;
    cleanup.state = None;
    Ok(pid.as_raw())
}

fn expect(fd: &impl AsFd, want: impl Fn(&Msg) -> bool) -> Result<Msg, OciError> {
    match sync::recv_msg(fd) {
        Ok(Msg::Error(text)) => Err(OciError::Init(text)),
        Ok(m) if want(&m) => Ok(m),
        Ok(m) => Err(OciError::Init(format!("unexpected message {m:?}"))),
        Err(e) => Err(OciError::InitDied(e.to_string())),
    }
}

fn write_pid_file(path: &Path, pid: i32) -> Result<(), OciError> {
    let ioerr = |source| OciError::Io { path: path.to_owned(), source };
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{}.tmp", path.file_name().and_then(|n| n.to_str()).unwrap_or("pid")));
    std::fs::write(&tmp, pid.to_string()).map_err(ioerr)?;
    std::fs::rename(&tmp, path).map_err(ioerr)
}

/// The OCI state JSON.
pub fn state_json(record: &Record, status: Status) -> String {
    serde_json::to_string(&record.oci_state(status)).expect("state serialises")
}

fn load(root: &Path, id: &str) -> Result<(StateDir, Record, Status), OciError> {
    let dir = StateDir::existing(root, id)?;
    let Some(record) = dir.load()? else {
        return Err(OciError::WrongState { id: id.to_owned(), status: "creating", fix: "wait for create to finish" });
    };
    let status = dir.status(Some(&record));
    Ok((dir, record, status))
}

/// `state`: the OCI state JSON.
pub fn state(root: &Path, id: &str) -> Result<String, OciError> {
    let dir = StateDir::existing(root, id)?;
    match dir.load()? {
        Some(record) => Ok(state_json(&record, dir.status(Some(&record)))),
        None => {
            Ok(serde_json::json!({"ociVersion": crate::state::OCI_VERSION, "id": id, "status": "creating", "pid": 0,
            "bundle": "", "annotations": {}})
            .to_string())
        }
    }
}

/// `start`: lets the waiting init run the guest. Returns poststart hook failures (the spec
/// makes them warnings).
pub fn start(root: &Path, id: &str) -> Result<Vec<HookError>, OciError> {
    let (dir, record, status) = load(root, id)?;
    if status != Status::Created {
        return Err(OciError::WrongState {
            id: id.into(),
            status: status.as_str(),
            fix: "only a created container can be started",
        });
    }
    let fifo_path = dir.fifo();
    let fifo = nix::fcntl::open(&fifo_path, OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(sys(format!("open {}", fifo_path.display())))?;
    loop {
        let mut fds = [PollFd::new(fifo.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(50u16)) {
            Ok(n) if n > 0 => {
                let mut byte = [0u8; 1];
                match nix::unistd::read(&fifo, &mut byte) {
                    Ok(1) => break,
                    Ok(_) | Err(nix::Error::EAGAIN) => {}
                    Err(e) => return Err(sys(format!("read {}", fifo_path.display()))(e)),
                }
            }
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(e) => return Err(sys("poll the start fifo")(e)),
        }
        if !crate::proc::alive(record.pid, record.pid_start_time) {
            let _ = std::fs::remove_file(&fifo_path);
            return Err(OciError::WrongState {
                id: id.into(),
                status: "stopped",
                fix: "its init exited before start; see the container's output",
            });
        }
    }
    let _ = std::fs::remove_file(&fifo_path);
    let warnings = match hooks::run_all("poststart", &record.poststart, &state_json(&record, Status::Running)) {
        Ok(()) => Vec::new(),
        Err(e) => vec![e],
    };
    Ok(warnings)
}

/// Parses `TERM`, `SIGTERM`, `15`.
pub fn parse_signal(s: &str) -> Result<Signal, OciError> {
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| OciError::BadSignal(s.to_owned()));
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
    name.parse().map_err(|_| OciError::BadSignal(s.to_owned()))
}

/// `kill`: signals the init (which forwards to the tender); `all`: every process in the cgroup.
pub fn kill(root: &Path, id: &str, signal: Signal, all: bool) -> Result<(), OciError> {
    let (_, record, status) = load(root, id)?;
    if status == Status::Stopped {
        return Err(OciError::WrongState { id: id.into(), status: "stopped", fix: "container not running" });
    }
    send_signal(Pid::from_raw(record.pid), signal).map_err(sys(format!("kill {} {signal}", record.pid)))?;
    if all {
        for pid in (Cgroups { dirs: record.cgroups.clone() }).pids() {
            let _ = send_signal(Pid::from_raw(pid), signal);
        }
    }
    Ok(())
}

/// `delete`: removes a stopped (or, with `force`, any) container. Returns poststop hook
/// failures (warnings). An unknown id with `force` is not an error.
pub fn delete(root: &Path, id: &str, force: bool) -> Result<Vec<HookError>, OciError> {
    let Some(dir) = StateDir::open(root, id)? else {
        return if force { Ok(Vec::new()) } else { Err(StateError::NotFound(id.to_owned()).into()) };
    };
    let Some(record) = dir.load()? else {
        // create died before writing the record: its own cleanup did not run.
        if force {
            dir.remove()?;
            return Ok(Vec::new());
        }
        return Err(OciError::WrongState {
            id: id.into(),
            status: "creating",
            fix: "wait for create, or delete --force",
        });
    };
    match dir.status(Some(&record)) {
        Status::Stopped => {}
        Status::Running if !force => {
            return Err(OciError::WrongState {
                id: id.into(),
                status: "running",
                fix: "stop it first (kill ID TERM) or use delete --force",
            })
        }
        _ => {
            let _ = send_signal(Pid::from_raw(record.pid), Signal::SIGKILL);
            crate::proc::wait_gone(record.pid, record.pid_start_time, KILL_WAIT);
        }
    }
    if let Some(netns) = &record.netns {
        // The init removes the guest's redirects when the guest ends; not if it was killed.
        crate::net::teardown_in(netns, &record.net_ifaces, id)
            .map_err(|e| OciError::Init(format!("network namespace {}: {e}", netns.display())))?;
    }
    Cgroups { dirs: record.cgroups.clone() }.remove()?;
    let warnings = match hooks::run_all("poststop", &record.poststop, &state_json(&record, Status::Stopped)) {
        Ok(()) => Vec::new(),
        Err(e) => vec![e],
    };
    dir.remove()?;
    Ok(warnings)
}

/// One row of `list`.
#[derive(Debug, serde::Serialize)]
pub struct ListEntry {
    /// Id.
    pub id: String,
    /// Init pid.
    pub pid: i32,
    /// Status.
    pub status: &'static str,
    /// Bundle.
    pub bundle: PathBuf,
    /// Created.
    pub created: String,
    /// Owner.
    pub owner: &'static str,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
}

/// `list`.
pub fn list(root: &Path) -> Result<Vec<ListEntry>, OciError> {
    let mut out = Vec::new();
    for id in crate::state::list(root)? {
        let Some(dir) = StateDir::open(root, &id)? else { continue };
        let Ok(Some(record)) = dir.load() else { continue };
        let status = dir.status(Some(&record));
        out.push(ListEntry {
            pid: if status == Status::Stopped { 0 } else { record.pid },
            status: status.as_str(),
            bundle: record.bundle,
            created: record.created,
            owner: "",
            annotations: record.annotations,
            id,
        });
    }
    Ok(out)
}

/// `ps`: pids in the container's cgroup.
pub fn pids(root: &Path, id: &str) -> Result<Vec<i32>, OciError> {
    let (_, record, _) = load(root, id)?;
    Ok(Cgroups { dirs: record.cgroups }.pids())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_like_runc() {
        assert_eq!(parse_signal("TERM").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("sigkill").unwrap(), Signal::SIGKILL);
        assert_eq!(parse_signal("15").unwrap(), Signal::SIGTERM);
        assert_eq!(parse_signal("9").unwrap(), Signal::SIGKILL);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("999").is_err());
    }
}
