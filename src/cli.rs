//! The command line: which command runs, `--help` and `--version`, and the
//! small value parsers every command shares. Each command parses its own
//! flags next to the code that uses them (`get::parse`, `server::parse`, …).

use std::ffi::OsString;
use std::time::Duration;

use lexopt::prelude::*;

use crate::error::{Error, Result};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The port a server listens on and a client connects to by default.
pub const DEFAULT_PORT: u16 = 1236;

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
        "serve" => dispatch(crate::server::parse(&mut parser)?, crate::server::run),
        "get" => dispatch(crate::get::parse(&mut parser)?, crate::get::run),
        "list" => dispatch(crate::list::parse(&mut parser)?, crate::list::run),
        "ping" => dispatch(crate::ping::parse(&mut parser)?, crate::ping::run),
        "bench" => dispatch(crate::bench::parse(&mut parser)?, crate::bench::run),
        "sum" => dispatch(crate::sum::parse(&mut parser)?, crate::sum::run),
        "verify" => dispatch(crate::verify::parse(&mut parser)?, crate::verify::run),
        "ui" => dispatch(crate::ui::parse(&mut parser)?, crate::ui::run),
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

/// Print help or version text. A closed stdout (`| head`) is not an error.
pub fn print_text(text: &str) -> Result<()> {
    print_bytes(text.as_bytes())
}

/// Print raw bytes on stdout; a closed stdout is not an error.
pub fn print_bytes(bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(Error::io("cannot write to stdout", e))
        }
        _ => Ok(()),
    }
}

/// `--help` and `--version` inside a command: `Some(result)` when the
/// argument was one of them and has been answered.
pub fn common_flag(arg: &lexopt::Arg<'_>, usage: &str) -> Option<Result<()>> {
    match arg {
        Short('h') | Long("help") => Some(print_text(usage)),
        Short('V') | Long("version") => Some(print_text(&format!("tcpfetch {VERSION}\n"))),
        _ => None,
    }
}

/// A flag's value as a UTF-8 string.
pub fn string_value(parser: &mut lexopt::Parser) -> Result<String> {
    Ok(parser.value()?.string()?)
}

/// A flag's value as a number, with the flag named in the error.
pub fn number_value<T: std::str::FromStr>(parser: &mut lexopt::Parser, flag: &str) -> Result<T> {
    let text = string_value(parser)?;
    text.parse()
        .map_err(|_| Error::usage(format!("{flag} needs a number, not '{text}'")))
}

/// A flag's value as a positive number of (possibly fractional) seconds.
pub fn seconds_value(parser: &mut lexopt::Parser, flag: &str) -> Result<Duration> {
    let secs: f64 = number_value(parser, flag)?;
    if !(secs > 0.0 && secs < 1e9) {
        return Err(Error::usage(format!(
            "{flag} needs a positive number of seconds"
        )));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A positional argument that must be present.
pub fn required(value: Option<String>, what: &str, usage: &str) -> Result<String> {
    value.ok_or_else(|| Error::usage(format!("missing {what}\n\n{usage}")))
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

    #[test]
    fn numbers_and_seconds_name_their_flag() {
        let mut p = lexopt::Parser::from_args(["--n", "x"]);
        p.next().unwrap();
        let err = number_value::<u32>(&mut p, "--n").unwrap_err();
        assert!(err.to_string().contains("--n needs a number"));
        let mut p = lexopt::Parser::from_args(["--t", "0"]);
        p.next().unwrap();
        assert!(seconds_value(&mut p, "--t").is_err());
        let mut p = lexopt::Parser::from_args(["--t", "0.5"]);
        p.next().unwrap();
        assert_eq!(
            seconds_value(&mut p, "--t").unwrap(),
            Duration::from_millis(500)
        );
    }
}
