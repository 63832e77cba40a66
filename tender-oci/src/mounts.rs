//! The container's root: the config's mounts on top of the rootfs, the devices the tender
//! needs bound in, then `pivot_root`. Runs in the init, in its own mount namespace.
//!
//! Mount targets are resolved inside the rootfs with `openat2(RESOLVE_IN_ROOT)`, so a
//! symlink in the image cannot point a mount outside it, and mounted through
//! `/proc/self/fd/N` (runc's technique). `cgroup` mounts are skipped: the guest cannot
//! see a filesystem, and the tender needs none of it.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::Mode;
use oci_spec::runtime::Mount;

/// Mount errors; each names the mount.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// Destination not absolute, or with `..`.
    #[error("mount destination `{0}` must be an absolute path without `..`")]
    BadDestination(PathBuf),
    /// A bind mount without source.
    #[error("bind mount to `{0}` has no source")]
    NoSource(PathBuf),
    /// Making the mount point failed.
    #[error("mount point `{path}` in the rootfs: {source}")]
    Target {
        /// Destination inside the container.
        path: PathBuf,
        /// Why.
        source: nix::Error,
    },
    /// mount(2) failed.
    #[error("mounting {what} on `{path}`: {source}")]
    Mount {
        /// Source and type.
        what: String,
        /// Destination inside the container.
        path: PathBuf,
        /// Why.
        source: nix::Error,
    },
    /// Bind source missing.
    #[error("bind mount source `{path}`: {source}")]
    Source {
        /// The source.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// pivot_root and friends.
    #[error("entering the rootfs {path}: {what}: {source}")]
    Pivot {
        /// The rootfs.
        path: PathBuf,
        /// Which step.
        what: &'static str,
        /// Why.
        source: nix::Error,
    },
}

/// Parsed mount options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Flags for mount(2).
    pub flags: MsFlags,
    /// Propagation to set afterwards.
    pub propagation: MsFlags,
    /// Filesystem data (`mode=755,size=65536k`).
    pub data: Vec<String>,
    /// `bind` or `rbind`.
    pub bind: bool,
}

/// Parses runc-style mount options.
pub fn parse_options(options: &[String]) -> Options {
    let mut o = Options { flags: MsFlags::empty(), propagation: MsFlags::empty(), data: Vec::new(), bind: false };
    for opt in options {
        let (set, clear) = match opt.as_str() {
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
            "bind" => {
                o.bind = true;
                (MsFlags::MS_BIND, MsFlags::empty())
            }
            "rbind" => {
                o.bind = true;
                (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty())
            }
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable" | "runbindable" => {
                let rec = if opt.starts_with('r') { MsFlags::MS_REC } else { MsFlags::empty() };
                o.propagation = rec
                    | match opt.trim_start_matches('r') {
                        "private" => MsFlags::MS_PRIVATE,
                        "shared" => MsFlags::MS_SHARED,
                        "slave" => MsFlags::MS_SLAVE,
                        _ => MsFlags::MS_UNBINDABLE,
                    };
                continue;
            }
            // runc extensions that mean nothing here.
            "tmpcopyup" | "remount" | "defaults" => continue,
            _ => {
                o.data.push(opt.clone());
                continue;
            }
        };
        o.flags = (o.flags | set) & !clear;
    }
    o
}

fn check_destination(dest: &Path) -> Result<(), MountError> {
    if !dest.is_absolute() || dest.components().any(|c| c == Component::ParentDir) {
        return Err(MountError::BadDestination(dest.to_owned()));
    }
    Ok(())
}

fn open_in_root(root: &OwnedFd, path: &Path, flags: OFlag) -> nix::Result<OwnedFd> {
    let how = OpenHow::new()
        .flags(flags | OFlag::O_PATH | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    nix::fcntl::openat2(root, path, how)
}

/// Symlinks followed while making one mount point (as the kernel's MAXSYMLINKS).
const MAX_SYMLINKS: usize = 40;

/// Makes `dest` (a directory, or an empty file when `file`) inside the rootfs if missing,
/// resolving every component inside it (a symlink to a missing target is followed and the
/// target made, inside the rootfs); returns an `O_PATH` fd on it.
pub fn ensure_target(root: &OwnedFd, dest: &Path, file: bool) -> Result<OwnedFd, MountError> {
    check_destination(dest)?;
    let err = |source| MountError::Target { path: dest.to_owned(), source };
    let mut path = dest.to_owned();
    for _ in 0..MAX_SYMLINKS {
        match make_path(root, &path, file).map_err(err)? {
            Made::Done(fd) => return Ok(fd),
            Made::Symlink(next) => path = next,
        }
    }
    Err(err(nix::Error::ELOOP))
}

enum Made {
    Done(OwnedFd),
    /// Start again with this path: a component was a symlink to something missing.
    Symlink(PathBuf),
}

fn make_path(root: &OwnedFd, path: &Path, file: bool) -> nix::Result<Made> {
    let comps: Vec<&std::ffi::OsStr> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n),
            _ => None,
        })
        .collect();
    let mut cur = PathBuf::from("/");
    for (i, comp) in comps.iter().enumerate() {
        let parent = cur.clone();
        cur.push(comp);
        match open_in_root(root, &cur, OFlag::empty()) {
            Ok(_) => continue,
            Err(nix::Error::ENOENT) => {}
            Err(e) => return Err(e),
        }
        let parent_fd = open_in_root(root, &parent, OFlag::O_DIRECTORY)?;
        // O_PATH fds cannot create; reopen the parent as a real directory fd through it.
        let dir = nix::fcntl::openat(
            &parent_fd,
            ".",
            OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        if let Ok(target) = nix::fcntl::readlinkat(&dir, *comp) {
            // A dangling symlink: continue from its target, still inside the root.
            let mut next = if Path::new(&target).is_absolute() { PathBuf::from(&target) } else { parent.join(&target) };
            next.extend(&comps[i + 1..]);
            return Ok(Made::Symlink(next));
        }
        let last = i + 1 == comps.len();
        let made = if last && file {
            let flags = OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_CLOEXEC;
            nix::fcntl::openat(&dir, *comp, flags, Mode::from_bits_truncate(0o644)).map(drop)
        } else {
            nix::sys::stat::mkdirat(&dir, *comp, Mode::from_bits_truncate(0o755))
        };
        match made {
            Ok(()) | Err(nix::Error::EEXIST) => {}
            Err(e) => return Err(e),
        }
    }
    open_in_root(root, &cur, OFlag::empty()).map(Made::Done)
}

fn fd_path(fd: &OwnedFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// Performs one config mount onto the rootfs.
pub fn mount_one(root: &OwnedFd, m: &Mount) -> Result<(), MountError> {
    let dest = m.destination();
    let opts = parse_options(m.options().as_deref().unwrap_or_default());
    let typ = m.typ().clone().unwrap_or_else(|| if opts.bind { "bind".into() } else { "none".into() });
    if typ == "cgroup" || typ == "cgroup2" {
        return Ok(());
    }
    let bind = opts.bind || typ == "bind";
    let source = m.source().clone();
    let file = if bind {
        let src = source.as_deref().ok_or_else(|| MountError::NoSource(dest.clone()))?;
        let meta = std::fs::metadata(src).map_err(|source| MountError::Source { path: src.to_owned(), source })?;
        !meta.is_dir()
    } else {
        false
    };
    let target = ensure_target(root, dest, file)?;
    let target_path = fd_path(&target);
    let data = opts.data.join(",");
    let data = (!data.is_empty()).then_some(data.as_str());
    let what = format!("{} ({typ})", source.as_deref().map_or("none".into(), |s| s.display().to_string()));
    let merr = |source| MountError::Mount { what: what.clone(), path: dest.clone(), source };
    if bind {
        let flags = MsFlags::MS_BIND | (opts.flags & MsFlags::MS_REC);
        mount(source.as_deref(), &target_path, None::<&str>, flags, None::<&str>).map_err(merr)?;
    } else {
        let src = source.as_deref().map_or_else(|| PathBuf::from(&typ), Path::to_owned);
        mount(Some(&src), &target_path, Some(typ.as_str()), opts.flags, data).map_err(merr)?;
    }
    // The fd still names the covered directory: reopen to reach the new mount.
    let mounted_fd =
        open_in_root(root, dest, OFlag::empty()).map_err(|source| MountError::Target { path: dest.clone(), source })?;
    let mounted = fd_path(&mounted_fd);
    let extra = opts.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC);
    if bind && !extra.is_empty() {
        let flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | extra;
        mount(None::<&str>, &mounted, None::<&str>, flags, None::<&str>).map_err(merr)?;
    }
    if !opts.propagation.is_empty() {
        mount(None::<&str>, &mounted, None::<&str>, opts.propagation, None::<&str>).map_err(merr)?;
    }
    Ok(())
}

/// Binds host device node `dev` (e.g. `/dev/net/tun`) to the same path in the rootfs.
pub fn bind_device(root: &OwnedFd, dev: &Path) -> Result<(), MountError> {
    let target = ensure_target(root, dev, true)?;
    let what = format!("{} (device)", dev.display());
    mount(Some(dev), &fd_path(&target), None::<&str>, MsFlags::MS_BIND, None::<&str>)
        .map_err(|source| MountError::Mount { what, path: dev.to_owned(), source })
}

/// Prepares `rootfs` (made private and a mount point of its own); returns its dir fd.
pub fn prepare_root(rootfs: &Path) -> Result<OwnedFd, MountError> {
    let perr = |what, source| MountError::Pivot { path: rootfs.to_owned(), what, source };
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
        .map_err(|e| perr("make / private", e))?;
    mount(Some(rootfs), rootfs, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
        .map_err(|e| perr("bind the rootfs onto itself", e))?;
    nix::fcntl::open(rootfs, OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| perr("open", e))
}

/// `pivot_root` into `rootfs`, the old root detached; optionally read-only.
pub fn pivot(rootfs: &Path, readonly: bool) -> Result<(), MountError> {
    let perr = |what, source| MountError::Pivot { path: rootfs.to_owned(), what, source };
    nix::unistd::chdir(rootfs).map_err(|e| perr("chdir", e))?;
    // pivot_root(".", "."): the old root is stacked under the new one, then detached.
    nix::unistd::pivot_root(".", ".").map_err(|e| perr("pivot_root", e))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| perr("detach the old root", e))?;
    nix::unistd::chdir("/").map_err(|e| perr("chdir /", e))?;
    if readonly {
        let flags = MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY;
        mount(None::<&str>, "/", None::<&str>, flags, None::<&str>).map_err(|e| perr("remount read-only", e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn docker_options_parse() {
        let o = parse_options(&s(&["nosuid", "strictatime", "mode=755", "size=65536k"]));
        assert_eq!(o.flags, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME);
        assert_eq!(o.data, ["mode=755", "size=65536k"]);
        assert!(!o.bind);
        let o = parse_options(&s(&["rbind", "rprivate", "ro"]));
        assert!(o.bind);
        assert_eq!(o.flags, MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_RDONLY);
        assert_eq!(o.propagation, MsFlags::MS_REC | MsFlags::MS_PRIVATE);
        let o = parse_options(&s(&["ro", "rw"]));
        assert_eq!(o.flags, MsFlags::empty());
    }

    #[test]
    fn destinations_stay_inside() {
        assert!(check_destination(Path::new("/etc/hosts")).is_ok());
        assert!(check_destination(Path::new("etc/hosts")).is_err());
        assert!(check_destination(Path::new("/a/../../etc")).is_err());
    }

    #[test]
    fn targets_resolve_inside_the_rootfs() {
        let dir = std::env::temp_dir().join(format!("tender-oci-mounts-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (root, outside) = (dir.join("root"), dir.join("outside"));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        // A hostile image: /etc points outside the rootfs.
        std::os::unix::fs::symlink(&outside, root.join("etc")).unwrap();
        let fd = nix::fcntl::open(&root, OFlag::O_DIRECTORY | OFlag::O_RDONLY, Mode::empty()).unwrap();
        ensure_target(&fd, Path::new("/etc/hosts"), true).unwrap();
        ensure_target(&fd, Path::new("/dev/net"), false).unwrap();
        assert!(!outside.join("hosts").exists(), "escaped the rootfs");
        assert!(root.join("dev/net").is_dir());
        // The symlink resolved inside the root: /etc → /<outside path> under root.
        let inside = root.join(outside.strip_prefix("/").unwrap()).join("hosts");
        assert!(inside.is_file(), "{}", inside.display());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
