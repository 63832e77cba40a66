//! Publishes the path of the guest linker script to the packages that build guests.
//!
//! A library's `rustc-link-arg` does not reach its dependents' binaries, so each
//! guest package has a two-line build.rs that reads `DEP_SOLO5_RT_LINKER_SCRIPT`
//! and passes `-T<path>` itself.

use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    // Later, an `hvt` feature selects an hvt script here (text X, rodata R, no SSE).
    let script = dir.join("spt.lds");
    println!("cargo::rerun-if-changed={}", script.display());
    println!("cargo::metadata=linker_script={}", script.display());
}
