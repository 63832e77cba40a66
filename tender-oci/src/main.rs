//! `tender-oci`: the command-line edge. Parses runc's command line (youki's `liboci-cli`
//! structs), dispatches to one `commands::VERB`, and reports errors as runc does: to the
//! `--log` file (JSON lines with `--log-format json`), exit status 1.

mod commands;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tender_oci::logging::Logger;

/// An OCI runtime for Solo5 unikernel images. `process.args[0]` names the unikernel in
/// the image; the tender runs it, in the container's namespaces and cgroups.
#[derive(Parser, Debug)]
#[command(name = "tender-oci", version)]
struct Opts {
    #[command(flatten)]
    global: liboci_cli::GlobalOpts,
    #[command(subcommand)]
    cmd: commands::Cmd,
}

fn main() -> ExitCode {
    let opts = Opts::parse();
    let root = opts.global.root.clone().unwrap_or_else(|| PathBuf::from(tender_oci::DEFAULT_ROOT));
    let mut log = Logger::new(opts.global.log.as_deref(), opts.global.log_format.as_deref());
    match commands::dispatch(opts.cmd, &root, &mut log) {
        Ok(code) => code,
        Err(e) => {
            log.error(&commands::message(&e));
            ExitCode::FAILURE
        }
    }
}
