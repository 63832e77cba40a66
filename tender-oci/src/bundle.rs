//! `config.json` → a [`Plan`]: what to run and how to contain it.
//!
//! Pure but for [`load`], which reads the config and, for images built for urunc, the
//! image's `/urunc.json` ([`crate::urunc`]); the guest ELF is read by
//! [`crate::container`]. Everything a unikernel cannot use is either ignored on purpose
//! (listed in the README) or refused here with a message that names the field and the fix.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::{Hook, LinuxNamespaceType, Mount, Spec};
use serde::{Deserialize, Serialize};

/// Annotation prefix naming a block device's backing file: `org.tender.block.NAME=/path`.
pub const BLOCK_ANNOTATION_PREFIX: &str = "org.tender.block.";
/// Environment prefix doing the same (docker 20.10 cannot set annotations; `ENV` and
/// `docker run -e` can): `TENDER_BLOCK_NAME=/path`.
pub const BLOCK_ENV_PREFIX: &str = "TENDER_BLOCK_";
/// Longest manifest device name (Solo5's `MFT_NAME_MAX`).
const DEVICE_NAME_MAX: usize = hypercall_abi::mft::MFT_NAME_MAX;

/// A config that tender-oci cannot run. Each message names the field and the fix.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// config.json unreadable or not an OCI runtime config.
    #[error("{path}: not a readable OCI runtime config: {source}")]
    Load {
        /// The config path.
        path: PathBuf,
        /// Why.
        source: oci_spec::OciSpecError,
    },
    /// No `process`.
    #[error(
        "config.json has no `process`: set process.args to the unikernel's path inside the image and its arguments"
    )]
    NoProcess,
    /// Empty `process.args`.
    #[error("config.json process.args is empty: the first argument must be the unikernel ELF's absolute path inside the image (Dockerfile: CMD [\"/hello.spt\"])")]
    NoArgs,
    /// `process.args[0]` is relative.
    #[error("process.args[0] `{0}` is not an absolute path: name the unikernel ELF by its absolute path inside the image (e.g. /hello.spt); tender-oci does not search PATH")]
    RelativeGuest(String),
    /// No `root`.
    #[error("config.json has no root.path: the bundle must name its root filesystem")]
    NoRoot,
    /// Memory limit below what a guest can run in.
    #[error(
        "linux.resources.memory.limit is {0} bytes: the guest needs at least 1 MiB (docker run --memory 6m or more)"
    )]
    MemoryTooSmall(i64),
    /// A namespace setting tender-oci does not implement.
    #[error("linux.namespaces: {what} is not supported by tender-oci ({fix})")]
    Namespace {
        /// What was asked.
        what: String,
        /// What to do instead.
        fix: &'static str,
    },
    /// A lifecycle hook kind that cannot run for a unikernel.
    #[error("hooks.{0} is not supported by tender-oci: these hooks run programs inside the container, and a unikernel image has none (use prestart, createRuntime, poststart or poststop)")]
    ContainerHook(&'static str),
    /// A pids limit below what the container runs.
    #[error("linux.resources.pids.limit is {0}: the container runs 2 processes, tender-oci's init (pid 1) and the tender that runs the guest; allow at least 2 (docker run --pids-limit 2)")]
    PidsTooSmall(i64),
    /// An urunc image tender-oci cannot run.
    #[error(transparent)]
    Urunc(#[from] crate::urunc::UruncError),
    /// Bad block device setting.
    #[error("block device `{name}` ({origin}): {problem}")]
    Block {
        /// Device name.
        name: String,
        /// `annotation org.tender.block.NAME` or `env TENDER_BLOCK_NAME`.
        origin: String,
        /// What is wrong and how to fix it.
        problem: String,
    },
}

/// Namespace kinds tender-oci handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NsKind {
    /// Mount.
    Mount,
    /// Hostname.
    Uts,
    /// SysV IPC.
    Ipc,
    /// Process ids.
    Pid,
    /// Network.
    Network,
    /// Cgroup.
    Cgroup,
}

/// Where the container's network namespace comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetNs {
    /// No `network` entry: the host's namespace (`--network host`).
    Host,
    /// A fresh namespace (docker's default: its prestart hook moves eth0 in).
    New,
    /// An existing namespace by path (a pod sandbox's, podman's, `ctr --with-ns`,
    /// `--network container:ID`).
    Join(PathBuf),
}

/// Namespaces to create and to join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespaces {
    /// Created fresh, in this order. Always holds `Mount`: the tender needs a mount
    /// namespace of its own to make the rootfs its root.
    pub create: Vec<NsKind>,
    /// Joined by path before anything else (`network`, `ipc`, `uts`).
    pub join: Vec<(NsKind, PathBuf)>,
    /// The network namespace.
    pub net: NetNs,
}

/// The cgroup limits tender-oci applies (the rest of `linux.resources` is ignored).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// `memory.limit` in bytes (> 0).
    pub memory_limit: Option<i64>,
    /// `pids.limit` (> 0).
    pub pids_limit: Option<i64>,
    /// `cpu.shares`.
    pub cpu_shares: Option<u64>,
    /// `cpu.quota` (µs per period, > 0).
    pub cpu_quota: Option<i64>,
    /// `cpu.period` (µs).
    pub cpu_period: Option<u64>,
}

/// The lifecycle hooks run by the runtime (runtime namespace).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Hooks {
    /// `prestart` (deprecated in the spec; docker's network setup uses it).
    pub prestart: Vec<Hook>,
    /// `createRuntime`.
    pub create_runtime: Vec<Hook>,
    /// `poststart`.
    pub poststart: Vec<Hook>,
    /// `poststop`.
    pub poststop: Vec<Hook>,
}

/// Everything `create` needs from the bundle.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The bundle directory.
    pub bundle: PathBuf,
    /// The root filesystem (absolute).
    pub rootfs: PathBuf,
    /// `root.readonly`.
    pub rootfs_readonly: bool,
    /// The unikernel: an absolute path inside the rootfs.
    pub guest: PathBuf,
    /// The guest's arguments (`process.args[1..]`).
    pub args: Vec<String>,
    /// Guest memory in MiB.
    pub mem_mib: u64,
    /// Block devices by manifest name → absolute path inside the container.
    pub blocks: BTreeMap<String, PathBuf>,
    /// `process.terminal`.
    pub terminal: bool,
    /// `process.consoleSize` (rows, columns).
    pub console_size: Option<(u16, u16)>,
    /// `hostname` (set when the uts namespace is new).
    pub hostname: Option<String>,
    /// Namespaces.
    pub namespaces: Namespaces,
    /// `linux.cgroupsPath`.
    pub cgroups_path: Option<PathBuf>,
    /// Limits.
    pub resources: Resources,
    /// `mounts`, in order.
    pub mounts: Vec<Mount>,
    /// Runtime-namespace hooks.
    pub hooks: Hooks,
    /// `annotations`.
    pub annotations: BTreeMap<String, String>,
    /// The monitor an urunc image names (`create` checks the guest's ABI against it).
    pub monitor: Option<crate::urunc::Monitor>,
    /// What `create` tells the user (on its stderr, which engines show as the
    /// container's output): settings ignored on purpose.
    pub warnings: Vec<String>,
}

/// docker's `--init`: `process.args` = [`DOCKER_INIT`, `--`, the command…], with its
/// tini bound in at that path.
pub const DOCKER_INIT: &str = "/sbin/docker-init";
/// The fewest processes a container needs: the init and the tender.
pub const MIN_PIDS: i64 = 2;

/// Loads `BUNDLE/config.json` and plans the container. Reads `/urunc.json` from the
/// rootfs too, when the config's annotations do not say all an urunc image needs.
pub fn load(bundle: &Path) -> Result<Plan, BundleError> {
    let path = bundle.join("config.json");
    let spec = Spec::load(&path).map_err(|source| BundleError::Load { path, source })?;
    let annotated = |key: &str| {
        spec.annotations().as_ref().is_some_and(|a| a.get(&format!("{}{key}", crate::urunc::PREFIX)).is_some())
    };
    let json = match spec.root() {
        Some(root) if !["unikernelType", "hypervisor", "binary"].iter().all(|k| annotated(k)) => {
            let rootfs = if root.path().is_absolute() { root.path().clone() } else { bundle.join(root.path()) };
            crate::urunc::read_json(&rootfs)?
        }
        _ => None,
    };
    plan_with(bundle, &spec, json.as_deref())
}

/// Plans the container described by `spec` (bundle-relative paths resolve against `bundle`).
pub fn plan(bundle: &Path, spec: &Spec) -> Result<Plan, BundleError> {
    plan_with(bundle, spec, None)
}

/// [`plan`], with the text of the image's `/urunc.json` if it has one.
pub fn plan_with(bundle: &Path, spec: &Spec, urunc_json: Option<&str>) -> Result<Plan, BundleError> {
    let process = spec.process().as_ref().ok_or(BundleError::NoProcess)?;
    let annotations: BTreeMap<String, String> = spec
        .annotations()
        .as_ref()
        .map(|a| a.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let mut warnings = Vec::new();
    let mut args = process.args().as_deref().unwrap_or_default();
    if args.len() >= 2 && args[0] == DOCKER_INIT && args[1] == "--" {
        args = &args[2..];
        warnings.push(format!(
            "docker's --init is ignored: the guest runs without {DOCKER_INIT} (tender-oci's own init already reaps and forwards signals to the tender, and the image holds no program docker-init could run)"
        ));
    }
    let urunc = crate::urunc::config(&annotations, urunc_json)?;
    let (guest, args) = match &urunc {
        Some(u) => {
            warnings.extend(u.warnings.iter().cloned());
            (u.binary.clone(), u.guest_args(args))
        }
        None => {
            let (guest, args) = args.split_first().ok_or(BundleError::NoArgs)?;
            if !guest.starts_with('/') {
                return Err(BundleError::RelativeGuest(guest.clone()));
            }
            (PathBuf::from(guest), args.to_vec())
        }
    };
    let root = spec.root().as_ref().ok_or(BundleError::NoRoot)?;
    let rootfs = if root.path().is_absolute() { root.path().clone() } else { bundle.join(root.path()) };

    let linux = spec.linux().as_ref();
    let resources = resources(linux.and_then(|l| l.resources().as_ref()));
    let mem_mib = guest_mem_mib(resources.memory_limit)?;
    if let Some(n) = resources.pids_limit.filter(|n| *n < MIN_PIDS) {
        return Err(BundleError::PidsTooSmall(n));
    }
    let env = process.env().as_deref().unwrap_or_default();
    let mut blocks = blocks(&annotations, env)?;
    if let Some((name, path)) = urunc.as_ref().and_then(|u| u.block.clone()) {
        match blocks.get(&name) {
            Some(other) if *other != path => {
                return Err(BundleError::Block {
                    name,
                    origin: format!("{}block", crate::urunc::PREFIX),
                    problem: format!(
                        "names `{}`, but another setting names `{}` for the same device: give one",
                        path.display(),
                        other.display()
                    ),
                })
            }
            _ => {
                blocks.insert(name, path);
            }
        }
    }
    let namespaces = namespaces(linux.and_then(|l| l.namespaces().as_deref()).unwrap_or_default())?;
    let hooks = hooks(spec.hooks().as_ref())?;

    Ok(Plan {
        bundle: bundle.to_owned(),
        rootfs,
        rootfs_readonly: root.readonly().unwrap_or(false),
        guest,
        args,
        mem_mib,
        blocks,
        terminal: process.terminal().unwrap_or(false),
        console_size: process
            .console_size()
            .map(|b| (u16::try_from(b.height()).unwrap_or(u16::MAX), u16::try_from(b.width()).unwrap_or(u16::MAX))),
        hostname: spec.hostname().clone().filter(|h| !h.is_empty()),
        namespaces,
        cgroups_path: linux.and_then(|l| l.cgroups_path().clone()),
        resources,
        mounts: spec.mounts().clone().unwrap_or_default(),
        hooks,
        annotations,
        monitor: urunc.map(|u| u.monitor),
        warnings,
    })
}

/// Guest memory: the cgroup memory limit rounded down to MiB (capped at the tender's
/// maximum), or the tender's default when the container has no limit.
pub fn guest_mem_mib(limit: Option<i64>) -> Result<u64, BundleError> {
    let Some(limit) = limit else { return Ok(tender::spec::DEFAULT_MEM_MIB) };
    let mib = u64::try_from(limit).unwrap_or(0) >> 20;
    if mib == 0 {
        return Err(BundleError::MemoryTooSmall(limit));
    }
    Ok(mib.min(tender::spec::MAX_MEM_MIB))
}

fn resources(r: Option<&oci_spec::runtime::LinuxResources>) -> Resources {
    let Some(r) = r else { return Resources::default() };
    let positive = |v: Option<i64>| v.filter(|v| *v > 0);
    let cpu = r.cpu().as_ref();
    Resources {
        memory_limit: positive(r.memory().as_ref().and_then(|m| m.limit())),
        pids_limit: positive(r.pids().as_ref().map(|p| p.limit())),
        cpu_shares: cpu.and_then(|c| c.shares()).filter(|s| *s > 0),
        cpu_quota: positive(cpu.and_then(|c| c.quota())),
        cpu_period: cpu.and_then(|c| c.period()).filter(|p| *p > 0),
    }
}

/// Block devices from annotations and the environment; the same name from both must agree.
fn blocks(annotations: &BTreeMap<String, String>, env: &[String]) -> Result<BTreeMap<String, PathBuf>, BundleError> {
    let from_annotations = annotations.iter().filter_map(|(k, v)| {
        Some((k.strip_prefix(BLOCK_ANNOTATION_PREFIX)?, v.as_str(), "annotation", BLOCK_ANNOTATION_PREFIX))
    });
    let from_env = env.iter().filter_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        Some((k.strip_prefix(BLOCK_ENV_PREFIX)?, v, "env", BLOCK_ENV_PREFIX))
    });
    let mut out: BTreeMap<String, PathBuf> = BTreeMap::new();
    for (name, path, kind, prefix) in from_annotations.chain(from_env) {
        let err = |problem: String| BundleError::Block {
            name: name.to_owned(),
            origin: format!("{kind} {prefix}{name}"),
            problem,
        };
        if name.is_empty() || name.len() > DEVICE_NAME_MAX || !name.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(err(format!(
                "`{name}` is not a device name: names are 1 to {DEVICE_NAME_MAX} characters of [A-Za-z0-9], as in the guest's manifest"
            )));
        }
        let path = PathBuf::from(path);
        if !path.is_absolute() || path.components().any(|c| c == Component::ParentDir) {
            return Err(err(format!(
                "`{}` must be an absolute path inside the container without `..` (e.g. /data/disk.img)",
                path.display()
            )));
        }
        match out.get(name) {
            Some(prev) if *prev != path => {
                return Err(err(format!(
                    "names `{}`, but another setting names `{}` for the same device: give one",
                    path.display(),
                    prev.display()
                )))
            }
            _ => {
                out.insert(name.to_owned(), path);
            }
        }
    }
    Ok(out)
}

fn namespaces(list: &[oci_spec::runtime::LinuxNamespace]) -> Result<Namespaces, BundleError> {
    let mut create = vec![NsKind::Mount];
    let mut join = Vec::new();
    let mut net = NetNs::Host;
    for ns in list {
        let unsupported = |fix| BundleError::Namespace { what: describe_ns(ns), fix };
        let kind = match ns.typ() {
            LinuxNamespaceType::Mount => NsKind::Mount,
            LinuxNamespaceType::Uts => NsKind::Uts,
            LinuxNamespaceType::Ipc => NsKind::Ipc,
            LinuxNamespaceType::Pid => NsKind::Pid,
            LinuxNamespaceType::Network => NsKind::Network,
            LinuxNamespaceType::Cgroup => NsKind::Cgroup,
            LinuxNamespaceType::User => {
                return Err(unsupported("user namespaces (rootless or userns-remap) are not implemented; run rootful"))
            }
            LinuxNamespaceType::Time => return Err(unsupported("time namespaces are not implemented; drop the entry")),
        };
        match (ns.path(), kind) {
            (None, NsKind::Mount) => {}
            (None, kind) if !create.contains(&kind) => create.push(kind),
            (None, _) => {}
            (Some(path), NsKind::Network | NsKind::Ipc | NsKind::Uts) => join.push((kind, path.clone())),
            (Some(_), _) => {
                return Err(unsupported(
                    "only network, ipc and uts namespaces can be joined by path; give the others no path",
                ))
            }
        }
        if kind == NsKind::Network {
            net = match ns.path() {
                Some(p) => NetNs::Join(p.clone()),
                None => NetNs::New,
            };
        }
    }
    Ok(Namespaces { create, join, net })
}

fn describe_ns(ns: &oci_spec::runtime::LinuxNamespace) -> String {
    match ns.path() {
        Some(p) => format!("{} namespace with path {}", ns.typ(), p.display()),
        None => format!("{} namespace", ns.typ()),
    }
}

fn hooks(h: Option<&oci_spec::runtime::Hooks>) -> Result<Hooks, BundleError> {
    let Some(h) = h else { return Ok(Hooks::default()) };
    let non_empty = |v: &Option<Vec<Hook>>| v.as_ref().is_some_and(|v| !v.is_empty());
    if non_empty(h.create_container()) {
        return Err(BundleError::ContainerHook("createContainer"));
    }
    if non_empty(h.start_container()) {
        return Err(BundleError::ContainerHook("startContainer"));
    }
    let list = |v: &Option<Vec<Hook>>| v.clone().unwrap_or_default();
    Ok(Hooks {
        prestart: list(h.prestart()),
        create_runtime: list(h.create_runtime()),
        poststart: list(h.poststart()),
        poststop: list(h.poststop()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> Spec {
        // oci-spec insists on process.user; every real config has one.
        let json = json.replace(r#""process":{"#, r#""process":{"user":{"uid":0,"gid":0},"#);
        serde_json::from_str(&json).expect("test config parses")
    }

    fn plan_of(json: &str) -> Result<Plan, BundleError> {
        plan(Path::new("/b"), &spec(json))
    }

    const MINIMAL: &str =
        r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},"process":{"cwd":"/","args":["/hello.spt","a","b"]}}"#;

    #[test]
    fn minimal_config_runs_the_guest_with_default_memory() {
        let p = plan_of(MINIMAL).unwrap();
        assert_eq!(p.rootfs, Path::new("/b/rootfs"));
        assert_eq!(p.guest, Path::new("/hello.spt"));
        assert_eq!(p.args, ["a", "b"]);
        assert_eq!(p.mem_mib, tender::spec::DEFAULT_MEM_MIB);
        assert_eq!(p.namespaces.create, [NsKind::Mount]);
        assert_eq!(p.namespaces.net, NetNs::Host);
        assert!(!p.terminal);
    }

    #[test]
    fn memory_limit_becomes_guest_memory() {
        assert_eq!(guest_mem_mib(Some(64 << 20)).unwrap(), 64);
        assert_eq!(guest_mem_mib(Some((64 << 20) + 12345)).unwrap(), 64);
        assert_eq!(guest_mem_mib(Some(i64::MAX)).unwrap(), tender::spec::MAX_MEM_MIB);
        assert!(matches!(guest_mem_mib(Some(4096)), Err(BundleError::MemoryTooSmall(4096))));
        let p = plan_of(
            r#"{"root":{"path":"/r"},"process":{"cwd":"/","args":["/g"]},
               "linux":{"resources":{"memory":{"limit":67108864,"swap":134217728},"pids":{"limit":-1}}}}"#,
        )
        .unwrap();
        assert_eq!(p.mem_mib, 64);
        assert_eq!(p.resources.memory_limit, Some(64 << 20));
        assert_eq!(p.resources.pids_limit, None);
    }

    #[test]
    fn bad_process_args_name_the_fix() {
        let e = plan_of(r#"{"root":{"path":"/r"},"process":{"cwd":"/","args":[]}}"#).unwrap_err();
        assert!(e.to_string().contains("CMD [\"/hello.spt\"]"), "{e}");
        let e = plan_of(r#"{"root":{"path":"/r"},"process":{"cwd":"/","args":["hello.spt"]}}"#).unwrap_err();
        assert!(e.to_string().contains("`hello.spt` is not an absolute path"), "{e}");
        let e = plan_of(r#"{"root":{"path":"/r"}}"#).unwrap_err();
        assert!(matches!(e, BundleError::NoProcess), "{e}");
    }

    #[test]
    fn docker_namespaces_are_created_and_paths_joined() {
        let p = plan_of(
            r#"{"root":{"path":"/r"},"process":{"cwd":"/","args":["/g"]},"linux":{"namespaces":[
                {"type":"mount"},{"type":"network"},{"type":"uts"},{"type":"pid"},{"type":"ipc"}]}}"#,
        )
        .unwrap();
        assert_eq!(p.namespaces.create, [NsKind::Mount, NsKind::Network, NsKind::Uts, NsKind::Pid, NsKind::Ipc]);
        assert_eq!(p.namespaces.net, NetNs::New);
        let p = plan_of(
            r#"{"root":{"path":"/r"},"process":{"cwd":"/","args":["/g"]},"linux":{"namespaces":[
                {"type":"network","path":"/proc/7/ns/net"},{"type":"pid"}]}}"#,
        )
        .unwrap();
        assert_eq!(p.namespaces.join, [(NsKind::Network, PathBuf::from("/proc/7/ns/net"))]);
        assert_eq!(p.namespaces.net, NetNs::Join("/proc/7/ns/net".into()));
        for bad in [r#"{"type":"user"}"#, r#"{"type":"pid","path":"/proc/1/ns/pid"}"#] {
            let json = format!(
                r#"{{"root":{{"path":"/r"}},"process":{{"cwd":"/","args":["/g"]}},"linux":{{"namespaces":[{bad}]}}}}"#
            );
            let e = plan_of(&json).unwrap_err();
            assert!(matches!(e, BundleError::Namespace { .. }), "{e}");
        }
    }

    #[test]
    fn blocks_come_from_annotations_and_env() {
        let p = plan_of(
            r#"{"root":{"path":"/r"},"process":{"cwd":"/","args":["/g"],
                 "env":["PATH=/bin","TENDER_BLOCK_storage=/data/disk.img"]},
               "annotations":{"org.tender.block.cache":"/cache.img","org.tender.block.storage":"/data/disk.img"}}"#,
        )
        .unwrap();
        assert_eq!(p.blocks.len(), 2);
        assert_eq!(p.blocks["storage"], Path::new("/data/disk.img"));
        assert_eq!(p.blocks["cache"], Path::new("/cache.img"));
        for (bad, needle) in [
            (r#""TENDER_BLOCK_st-x=/d""#, "is not a device name"),
            (r#""TENDER_BLOCK_st=d.img""#, "must be an absolute path"),
            (r#""TENDER_BLOCK_st=/a/../../etc/shadow""#, "without `..`"),
        ] {
            let json = format!(r#"{{"root":{{"path":"/r"}},"process":{{"cwd":"/","args":["/g"],"env":[{bad}]}}}}"#);
            let e = plan_of(&json).unwrap_err().to_string();
            assert!(e.contains(needle), "{e}");
        }
        let e = plan_of(
            r#"{"root":{"path":"/r"},"process":{"cwd":"/","args":["/g"],"env":["TENDER_BLOCK_s=/a"]},
               "annotations":{"org.tender.block.s":"/b"}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("names `/a`, but another setting names `/b`"), "{e}");
    }

    #[test]
    fn docker_init_is_skipped_with_a_warning() {
        let p = plan_of(
            r#"{"root":{"path":"/r"},"process":{"cwd":"/","args":["/sbin/docker-init","--","/hello.spt","a"]}}"#,
        )
        .unwrap();
        assert_eq!(p.guest, Path::new("/hello.spt"));
        assert_eq!(p.args, ["a"]);
        assert!(p.warnings[0].contains("--init is ignored"), "{:?}", p.warnings);
        // Only docker's exact shape: a guest called docker-init is a guest.
        let p = plan_of(r#"{"root":{"path":"/r"},"process":{"cwd":"/","args":["/sbin/docker-init","x"]}}"#).unwrap();
        assert_eq!(p.guest, Path::new("/sbin/docker-init"));
        assert!(p.warnings.is_empty());
    }

    #[test]
    fn a_pids_limit_below_two_names_what_the_container_runs() {
        let cfg = |n: i64| {
            format!(
                r#"{{"root":{{"path":"/r"}},"process":{{"cwd":"/","args":["/g"]}},"linux":{{"resources":{{"pids":{{"limit":{n}}}}}}}}}"#
            )
        };
        let e = plan_of(&cfg(1)).unwrap_err().to_string();
        assert!(e.contains("pids.limit is 1") && e.contains("at least 2"), "{e}");
        assert_eq!(plan_of(&cfg(2)).unwrap().resources.pids_limit, Some(2));
    }

    #[test]
    fn urunc_annotations_name_the_guest_and_its_block_device() {
        let p = plan_of(
            r#"{"root":{"path":"/r"},"process":{"cwd":"/","args":["hello","x"]},
               "annotations":{"com.urunc.unikernel.unikernelType":"mirage","com.urunc.unikernel.hypervisor":"spt",
                 "com.urunc.unikernel.binary":"/unikernel/app.spt","com.urunc.unikernel.block":"/disk.img"}}"#,
        )
        .unwrap();
        assert_eq!(p.guest, Path::new("/unikernel/app.spt"));
        assert_eq!(p.args, ["hello", "x"]);
        assert_eq!(p.monitor, Some(crate::urunc::Monitor::Spt));
        assert_eq!(p.blocks["storage"], Path::new("/disk.img"));
        let json = r#"{"com.urunc.unikernel.unikernelType":"c29sbzU=","com.urunc.unikernel.hypervisor":"cWVtdQ==",
                       "com.urunc.unikernel.binary":"L2s="}"#;
        let spec = spec(r#"{"root":{"path":"/r"},"process":{"cwd":"/","args":["/k"]}}"#);
        let e = plan_with(Path::new("/b"), &spec, Some(json)).unwrap_err().to_string();
        assert!(e.contains("hypervisor is `qemu`"), "{e}");
    }

    #[test]
    fn container_namespace_hooks_are_refused() {
        let e = plan_of(
            r#"{"root":{"path":"/r"},"process":{"cwd":"/","args":["/g"]},
               "hooks":{"createContainer":[{"path":"/bin/true"}]}}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("hooks.createContainer"), "{e}");
        let p = plan_of(
            r#"{"root":{"path":"/r"},"process":{"cwd":"/","args":["/g"]},
               "hooks":{"prestart":[{"path":"/proc/1/exe","args":["libnetwork-setkey","x"]}]}}"#,
        )
        .unwrap();
        assert_eq!(p.hooks.prestart.len(), 1);
    }
}
