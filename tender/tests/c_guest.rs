//! A guest that shares no code with ours: C, built by gcc against the ABI as
//! docs/solo5-abi.md writes it down (tests/c-guest/), as Solo5's own guests are built with
//! their C bindings. It must run exactly like Solo5's test_hello and test_globals.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{have, require, run_tender, Scratch};

fn build_c_guest(scratch: &Scratch) -> Option<PathBuf> {
    if !require("gcc", have("gcc")) {
        return None;
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/c-guest");
    let out = scratch.0.join("c_hello.spt");
    let status = Command::new("gcc")
        .args(["-O2", "-fno-builtin", "-static", "-nostdlib", "-nostartfiles", "-no-pie", "-fno-pic"])
        .args(["-fno-stack-protector", "-fno-asynchronous-unwind-tables", "-mno-red-zone"])
        .args(["-Wl,--build-id=none", "-Wl,-T"])
        .arg(dir.join("spt.lds"))
        .arg("-o")
        .arg(&out)
        .arg(dir.join("hello.c"))
        .status()
        .expect("gcc runs");
    assert!(status.success(), "gcc failed to build the C guest");
    Some(out)
}

#[test]
fn c_guest_built_from_the_spec_runs_like_solo5_test_hello() {
    let scratch = Scratch::new("cguest");
    let Some(guest) = build_c_guest(&scratch) else { return };
    let g = guest.to_str().unwrap();
    run_tender(&["--mem=2", g, "Hello_Solo5"]).expect(0, &["c-guest: command line: Hello_Solo5\n", "SUCCESS\n"]);
    let other = run_tender(&["--mem=2", g, "something", "else"]);
    other.expect(0, &["c-guest: command line: something else\n"]);
    assert!(!other.stdout().contains("SUCCESS"), "{}", other.stdout());
    run_tender(&["inspect", g]).expect(0, &["solo5-spt", "devices:     none"]);
}
