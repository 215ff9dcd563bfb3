//! `tcpfetch verify`: check files against a `SHA256SUMS` manifest with the
//! output of coreutils `sha256sum -c` (9.1), or one file against one digest.
//!
//! The only deliberate difference from coreutils is the exit status: 3 when
//! any file did not match or could not be read, as everywhere in tcpfetch,
//! where `sha256sum -c` says 1. One addition: `-z` reads the NUL-ended
//! lines `sha256sum -z` writes (coreutils 9.1 refuses `-c -z`); what is
//! printed stays one newline-ended line per file.

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
       tcpfetch verify FILE --sha256 HEX [--quiet | --status]

Check files against a SHA256SUMS manifest (as made by 'tcpfetch sum' or
'sha256sum'; '-' reads it from standard input), printing what
'sha256sum -c' prints: 'NAME: OK', 'NAME: FAILED', 'NAME: FAILED open or
read', then warnings on stderr. Text, binary (*), escaped and BSD-tagged
lines are read; malformed lines are counted, not fatal (unless --strict).
The second form checks one FILE against one digest.

Options:
  -c, --check FILE  the manifest to check against
  --sha256 HEX      the digest FILE must have
  --ignore-missing  don't fail or report status for missing files
  --quiet           don't print OK for each file that matched
  --status          print nothing on stdout; the exit status tells
  --strict          exit 1 when a line is not a checksum line
  -w, --warn        warn about each improperly formatted checksum line
  -z, --zero        the manifest's lines end with NUL, names unescaped (as
                    'sum -z' and 'sha256sum -z' write them)
  --jobs N          hash N files at once (default: the number of cores);
                    the output is the same, in manifest order
  -h, --help        show this help

Of --quiet, --status and --warn the last one given counts, as in sha256sum.

Exit status: 0 every file matched, 1 the manifest could not be read, has no
checksum line, has a malformed line (--strict) or no file was found
(--ignore-missing), 2 usage error, 3 a file did not match or could not be
read.
";

#[derive(Debug)]
pub struct Args {
    pub check: Check,
    pub verbosity: Verbosity,
    /// `--strict`: a malformed line fails the check.
    pub strict: bool,
    /// `--ignore-missing`: a listed file that does not exist is skipped.
    pub ignore_missing: bool,
    /// `-z`: the manifest's lines end with NUL.
    pub zero: bool,
    /// `None`: one per core.
    pub jobs: Option<NonZeroUsize>,
}

/// What is printed besides failures. `sha256sum` has three flags for it,
/// each of which turns the other two off, so one value says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Verbosity {
    /// A line per file, the closing warnings.
    #[default]
    Normal,
    /// `-w`: also a warning for each malformed line.
    Warn,
    /// `--quiet`: no `OK` lines.
    Quiet,
    /// `--status`: nothing on stdout, no warnings.
    Status,
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
    let mut verbosity = Verbosity::Normal;
    // The flags that only mean something for a manifest, for the error.
    let mut manifest_only = None;
    let (mut strict, mut ignore_missing, mut zero) = (false, false, false);
    let mut jobs = None;
    while let Some(arg) = parser.next()? {
        if let Some(done) = cli::common_flag(&arg, USAGE) {
            return done.map(|()| None);
        }
        match arg {
            Short('c') | Long("check") => {
                let value = parser.value()?;
                if manifest.is_some() {
                    return Err(one_manifest(&value));
                }
                manifest = Some(value);
            }
            Long("sha256") if digest.is_some() => {
                return Err(Error::usage("--sha256 given twice: one digest per FILE"))
            }
            Long("sha256") => {
                let text = cli::string_value(parser)?;
                let d = hex::decode_digest(text.trim()).ok_or_else(|| {
                    Error::usage(format!("--sha256 needs 64 hex digits, not '{text}'"))
                })?;
                digest = Some(d);
            }
            Long("quiet") => verbosity = Verbosity::Quiet,
            Long("status") => verbosity = Verbosity::Status,
            Short('w') | Long("warn") => {
                verbosity = Verbosity::Warn;
                manifest_only = Some("--warn");
            }
            Long("strict") => (strict, manifest_only) = (true, Some("--strict")),
            Long("ignore-missing") => {
                (ignore_missing, manifest_only) = (true, Some("--ignore-missing"))
            }
            Short('z') | Long("zero") => (zero, manifest_only) = (true, Some("--zero")),
            Long("jobs") => jobs = Some(cli::count_value(parser, "--jobs", parallel::MAX_JOBS)?),
            Value(v) if file.is_none() => file = Some(v),
            _ => return Err(arg.unexpected().into()),
        }
    }
    if let (None, Some(flag)) = (&manifest, manifest_only) {
        return Err(Error::usage(format!(
            "{flag} is meaningful only with -c SHA256SUMS"
        )));
    }
    let check = match (manifest, file, digest) {
        (Some(m), None, None) => Check::Manifest(m),
        (None, Some(file), Some(digest)) => Check::One { file, digest },
        (None, Some(_), None) => {
            return Err(cli::missing(
                "--sha256 HEX for FILE (or use -c SHA256SUMS)",
                USAGE,
            ))
        }
        (None, None, _) => return Err(cli::missing("-c SHA256SUMS or FILE --sha256 HEX", USAGE)),
        (Some(_), Some(other), None) => return Err(one_manifest(&other)),
        (Some(_), _, _) => {
            return Err(Error::usage(
                "-c checks a manifest; FILE --sha256 checks one file: use one or the other",
            ))
        }
    };
    Ok(Some(Args {
        check,
        verbosity,
        strict,
        ignore_missing,
        zero,
        jobs,
    }))
}

/// A second manifest, where `sha256sum -c SUMS1 SUMS2` would check both.
fn one_manifest(other: &std::ffi::OsStr) -> Error {
    Error::usage(format!(
        "verify checks one manifest per run; check {} with a second 'verify -c'",
        quote(other.as_bytes())
    ))
}

pub fn run(args: Args) -> Result<()> {
    let jobs = args.jobs.unwrap_or_else(parallel::default_jobs);
    let manifest = match &args.check {
        Check::Manifest(path) => manifest_name(path.as_bytes()),
        Check::One { .. } => String::new(),
    };
    let mut checker = Checker {
        out: io::stdout().lock(),
        verbosity: args.verbosity,
        ignore_missing: args.ignore_missing,
        manifest,
        zero: args.zero,
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
            let end = if args.zero { b'\0' } else { b'\n' };
            let reader = manifest::Reader::with_end(input, end);
            checker.entries(reader, from_stdin, jobs)
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
    match &args.check {
        Check::Manifest(_) => checker.conclude(args.strict),
        Check::One { .. } => checker.tally.integrity(),
    }
}

/// What was seen so far.
#[derive(Debug, Default)]
struct Tally {
    entries: u64,
    malformed: u64,
    unreadable: u64,
    mismatched: u64,
    matched: u64,
    /// The manifest itself could not be read to the end.
    read_error: bool,
    /// Its lines seem to end with NUL where newline was expected, or the
    /// other way round (see `manifest::Reader::other_ending`).
    other_ending: bool,
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

    /// Exit 3 when some file did not match or could not be read.
    fn integrity(&self) -> Result<()> {
        if self.mismatched > 0 || self.unreadable > 0 {
            return Err(Error::Reported(ExitKind::Integrity));
        }
        Ok(())
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

/// What one manifest line comes to, reported in manifest order.
enum Verdict {
    Checked(Outcome),
    /// The line with this number is not a checksum line.
    Malformed(u64),
}

struct Checker<W> {
    out: W,
    verbosity: Verbosity,
    ignore_missing: bool,
    /// The manifest as diagnostics name it.
    manifest: String,
    /// `-z`: its lines end with NUL.
    zero: bool,
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
            entries: 0,
            read_error: false,
        };
        let work = |e: manifest::Entry| Verdict::Checked(check(e.name, e.digest, Reading::Plain));
        let result = parallel::ordered(jobs, &mut lines, work, |verdict| match verdict {
            Verdict::Checked(outcome) => self.report(outcome),
            Verdict::Malformed(number) => {
                self.malformed(number);
                Ok(())
            }
        });
        self.tally.entries = lines.entries;
        self.tally.read_error = lines.read_error;
        self.tally.other_ending = lines.reader.other_ending();
        result
    }

    fn malformed(&mut self, number: u64) {
        self.tally.malformed += 1;
        if self.verbosity == Verbosity::Warn {
            eprintln!(
                "tcpfetch: {}: {number}: improperly formatted SHA256 checksum line",
                self.manifest
            );
        }
    }

    /// Print the verdict line of one checked file.
    fn report(&mut self, outcome: Outcome) -> io::Result<()> {
        let Outcome { name, want, got } = outcome;
        let verdict = match got {
            // Only a file that is not there, as coreutils' ENOENT test.
            Err(e) if self.ignore_missing && e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                report_file_error(&name, &e);
                self.tally.unreadable += 1;
                "FAILED open or read"
            }
            Ok(got) if got == want => {
                self.tally.matched += 1;
                if self.verbosity == Verbosity::Quiet {
                    return Ok(());
                }
                "OK"
            }
            Ok(_) => {
                self.tally.mismatched += 1;
                "FAILED"
            }
        };
        if self.verbosity == Verbosity::Status {
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

    /// The closing diagnostics of a manifest check and the exit status,
    /// in `sha256sum -c`'s order: a manifest that could not be read or
    /// held nothing to check, the warnings, then the status.
    fn conclude(&self, strict: bool) -> Result<()> {
        let tally = &self.tally;
        if tally.read_error {
            return Err(Error::Other(format!("{}: read error", self.manifest)));
        }
        if tally.entries == 0 {
            eprintln!(
                "tcpfetch: {}: no properly formatted checksum lines found",
                self.manifest
            );
            self.other_ending_hint();
            return Err(Error::Reported(ExitKind::Failure));
        }
        let nothing_verified = self.ignore_missing && tally.matched == 0;
        if self.verbosity != Verbosity::Status {
            for warning in tally.warnings() {
                eprintln!("tcpfetch: WARNING: {warning}");
            }
            if nothing_verified {
                eprintln!("tcpfetch: {}: no file was verified", self.manifest);
            }
            if tally.malformed + tally.unreadable + tally.mismatched > 0 {
                self.other_ending_hint();
            }
        }
        tally.integrity()?;
        if nothing_verified || (strict && tally.malformed > 0) {
            return Err(Error::Reported(ExitKind::Failure));
        }
        Ok(())
    }
}

impl<W> Checker<W> {
    /// A manifest that failed and seems to end its lines the other way
    /// gets told the flag it was read without, or with: coreutils would
    /// check the first name of a NUL-ended one and quietly skip the rest.
    fn other_ending_hint(&self) {
        if !self.tally.other_ending {
            return;
        }
        let (ends, fix) = if self.zero {
            ("no line ends with NUL", "drop -z")
        } else {
            ("its lines end with NUL (as 'sum -z' writes them)", "add -z")
        };
        eprintln!("tcpfetch: {}: {ends}: {fix}", self.manifest);
    }
}

/// The lines of a manifest as jobs: an entry to hash, or a verdict known
/// already. A malformed line takes its place in the order too, so that its
/// `-w` warning comes between the same verdicts as with one job. Counts on
/// the way the entries and whether the manifest could be read to its end.
struct Entries<R> {
    reader: manifest::Reader<R>,
    from_stdin: bool,
    entries: u64,
    read_error: bool,
}

impl<R: BufRead> Iterator for Entries<R> {
    type Item = Job<manifest::Entry, Verdict>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (number, line) = match self.reader.next_line() {
                Ok(Some(numbered)) => numbered,
                Ok(None) => return None,
                Err(_) => {
                    self.read_error = true;
                    return None;
                }
            };
            let malformed = Job::Ready(Verdict::Malformed(number));
            match line {
                Line::Blank => {}
                // The manifest is stdin already; `-` cannot be checked too.
                Line::Entry(e) if self.from_stdin && e.name == b"-" => return Some(malformed),
                Line::Malformed => return Some(malformed),
                Line::Entry(e) => {
                    self.entries += 1;
                    // A `-` entry reads standard input: done here, where
                    // the manifest is walked, so several take its bytes in
                    // order.
                    if e.name == b"-" {
                        let outcome = check(e.name, e.digest, Reading::Plain);
                        return Some(Job::Ready(Verdict::Checked(outcome)));
                    }
                    return Some(Job::Run(e));
                }
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
        assert_eq!(a.verbosity, Verbosity::Quiet);
        let a = parse_args(&["f", "--sha256", EMPTY, "--status"]).unwrap();
        assert_eq!(
            a.check,
            Check::One {
                file: "f".into(),
                digest: hex::decode_digest(EMPTY).unwrap()
            }
        );
        assert_eq!(a.verbosity, Verbosity::Status);
    }

    #[test]
    fn the_last_of_quiet_status_and_warn_counts() {
        let rows: &[(&[&str], Verbosity)] = &[
            (&[], Verbosity::Normal),
            (&["--status", "-w"], Verbosity::Warn),
            (&["-w", "--status"], Verbosity::Status),
            (&["--warn", "--quiet"], Verbosity::Quiet),
            (&["--quiet", "--status"], Verbosity::Status),
        ];
        for (flags, want) in rows {
            let a = parse_args(&[&["-c", "S"], *flags].concat()).unwrap();
            assert_eq!(a.verbosity, *want, "{flags:?}");
        }
        let a = parse_args(&["-c", "S", "--strict", "--ignore-missing", "-z"]).unwrap();
        assert!(a.strict && a.ignore_missing && a.zero);
    }

    #[test]
    fn manifest_flags_need_a_manifest() {
        for flag in ["-w", "--strict", "--ignore-missing", "-z"] {
            assert!(
                parse_args(&["f", "--sha256", EMPTY, flag]).is_err(),
                "{flag}"
            );
        }
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
