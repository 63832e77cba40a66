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
// liboci-cli's help for --log names another runtime.
#[command(mut_arg("log", |a| a.help("write errors to this file (default: stderr)")))]
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
    // A pod sandbox (pause container) and every verb on it: runc's (see delegate.rs).
    if let Some(id) = opts.cmd.delegated(&root) {
        let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
        let e = tender_oci::delegate::exec_runc(id, &root, &args);
        fail(&mut log, opts.global.log.is_some(), &e.to_string());
        return ExitCode::FAILURE;
    }
    match commands::dispatch(opts.cmd, &root, &mut log) {
        Ok(code) => code,
        Err(e) => {
            fail(&mut log, opts.global.log.is_some(), &commands::message(&e));
            ExitCode::FAILURE
        }
    }
}

/// Reports an error as runc does: to the log and, when the log is a file, on stderr too.
/// containerd's shim (go-runc) reads the error of `kill`, `delete`, … from the output: it
/// tells "container not running" or "does not exist" (fine after an exit) from a failure
/// by that text, and an error without it fails CRI's handling of a container's exit.
fn fail(log: &mut Logger, log_is_file: bool, msg: &str) {
    log.error(msg);
    if log_is_file {
        eprintln!("{msg}");
    }
}
