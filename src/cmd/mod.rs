//! The command line: which command runs, and the top-level `--help` and
//! `--version`. Each command parses its own flags next to the code that
//! uses them (`get::parse`, `serve::parse`, …); the value parsers they share
//! live below every command, in `util::cli`.

pub mod bench;
pub mod get;
pub mod list;
pub mod ping;
pub mod serve;
pub mod sum;
pub mod ui;
pub mod verify;

use std::ffi::OsString;

use lexopt::prelude::*;

use crate::error::{Error, Result};
use crate::util::cli::{print_text, VERSION};

const USAGE: &str = "\
tcpfetch: move files over plain TCP and prove they arrived intact

Usage: tcpfetch <COMMAND> [ARGS]

Commands:
  serve [DIR]          serve the files under DIR (default .) on port 1236
  get ADDR [NAME]      download NAME, verified against its SHA-256
  list ADDR            list the files a server offers
  ping ADDR            check that a tcpfetch server answers, and how fast
  bench ADDR NAME...   load-test a server with many concurrent clients
  sum [FILE...]        print SHA-256 sums, exactly as sha256sum does
  verify -c SHA256SUMS check files against a manifest, as sha256sum -c does
  verify FILE --sha256 HEX
                       check one file against one digest
  ui                   a browser page: test, download from, load-test a server

Options:
  -h, --help           show this help (also 'tcpfetch <COMMAND> --help')
  -V, --version        show the version

ADDR is HOST[:PORT], IP[:PORT] or [IPv6]:PORT; the port defaults to 1236.

Exit status: 0 success, 1 failure (connect, not found, forbidden, busy,
timeout, I/O), 2 usage error, 3 integrity failure (a digest did not match).
";

/// Parse the arguments after the program name and run the command.
pub fn run(args: impl IntoIterator<Item = OsString>) -> Result<()> {
    let mut parser = lexopt::Parser::from_args(args);
    let command = match parser.next()? {
        Some(Value(cmd)) => cmd.string()?,
        Some(Short('h') | Long("help")) => return print_text(USAGE),
        Some(Short('V') | Long("version")) => return print_text(&format!("tcpfetch {VERSION}\n")),
        Some(arg) => return Err(arg.unexpected().into()),
        None => return Err(Error::usage(format!("a command is needed\n\n{USAGE}"))),
    };
    match command.as_str() {
        "serve" => dispatch(crate::cmd::serve::parse(&mut parser)?, crate::serve::run),
        "get" => dispatch(crate::cmd::get::parse(&mut parser)?, crate::cmd::get::run),
        "list" => dispatch(crate::cmd::list::parse(&mut parser)?, crate::cmd::list::run),
        "ping" => dispatch(crate::cmd::ping::parse(&mut parser)?, crate::cmd::ping::run),
        "bench" => dispatch(crate::cmd::bench::parse(&mut parser)?, crate::cmd::bench::run),
        "sum" => dispatch(crate::cmd::sum::parse(&mut parser)?, crate::cmd::sum::run),
        "verify" => dispatch(crate::cmd::verify::parse(&mut parser)?, crate::cmd::verify::run),
        "ui" => dispatch(crate::cmd::ui::parse(&mut parser)?, crate::cmd::ui::run),
        "help" => print_text(USAGE),
        other => Err(Error::usage(format!(
            "unknown command '{other}'; the commands are serve, get, list, ping, bench, sum, verify and ui"
        ))),
    }
}

/// Run a command whose arguments parsed; `None` means `--help` or
/// `--version` was asked for and has already been answered.
fn dispatch<A>(parsed: Option<A>, run: fn(A) -> Result<()>) -> Result<()> {
    parsed.map_or(Ok(()), run)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_args(args: &[&str]) -> Result<()> {
        run(args.iter().map(OsString::from))
    }

    #[test]
    fn unknown_commands_and_flags_are_usage_errors() {
        for args in [&["frobnicate"][..], &["--bogus"], &[]] {
            let err = run_args(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}: {err}");
        }
    }
}
