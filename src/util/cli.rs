//! The small command-line pieces every command shares: `--help` and
//! `--version` inside a command, flag values as strings, numbers and
//! seconds, and printing on a stdout that may be closed (`| head`).

use std::num::NonZeroUsize;
use std::time::Duration;

use lexopt::prelude::*;

use crate::error::{Error, Result};

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

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
            Err(Error::local("cannot write to stdout", e))
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

/// A flag's value as a count from 1 to `max` (`--jobs`).
pub fn count_value(parser: &mut lexopt::Parser, flag: &str, max: usize) -> Result<NonZeroUsize> {
    let n: usize = number_value(parser, flag)?;
    match NonZeroUsize::new(n) {
        Some(count) if n <= max => Ok(count),
        _ => Err(Error::usage(format!(
            "{flag} needs a number from 1 to {max}, not '{n}'"
        ))),
    }
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
