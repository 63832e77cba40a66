//! Builds the boot benchmark's floor, `native/hello.c`, as a static binary
//! (`cc -static`) into `$OUT_DIR/native-hello`. Without a C compiler or a static
//! libc the benchmark prints why and skips that row; nothing else depends on it.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("native-hello");
    println!("cargo::rerun-if-changed=native/hello.c");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let built = Command::new(&cc)
        .args(["-O2", "-static", "-o"])
        .arg(&out)
        .arg("native/hello.c")
        .status()
        .is_ok_and(|s| s.success());
    if !built {
        let _ = std::fs::remove_file(&out);
        println!(
            "cargo::warning=could not build native/hello.c with `{cc} -static`: the boot benchmark will skip its floor"
        );
    }
}
