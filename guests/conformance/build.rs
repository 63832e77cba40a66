//! Links every guest with solo5-rt's linker script (layout at 0x100000, one
//! PT_NOTE per Solo5 note, PT_INTERP first). cargo does not track linker
//! scripts, hence the rerun-if-changed. `entry_state` (spt) enters at its own
//! code, which stores the registers before solo5-rt's `_start` runs.

fn main() {
    let script = std::env::var("DEP_SOLO5_RT_LINKER_SCRIPT").expect("solo5-rt publishes its linker script");
    println!("cargo::rerun-if-changed={script}");
    println!("cargo::rustc-link-arg-bins=-T{script}");
    if std::env::var_os("CARGO_FEATURE_SPT").is_some() {
        println!("cargo::rustc-link-arg-bin=entry_state=--entry=entry_state_start");
    }
}
