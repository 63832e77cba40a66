//! `cargo xtask TASK`: thin wrapper around the xtask library.
//!
//! * `guests [--release]`: build the test guests into `target/guests/NAME.spt`.
//! * `clippy-guests`: clippy over the guests workspace, warnings denied, lockfile
//!   checked (`.ci/run` calls this).

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
            let mut cmd = xtask::guests_cargo(&root);
            cmd.args(["clippy", "--locked", "--workspace", "--all-targets", "--target", xtask::GUEST_TARGET])
                .arg("--target-dir")
                .arg(xtask::guest_build_dir(&root))
                .args(["--", "-D", "warnings"]);
            match cmd.status() {
                Ok(s) if s.success() => ExitCode::SUCCESS,
                Ok(_) => ExitCode::FAILURE,
                Err(e) => {
                    eprintln!("xtask: cannot run cargo clippy: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        _ => usage(),
    }
}

fn usage() -> ExitCode {
    eprintln!("{USAGE}");
    ExitCode::from(2)
}
