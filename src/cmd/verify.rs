//! `tcpfetch verify`: check files against a `SHA256SUMS` manifest with the
//! output of coreutils `sha256sum -c` (9.1), or one file against one digest.
//!
//! The only deliberate difference from coreutils is the exit status: 3 when
//! any file did not match or could not be read, as everywhere in tcpfetch,
//! where `sha256sum -c` says 1.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::num::NonZeroUsize;
use std::os::unix::ffi::OsStrExt;

use lexopt::prelude::*;

use crate::digest::coreutils::{quote, report_file_error, strerror};
use crate::digest::manifest::{self, Line};
use crate::digest::parallel::{self, Job};
use crate::digest::{self, Reading};
use crate::error::{Error, ExitKind, Result};
use crate::util::cli;
use crate::util::hex::{self, Digest};

pub const USAGE: &str = "\
Usage: tcpfetch verify -c SHA256SUMS [OPTIONS]
       tcpfetch verify FILE --sha256 HEX [OPTIONS]

Check files against a SHA256SUMS manifest (as made by 'tcpfetch sum' or
'sha256sum'; '-' reads it from standard input), printing what
'sha256sum -c' prints: 'NAME: OK', 'NAME: FAILED', 'NAME: FAILED open or
read', then warnings on stderr. Text, binary (*), escaped and BSD-tagged
lines are read; malformed lines are counted, not fatal. The second form
checks one FILE against one digest.

Options:
  -c, --check FILE  the manifest to check against
  --sha256 HEX      the digest FILE must have
  --quiet           don't print OK for each file that matched
  --status          print nothing on stdout; the exit status tells
  --jobs N          hash N files at once (default: the number of cores);
                    the output is the same, in manifest order
  -h, --help        show this help

Exit status: 0 every file matched, 1 the manifest could not be read or has
no checksum line, 2 usage error, 3 a file did not match or could not be read.
";

#[derive(Debug)]
pub struct Args {
    pub check: Check,
    pub quiet: bool,
    pub status: bool,
    /// `None`: one per core.
    pub jobs: Option<NonZeroUsize>,
}

#[derive(Debug, PartialEq)]
pub enum Check {
    /// Every entry of this manifest (`-` for stdin).
    Manifest(OsString),
    /// One file against one digest.
    One { file: OsString, digest: Digest },
}

pub fn parse(parser: &mut lexopt::Parser) -> Result<Option<Args>> {
    let mut manifest = None;
    let mut digest = None;
    let mut file = None;
    let (mut quiet, mut status) = (false, false);
    let mut jobs = None;
    while let Some(arg) = parser.next()? {
        if let Some(done) = cli::common_flag(&arg, USAGE) {
            return done.map(|()| None);
        }
        match arg {
            Short('c') | Long("check") if manifest.is_none() => manifest = Some(parser.value()?),
            Long("sha256") if digest.is_none() => {
                let text = cli::string_value(parser)?;
                let d = hex::decode_digest(text.trim()).ok_or_else(|| {
                    Error::usage(format!("--sha256 needs 64 hex digits, not '{text}'"))
                })?;
                digest = Some(d);
            }
            Long("quiet") => quiet = true,
            Long("status") => status = true,
            Long("jobs") => jobs = Some(cli::count_value(parser, "--jobs", parallel::MAX_JOBS)?),
            Value(v) if file.is_none() => file = Some(v),
            _ => return Err(arg.unexpected().into()),
        }
    }
    let check = match (manifest, file, digest) {
        (Some(m), None, None) => Check::Manifest(m),
        (None, Some(file), Some(digest)) => Check::One { file, digest },
        (None, Some(_), None) => {
            return Err(Error::usage(format!(
                "FILE needs --sha256 HEX (or use -c SHA256SUMS)\n\n{USAGE}"
            )))
        }
        (None, None, _) => {
            return Err(Error::usage(format!(
                "missing -c SHA256SUMS or FILE --sha256 HEX\n\n{USAGE}"
            )))
        }
        (Some(_), _, _) => {
            return Err(Error::usage(
                "-c checks a manifest; FILE --sha256 checks one file: use one or the other",
            ))
        }
    };
    Ok(Some(Args {
        check,
        quiet,
        status,
        jobs,
    }))
}

pub fn run(args: Args) -> Result<()> {
    let jobs = args.jobs.unwrap_or_else(parallel::default_jobs);
    let mut checker = Checker {
        out: io::stdout().lock(),
        quiet: args.quiet,
        status: args.status,
        tally: Tally::default(),
    };
    let result = match &args.check {
        Check::Manifest(path) => {
            let from_stdin = path == "-";
            let input: Box<dyn BufRead> = if from_stdin {
                Box::new(io::stdin().lock())
            } else {
                let file = File::open(path).map_err(|e| {
                    Error::Other(format!("{}: {}", quote(path.as_bytes()), strerror(&e)))
                })?;
                Box::new(BufReader::new(file))
            };
            checker.entries(manifest::Reader::new(input), from_stdin, jobs)
        }
        Check::One { file, digest } => {
            let reading = parallel::reading(jobs, 1);
            checker.report(check(file.as_bytes().to_vec(), *digest, reading))
        }
    };
    // A reader that went away (`| head`) cut the report short: never
    // report success for checks nobody saw finish.
    match result.and_then(|()| checker.out.flush()) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
            return Err(Error::Reported(ExitKind::Failure))
        }
        Err(e) => return Err(Error::local("cannot write to stdout", e)),
    }
    let tally = &checker.tally;
    if let Check::Manifest(path) = &args.check {
        if tally.read_error {
            return Err(Error::Other(format!(
                "{}: read error",
                manifest_name(path.as_bytes())
            )));
        }
        if tally.entries == 0 {
            return Err(Error::Other(format!(
                "{}: no properly formatted checksum lines found",
                manifest_name(path.as_bytes())
            )));
        }
        if !args.status {
            for warning in tally.warnings() {
                eprintln!("tcpfetch: WARNING: {warning}");
            }
        }
    }
    if tally.mismatched > 0 || tally.unreadable > 0 {
        return Err(Error::Reported(ExitKind::Integrity));
    }
    Ok(())
}

/// What was seen so far.
#[derive(Debug, Default)]
struct Tally {
    entries: u64,
    malformed: u64,
    unreadable: u64,
    mismatched: u64,
    /// The manifest itself could not be read to the end.
    read_error: bool,
}

impl Tally {
    /// The closing warnings of `sha256sum -c`, in its order and words.
    fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let plural =
            |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
        if self.malformed > 0 {
            out.push(plural(
                self.malformed,
                "line is improperly formatted",
                "lines are improperly formatted",
            ));
        }
        if self.unreadable > 0 {
            out.push(plural(
                self.unreadable,
                "listed file could not be read",
                "listed files could not be read",
            ));
        }
        if self.mismatched > 0 {
            out.push(plural(
                self.mismatched,
                "computed checksum did NOT match",
                "computed checksums did NOT match",
            ));
        }
        out
    }
}

/// One file checked: its name, the digest it should have and what
/// hashing it gave.
struct Outcome {
    name: Vec<u8>,
    want: Digest,
    got: io::Result<Digest>,
}

fn check(name: Vec<u8>, want: Digest, reading: Reading) -> Outcome {
    let got = digest::hash_named(&name, reading);
    Outcome { name, want, got }
}

struct Checker<W> {
    out: W,
    quiet: bool,
    status: bool,
    tally: Tally,
}

impl<W: Write> Checker<W> {
    /// Check every entry of a manifest, `jobs` files at a time, reporting
    /// in manifest order. Errors are stdout's; the manifest's own go into
    /// the tally.
    fn entries<R: BufRead>(
        &mut self,
        reader: manifest::Reader<R>,
        from_stdin: bool,
        jobs: NonZeroUsize,
    ) -> io::Result<()> {
        let mut lines = Entries {
            reader,
            from_stdin,
            tally: Tally::default(),
        };
        let items = (&mut lines).map(|e| {
            let name = e.name;
            // A `-` entry reads standard input: done here, where the
            // manifest is walked, so several take its bytes in order.
            if name == b"-" {
                Job::Ready(check(name, e.digest, Reading::Plain))
            } else {
                Job::Run((name, e.digest))
            }
        });
        let work = |(name, want)| check(name, want, Reading::Plain);
        let result = parallel::ordered(jobs, items, work, |outcome| self.report(outcome));
        let seen = lines.tally;
        self.tally.entries = seen.entries;
        self.tally.malformed = seen.malformed;
        self.tally.read_error = seen.read_error;
        result
    }

    /// Print the verdict line of one checked file.
    fn report(&mut self, outcome: Outcome) -> io::Result<()> {
        let Outcome { name, want, got } = outcome;
        let verdict = match got {
            Err(e) => {
                report_file_error(&name, &e);
                self.tally.unreadable += 1;
                "FAILED open or read"
            }
            Ok(got) if got == want => {
                if self.quiet {
                    return Ok(());
                }
                "OK"
            }
            Ok(_) => {
                self.tally.mismatched += 1;
                "FAILED"
            }
        };
        if self.status {
            return Ok(());
        }
        // Only a newline would break the one-line-per-file output, so only
        // then is the name escaped (and the line marked with `\`).
        if name.contains(&b'\n') {
            self.out.write_all(b"\\")?;
            self.out.write_all(&manifest::escape(&name))?;
        } else {
            self.out.write_all(&name)?;
        }
        writeln!(self.out, ": {verdict}")
    }
}

/// The entries of a manifest to check, counting on the way the lines that
/// are not (`entries`, `malformed` and `read_error` of its tally).
struct Entries<R> {
    reader: manifest::Reader<R>,
    from_stdin: bool,
    tally: Tally,
}

impl<R: BufRead> Iterator for Entries<R> {
    type Item = manifest::Entry;

    fn next(&mut self) -> Option<manifest::Entry> {
        loop {
            let line = match self.reader.next_line() {
                Ok(Some((_, line))) => line,
                Ok(None) => return None,
                Err(_) => {
                    self.tally.read_error = true;
                    return None;
                }
            };
            match line {
                Line::Blank => {}
                // The manifest is stdin already; `-` cannot be checked too.
                Line::Entry(e) if self.from_stdin && e.name == b"-" => self.tally.malformed += 1,
                Line::Entry(e) => {
                    self.tally.entries += 1;
                    return Some(e);
                }
                Line::Malformed => self.tally.malformed += 1,
            }
        }
    }
}

/// The manifest as diagnostics name it.
fn manifest_name(path: &[u8]) -> String {
    if path == b"-" {
        quote(b"standard input")
    } else {
        quote(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn parse_args(args: &[&str]) -> Result<Args> {
        let mut p = lexopt::Parser::from_args(args.iter().copied());
        parse(&mut p).map(|a| a.expect("not --help"))
    }

    #[test]
    fn parses_the_two_forms() {
        let a = parse_args(&["-c", "SUMS", "--quiet"]).unwrap();
        assert_eq!(a.check, Check::Manifest("SUMS".into()));
        assert!(a.quiet && !a.status);
        let a = parse_args(&["f", "--sha256", EMPTY, "--status"]).unwrap();
        assert_eq!(
            a.check,
            Check::One {
                file: "f".into(),
                digest: hex::decode_digest(EMPTY).unwrap()
            }
        );
        assert!(a.status);
    }

    #[test]
    fn warnings_follow_sha256sum_wording() {
        let tally = Tally {
            malformed: 1,
            unreadable: 2,
            mismatched: 1,
            ..Tally::default()
        };
        assert_eq!(
            tally.warnings(),
            [
                "1 line is improperly formatted",
                "2 listed files could not be read",
                "1 computed checksum did NOT match"
            ]
        );
        assert!(Tally::default().warnings().is_empty());
    }
}
