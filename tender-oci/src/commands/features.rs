//! `features`: what this runtime implements (runtime-spec features-linux.md).

pub fn features() -> anyhow::Result<()> {
    let json = serde_json::json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": tender_oci::state::OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "poststart", "poststop"],
        "mountOptions": ["ro", "rw", "nosuid", "suid", "nodev", "dev", "noexec", "exec", "sync", "async", "dirsync",
            "atime", "noatime", "diratime", "nodiratime", "relatime", "norelatime", "strictatime", "nostrictatime",
            "bind", "rbind", "private", "rprivate", "shared", "rshared", "slave", "rslave", "unbindable", "runbindable"],
        "linux": {
            "namespaces": ["mount", "network", "uts", "ipc", "pid", "cgroup"],
            "capabilities": [],
            "cgroup": { "v1": true, "v2": true, "systemd": false, "systemdUser": false },
            "seccomp": { "enabled": false },
            "apparmor": { "enabled": false },
            "selinux": { "enabled": false }
        },
        "annotations": {
            "org.tender.oci.version": env!("CARGO_PKG_VERSION"),
            "org.tender.oci.seccomp": "the tender's own per-guest filter; linux.seccomp is ignored"
        }
    });
    println!("{}", serde_json::to_string_pretty(&json)?);
    Ok(())
}
