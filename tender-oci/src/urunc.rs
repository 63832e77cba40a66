//! Images built for urunc (<https://github.com/urunc-dev/urunc>) run unchanged when they
//! hold a Solo5 unikernel.
//!
//! urunc reads how to run an image from `com.urunc.unikernel.*` annotations, or, because
//! docker and others drop image annotations, from `/urunc.json` at the root of the image
//! (the same keys, values base64-encoded). The keys tender-oci maps:
//!
//! | key | becomes |
//! |---|---|
//! | `unikernelType` | must be a Solo5 unikernel: `mirage`, `rumprun` or `solo5` |
//! | `hypervisor` | `spt` or `hvt`, checked against the guest's ABI note; `qemu`, `firecracker`, … are refused |
//! | `binary` | the unikernel (instead of `process.args[0]`) |
//! | `cmdline` | the guest's arguments (split at white space); else `process.args` (the image's `CMD`) |
//! | `block` | a block image in the image, attached as device `solo5BlkDev` (default: `rootfs` for rumprun, `storage` otherwise) |
//! | `blkMntPoint`, `unikernelVersion`, `solo5NetDev`, `vAccel` | ignored (warned where it matters) |
//! | `initrd`, `mountRootfs=true`, `bootKernel`, `bootInitrd` | refused: a Solo5 guest takes no initrd and no shared root |
//!
//! Annotations win over `/urunc.json`, key by key. The file is read inside the rootfs
//! (`openat2(RESOLVE_IN_ROOT)`, so its symlinks cannot leave it), only if it is a regular
//! file, and at most [`JSON_MAX`] bytes.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

/// Prefix of urunc's annotations (and of the keys of `/urunc.json`).
pub const PREFIX: &str = "com.urunc.unikernel.";
/// The file urunc reads when the annotations are missing, at the root of the image.
pub const JSON_FILE: &str = "urunc.json";
/// Largest `/urunc.json` read (urunc's own are a few hundred bytes).
pub const JSON_MAX: u64 = 64 << 10;

/// An urunc image tender-oci cannot run, or cannot read.
#[derive(Debug, thiserror::Error)]
pub enum UruncError {
    /// `/urunc.json` unreadable.
    #[error("/{JSON_FILE} in the image: {0}")]
    Read(std::io::Error),
    /// Not a regular file.
    #[error("/{JSON_FILE} in the image is not a regular file")]
    NotFile,
    /// Too large.
    #[error("/{JSON_FILE} in the image is larger than {JSON_MAX} bytes")]
    TooBig,
    /// Not a JSON object of strings.
    #[error("/{JSON_FILE} in the image is not a JSON object of strings (as urunc's bunny writes it): {0}")]
    Json(serde_json::Error),
    /// A value that does not decode.
    #[error(
        "{PREFIX}{key} in /{JSON_FILE}: `{value}` is not base64 of UTF-8 text (urunc.json values are base64-encoded)"
    )]
    Base64 {
        /// The key (without prefix).
        key: String,
        /// The raw value.
        value: String,
    },
    /// A mandatory key is missing.
    #[error("{PREFIX}{0} is not set (in the annotations nor in /{JSON_FILE}): an urunc image names unikernelType, hypervisor and binary")]
    Missing(&'static str),
    /// A monitor tender-oci does not provide.
    #[error("{PREFIX}hypervisor is `{0}`: tender-oci runs Solo5 guests itself, on spt (seccomp) or hvt (KVM), and starts no other monitor; run this image with urunc, or build the unikernel for solo5-spt or solo5-hvt")]
    Hypervisor(String),
    /// Not a Solo5 unikernel.
    #[error(
        "{PREFIX}unikernelType is `{0}`: tender-oci runs Solo5 unikernels only (mirage, rumprun, solo5, on spt or hvt)"
    )]
    Type(String),
    /// A setting a Solo5 guest cannot honour.
    #[error("{PREFIX}{key} is `{value}`: {why}")]
    Unsupported {
        /// The key (without prefix).
        key: &'static str,
        /// Its value.
        value: String,
        /// Why, and what to do.
        why: &'static str,
    },
    /// A path that is not a plain path inside the image.
    #[error("{PREFIX}{key} is `{value}`: give a path inside the image without `..` (e.g. /unikernel/app.spt)")]
    BadPath {
        /// The key (without prefix).
        key: &'static str,
        /// Its value.
        value: String,
    },
}

/// The monitor an urunc image asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Monitor {
    /// Solo5's seccomp tender.
    Spt,
    /// Solo5's KVM tender.
    Hvt,
}

impl Monitor {
    /// `spt` or `hvt`.
    pub fn name(self) -> &'static str {
        match self {
            Monitor::Spt => "spt",
            Monitor::Hvt => "hvt",
        }
    }
}

/// What an urunc image asks for, as tender-oci runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `unikernelType` (lower case).
    pub unikernel_type: String,
    /// `hypervisor`.
    pub monitor: Monitor,
    /// `binary`, absolute inside the image.
    pub binary: PathBuf,
    /// `cmdline`, split at white space, if set.
    pub cmdline: Option<Vec<String>>,
    /// `block`: (device name, path inside the image).
    pub block: Option<(String, PathBuf)>,
    /// Settings ignored, for the user.
    pub warnings: Vec<String>,
}

impl Config {
    /// The guest's arguments: `cmdline` if set, else `process.args` without a leading
    /// copy of the binary's own path (`CMD ["/unikernel/app.spt", …]`).
    pub fn guest_args(&self, process_args: &[String]) -> Vec<String> {
        if let Some(words) = &self.cmdline {
            return words.clone();
        }
        match process_args.split_first() {
            Some((first, rest)) if Path::new(first) == self.binary => rest.to_vec(),
            _ => process_args.to_vec(),
        }
    }
}

/// Reads `/urunc.json` from `rootfs` (resolved inside it); `Ok(None)` if there is none.
pub fn read_json(rootfs: &Path) -> Result<Option<String>, UruncError> {
    let io = |e: nix::Error| UruncError::Read(e.into());
    let root = match nix::fcntl::open(rootfs, OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty()) {
        Ok(fd) => fd,
        // create reports a missing rootfs with its own words.
        Err(_) => return Ok(None),
    };
    // O_NONBLOCK: a FIFO planted at /urunc.json must not block create.
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK | OFlag::O_NOCTTY)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd: OwnedFd = match nix::fcntl::openat2(&root, JSON_FILE, how) {
        Ok(fd) => fd,
        Err(nix::Error::ENOENT) => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    let file = std::fs::File::from(fd);
    let meta = file.metadata().map_err(UruncError::Read)?;
    if !meta.is_file() {
        return Err(UruncError::NotFile);
    }
    let mut text = String::new();
    file.take(JSON_MAX + 1).read_to_string(&mut text).map_err(UruncError::Read)?;
    if text.len() as u64 > JSON_MAX {
        return Err(UruncError::TooBig);
    }
    Ok(Some(text))
}

/// The urunc settings of a container: `annotations` win over `json` (the text of
/// `/urunc.json`) key by key. `Ok(None)` when neither holds a urunc key.
pub fn config(annotations: &BTreeMap<String, String>, json: Option<&str>) -> Result<Option<Config>, UruncError> {
    let mut keys: BTreeMap<String, String> = BTreeMap::new();
    if let Some(text) = json {
        let map: BTreeMap<String, String> = serde_json::from_str(text).map_err(UruncError::Json)?;
        for (k, v) in map {
            let Some(key) = k.strip_prefix(PREFIX) else { continue };
            let value = decode_json_value(&v).ok_or_else(|| UruncError::Base64 { key: key.to_owned(), value: v })?;
            if !value.is_empty() {
                keys.insert(key.to_owned(), value);
            }
        }
    }
    for (k, v) in annotations {
        if let Some(key) = k.strip_prefix(PREFIX) {
            if !v.is_empty() {
                keys.insert(key.to_owned(), v.clone());
            }
        }
    }
    if keys.is_empty() {
        return Ok(None);
    }
    let get = |key: &str| keys.get(key).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    let need = |key: &'static str| get(key).ok_or(UruncError::Missing(key));

    let unikernel_type = need("unikernelType")?.to_ascii_lowercase();
    let monitor = match need("hypervisor")?.to_ascii_lowercase().as_str() {
        "spt" | "solo5-spt" => Monitor::Spt,
        "hvt" | "solo5-hvt" => Monitor::Hvt,
        _ => return Err(UruncError::Hypervisor(need("hypervisor")?)),
    };
    if !["mirage", "rumprun", "solo5"].contains(&unikernel_type.as_str()) {
        return Err(UruncError::Type(need("unikernelType")?));
    }
    let binary = image_path("binary", &need("binary")?)?;
    for (key, why) in [
        ("initrd", "a Solo5 guest takes no initrd; package what it needs as a block image (com.urunc.unikernel.block)"),
        ("bootKernel", "generic Linux boots are urunc's (qemu); tender-oci runs Solo5 unikernels"),
        ("bootInitrd", "generic Linux boots are urunc's (qemu); tender-oci runs Solo5 unikernels"),
    ] {
        if let Some(value) = get(key) {
            return Err(UruncError::Unsupported { key, value, why });
        }
    }
    if let Some(value) = get("mountRootfs") {
        if value.eq_ignore_ascii_case("true") || value == "1" {
            return Err(UruncError::Unsupported {
                key: "mountRootfs",
                value,
                why: "a Solo5 guest cannot mount the image's root filesystem; attach a block image instead (com.urunc.unikernel.block)",
            });
        }
    }
    let mut warnings = Vec::new();
    let block = match get("block") {
        Some(path) => {
            let path = image_path("block", &path)?;
            let default = if unikernel_type == "rumprun" { "rootfs" } else { "storage" };
            let name = get("solo5BlkDev").unwrap_or_else(|| default.to_owned());
            if let Some(mnt) = get("blkMntPoint") {
                warnings.push(format!(
                    "{PREFIX}blkMntPoint `{mnt}` is ignored: the guest mounts its block device `{name}` itself"
                ));
            }
            Some((name, path))
        }
        None => None,
    };
    if let Some(v) = get("vAccel") {
        warnings.push(format!("{PREFIX}vAccel `{v}` is ignored: tender-oci offers no vAccel transport"));
    }
    Ok(Some(Config {
        unikernel_type,
        monitor,
        binary,
        cmdline: get("cmdline").map(|c| c.split_whitespace().map(str::to_owned).collect()),
        block,
        warnings,
    }))
}

/// A path inside the image: absolute (urunc also takes them relative to the root), no `..`.
fn image_path(key: &'static str, value: &str) -> Result<PathBuf, UruncError> {
    let path = Path::new("/").join(value);
    let plain = path.components().all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    if !plain || path == Path::new("/") || value.contains('\0') {
        return Err(UruncError::BadPath { key, value: value.to_owned() });
    }
    Ok(path)
}

/// A `/urunc.json` value as urunc decodes it: `b64:` + base64, or base64 (what bunny
/// writes); a value that is not base64 of UTF-8 text is taken as it is, except after
/// `b64:`, where it is an error (`None`).
fn decode_json_value(value: &str) -> Option<String> {
    if let Some(encoded) = value.strip_prefix("b64:") {
        return base64_decode(encoded).and_then(|b| String::from_utf8(b).ok());
    }
    Some(base64_decode(value).and_then(|b| String::from_utf8(b).ok()).unwrap_or_else(|| value.to_owned()))
}

/// Standard base64 with padding (Go's `base64.StdEncoding`); `None` if malformed.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        // As bunny writes urunc.json values.
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (format!("{PREFIX}{k}"), (*v).to_owned())).collect()
    }

    #[test]
    fn base64_round_trips_and_rejects_garbage() {
        for s in ["", "s", "sp", "spt", "/unikernel/hello.spt", "hello world ünïcode"] {
            assert_eq!(base64_decode(&b64(s)).unwrap(), s.as_bytes(), "{s}");
        }
        assert_eq!(base64_decode("c3B0"), Some(b"spt".to_vec()));
        for bad in ["c3B", "c3B0=", "c3=0", "====", "c3B0c3==c3B0", "c3B!"] {
            assert_eq!(base64_decode(bad), None, "{bad}");
        }
        assert_eq!(decode_json_value("b64:c3B0").as_deref(), Some("spt"));
        assert_eq!(decode_json_value("b64:c3B").as_deref(), None);
        // Not base64: taken as it is (urunc's fallback for plain values).
        assert_eq!(decode_json_value("/unikernel/x.spt").as_deref(), Some("/unikernel/x.spt"));
    }

    #[test]
    fn no_urunc_keys_is_no_urunc_image() {
        let a = annotations(&[]);
        assert_eq!(config(&a, None).unwrap(), None);
        assert_eq!(config(&a, Some(r#"{"org.other":"x"}"#)).unwrap(), None);
    }

    #[test]
    fn urunc_json_as_bunny_writes_it() {
        let json = serde_json::json!({
            "com.urunc.unikernel.unikernelType": b64("solo5"),
            "com.urunc.unikernel.hypervisor": b64("spt"),
            "com.urunc.unikernel.binary": b64("/unikernel/hello.spt"),
            "com.urunc.unikernel.cmdline": b64("a b"),
            "com.urunc.unikernel.unikernelVersion": b64(""),
            "com.urunc.unikernel.mountRootfs": b64("false"),
        })
        .to_string();
        let c = config(&annotations(&[]), Some(&json)).unwrap().unwrap();
        assert_eq!(c.monitor, Monitor::Spt);
        assert_eq!(c.unikernel_type, "solo5");
        assert_eq!(c.binary, Path::new("/unikernel/hello.spt"));
        assert_eq!(c.guest_args(&["ignored".into()]), ["a", "b"]);
        assert_eq!(c.block, None);
    }

    #[test]
    fn annotations_win_key_by_key() {
        let json = serde_json::json!({
            "com.urunc.unikernel.unikernelType": b64("mirage"),
            "com.urunc.unikernel.hypervisor": b64("qemu"),
            "com.urunc.unikernel.binary": b64("/json.spt"),
        })
        .to_string();
        let a = annotations(&[("hypervisor", "hvt"), ("binary", "unikernel/app.hvt")]);
        let c = config(&a, Some(&json)).unwrap().unwrap();
        assert_eq!(c.monitor, Monitor::Hvt);
        assert_eq!(c.unikernel_type, "mirage");
        // Relative binaries are relative to the image's root, as in urunc.
        assert_eq!(c.binary, Path::new("/unikernel/app.hvt"));
        // No cmdline: the image's CMD, without a leading copy of the binary's path.
        assert_eq!(c.guest_args(&["/unikernel/app.hvt".into(), "x".into()]), ["x"]);
        assert_eq!(c.guest_args(&["x".into()]), ["x"]);
    }

    #[test]
    fn other_monitors_and_unikernels_are_refused_by_name() {
        for hv in ["qemu", "firecracker", "cloud-hypervisor", "hyperlight-unikraft"] {
            let a = annotations(&[("unikernelType", "unikraft"), ("hypervisor", hv), ("binary", "/k")]);
            let e = config(&a, None).unwrap_err().to_string();
            assert!(e.contains(&format!("hypervisor is `{hv}`")) && e.contains("spt") && e.contains("hvt"), "{e}");
        }
        let a = annotations(&[("unikernelType", "unikraft"), ("hypervisor", "hvt"), ("binary", "/k")]);
        let e = config(&a, None).unwrap_err().to_string();
        assert!(e.contains("unikernelType is `unikraft`"), "{e}");
        let a = annotations(&[("unikernelType", "rumprun"), ("hypervisor", "hvt")]);
        let e = config(&a, None).unwrap_err().to_string();
        assert!(e.contains("binary is not set"), "{e}");
    }

    #[test]
    fn block_images_map_to_block_devices_and_the_rest_is_refused() {
        let a = annotations(&[
            ("unikernelType", "rumprun"),
            ("hypervisor", "spt"),
            ("binary", "/k.spt"),
            ("block", "/disk.img"),
            ("blkMntPoint", "/data"),
        ]);
        let c = config(&a, None).unwrap().unwrap();
        assert_eq!(c.block, Some(("rootfs".to_owned(), PathBuf::from("/disk.img"))));
        assert!(c.warnings[0].contains("blkMntPoint `/data` is ignored"), "{:?}", c.warnings);
        let mut a = a.clone();
        a.insert(format!("{PREFIX}solo5BlkDev"), "storage".into());
        assert_eq!(config(&a, None).unwrap().unwrap().block.unwrap().0, "storage");
        for (key, value, needle) in [
            ("initrd", "/initrd", "no initrd"),
            ("mountRootfs", "true", "cannot mount the image's root"),
            ("block", "/../etc/shadow", "without `..`"),
            ("binary", "/", "without `..`"),
        ] {
            let mut a = annotations(&[("unikernelType", "solo5"), ("hypervisor", "spt"), ("binary", "/k.spt")]);
            a.insert(format!("{PREFIX}{key}"), value.into());
            let e = config(&a, None).unwrap_err().to_string();
            assert!(e.contains(needle), "{key}={value}: {e}");
        }
        let e = config(&annotations(&[]), Some("[1]")).unwrap_err().to_string();
        assert!(e.contains("not a JSON object"), "{e}");
        let e = config(&annotations(&[]), Some(r#"{"com.urunc.unikernel.binary":"b64:%%"}"#)).unwrap_err();
        assert!(e.to_string().contains("not base64"), "{e}");
    }

    #[test]
    fn urunc_json_is_read_inside_the_rootfs_and_bounded() {
        let dir = std::env::temp_dir().join(format!("tender-oci-urunc-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let rootfs = dir.join("rootfs");
        std::fs::create_dir_all(&rootfs).unwrap();
        assert_eq!(read_json(&rootfs).unwrap(), None);
        // A symlink out of the image resolves inside it.
        std::fs::write(dir.join("outside.json"), "{}").unwrap();
        std::os::unix::fs::symlink("../outside.json", rootfs.join(JSON_FILE)).unwrap();
        assert_eq!(read_json(&rootfs).unwrap(), None);
        std::fs::remove_file(rootfs.join(JSON_FILE)).unwrap();
        std::fs::write(rootfs.join(JSON_FILE), "{}").unwrap();
        assert_eq!(read_json(&rootfs).unwrap().as_deref(), Some("{}"));
        std::fs::write(rootfs.join(JSON_FILE), vec![b' '; usize::try_from(JSON_MAX).unwrap() + 1]).unwrap();
        assert!(matches!(read_json(&rootfs), Err(UruncError::TooBig)));
        std::fs::remove_file(rootfs.join(JSON_FILE)).unwrap();
        nix::unistd::mkfifo(&rootfs.join(JSON_FILE), Mode::from_bits_truncate(0o600)).unwrap();
        assert!(matches!(read_json(&rootfs), Err(UruncError::NotFile)));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
