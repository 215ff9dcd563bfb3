//! tcpfetch: move files over plain TCP and prove they arrived intact.
//!
//! `main` parses the command line, runs one command, and is the only place
//! that turns an [`error::Error`] into a message and an exit status.

#![deny(unsafe_code)]

mod bench;
mod client;
mod cmd;
mod digest;
mod error;
mod fetch;
mod proto;
mod secret;
mod serve;
mod sys;
mod ui;
mod util;

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    // A write past `ulimit -f` then fails with a message instead of killing
    // us silently; should the call fail, the default is all we lose.
    let _ = sys::ignore_file_size_signal();
    match cmd::run(std::env::args_os().skip(1)) {
        Ok(()) => ExitCode::SUCCESS,
        // `Reported` has nothing left to say (see `sum` and `verify`).
        Err(err @ error::Error::Reported(_)) => ExitCode::from(err.exit_code()),
        Err(err) => {
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(stderr, "tcpfetch: {err}");
            if let Some(hint) = err.hint() {
                let _ = writeln!(stderr, "tcpfetch: {hint}");
            }
            ExitCode::from(err.exit_code())
        }
    }
}
