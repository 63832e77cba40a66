//! The OCI bundle config parser under hostile input: a committed corpus of bad configs,
//! each refused naming the field, and property tests that mutate a valid config.json
//! at random. Whatever the input: no panic, and an accepted plan satisfies what the
//! runtime relies on. Case counts are fixed, so CI time is bounded.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use serde_json::{json, Value};
use tender_oci::bundle;

/// A config as docker writes it for `docker run --memory 64m IMAGE /hello.spt a`.
fn valid_config() -> Value {
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["/hello.spt", "a"],
            "env": ["PATH=/usr/bin", "TENDER_BLOCK_storage=/data/disk.img"],
            "cwd": "/"
        },
        "root": {"path": "rootfs"},
        "hostname": "abc",
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
        "annotations": {"org.tender.block.extra": "/data/extra.img"},
        "linux": {
            "resources": {"memory": {"limit": 67108864}},
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
            "cgroupsPath": "/docker/abc"
        }
    })
}

struct Bundle(PathBuf);

impl Bundle {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("tender-oci-config-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Bundle(dir)
    }
    fn load(&self, config: &[u8]) -> Result<bundle::Plan, bundle::BundleError> {
        std::fs::write(self.0.join("config.json"), config).unwrap();
        bundle::load(&self.0)
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn assert_plan_sound(plan: &bundle::Plan) {
    assert!(plan.guest.is_absolute(), "relative guest accepted: {:?}", plan.guest);
    assert!(plan.mem_mib >= 1 && plan.mem_mib <= tender::spec::MAX_MEM_MIB, "mem {}", plan.mem_mib);
}

#[test]
fn the_valid_config_plans() {
    let b = Bundle::new("valid");
    let plan = b.load(valid_config().to_string().as_bytes()).unwrap();
    assert_eq!(plan.guest, Path::new("/hello.spt"));
    assert_eq!(plan.mem_mib, 64);
    assert_eq!(plan.args, ["a"]);
}

#[test]
fn corpus_configs_are_refused_naming_the_field() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let expected = std::fs::read_to_string(dir.join("expected.txt")).unwrap();
    let b = Bundle::new("corpus");
    let mut cases = 0;
    for line in expected.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')) {
        let (file, fragment) = line.split_once(" => ").unwrap_or_else(|| panic!("bad line {line:?}"));
        let bytes = std::fs::read(dir.join(file.trim())).unwrap();
        match b.load(&bytes) {
            Ok(plan) => panic!("{file} was accepted: {plan:?}"),
            Err(e) => assert!(e.to_string().contains(fragment.trim()), "{file}: `{e}` lacks {fragment:?}"),
        }
        cases += 1;
    }
    let files = std::fs::read_dir(&dir).unwrap().count() - 1;
    assert_eq!(files, cases, "corpus files without an expected.txt line");
}

/// A random JSON value, shallow, of every kind.
fn any_json() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
        proptest::collection::vec("\\PC{0,8}".prop_map(Value::from), 0..3).prop_map(Value::from),
        Just(json!({})),
    ]
}

/// Every JSON pointer inside `v`.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match v {
        Value::Object(m) => m.iter().for_each(|(k, c)| pointers(c, format!("{at}/{k}"), out)),
        Value::Array(a) => a.iter().enumerate().for_each(|(i, c)| pointers(c, format!("{at}/{i}"), out)),
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_configs_never_panic(edits in proptest::collection::vec((any::<prop::sample::Index>(), any_json()), 1..6)) {
        let mut config = valid_config();
        for (at, value) in edits {
            let mut all = Vec::new();
            pointers(&config, String::new(), &mut all);
            let target = all[at.index(all.len())].clone();
            if target.is_empty() {
                config = value;
            } else if let Some(slot) = config.pointer_mut(&target) {
                *slot = value;
            }
        }
        let b = Bundle::new("prop");
        if let Ok(plan) = b.load(config.to_string().as_bytes()) {
            assert_plan_sound(&plan);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let b = Bundle::new("bytes");
        if let Ok(plan) = b.load(&bytes) {
            assert_plan_sound(&plan);
        }
    }
}
