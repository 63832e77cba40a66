//! The container's init: the process `create` clones into the new namespaces. It joins
//! the cgroups, waits for the prestart hooks, builds the guest's network and root, tells
//! `create` it is ready, and blocks on the start fifo. After `start` it forks the tender
//! and stays as the namespace's pid 1, forwarding signals and exiting with the tender's
//! status.
//!
//! Why a pid-1 supervisor: the kernel drops signals sent to a pid namespace's init unless
//! it has a handler, so a tender at pid 1 would ignore `docker stop`'s SIGTERM. The tender
//! cannot install handlers (they would run tender code under the guest's filter), so its
//! parent does, and forwards.
//!
//! Why the tender runs in this process rather than by exec: after `pivot_root` the root is
//! the image's, which has no dynamic loader or libc for a `tender` binary. The tender
//! library is linked in instead, so setup (loading the guest, opening devices) happens
//! with the container's rootfs as `/`.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::stat::Mode;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::bundle::{NetNs, NsKind, Plan};
use crate::cgroups::Cgroups;
use crate::cmdline;
use crate::sync::{recv_msg, send_msg, Msg};
use crate::{mounts, net, state};

/// Device nodes bound into the container for the tender.
pub const TUN: &str = "/dev/net/tun";
/// KVM, for hvt guests.
pub const KVM: &str = "/dev/kvm";

/// What the init needs (a copy of `create`'s memory: clone without `CLONE_VM`).
#[derive(Debug)]
pub struct InitConfig<'a> {
    /// The container's id (its taps carry it, see [`net`]).
    pub id: &'a str,
    /// The plan.
    pub plan: &'a Plan,
    /// The guest's manifest (checked by `create`).
    pub manifest: &'a tender::loader::Manifest,
    /// Net device names in manifest order.
    pub nets: &'a [String],
    /// Whether the guest is an hvt guest (needs /dev/kvm).
    pub kvm: bool,
    /// The state directory (holds the fifo).
    pub state_dir: &'a Path,
    /// `--console-socket`.
    pub console_socket: Option<&'a Path>,
    /// Cgroups to join.
    pub cgroups: &'a Cgroups,
}

/// Setup failures inside the init; sent to `create` as text.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// A syscall step.
    #[error("{what}: {source}")]
    Sys {
        /// Which step.
        what: String,
        /// Why.
        source: nix::Error,
    },
    /// Cgroups.
    #[error(transparent)]
    Cgroup(#[from] crate::cgroups::CgroupError),
    /// Network.
    #[error("guest network: {0}")]
    Net(#[from] net::NetError),
    /// Mounts.
    #[error(transparent)]
    Mount(#[from] mounts::MountError),
    /// Guest arguments.
    #[error(transparent)]
    Cmdline(#[from] cmdline::CmdlineError),
    /// Devices don't match the manifest.
    #[error(transparent)]
    Devices(#[from] tender::devices::DeviceError),
    /// A block device file.
    #[error("block device `{name}`: {path}: {source} (the file must exist in the image or a volume, writable)")]
    Block {
        /// Device name.
        name: String,
        /// Path in the container.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Console socket.
    #[error("console socket {path}: {source}")]
    Console {
        /// The socket.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// create went away.
    #[error("lost contact with `create`: {0}")]
    Sync(#[from] crate::sync::SyncError),
    /// create said something unexpected.
    #[error("unexpected message from `create`: {0:?}")]
    Protocol(Msg),
}

fn sys(what: impl Into<String>) -> impl FnOnce(nix::Error) -> InitError {
    let what = what.into();
    move |source| InitError::Sys { what, source }
}

/// Clone flags for the namespaces `create` makes fresh at clone time (cgroup comes
/// later, after joining the cgroups).
pub fn clone_flags(plan: &Plan) -> CloneFlags {
    plan.namespaces.create.iter().fold(CloneFlags::empty(), |f, k| {
        f | match k {
            NsKind::Mount => CloneFlags::CLONE_NEWNS,
            NsKind::Uts => CloneFlags::CLONE_NEWUTS,
            NsKind::Ipc => CloneFlags::CLONE_NEWIPC,
            NsKind::Pid => CloneFlags::CLONE_NEWPID,
            NsKind::Network => CloneFlags::CLONE_NEWNET,
            NsKind::Cgroup => CloneFlags::empty(),
        }
    })
}

/// The init's entry point (in the cloned child). Returns only its exit status on failure.
pub fn main(cfg: &InitConfig<'_>, sync: OwnedFd) -> isize {
    match setup(cfg, &sync) {
        Ok(ready) => wait_and_run(ready, sync),
        Err(e) => {
            let _ = send_msg(&sync, &Msg::Error(e.to_string()));
            1
        }
    }
}

/// What setup leaves for the running phase.
struct Ready {
    state_dir: OwnedFd,
    spec: tender::spec::RunSpec,
    redirects: Redirects,
}

/// The tc redirects of the guest's taps, removed on drop (see [`net::teardown`]): when
/// setup fails after making them, and when the guest has ended.
struct Redirects {
    ifaces: Vec<String>,
    id: String,
}

impl Drop for Redirects {
    fn drop(&mut self) {
        if let Err(e) = net::teardown(&self.ifaces, &self.id) {
            eprintln!("tender-oci init: remove the guest's network redirects: {e}");
        }
    }
}

fn setup(cfg: &InitConfig<'_>, sync: &OwnedFd) -> Result<Ready, InitError> {
    let plan = cfg.plan;
    nix::unistd::setsid().map_err(sys("setsid"))?;
    cfg.cgroups.join_self()?;
    for (kind, path) in &plan.namespaces.join {
        let flag = match kind {
            NsKind::Network => CloneFlags::CLONE_NEWNET,
            NsKind::Ipc => CloneFlags::CLONE_NEWIPC,
            _ => CloneFlags::CLONE_NEWUTS,
        };
        let fd = nix::fcntl::open(path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(sys(format!("open namespace {}", path.display())))?;
        nix::sched::setns(fd, flag).map_err(sys(format!("join namespace {}", path.display())))?;
    }
    if plan.namespaces.create.contains(&NsKind::Cgroup) {
        nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP).map_err(sys("new cgroup namespace"))?;
    }
    if let (Some(name), true) = (&plan.hostname, plan.namespaces.create.contains(&NsKind::Uts)) {
        nix::unistd::sethostname(name).map_err(sys(format!("set hostname `{name}`")))?;
    }

    send_msg(sync, &Msg::NsReady)?;
    match recv_msg(sync)? {
        Msg::Go => {}
        other => return Err(InitError::Protocol(other)),
    }

    // Docker's prestart hook has now put eth0 in our namespace; a namespace joined by
    // path (a pod's) had its interfaces before.
    let links = match plan.namespaces.net {
        NetNs::New | NetNs::Join(_) => net::setup(cfg.nets, cfg.manifest, cfg.id)?,
        // create refuses net devices in the host's namespace.
        NetNs::Host => Vec::new(),
    };
    let redirects = Redirects { ifaces: links.iter().filter_map(|l| l.iface.clone()).collect(), id: cfg.id.to_owned() };
    let mut spec = cmdline::run_spec(plan.mem_mib, &plan.blocks, links, &plan.guest, &plan.args)?;
    tender::devices::check_names(cfg.manifest, &spec)?;
    // What `ps` and `docker top` show for the tender: the guest and its command line.
    let mut title = vec!["tender".to_owned(), cfg.id.to_owned(), plan.guest.display().to_string()];
    title.extend(spec.cmdline.split(' ').filter(|w| !w.is_empty()).map(str::to_owned));
    spec.title = Some(title);

    if plan.terminal {
        let socket = cfg.console_socket.expect("create checks terminal ⇒ console socket");
        console(socket, plan.console_size)?;
    }

    let state_dir =
        nix::fcntl::open(cfg.state_dir, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(sys(format!("open {}", cfg.state_dir.display())))?;
    let root = mounts::prepare_root(&plan.rootfs)?;
    for m in &plan.mounts {
        mounts::mount_one(&root, m)?;
    }
    if !cfg.nets.is_empty() {
        mounts::bind_device(&root, Path::new(TUN))?;
    }
    if cfg.kvm {
        mounts::bind_device(&root, Path::new(KVM))?;
    }
    drop(root);
    mounts::pivot(&plan.rootfs, plan.rootfs_readonly)?;

    // The block files, now as the tender will see them.
    for (name, b) in &spec.blocks {
        std::fs::OpenOptions::new().read(true).write(true).open(&b.path).map_err(|source| InitError::Block {
            name: name.clone(),
            path: b.path.clone(),
            source,
        })?;
    }
    // And for this process, which runs the guest's tender: not `create`'s command line.
    crate::proc::set_title(&["tender-oci", "init", cfg.id]);
    Ok(Ready { state_dir, spec, redirects })
}

/// Makes a pty, sends its master to the console socket (SCM_RIGHTS, as runc does) and
/// makes the slave this process's stdio and controlling terminal.
fn console(socket: &Path, size: Option<(u16, u16)>) -> Result<(), InitError> {
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let winsize = size.map(|(rows, cols)| nix::pty::Winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 });
    let pty = nix::pty::openpty(winsize.as_ref(), None).map_err(sys("openpty"))?;
    let cerr = |source| InitError::Console { path: socket.to_owned(), source };
    let stream = std::os::unix::net::UnixStream::connect(socket).map_err(cerr)?;
    let name = nix::unistd::ttyname(&pty.slave).map(|p| p.display().to_string()).unwrap_or_default();
    let fds = [pty.master.as_raw_fd()];
    let iov = [std::io::IoSlice::new(name.as_bytes())];
    sendmsg::<()>(stream.as_raw_fd(), &iov, &[ControlMessage::ScmRights(&fds)], MsgFlags::empty(), None)
        .map_err(|e| cerr(e.into()))?;
    drop(pty.master);
    nix::unistd::dup2_stdin(&pty.slave).map_err(sys("pty as stdin"))?;
    nix::unistd::dup2_stdout(&pty.slave).map_err(sys("pty as stdout"))?;
    nix::unistd::dup2_stderr(&pty.slave).map_err(sys("pty as stderr"))?;
    // SAFETY: TIOCSCTTY on fd 0 (the pty slave, just dup'ed there) with argument 0 only
    // changes this process's controlling terminal; it reads and writes no memory of ours.
    let rc = unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) };
    if rc < 0 {
        return Err(sys("make the pty the controlling terminal")(nix::Error::last()));
    }
    Ok(())
}

/// Reports ready, blocks until `start`, then runs the tender under a pid-1 supervisor.
fn wait_and_run(ready: Ready, sync: OwnedFd) -> isize {
    let msg = Msg::Ready { guest_cmdline: ready.spec.cmdline.clone(), net_ifaces: ready.redirects.ifaces.clone() };
    if send_msg(&sync, &msg).is_err() {
        return 1;
    }
    drop(sync);
    // Blocks until `start` opens the fifo for reading.
    let fifo = loop {
        match nix::fcntl::openat(&ready.state_dir, state::FIFO, OFlag::O_WRONLY | OFlag::O_CLOEXEC, Mode::empty()) {
            Err(nix::Error::EINTR) => continue,
            other => break other,
        }
    };
    let Ok(fifo) = fifo.map_err(|e| eprintln!("tender-oci init: open start fifo: {e}")) else { return 1 };
    if nix::unistd::write(&fifo, b"0").is_err() {
        return 1;
    }
    drop(fifo);
    drop(ready.state_dir);
    supervise(ready.spec, ready.redirects)
}

/// Forks the tender; forwards signals to it; when it ends, removes the network redirects
/// and exits with its status (128 + signal if killed).
fn supervise(spec: tender::spec::RunSpec, redirects: Redirects) -> isize {
    let all = SigSet::all();
    if nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&all), None).is_err() {
        return 1;
    }
    // SAFETY: the init is single-threaded (a clone of single-threaded `create`), so the
    // child may run any code, not only async-signal-safe code.
    let child = match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Child) => run_tender(spec),
        Ok(nix::unistd::ForkResult::Parent { child }) => child,
        Err(e) => {
            eprintln!("tender-oci init: fork: {e}");
            return 1;
        }
    };
    // The tender holds the taps now: they go when it ends.
    drop(spec);
    let exit = |code: i32| -> ! {
        drop(redirects);
        std::process::exit(code)
    };
    loop {
        let Ok(signal) = all.wait() else { continue };
        if signal != Signal::SIGCHLD {
            let _ = nix::sys::signal::kill(child, signal);
            continue;
        }
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) if pid == child => exit(code),
                Ok(WaitStatus::Signaled(pid, sig, _)) if pid == child => exit(128 + sig as i32),
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            }
        }
    }
}

/// In the forked child: becomes the tender. Never returns.
fn run_tender(spec: tender::spec::RunSpec) -> ! {
    let _ = nix::sys::prctl::set_pdeathsig(Signal::SIGKILL);
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    let _ = nix::sys::prctl::set_name(c"tender");
    // hvt: this process stays as it is, so its own argument area shows the title (spt
    // points the kernel at a copy in guest memory).
    if let Some(title) = &spec.title {
        crate::proc::set_title(&title.iter().map(String::as_str).collect::<Vec<_>>());
    }
    let keep: Vec<i32> = spec
        .nets
        .values()
        .filter_map(|n| match &n.tap {
            tender::spec::TapSpec::Open { fd, .. } => Some(fd.as_raw_fd()),
            tender::spec::TapSpec::Named(_) => None,
        })
        .collect();
    close_all_but(&keep);
    let Err(err) = tender::run(spec);
    eprintln!("tender: {err}");
    std::process::exit(1)
}

/// Closes every descriptor above stderr except `keep`, so the guest inherits nothing of
/// the runtime (the sync socket, the state directory, whatever the engine passed).
fn close_all_but(keep: &[i32]) {
    let mut keep: Vec<u32> = keep.iter().filter_map(|&fd| u32::try_from(fd).ok()).filter(|&fd| fd > 2).collect();
    keep.sort_unstable();
    let mut from = 3u32;
    for fd in keep.into_iter().chain(std::iter::once(u32::MAX)) {
        if fd > from {
            // SAFETY: closes descriptors in [from, fd). The only Rust owners of such
            // descriptors live in our callers' frames, which never resume: `run_tender`
            // ends the process (the guest's exit, or `exit`) without returning or
            // unwinding. The descriptors the spec owns are never in the range.
            unsafe { libc::close_range(from, fd - 1, 0) };
        }
        from = fd.saturating_add(1);
    }
}
