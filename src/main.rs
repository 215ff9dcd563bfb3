//! tcpfetch: move files over plain TCP and prove they arrived intact.
//!
//! `main` parses the command line, runs one command, and is the only place
//! that turns an [`error::Error`] into a message and an exit status.

mod access;
mod auth;
mod bench;
mod cli;
mod client;
mod digest;
mod error;
mod files;
mod format;
mod get;
mod hex;
mod histogram;
mod legacy;
mod limits;
mod list;
mod manifest;
mod mirror;
mod pace;
mod ping;
mod progress;
mod protocol;
mod server;
mod sum;
mod ui;
mod verify;

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::run(std::env::args_os().skip(1)) {
        Ok(()) => ExitCode::SUCCESS,
        // `Reported` has nothing left to say (see `sum` and `verify`).
        Err(err @ error::Error::Reported { .. }) => ExitCode::from(err.exit_code() as u8),
        Err(err) => {
            let mut stderr = std::io::stderr().lock();
            let _ = writeln!(stderr, "tcpfetch: {err}");
            if let Some(hint) = err.hint() {
                let _ = writeln!(stderr, "tcpfetch: {hint}");
            }
            ExitCode::from(err.exit_code() as u8)
        }
    }
}
