//! `tcpfetch sum FILE...`: print what coreutils `sha256sum FILE...` prints,
//! byte for byte, so a manifest made here is read by `sha256sum -c` and the
//! other way round. The pieces `verify` shares with it (hashing a named file
//! or stdin, naming a file as coreutils does) live in `digest`.

use std::ffi::OsString;
use std::io::{self, Write};
use std::num::NonZeroUsize;
use std::os::unix::ffi::OsStrExt;

use lexopt::prelude::*;

use crate::digest::manifest::{self, Form};
use crate::digest::parallel::{self, Job};
use crate::digest::{self, coreutils};
use crate::error::{Error, ExitKind, Result};
use crate::util::cli;

pub const USAGE: &str = "\
Usage: tcpfetch sum [FILE...] [--tag | -b | -t] [-z] [--jobs N]

Print the SHA-256 of each FILE in the format of coreutils 'sha256sum', so the
output is a SHA256SUMS manifest ('tcpfetch verify -c' and 'sha256sum -c'
read it). With no FILE, or when FILE is -, read standard input. Names with a
backslash, newline or carriage return are escaped as sha256sum escapes them.
Several FILEs are hashed N at a time, printed in the order given; a single
FILE is read on one thread while another hashes it (unless --jobs 1).

Options:
  --tag         print BSD-style lines, 'SHA256 (NAME) = HEX', as
                'sha256sum --tag' does
  -b, --binary  mark each line binary, 'HEX *NAME' (the bytes hashed are the
                same on POSIX)
  -t, --text    mark each line text, 'HEX  NAME' (the default)
  -z, --zero    end each line with NUL, not newline, and write names as they
                are, unescaped ('sha256sum -z'; 'verify -c -z' reads it)
  --jobs N      hash N files at once (default: the number of cores; 1 reads
                and hashes one file after the other on one thread)
  -h, --help    show this help

Exit status: 0 success, 1 some FILE could not be read (the others are still
printed), 2 usage error.
";

#[derive(Debug)]
pub struct Args {
    pub files: Vec<OsString>,
    pub form: Form,
    /// `-z`: lines end with NUL, names unescaped.
    pub zero: bool,
    /// `None`: one per core.
    pub jobs: Option<NonZeroUsize>,
}

pub fn parse(parser: &mut lexopt::Parser) -> Result<Option<Args>> {
    let mut files = Vec::new();
    let mut jobs = None;
    let (mut tag, mut zero) = (false, false);
    // As in sha256sum: `--tag` implies binary, and a `-t` after it
    // asks for what the tag form cannot say.
    let mut binary = None;
    while let Some(arg) = parser.next()? {
        if let Some(done) = cli::common_flag(&arg, USAGE) {
            return done.map(|()| None);
        }
        match arg {
            Long("tag") => (tag, binary) = (true, Some(true)),
            Short('b') | Long("binary") => binary = Some(true),
            Short('t') | Long("text") => binary = Some(false),
            Short('z') | Long("zero") => zero = true,
            Long("jobs") => jobs = Some(cli::count_value(parser, "--jobs", parallel::MAX_JOBS)?),
            Value(v) => files.push(v),
            _ => return Err(arg.unexpected().into()),
        }
    }
    if files.is_empty() {
        files.push(OsString::from("-"));
    }
    let form = match (tag, binary) {
        (true, Some(false)) => {
            return Err(Error::usage("--tag does not support --text mode"));
        }
        (true, _) => Form::Tag,
        (false, Some(true)) => Form::Binary,
        (false, _) => Form::Text,
    };
    Ok(Some(Args {
        files,
        form,
        zero,
        jobs,
    }))
}

pub fn run(args: Args) -> Result<()> {
    let jobs = args.jobs.unwrap_or_else(parallel::default_jobs);
    let reading = parallel::reading(jobs, args.files.len());
    let hash = |name: &[u8]| (name.to_vec(), digest::hash_named(name, reading));
    // Standard input is read where the list is walked, so several `-`
    // take its bytes in the order given (the first gets them all).
    let items = args.files.iter().map(|file| match file.as_bytes() {
        b"-" => Job::Ready(hash(b"-")),
        name => Job::Run(name),
    });
    let end = if args.zero { b'\0' } else { b'\n' };
    let mut out = io::stdout().lock();
    let mut failed = false;
    let printed = parallel::ordered(jobs, items, hash, |(name, result)| match result {
        Ok(digest) => out.write_all(&manifest::format_entry(&digest, &name, args.form, end)),
        Err(e) => {
            failed = true;
            coreutils::report_file_error(&name, &e);
            Ok(())
        }
    });
    if let Err(e) = printed.and_then(|()| out.flush()) {
        return stdout_error(e);
    }
    if failed {
        return Err(Error::Reported(ExitKind::Failure));
    }
    Ok(())
}

/// A closed stdout (`| head`) ends the command quietly; anything else is
/// an error.
pub fn stdout_error(e: io::Error) -> Result<()> {
    if e.kind() == io::ErrorKind::BrokenPipe {
        Ok(())
    } else {
        Err(Error::local("cannot write to stdout", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_file_means_stdin() {
        let mut p = lexopt::Parser::from_args(Vec::<OsString>::new());
        assert_eq!(parse(&mut p).unwrap().unwrap().files, vec!["-"]);
        let mut p = lexopt::Parser::from_args(["-z", "--tag", "f"]);
        let a = parse(&mut p).unwrap().unwrap();
        assert!(a.zero && a.form == Form::Tag && a.files == ["f"]);
        let rows: &[(&[&str], Option<Form>)] = &[
            (&["-b"], Some(Form::Binary)),
            (&["-b", "-t"], Some(Form::Text)),
            (&["-t", "--tag"], Some(Form::Tag)),
            (&["--tag", "-b"], Some(Form::Tag)),
            (&["--tag", "-t"], None),
        ];
        for (flags, want) in rows {
            let mut p = lexopt::Parser::from_args(flags.iter().copied());
            let form = parse(&mut p).ok().flatten().map(|a| a.form);
            assert_eq!(form, *want, "{flags:?}");
        }
        let mut p = lexopt::Parser::from_args(["--bogus"]);
        assert!(parse(&mut p).is_err());
    }
}
