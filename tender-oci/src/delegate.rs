//! Pod sandboxes go to runc.
//!
//! containerd's CRI plugin (and CRI-O) run *every* container of a pod through the pod's
//! runtime handler, including the pod sandbox: the "pause" container, a Linux binary that
//! holds the pod's namespaces. A unikernel runtime cannot run it, and need not: it only
//! sleeps. So a container whose `config.json` annotations mark it as the sandbox
//! ([`is_sandbox`]) is handed to `runc` with the same command line, and so is every later
//! verb on that id. Only the `--root` changes: runc keeps its state in [`runc_root`], the
//! sub-directory `@runc` of tender-oci's root. `@` is not allowed in a container id, so
//! tender-oci's own `list` and state lookups never take that directory for a container,
//! and it lives and dies with the root the engine chose (one per containerd namespace).
//! Whether an id is runc's is decided by whether runc's state directory for it exists
//! there ([`delegated`]).
//!
//! The process is replaced by runc ([`exec_runc`]), so exit codes and output are runc's.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Name of runc's state root inside tender-oci's `--root` (not a valid container id).
pub const RUNC_DIR: &str = "@runc";

/// Where runc is looked for when it is not on `PATH`.
pub const RUNC_PATHS: &[&str] = &["/usr/sbin/runc", "/usr/bin/runc", "/sbin/runc"];

/// Annotations (key, value) that mark the pod sandbox: containerd's CRI plugin, CRI-O.
pub const SANDBOX_ANNOTATIONS: &[(&str, &str)] =
    &[("io.kubernetes.cri.container-type", "sandbox"), ("io.kubernetes.cri-o.ContainerType", "sandbox")];

/// Delegation errors.
#[derive(Debug, thiserror::Error)]
pub enum DelegateError {
    /// runc is needed for the pod sandbox but is not installed.
    #[error(
        "container `{id}` is a pod sandbox (pause container), which tender-oci hands to runc, but runc is not on PATH \
         nor in /usr/sbin, /usr/bin or /sbin: install it (apt-get install runc)"
    )]
    NoRunc {
        /// The sandbox's id.
        id: String,
    },
    /// The `runc` found is tender-oci itself (installed as runc): it would hand the
    /// sandbox to itself for ever.
    #[error(
        "container `{id}` is a pod sandbox, which tender-oci hands to runc, but {runc} is tender-oci itself: \
         install the real runc (apt-get install runc) ahead of it on PATH or in /usr/sbin"
    )]
    RuncIsUs {
        /// The sandbox's id.
        id: String,
        /// The `runc` found.
        runc: PathBuf,
    },
    /// exec of runc failed.
    #[error("cannot run {runc} for pod sandbox `{id}`: {source}")]
    Exec {
        /// The runc binary.
        runc: PathBuf,
        /// The sandbox's id.
        id: String,
        /// Why.
        source: std::io::Error,
    },
}

/// runc's state root for delegated containers under tender-oci's `root`.
pub fn runc_root(root: &Path) -> PathBuf {
    root.join(RUNC_DIR)
}

/// Whether annotations mark the container as a pod sandbox.
pub fn is_sandbox(annotations: &BTreeMap<String, String>) -> bool {
    SANDBOX_ANNOTATIONS.iter().any(|(k, v)| annotations.get(*k).is_some_and(|a| a == v))
}

/// Whether the bundle's `config.json` marks a pod sandbox. An unreadable or invalid
/// `config.json` is not a sandbox: tender-oci's own `create` then reports what is wrong.
pub fn bundle_is_sandbox(bundle: &Path) -> bool {
    let Ok(text) = std::fs::read(bundle.join("config.json")) else { return false };
    let Ok(config) = serde_json::from_slice::<serde_json::Value>(&text) else { return false };
    let Some(map) = config.get("annotations").and_then(|a| a.as_object()) else { return false };
    let annotations: BTreeMap<String, String> =
        map.iter().filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned()))).collect();
    is_sandbox(&annotations)
}

/// Whether container `id` is runc's: its state directory exists under [`runc_root`].
pub fn delegated(root: &Path, id: &str) -> bool {
    crate::state::check_id(id).is_ok() && runc_root(root).join(id).is_dir()
}

/// Global options (before the verb) that take a value, long and short.
const VALUED: &[&str] = &["--root", "-r", "--log", "-l", "--log-format", "--criu", "--rootless"];

/// `args` (argv, program name first) with the global `--root` (any of `--root X`,
/// `--root=X`, `-r X`, `-rX`, `-r=X`, or none) replaced by `--root NEW` right after the
/// program name. Everything else is kept in order; options after the verb are untouched.
pub fn rewrite_args(args: &[OsString], new_root: &Path) -> Vec<OsString> {
    let mut out: Vec<OsString> = Vec::with_capacity(args.len() + 2);
    let mut it = args.iter();
    if let Some(program) = it.next() {
        out.push(program.clone());
    }
    out.push("--root".into());
    out.push(new_root.as_os_str().to_owned());
    let mut in_globals = true;
    while let Some(arg) = it.next() {
        let bytes = arg.as_bytes();
        if !in_globals || !bytes.starts_with(b"-") {
            // The verb, or anything after it.
            in_globals = false;
            out.push(arg.clone());
            continue;
        }
        if bytes == b"--" {
            in_globals = false;
            out.push(arg.clone());
            continue;
        }
        let is_root = bytes == b"--root" || bytes == b"-r";
        let is_root_joined = bytes.starts_with(b"--root=") || (bytes.starts_with(b"-r") && !bytes.starts_with(b"--"));
        if is_root {
            it.next(); // its value
            continue;
        }
        if is_root_joined {
            continue;
        }
        out.push(arg.clone());
        if VALUED.contains(&OsStr::from_bytes(bytes).to_str().unwrap_or("")) {
            if let Some(value) = it.next() {
                out.push(value.clone());
            }
        }
    }
    out
}

/// runc: on `PATH`, else in [`RUNC_PATHS`].
pub fn find_runc(id: &str) -> Result<PathBuf, DelegateError> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("runc")).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain(RUNC_PATHS.iter().map(PathBuf::from))
        .find(|p| is_executable(p))
        .ok_or_else(|| DelegateError::NoRunc { id: id.to_owned() })
        .and_then(|runc| {
            let us = std::env::current_exe().and_then(std::fs::canonicalize).ok();
            if us.is_some() && std::fs::canonicalize(&runc).ok() == us {
                return Err(DelegateError::RuncIsUs { id: id.to_owned(), runc });
            }
            Ok(runc)
        })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Replaces this process by runc with `args` (argv, program name first) rewritten to
/// [`runc_root`]. Returns only on failure.
pub fn exec_runc(id: &str, root: &Path, args: &[OsString]) -> DelegateError {
    use std::os::unix::process::CommandExt;
    let runc = match find_runc(id) {
        Ok(r) => r,
        Err(e) => return e,
    };
    let argv = rewrite_args(args, &runc_root(root));
    let source = std::process::Command::new(&runc).arg0("runc").args(&argv[1..]).exec();
    DelegateError::Exec { runc, id: id.to_owned(), source }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<OsString> {
        s.split_whitespace().map(OsString::from).collect()
    }

    fn rewritten(s: &str) -> String {
        rewrite_args(&argv(s), Path::new("/R/@runc")).iter().map(|a| a.to_str().unwrap()).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn root_is_replaced_in_every_spelling() {
        let tail = "--log /b/log.json --log-format json --systemd-cgroup create --bundle /b --pid-file /p ID";
        let want = format!("tender-oci --root /R/@runc {tail}");
        for root in ["--root /R", "--root=/R", "-r /R", "-r/R", "-r=/R"] {
            assert_eq!(rewritten(&format!("tender-oci {root} {tail}")), want, "{root}");
        }
        // Root after other globals.
        assert_eq!(
            rewritten("tender-oci --log /l --root /R --debug state ID"),
            "tender-oci --root /R/@runc --log /l --debug state ID"
        );
    }

    #[test]
    fn absent_root_is_added() {
        assert_eq!(rewritten("tender-oci --log /l kill ID 9"), "tender-oci --root /R/@runc --log /l kill ID 9");
        assert_eq!(rewritten("tender-oci delete --force ID"), "tender-oci --root /R/@runc delete --force ID");
    }

    #[test]
    fn arguments_after_the_verb_are_untouched() {
        // A value that looks like a root option, after the verb, stays.
        assert_eq!(
            rewritten("tender-oci --root /R exec --process /p -r x ID"),
            "tender-oci --root /R/@runc exec --process /p -r x ID"
        );
        // A global option's value that starts with -r is not a root.
        assert_eq!(
            rewritten("tender-oci --log -rfile --root /R state ID"),
            "tender-oci --root /R/@runc --log -rfile state ID"
        );
    }

    #[test]
    fn only_sandbox_annotations_delegate() {
        let ann = |k: &str, v: &str| BTreeMap::from([(k.to_owned(), v.to_owned())]);
        assert!(is_sandbox(&ann("io.kubernetes.cri.container-type", "sandbox")));
        assert!(is_sandbox(&ann("io.kubernetes.cri-o.ContainerType", "sandbox")));
        assert!(!is_sandbox(&ann("io.kubernetes.cri.container-type", "container")));
        assert!(!is_sandbox(&ann("io.kubernetes.cri-o.ContainerType", "container")));
        assert!(!is_sandbox(&ann("io.kubernetes.cri.sandbox-id", "sandbox")));
        assert!(!is_sandbox(&BTreeMap::new()));
    }

    #[test]
    fn bundle_check_reads_config_annotations() {
        let dir = std::env::temp_dir().join(format!("tender-oci-delegate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |s: &str| std::fs::write(dir.join("config.json"), s).unwrap();
        write(r#"{"ociVersion":"1.0.2","annotations":{"io.kubernetes.cri.container-type":"sandbox"}}"#);
        assert!(bundle_is_sandbox(&dir));
        write(r#"{"ociVersion":"1.0.2","annotations":{"io.kubernetes.cri.container-type":"container"}}"#);
        assert!(!bundle_is_sandbox(&dir));
        write(r#"{"ociVersion":"1.0.2"}"#);
        assert!(!bundle_is_sandbox(&dir));
        write("not json");
        assert!(!bundle_is_sandbox(&dir));
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(!bundle_is_sandbox(&dir));
    }

    #[test]
    fn delegation_follows_runc_state() {
        let root = std::env::temp_dir().join(format!("tender-oci-delegate-root-{}", std::process::id()));
        std::fs::create_dir_all(runc_root(&root).join("pod1")).unwrap();
        assert!(delegated(&root, "pod1"));
        assert!(!delegated(&root, "other"));
        assert!(!delegated(&root, ".."), "ids that escape the root are never runc's");
        // tender-oci's own listing skips runc's root.
        assert_eq!(crate::state::list(&root).unwrap(), Vec::<String>::new());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
