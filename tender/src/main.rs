//! `tender`: command-line edge. Parses, dispatches, maps errors to exit status 1.
//!
//! `#![no_main]`: the C `main` below replaces std's runtime start-up, which would
//! read `/proc/self/maps` (main-thread stack guard), map a sigaltstack and install
//! SIGSEGV/SIGBUS handlers, and ignore SIGPIPE, all before any of our code and none
//! of it wanted here (the spt backend would only undo the handlers before the jump;
//! boot time is a benchmark target). What std's start-up did that we do need is
//! done by hand: fds 0-2 are made valid, and stdout is flushed at the end.
#![no_main]

use std::ffi::{c_char, c_int};
use std::io::Write;
use std::process::ExitCode;

use tender::cli::{self, Command};

/// The process entry, called by the C runtime. `std::env::args_os` works without
/// std's start-up on Linux (std captures argv from `.init_array`).
#[unsafe(no_mangle)]
extern "C" fn main(_argc: c_int, _argv: *const *const c_char) -> c_int {
    ensure_std_fds();
    close_inherited_fds();
    let code = tender_main();
    let _ = std::io::stdout().flush();
    if code == ExitCode::SUCCESS {
        0
    } else {
        1
    }
}

/// If fd 0, 1 or 2 is closed, opens /dev/null on it, as std's start-up does.
/// Otherwise the first file the tender opens could become fd 1, and the guest's
/// console writes (the filter allows `write(1, …)`) would land in a block device.
fn ensure_std_fds() {
    for fd in 0..=2 {
        // SAFETY: F_GETFD only queries the descriptor flags; no memory is passed.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
            // SAFETY: opens a NUL-terminated path; the lowest free fd is `fd`
            // itself (all lower ones are open), which is the point. The fd is
            // deliberately never closed.
            unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        }
    }
}

/// Closes every descriptor the caller leaked to us above stderr (a pipe, a socket): the
/// guest would hold it for its whole life, and a parent waiting for EOF on it would wait
/// as long. The tender's own descriptors (devices, epoll, timerfd) are opened later.
fn close_inherited_fds() {
    // SAFETY: nothing in this process owns a descriptor above 2 yet: this runs first in
    // `main`, before any file is opened (std's start-up, which we skip, opens none).
    unsafe { libc::close_range(3, u32::MAX, 0) };
}

fn tender_main() -> ExitCode {
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
                "tender {} (Solo5 guest ABI version {}; targets: spt, hvt)",
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
        Command::Run(opts) => match tender::run(opts) {
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
