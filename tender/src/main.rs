//! `tender`: command-line edge. Parses, dispatches, maps errors to exit status 1.

use std::io::Write;
use std::process::ExitCode;

use tender::cli::{self, Command};

fn main() -> ExitCode {
    let command = match cli::parse(std::env::args_os().skip(1)) {
        Ok(command) => command,
        Err(e) => return fail(&tender::TenderError::Cli(e)),
    };
    match command {
        Command::Help => {
            print!("{}", cli::usage());
            ExitCode::SUCCESS
        }
        Command::Version => {
            println!(
                "tender {} (Solo5 guest ABI version {}; targets: spt)",
                env!("CARGO_PKG_VERSION"),
                hypercall_abi::elf::ABI_VERSION
            );
            ExitCode::SUCCESS
        }
        Command::Inspect(path) => match tender::load_guest(&path, cli::DEFAULT_MEM_MIB << 20) {
            Ok((_, image)) => {
                print!("{}", tender::inspect::describe(&image));
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        },
        Command::Audit(opts) => match tender::audit(&opts) {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        },
        Command::Run(opts) => match tender::run(&opts) {
            Err(e) => fail(&e),
        },
    }
}

fn fail(e: &tender::TenderError) -> ExitCode {
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "tender: {e}");
    if e.wants_usage() {
        let _ = write!(stderr, "\n{}", cli::usage());
    }
    ExitCode::FAILURE
}
