//! Images for containerd, built here (no registry is reachable): OCI image-layout
//! tarballs written by hand, one uncompressed layer each, for `ctr images import`.
//!
//! * [`pause_archive`]: the pod sandbox image, `/pause` built from `tests/images/pause.c`
//!   (`gcc -static -O2`): sleeps until SIGTERM/SIGINT, exits 0.
//! * [`unikernel_archive`]: FROM-scratch-like image of the guests at `/NAME.spt`,
//!   `CMD ["/hello.spt"]`.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

/// `sha256:HEX` of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    format!("sha256:{}", hash.iter().map(|b| format!("{b:02x}")).collect::<String>())
}

/// A tar layer of regular files `(path in image, contents)`, mode 0755, owned by root.
fn layer(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o755);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name.trim_start_matches('/'), data.as_slice()).unwrap();
    }
    b.into_inner().unwrap()
}

/// An OCI image layout (as a tar) holding one image named `reference` (a full reference,
/// `docker.io/library/NAME:TAG`, which `ctr images import` keeps as the image's name):
/// one layer of `files`, `config` as the image config's `config` object.
pub fn archive(reference: &str, files: &[(String, Vec<u8>)], config: serde_json::Value) -> Vec<u8> {
    let layer = layer(files);
    let layer_digest = digest(&layer);
    let image_config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    });
    let config_bytes = serde_json::to_vec(&image_config).unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": digest(&config_bytes),
            "size": config_bytes.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer_digest,
            "size": layer.len(),
        }],
    });
    let manifest_bytes = serde_json::to_vec(&manifest).unwrap();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest(&manifest_bytes),
            "size": manifest_bytes.len(),
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {"org.opencontainers.image.ref.name": reference},
        }],
    });
    let mut entries: Vec<(String, Vec<u8>)> = vec![
        ("oci-layout".into(), br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
        ("index.json".into(), serde_json::to_vec(&index).unwrap()),
    ];
    for blob in [layer, config_bytes, manifest_bytes] {
        let hex = digest(&blob).trim_start_matches("sha256:").to_owned();
        entries.push((format!("blobs/sha256/{hex}"), blob));
    }
    let mut b = tar::Builder::new(Vec::new());
    for dir in ["blobs/", "blobs/sha256/"] {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        b.append_data(&mut h, dir, std::io::empty()).unwrap();
    }
    for (name, data) in &entries {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, data.as_slice()).unwrap();
    }
    b.into_inner().unwrap()
}

/// Builds `/pause` from `tests/images/pause.c` into `dir` (static, so the image needs no
/// libc) and returns its image archive, named `reference`.
pub fn pause_archive(reference: &str, dir: &Path) -> Vec<u8> {
    let src = super::repo_root().join("tender-oci/tests/images/pause.c");
    let bin = dir.join("pause");
    let out =
        Command::new("gcc").args(["-static", "-O2", "-Wall", "-o"]).arg(&bin).arg(&src).output().expect("gcc runs");
    assert!(out.status.success(), "gcc -static {}: {}", src.display(), super::text(&out.stderr));
    let files = vec![("pause".to_owned(), std::fs::read(&bin).unwrap())];
    archive(reference, &files, serde_json::json!({"Entrypoint": ["/pause"], "Env": ["PATH=/"]}))
}

/// The guests `target/guests/NAME.spt` at `/NAME.spt`, `CMD ["/hello.spt"]`, named
/// `reference`. Builds the guests if needed.
pub fn unikernel_archive(reference: &str, guests: &[&str]) -> Vec<u8> {
    let files: Vec<(String, Vec<u8>)> = guests
        .iter()
        .map(|name| {
            let path: PathBuf = super::guest(name);
            (format!("{name}.spt"), std::fs::read(&path).unwrap())
        })
        .collect();
    archive(reference, &files, serde_json::json!({"Cmd": ["/hello.spt"], "Env": ["PATH=/"]}))
}
