//! The command line: which command runs, and the top-level `--help` and
//! `--version`. Each command parses its own flags next to the code that
//! uses them (`get::parse`, `serve::parse`, …); the value parsers they share
//! live below every command, in `util::cli`.

pub mod bench;
pub mod get;
pub mod list;
mod pick;
pub mod ping;
pub mod serve;
pub mod sum;
pub mod ui;
pub mod verify;

use std::ffi::OsString;

use lexopt::prelude::*;

use crate::error::{Error, Result};
use crate::util::cli::{self, print_text, VERSION};

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
  -h, --help           show this help ('tcpfetch help <COMMAND>': a command's)
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
        Some(Short('h') | Long("help")) => return help(&mut parser),
        Some(Short('V') | Long("version")) => {
            no_more(&mut parser)?;
            return print_text(&format!("tcpfetch {VERSION}\n"));
        }
        Some(arg) => return Err(arg.unexpected().into()),
        None => return Err(Error::usage(format!("a command is needed\n\n{USAGE}"))),
    };
    match command.as_str() {
        "serve" => dispatch(
            "serve",
            serve::USAGE,
            serve::parse,
            crate::serve::run,
            parser,
        ),
        "get" => dispatch("get", get::USAGE, get::parse, get::run, parser),
        "list" => dispatch("list", list::USAGE, list::parse, list::run, parser),
        "ping" => dispatch("ping", ping::USAGE, ping::parse, ping::run, parser),
        "bench" => dispatch("bench", bench::USAGE, bench::parse, bench::run, parser),
        "sum" => dispatch("sum", sum::USAGE, sum::parse, sum::run, parser),
        "verify" => dispatch("verify", verify::USAGE, verify::parse, verify::run, parser),
        "ui" => dispatch("ui", ui::USAGE, ui::parse, ui::run, parser),
        "help" => help(&mut parser),
        other => Err(unknown(other)),
    }
}

/// Every command and its help text.
const COMMANDS: [(&str, &str); 8] = [
    ("serve", serve::USAGE),
    ("get", get::USAGE),
    ("list", list::USAGE),
    ("ping", ping::USAGE),
    ("bench", bench::USAGE),
    ("sum", sum::USAGE),
    ("verify", verify::USAGE),
    ("ui", ui::USAGE),
];

fn unknown(command: &str) -> Error {
    let names = COMMANDS.map(|(name, _)| name);
    let near =
        cli::nearest(command, &names).map_or_else(String::new, |c| format!("; did you mean {c}?"));
    // Named from COMMANDS, so a new command is listed where it is added.
    let [rest @ .., last] = names;
    Error::usage(format!(
        "unknown command '{command}'{near} (the commands are {} and {last})",
        rest.join(", ")
    ))
}

/// `tcpfetch help [COMMAND]` (and `--help [COMMAND]`): the command's own
/// help, as `tcpfetch COMMAND --help` prints it, as git and cargo do;
/// without one, the overview.
fn help(parser: &mut lexopt::Parser) -> Result<()> {
    let usage = match parser.next()? {
        None => USAGE,
        Some(Value(command)) => {
            let command = command.string()?;
            let (_, usage) = COMMANDS
                .into_iter()
                .find(|(name, _)| *name == command)
                .ok_or_else(|| unknown(&command))?;
            no_more(parser)?;
            usage
        }
        Some(arg) => return Err(arg.unexpected().into()),
    };
    print_text(usage)
}

/// Nothing may follow: a stray word after `--version` or `help COMMAND` is
/// an error, not silently dropped.
fn no_more(parser: &mut lexopt::Parser) -> Result<()> {
    match parser.next()? {
        None => Ok(()),
        Some(arg) => Err(arg.unexpected().into()),
    }
}

/// Parse a command's arguments and run it; `None` from `parse` means
/// `--help` or `--version` was asked for and has already been answered.
/// A usage error on the way names the command, so its hint is the
/// command's own `--help`.
fn dispatch<A>(
    command: &'static str,
    usage: &str,
    parse: fn(&mut lexopt::Parser) -> Result<Option<A>>,
    run: fn(A) -> Result<()>,
    mut parser: lexopt::Parser,
) -> Result<()> {
    parse(&mut parser)
        .and_then(|parsed| parsed.map_or(Ok(()), run))
        .map_err(|e| cli::in_command(command, usage, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_args(args: &[&str]) -> Result<()> {
        run(args.iter().map(OsString::from))
    }

    #[test]
    fn unknown_commands_and_flags_are_usage_errors() {
        for args in [&["frobnicate"][..], &["--bogus"], &[], &["get", "--ouput"]] {
            let err = run_args(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}: {err}");
        }
        let err = run_args(&["lsit"]).unwrap_err();
        assert!(err.to_string().contains("did you mean list?"), "{err}");
        let err = run_args(&["get", "h", "n", "--ouput", "x"]).unwrap_err();
        assert!(err.to_string().contains("did you mean --output?"), "{err}");
        assert_eq!(err.hint().as_deref(), Some("see 'tcpfetch get --help'"));
        for args in [
            &["help", "lsit"][..],
            &["help", "sum", "x"],
            &["--help", "--bogus"],
            &["--version", "x"],
        ] {
            let err = run_args(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}: {err}");
        }
        let err = run_args(&["help", "lsit"]).unwrap_err();
        assert!(err.to_string().contains("did you mean list?"), "{err}");
        assert!(
            err.to_string()
                .ends_with("(the commands are serve, get, list, ping, bench, sum, verify and ui)"),
            "{err}"
        );
    }
}
