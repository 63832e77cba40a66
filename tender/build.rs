//! Link settings of the `tender` executable only (not the library, its tests or
//! tender-oci), all for boot time (README "Benchmarks", boot):
//!
//! * `--symbol-ordering-file=boot-order.txt`: the functions an spt boot runs go first
//!   and together, so the boot faults in 5 windows of text instead of 13 and maps and
//!   unmaps ~150 fewer pages. Names missing from the build (stale list, debug build)
//!   are skipped silently (`--no-warn-symbol-ordering`); regenerate the list with
//!   `cargo xtask boot-order`.
//! * `-z pack-relative-relocs` (DT_RELR, glibc 2.36+): the static PIE's ~2000
//!   relative relocations take 1 KiB instead of 48, read at every start.
//!
//! Both are lld options: the linker of this toolchain (rust-lld, the default for
//! x86_64-unknown-linux-gnu since Rust 1.90; `.comment` of the binary says so).

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rerun-if-changed=boot-order.txt");
    println!("cargo:rustc-link-arg-bin=tender=-Wl,--symbol-ordering-file={dir}/boot-order.txt");
    println!("cargo:rustc-link-arg-bin=tender=-Wl,--no-warn-symbol-ordering");
    println!("cargo:rustc-link-arg-bin=tender=-Wl,-z,pack-relative-relocs");
}
