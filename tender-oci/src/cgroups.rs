//! cgroupfs: one directory per mounted hierarchy (every cgroup v1 controller hierarchy,
//! named ones like `name=systemd` included, and the v2 unified one when mounted), as
//! runc's cgroupfs driver does. Limits applied: memory, pids, cpu shares/quota/period.
//!
//! `linux.cgroupsPath` absolute → from the hierarchy's root; relative → below the runtime's
//! own cgroup in that hierarchy (runc's rule); absent → `/tender-oci/ID`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::bundle::Resources;

/// cgroup errors; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// Reading /proc/self/mountinfo or /proc/self/cgroup.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// No cgroup hierarchy is mounted.
    #[error("no cgroup filesystem is mounted (mount cgroup v1 hierarchies or cgroup2 under /sys/fs/cgroup)")]
    NoHierarchy,
    /// `..` in cgroupsPath.
    #[error("linux.cgroupsPath `{0}` contains `..`: give a path inside the cgroup hierarchy")]
    BadPath(PathBuf),
    /// mkdir/write failed.
    #[error("cgroup {path}: {what}: {source}")]
    Write {
        /// The directory or file.
        path: PathBuf,
        /// What we tried.
        what: String,
        /// Why.
        source: io::Error,
    },
    /// rmdir kept failing because tasks remain.
    #[error("cgroup {path} still has processes after killing them: {source}")]
    Busy {
        /// The directory.
        path: PathBuf,
        /// Last error.
        source: io::Error,
    },
}

/// A mounted hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// Where it is mounted.
    pub mount: PathBuf,
    /// v1 controllers and names (`memory`, `name=systemd`); empty for v2.
    pub controllers: Vec<String>,
    /// Whether it is the v2 unified hierarchy.
    pub v2: bool,
}

/// Mount options that are not controllers.
const NOT_CONTROLLERS: &[&str] = &[
    "rw",
    "ro",
    "nosuid",
    "nodev",
    "noexec",
    "relatime",
    "noatime",
    "xattr",
    "clone_children",
    "noprefix",
    "cpuset_v2_mode",
    "nsdelegate",
    "memory_recursiveprot",
    "memory_localevents",
    "favordynmods",
];

/// Hierarchies from a mountinfo text (only mounts of a hierarchy's root, first one wins).
pub fn parse_mountinfo(text: &str) -> Vec<Hierarchy> {
    let mut out: Vec<Hierarchy> = Vec::new();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else { continue };
        let left: Vec<&str> = left.split(' ').collect();
        let right: Vec<&str> = right.split(' ').collect();
        let (Some(root), Some(mount), Some(fstype), Some(opts)) =
            (left.get(3), left.get(4), right.first(), right.get(2))
        else {
            continue;
        };
        if *root != "/" {
            continue;
        }
        let h = match *fstype {
            "cgroup2" => Hierarchy { mount: PathBuf::from(mount), controllers: vec![], v2: true },
            "cgroup" => Hierarchy {
                mount: PathBuf::from(mount),
                controllers: opts
                    .split(',')
                    .filter(|o| !NOT_CONTROLLERS.contains(o) && !o.starts_with("release_agent="))
                    .map(str::to_owned)
                    .collect(),
                v2: false,
            },
            _ => continue,
        };
        if !out.iter().any(|o| o.v2 == h.v2 && o.controllers == h.controllers) {
            out.push(h);
        }
    }
    out
}

/// This process's cgroup in `h`, from a /proc/self/cgroup text.
pub fn own_path(h: &Hierarchy, proc_cgroup: &str) -> PathBuf {
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next()) else { continue };
        let matches = if h.v2 {
            id == "0" && ctrls.is_empty()
        } else {
            !ctrls.is_empty() && ctrls.split(',').all(|c| h.controllers.iter().any(|hc| hc == c))
        };
        if matches {
            return PathBuf::from(path);
        }
    }
    PathBuf::from("/")
}

/// The directories for a container: `(hierarchy, dir)` pairs.
pub fn plan(
    hierarchies: &[Hierarchy],
    proc_cgroup: &str,
    cgroups_path: Option<&Path>,
    id: &str,
) -> Result<Vec<(Hierarchy, PathBuf)>, CgroupError> {
    let default = PathBuf::from(format!("/tender-oci/{id}"));
    let inner = cgroups_path.unwrap_or(&default);
    if inner.components().any(|c| c == std::path::Component::ParentDir) {
        return Err(CgroupError::BadPath(inner.to_owned()));
    }
    Ok(hierarchies
        .iter()
        .map(|h| {
            let within = if inner.is_absolute() { inner.to_owned() } else { own_path(h, proc_cgroup).join(inner) };
            let rel = within.strip_prefix("/").unwrap_or(&within).to_owned();
            (h.clone(), h.mount.join(rel))
        })
        .collect())
}

fn read(path: &str) -> Result<String, CgroupError> {
    fs::read_to_string(path).map_err(|source| CgroupError::Read { path: path.into(), source })
}

fn write(dir: &Path, file: &str, value: &str) -> Result<(), CgroupError> {
    let path = dir.join(file);
    fs::write(&path, value).map_err(|source| CgroupError::Write { path, what: format!("write `{value}`"), source })
}

/// The container's cgroups: created with limits applied; joined by the init.
#[derive(Debug, Clone)]
pub struct Cgroups {
    /// One directory per hierarchy.
    pub dirs: Vec<PathBuf>,
}

impl Cgroups {
    /// Creates the directories and applies `resources`. On error, removes what it made.
    pub fn create(cgroups_path: Option<&Path>, id: &str, resources: &Resources) -> Result<Self, CgroupError> {
        let hierarchies = parse_mountinfo(&read("/proc/self/mountinfo")?);
        if hierarchies.is_empty() {
            return Err(CgroupError::NoHierarchy);
        }
        let plan = plan(&hierarchies, &read("/proc/self/cgroup")?, cgroups_path, id)?;
        let mut made = Cgroups { dirs: Vec::new() };
        let result = plan.iter().try_for_each(|(h, dir)| {
            make_dir(h, dir)?;
            made.dirs.push(dir.clone());
            apply(h, dir, resources)
        });
        match result {
            Ok(()) => Ok(made),
            Err(e) => {
                let _ = made.remove();
                Err(e)
            }
        }
    }

    /// Moves the calling process into every directory.
    pub fn join_self(&self) -> Result<(), CgroupError> {
        self.dirs.iter().try_for_each(|d| write(d, "cgroup.procs", "0"))
    }

    /// Pids in the container's cgroup (from the first hierarchy).
    pub fn pids(&self) -> Vec<i32> {
        let Some(dir) = self.dirs.first() else { return Vec::new() };
        fs::read_to_string(dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Removes the directories, killing processes left in them first.
    pub fn remove(&self) -> Result<(), CgroupError> {
        let mut first_err = None;
        for dir in &self.dirs {
            if let Err(e) = remove_dir(dir) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

/// mkdir -p; for v1 cpuset, each new level copies cpus/mems from its parent (a cpuset
/// with empty `cpuset.cpus` refuses tasks). For v2, enables memory/pids/cpu on the way.
fn make_dir(h: &Hierarchy, dir: &Path) -> Result<(), CgroupError> {
    let rel = dir.strip_prefix(&h.mount).unwrap_or(dir);
    let mut cur = h.mount.clone();
    for comp in rel.components() {
        let parent = cur.clone();
        cur.push(comp);
        if h.v2 {
            enable_v2_controllers(&parent);
        }
        match fs::create_dir(&cur) {
            Ok(()) => {
                if h.controllers.iter().any(|c| c == "cpuset") {
                    for file in ["cpuset.cpus", "cpuset.mems"] {
                        let value = fs::read_to_string(parent.join(file)).unwrap_or_default();
                        if !value.trim().is_empty() {
                            write(&cur, file, value.trim())?;
                        }
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(source) => return Err(CgroupError::Write { path: cur, what: "mkdir".into(), source }),
        }
    }
    Ok(())
}

/// Best effort: a hybrid host's unified hierarchy has no controllers to enable.
fn enable_v2_controllers(dir: &Path) {
    let available = fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
    for c in ["memory", "pids", "cpu"] {
        if available.split_whitespace().any(|a| a == c) {
            let _ = fs::write(dir.join("cgroup.subtree_control"), format!("+{c}"));
        }
    }
}

fn apply(h: &Hierarchy, dir: &Path, r: &Resources) -> Result<(), CgroupError> {
    let has = |c: &str| h.controllers.iter().any(|x| x == c);
    let v2_has = |file: &str| h.v2 && dir.join(file).exists();
    if let Some(limit) = r.memory_limit {
        if has("memory") {
            write(dir, "memory.limit_in_bytes", &limit.to_string())?;
        } else if v2_has("memory.max") {
            write(dir, "memory.max", &limit.to_string())?;
        }
    }
    if let Some(limit) = r.pids_limit {
        if has("pids") || v2_has("pids.max") {
            write(dir, "pids.max", &limit.to_string())?;
        }
    }
    if has("cpu") {
        if let Some(shares) = r.cpu_shares {
            write(dir, "cpu.shares", &shares.to_string())?;
        }
        if let Some(period) = r.cpu_period {
            write(dir, "cpu.cfs_period_us", &period.to_string())?;
        }
        if let Some(quota) = r.cpu_quota {
            write(dir, "cpu.cfs_quota_us", &quota.to_string())?;
        }
    } else if v2_has("cpu.max") && r.cpu_quota.is_some() {
        let quota = r.cpu_quota.map_or("max".to_string(), |q| q.to_string());
        write(dir, "cpu.max", &format!("{quota} {}", r.cpu_period.unwrap_or(100_000)))?;
    }
    Ok(())
}

/// rmdir, retrying while exiting tasks drain; SIGKILLs whatever is still listed.
fn remove_dir(dir: &Path) -> Result<(), CgroupError> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if Instant::now() >= deadline => return Err(CgroupError::Busy { path: dir.to_owned(), source: e }),
            Err(_) => {
                let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
                for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
30 23 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:4 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:5 - cgroup2 cgroup2 rw,nsdelegate
32 30 0:28 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:6 - cgroup cgroup rw,xattr,name=systemd
33 30 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:7 - cgroup cgroup rw,cpu,cpuacct
34 30 0:30 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:8 - cgroup cgroup rw,memory
35 30 0:30 /docker /mnt/elsewhere rw - cgroup cgroup rw,memory
";
    const PROC_CGROUP: &str = "\
4:memory:/user.slice
3:cpu,cpuacct:/
1:name=systemd:/init.scope
0::/init.scope
";

    #[test]
    fn finds_v1_and_v2_hierarchies() {
        let h = parse_mountinfo(HYBRID);
        assert_eq!(h.len(), 4, "{h:?}");
        assert!(h[0].v2 && h[0].mount == Path::new("/sys/fs/cgroup/unified"));
        assert_eq!(h[1].controllers, ["name=systemd"]);
        assert_eq!(h[2].controllers, ["cpu", "cpuacct"]);
        assert_eq!(h[3].controllers, ["memory"]);
        assert_eq!(own_path(&h[3], PROC_CGROUP), Path::new("/user.slice"));
        assert_eq!(own_path(&h[0], PROC_CGROUP), Path::new("/init.scope"));
    }

    #[test]
    fn relative_paths_nest_under_our_own_cgroup() {
        let h = parse_mountinfo(HYBRID);
        let dirs = plan(&h, PROC_CGROUP, Some(Path::new("moby/abc")), "abc").unwrap();
        assert_eq!(dirs[3].1, Path::new("/sys/fs/cgroup/memory/user.slice/moby/abc"));
        assert_eq!(dirs[2].1, Path::new("/sys/fs/cgroup/cpu,cpuacct/moby/abc"));
        let dirs = plan(&h, PROC_CGROUP, Some(Path::new("/docker/abc")), "abc").unwrap();
        assert_eq!(dirs[3].1, Path::new("/sys/fs/cgroup/memory/docker/abc"));
        let dirs = plan(&h, PROC_CGROUP, None, "abc").unwrap();
        assert_eq!(dirs[0].1, Path::new("/sys/fs/cgroup/unified/tender-oci/abc"));
        assert!(plan(&h, PROC_CGROUP, Some(Path::new("/a/../../b")), "abc").is_err());
    }
}
