//! `cargo xtask TASK`: thin wrapper around the xtask library.
//!
//! * `guests [--release]`: build the test guests into `target/guests/NAME.spt` and `NAME.hvt`.
//! * `clippy-guests`: clippy over the guests workspace for both targets, warnings
//!   denied, lockfile checked (`.ci/run` calls this).
//! * `boot-order [--check]`: trace an spt boot of the release tender and write the
//!   functions it runs to `tender/boot-order.txt` (see `xtask/src/boot_order.rs`);
//!   `--check` only verifies that the release tender defines them (`.ci/run`).

use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask guests [--release] | clippy-guests | boot-order [--check]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let root = xtask::repo_root();
    match args.as_slice() {
        ["guests", rest @ ..] => {
            let profile = match rest {
                [] => xtask::Profile::Dev,
                ["--release"] => xtask::Profile::Release,
                _ => return usage(),
            };
            match xtask::build_guests(&root, profile) {
                Ok(paths) => {
                    for p in paths {
                        println!("{}", p.display());
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("xtask: {e}");
                    let mut source = std::error::Error::source(&e);
                    while let Some(s) = source {
                        eprintln!("  caused by: {s}");
                        source = s.source();
                    }
                    ExitCode::FAILURE
                }
            }
        }
        ["clippy-guests"] => {
            // Once per target: each selects other code (solo5-rt's platform) and guests.
            for target in xtask::Target::ALL {
                match xtask::clippy_guests_cmd(&root, target).status() {
                    Ok(s) if s.success() => {}
                    Ok(_) => return ExitCode::FAILURE,
                    Err(e) => {
                        eprintln!("xtask: cannot run cargo clippy: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            }
            ExitCode::SUCCESS
        }
        ["boot-order", "--check"] => match check_boot_order(&root) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("xtask: boot-order --check: {e}");
                ExitCode::FAILURE
            }
        },
        ["boot-order"] => match boot_order(&root) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("xtask: boot-order: {e}");
                ExitCode::FAILURE
            }
        },
        _ => usage(),
    }
}

/// Where `cargo build --release` puts the tender.
const RELEASE_TENDER: &str = "target/x86_64-unknown-linux-gnu/release/tender";

/// `cargo build --release`, as README's first command: the whole workspace, because
/// the mangled names differ with the set of packages built (features of the
/// proc-macros the tender's dependencies use unify across it).
fn build_release(root: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let status = std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["build", "--release", "--quiet"])
        .current_dir(root)
        .status()?;
    if !status.success() {
        return Err(format!("cargo build --release: {status}").into());
    }
    Ok(())
}

/// Fails when the release tender lacks more than a tenth of the listed functions: the
/// list went stale (toolchain or dependency bump) and boots lost their speed-up.
fn check_boot_order(root: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    build_release(root)?;
    let text = std::fs::read_to_string(root.join("tender/boot-order.txt"))?;
    let names = xtask::boot_order::parse(&text);
    let found = xtask::boot_order::present(&std::fs::read(root.join(RELEASE_TENDER))?, &names)?;
    println!("tender/boot-order.txt: {found} of {} functions are in {RELEASE_TENDER}", names.len());
    if found * 10 < names.len() * 9 {
        return Err("the list is stale: run `cargo xtask boot-order` and commit tender/boot-order.txt".into());
    }
    Ok(())
}

/// Builds the release tender and guests, traces `tender --mem=2 hello.spt` and writes
/// `tender/boot-order.txt`.
fn boot_order(root: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    build_release(root)?;
    xtask::build_guests(root, xtask::Profile::Release)?;
    let tender = root.join(RELEASE_TENDER);
    let hello = root.join("target/guests/hello.spt");
    let hello = hello.to_str().ok_or("non-UTF-8 path")?;
    eprintln!("xtask: single-stepping {} --mem=2 {hello} (about 30 s)", tender.display());
    let order = xtask::boot_order::trace(&tender, &["--mem=2", hello])?;
    let out = root.join("tender/boot-order.txt");
    std::fs::write(&out, xtask::boot_order::render(&order))?;
    println!("{}: {} functions", out.display(), order.len());
    Ok(())
}

fn usage() -> ExitCode {
    eprintln!("{USAGE}");
    ExitCode::from(2)
}
