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
    number_and_text(parser, flag).map(|(n, _)| n)
}

/// A flag's value as a number, and as typed (for a range error).
fn number_and_text<T: std::str::FromStr>(
    parser: &mut lexopt::Parser,
    flag: &str,
) -> Result<(T, String)> {
    let text = string_value(parser)?;
    match text.parse() {
        Ok(n) => Ok((n, text)),
        Err(_) => Err(Error::usage(format!("{flag} needs a number, not '{text}'"))),
    }
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

/// A flag's value as a number of (possibly fractional) seconds, from a
/// millisecond: a smaller one, such as `1e-10`, became a zero Duration,
/// which a socket takes as no timeout at all.
pub fn seconds_value(parser: &mut lexopt::Parser, flag: &str) -> Result<Duration> {
    let (secs, text): (f64, _) = number_and_text(parser, flag)?;
    // Both bounds are said: '1e9' is positive, and was refused as if not.
    if !(0.001..=MAX_SECONDS).contains(&secs) {
        return Err(Error::usage(format!(
            "{flag} needs a number of seconds from 0.001 to {MAX_SECONDS}, not '{text}'"
        )));
    }
    Ok(Duration::from_secs_f64(secs))
}

const MAX_SECONDS: f64 = 999_999_999.0;

/// A positional argument that must be present; without it, the error
/// names it and shows the command's usage line (not the whole help).
pub fn required(value: Option<String>, what: &str, usage: &str) -> Result<String> {
    value.ok_or_else(|| missing(what, usage))
}

/// `missing WHAT`, then the command's short usage line.
pub fn missing(what: &str, usage: &str) -> Error {
    Error::usage(format!("missing {what}\n{}", usage_lines(usage)))
}

/// The `Usage:` lines at the top of a command's help text.
pub fn usage_lines(usage: &str) -> String {
    usage
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// A usage error inside `command`: it names the command (its hint is
/// `tcpfetch COMMAND --help`), and an unknown option gets the nearest one
/// in the command's help text suggested.
pub fn in_command(command: &'static str, usage: &str, err: Error) -> Error {
    let Error::Usage(message) = err else {
        return err;
    };
    let typed = message
        .strip_prefix("invalid option '")
        .and_then(|rest| rest.strip_suffix('\''));
    let message = match typed.and_then(|t| nearest(t, &options(usage))) {
        Some(near) => format!("{message}; did you mean {near}?"),
        None => message,
    };
    Error::CommandUsage { command, message }
}

/// Every `--flag` a help text mentions, once each.
pub fn options(usage: &str) -> Vec<&str> {
    let mut found: Vec<&str> = Vec::new();
    for word in usage.split(|c: char| c.is_whitespace() || "[]|,()=".contains(c)) {
        let flag = word.trim_end_matches(['.', ':', ';', '\'', '?']);
        let named = flag.len() > 2
            && flag[2..]
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if flag.starts_with("--") && named && !found.contains(&flag) {
            found.push(flag);
        }
    }
    found
}

/// The candidate closest to `typed`, when it is close enough to be what
/// was meant: a few edits away (about one in three characters), or typed
/// as the start of it.
pub fn nearest<'a>(typed: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let mut starting = candidates
        .iter()
        .filter(|c| typed.len() > 3 && c.starts_with(typed));
    if let (Some(only), None) = (starting.next(), starting.next()) {
        return Some(only);
    }
    let (best, distance) = candidates
        .iter()
        .map(|c| (*c, edit_distance(typed, c)))
        .min_by_key(|(_, d)| *d)?;
    (distance <= (typed.len() / 3).max(1)).then_some(best)
}

/// Levenshtein distance, counting a swap of two neighbours as one edit.
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = d;
        }
    }
    rows[a.len()][b.len()]
}

/// A directory given on the command line (`get -o DIR/`, `ui --dir`) must
/// exist and be one. A path that is wrong on this machine is a failure
/// (exit 1), as any other local failure, not a usage error: the command
/// line itself was well formed.
pub fn existing_dir(flag: &str, path: &std::path::Path) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(Error::Other(format!(
            "{flag} {}: not a directory",
            path.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::Other(format!(
            "{flag} {}: no such directory",
            path.display()
        ))),
        Err(e) => Err(Error::local(format!("{flag} {}", path.display()), e)),
    }
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

    #[test]
    fn typos_get_the_nearest_flag_of_the_help_text() {
        let usage = "Usage: x [--json | --sha256sums]\n  -o, --output PATH  (see --output)\n  --key-file FILE\n";
        assert_eq!(
            options(usage),
            ["--json", "--sha256sums", "--output", "--key-file"]
        );
        let flags = options(usage);
        assert_eq!(nearest("--ouput", &flags), Some("--output"));
        assert_eq!(nearest("--outptu", &flags), Some("--output"));
        assert_eq!(nearest("--jsno", &flags), Some("--json"));
        assert_eq!(nearest("--key", &flags), Some("--key-file"));
        assert_eq!(nearest("--frobnicate", &flags), None);
        let err = in_command("list", usage, Error::usage("invalid option '--jsn'"));
        assert_eq!(
            err.to_string(),
            "invalid option '--jsn'; did you mean --json?"
        );
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn missing_arguments_show_only_the_usage_lines() {
        let usage = "Usage: tcpfetch get ADDR\n       tcpfetch get --all\n\nLong text.\n";
        let err = missing("ADDR", usage);
        assert_eq!(
            err.to_string(),
            "missing ADDR\nUsage: tcpfetch get ADDR\n       tcpfetch get --all"
        );
    }
}
