//! Publishes the path of the guest linker script to the packages that build guests.
//!
//! A library's `rustc-link-arg` does not reach its dependents' binaries, so each
//! guest package has a two-line build.rs that reads `DEP_SOLO5_RT_LINKER_SCRIPT`
//! and passes `-T<path>` itself. The `hvt` feature selects the hvt layout.

use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let hvt = std::env::var_os("CARGO_FEATURE_HVT").is_some();
    let script = dir.join(if hvt { "hvt.lds" } else { "spt.lds" });
    println!("cargo::rerun-if-changed={}", script.display());
    println!("cargo::metadata=linker_script={}", script.display());
}
