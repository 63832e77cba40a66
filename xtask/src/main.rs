//! `cargo xtask TASK`: thin wrapper around the xtask library.
//!
//! * `guests [--release]`: build the test guests into `target/guests/NAME.spt` and `NAME.hvt`.
//! * `clippy-guests`: clippy over the guests workspace for both targets, warnings
//!   denied, lockfile checked (`.ci/run` calls this).

use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask guests [--release] | clippy-guests";

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
        _ => usage(),
    }
}

fn usage() -> ExitCode {
    eprintln!("{USAGE}");
    ExitCode::from(2)
}
