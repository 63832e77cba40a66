//! `create`: plans the container, checks the guest, makes the state directory and
//! cgroups, clones the init into the new namespaces and waits until it is ready.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use hypercall_abi::elf::AbiTarget;
use hypercall_abi::mft::MftType;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::signal::{kill as send_signal, Signal};
use nix::sys::stat::Mode;
use nix::unistd::Pid;

use super::{state_json, sys, OciError};
use crate::bundle::{self, NetNs, Plan};
use crate::cgroups::Cgroups;
use crate::hooks;
use crate::init::{self, InitConfig};
use crate::state::{Record, StateDir, Status};
use crate::sync::{self, Msg};

/// Stack for the cloned init. It runs the network setup, the mounts and, after fork, the
/// tender's setup on it; 8 MiB is the usual main-thread stack.
const INIT_STACK: usize = 8 << 20;

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
    let mut file = tender::guest_file::GuestFile::from_file(std::fs::File::from(fd), &path).map_err(rerr)?;
    // All of it: create checks the whole image once; the tender reads it again to run.
    file.read_whole().map_err(rerr)?;
    let image = tender::loader::GuestImage::parse(file.head(), plan.mem_mib << 20)
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
