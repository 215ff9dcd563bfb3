//! `tcpfetch get`: the command line of a download. It parses into
//! [`Args`], turns them into the plan the library runs
//! ([`fetch::Request`]), and hands it to [`fetch::run`]; the pipeline
//! itself is in `src/fetch/`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use lexopt::prelude::*;

use crate::client::{AskMtime, Peer, Protocol, Timeouts};
use crate::cmd::pick;
use crate::error::{Error, Result};
use crate::fetch::{self, backoff::Backoff, Mode, MAX_RETRY_WAIT};
use crate::proto::auth::Key;
use crate::util::cli;
use crate::util::format::visible;
use crate::util::hex::{self, Digest};

pub const USAGE: &str = "\
Usage: tcpfetch get ADDR [NAME...] [OPTIONS]
       tcpfetch get ADDR [DIR/] --all [-o DIR] [--manifest SHA256SUMS] [OPTIONS]

Download NAME from a tcpfetch server. The bytes are hashed as they arrive and
the file is kept only when its SHA-256 matches the digest the server sent
(and --sha256, when given). An interrupted download resumes where it stopped.
Several NAMEs are fetched one after another (each verified, a summary at the
end; the exit status is the worst of them). Without NAME, on a terminal, the
server's files are listed to pick from.

Options:
  -o, --output PATH     where to save (default: NAME's last component in the
                        current directory; a directory saves inside it;
                        '-' writes to stdout, checked only at the end)
  --sha256 HEX          the digest you expect; anything else is rejected
  --force               download even if PATH already holds the same file
  --retries N           retry transient failures (refused, reset, timeout,
                        busy) up to N times, resuming each time (default 0)
  --retry-wait SECS     first wait between retries, doubled each time
                        (default 1)
  --timeout SECS        give up on a silent server after SECS (default 30)
  --limit-rate RATE     cap the download at RATE bytes per second (k, M, G
                        suffixes, as curl)
  --key-file FILE       authenticate with the server's shared key; every
                        digest then carries a MAC an attacker cannot forge
  --all                 download every served file into -o DIR (default .),
                        keeping relative paths; each verified and resumable
  --prefix DIR/         with --all: only the files under DIR/ on the server
                        (also 'get ADDR DIR/ --all')
  --manifest FILE       a SHA256SUMS manifest carried by hand: every file
                        must match it (the check that does not trust the
                        server); with --all, files it does not name are
                        refused unless --allow-unlisted
  --allow-unlisted      with --all --manifest: fetch unlisted files too
  --hidden              with --all: save names with a component starting
                        with '.' too (.bashrc, .ssh/...); refused by default
  --no-fsync            do not flush each file to disk before it is renamed
                        into place: faster, but a power cut can leave PATH
                        empty or torn
  --no-mtime            give each file the time it was downloaded, not the
                        server's modification time (kept by default)
  -q, --quiet           no progress line and no summary
  --legacy              speak the old Python tcp-server protocol; NAME is
                        the file's number there (1, 2, ...) or its name
  -h, --help            show this help

Exit status: 0 verified, 1 failure, 2 usage error, 3 integrity failure.
";

/// The command line, as given.
#[derive(Debug, Clone)]
pub struct Args {
    /// ADDR, `--timeout`, `--key-file` and `--legacy`.
    pub peer: Peer,
    /// The NAMEs given; none means the terminal picker (or `--all`).
    pub names: Vec<String>,
    pub output: Option<String>,
    pub sha256: Option<Digest>,
    pub force: bool,
    pub quiet: bool,
    pub retries: u32,
    pub retry_wait: Duration,
    pub limit_rate: Option<u64>,
    /// `--all`: every served file, into `-o DIR` (src/fetch/mirror.rs).
    pub all: bool,
    /// `--prefix DIR/` or `get ADDR DIR/ --all`: only the files under it.
    pub prefix: Option<String>,
    /// `--manifest FILE`: digests carried by hand, checked for every file.
    pub manifest: Option<PathBuf>,
    pub allow_unlisted: bool,
    /// `--hidden`: with `--all`, save dot names too.
    pub hidden: bool,
    /// `--no-fsync`: skip the flushes that make each file durable.
    pub no_fsync: bool,
}

/// The flags as they come, before they are checked against each other.
#[derive(Default)]
struct Flags {
    positional: Vec<String>,
    output: Option<String>,
    sha256: Option<Digest>,
    force: bool,
    quiet: bool,
    retries: u32,
    retry_wait: Option<Duration>,
    timeout: Option<Duration>,
    limit_rate: Option<u64>,
    key: Option<Key>,
    legacy: bool,
    all: bool,
    prefix: Option<String>,
    manifest: Option<PathBuf>,
    allow_unlisted: bool,
    hidden: bool,
    no_fsync: bool,
    no_mtime: bool,
}

pub fn parse(parser: &mut lexopt::Parser) -> Result<Option<Args>> {
    let mut f = Flags::default();
    while let Some(arg) = parser.next()? {
        if let Some(done) = cli::common_flag(&arg, USAGE) {
            return done.map(|()| None);
        }
        match arg {
            Short('o') | Long("output") => f.output = Some(cli::string_value(parser)?),
            Long("sha256") => f.sha256 = Some(digest_value(parser)?),
            Long("force") => f.force = true,
            Short('q') | Long("quiet") => f.quiet = true,
            Long("retries") => f.retries = cli::number_value(parser, "--retries")?,
            Long("retry-wait") => f.retry_wait = Some(cli::seconds_value(parser, "--retry-wait")?),
            Long("timeout") => f.timeout = Some(cli::seconds_value(parser, "--timeout")?),
            Long("limit-rate") => {
                f.limit_rate = Some(
                    crate::util::pace::parse_rate(&cli::string_value(parser)?)
                        .map_err(Error::Usage)?,
                )
            }
            Long("key-file") => f.key = Some(Key::load(&PathBuf::from(parser.value()?))?),
            Long("legacy") => f.legacy = true,
            Long("all") => f.all = true,
            Long("prefix") => f.prefix = Some(cli::string_value(parser)?),
            Long("manifest") => f.manifest = Some(PathBuf::from(parser.value()?)),
            Long("allow-unlisted") => f.allow_unlisted = true,
            Long("hidden") => f.hidden = true,
            Long("no-fsync") => f.no_fsync = true,
            Long("no-mtime") => f.no_mtime = true,
            Value(v) => f.positional.push(v.string()?),
            _ => return Err(arg.unexpected().into()),
        }
    }
    check(f).map(Some)
}

/// The rules between flags, then the [`Args`] they make.
fn check(f: Flags) -> Result<Args> {
    let mut positional = f.positional.into_iter();
    let addr = cli::required(positional.next(), "ADDR", USAGE)?;
    let names: Vec<String> = positional.collect();
    let prefix = check_names(&names, f.all, f.prefix)?;
    if names.len() > 1 && (f.sha256.is_some() || f.output.as_deref() == Some("-")) {
        return Err(Error::usage(
            "several NAMEs take no --sha256 and no '-o -' (use --manifest, and -o DIR)",
        ));
    }
    if f.all && (f.sha256.is_some() || f.output.as_deref() == Some("-")) {
        return Err(Error::usage(
            "--all takes no --sha256 and no '-o -' (use --manifest)",
        ));
    }
    if f.allow_unlisted && f.manifest.is_none() {
        return Err(Error::usage(
            "--allow-unlisted only makes sense with --manifest",
        ));
    }
    if f.hidden && !f.all {
        return Err(Error::usage("--hidden only makes sense with --all"));
    }
    let timeouts = f
        .timeout
        .map_or_else(Timeouts::default, Timeouts::silent_after);
    let protocol = if f.legacy {
        check_legacy(&f.key, f.all, f.limit_rate, f.retries, &names)?;
        Protocol::Legacy
    } else {
        Protocol::V1 {
            key: f.key,
            mtime: AskMtime::new(!f.no_mtime),
        }
    };
    Ok(Args {
        peer: Peer {
            addr,
            timeouts,
            protocol,
        },
        names,
        output: f.output,
        sha256: f.sha256,
        force: f.force,
        quiet: f.quiet,
        retries: f.retries,
        retry_wait: f.retry_wait.unwrap_or(Duration::from_secs(1)),
        limit_rate: f.limit_rate,
        all: f.all,
        prefix,
        manifest: f.manifest,
        allow_unlisted: f.allow_unlisted,
        hidden: f.hidden,
        no_fsync: f.no_fsync,
    })
}

/// NAMEs are files, except with `--all`, where one NAME is the directory
/// to fetch (as `--prefix`); the prefix, normalised to end in `/`.
fn check_names(names: &[String], all: bool, prefix: Option<String>) -> Result<Option<String>> {
    let prefix = match (all, names, prefix) {
        (false, _, Some(_)) => return Err(Error::usage("--prefix only makes sense with --all")),
        (false, names, None) => {
            if let Some(dir) = names.iter().find(|n| n.ends_with('/')) {
                return Err(Error::usage(format!(
                    "'{}' names a directory; add --all to fetch the files under it",
                    visible(dir)
                )));
            }
            return Ok(None);
        }
        (true, [], prefix) => prefix,
        (true, [dir], None) => Some(dir.clone()),
        (true, _, _) => {
            return Err(Error::usage(
                "with --all, give at most one directory (DIR/ or --prefix DIR/)",
            ))
        }
    };
    Ok(prefix.map(|p| match p.trim_start_matches('/') {
        p if p.ends_with('/') || p.is_empty() => p.to_string(),
        p => format!("{p}/"),
    }))
}

/// What the old protocol has no room for.
fn check_legacy(
    key: &Option<Key>,
    all: bool,
    limit_rate: Option<u64>,
    retries: u32,
    names: &[String],
) -> Result<()> {
    if all || key.is_some() || limit_rate.is_some() {
        return Err(Error::usage(
            "--legacy takes neither --all, --key-file nor --limit-rate: the old protocol has no room for them",
        ));
    }
    if retries > 0 {
        return Err(Error::usage(
            "--retries is not available with --legacy (the old protocol cannot resume)",
        ));
    }
    if names.is_empty() {
        return Err(Error::usage(
            "missing N: the file's number on the legacy server (see 'tcpfetch list --legacy ADDR'), or its name",
        ));
    }
    Ok(())
}

fn digest_value(parser: &mut lexopt::Parser) -> Result<Digest> {
    let text = cli::string_value(parser)?;
    hex::decode_digest(text.trim()).ok_or_else(|| Error::usage(bad_digest(text.trim())))
}

/// Why `text` is not a digest: its length, or the first character that is
/// not a hex digit and where it is (a digest pasted with a stray letter).
fn bad_digest(text: &str) -> String {
    let wrong = text
        .chars()
        .enumerate()
        .find(|(_, c)| !c.is_ascii_hexdigit());
    match wrong {
        Some((i, c)) => format!(
            "--sha256 needs 64 hex digits: character {} of '{}' is {}, not a hex digit",
            i + 1,
            visible(text),
            visible(&format!("'{c}'"))
        ),
        None => format!(
            "--sha256 needs 64 hex digits, not {} ('{text}')",
            text.len()
        ),
    }
}

impl Args {
    /// The plan for the library: where the bytes go is one of three modes.
    pub fn request(self, names: Vec<String>) -> fetch::Request {
        let mode = match (self.all, names, self.output) {
            (true, _, output) => Mode::All {
                dir: PathBuf::from(output.unwrap_or_else(|| ".".into())),
                allow_unlisted: self.allow_unlisted,
                hidden: self.hidden,
                prefix: self.prefix,
            },
            (false, names, Some(dash)) if dash == "-" => Mode::Stdout {
                name: names.into_iter().next().unwrap_or_default(),
            },
            (false, names, output) => Mode::File { names, output },
        };
        fetch::Request {
            peer: self.peer,
            mode,
            sha256: self.sha256,
            manifest: self.manifest,
            force: self.force,
            retries: self.retries,
            backoff: Backoff {
                first: self.retry_wait,
                cap: MAX_RETRY_WAIT,
            },
            limit_rate: self.limit_rate,
            quiet: self.quiet,
            durable: !self.no_fsync,
        }
    }
}

pub fn run(args: Args) -> Result<()> {
    // `-o DIR/`, and -o with several NAMEs, must be a directory that is
    // there: checked before anything is asked of the server. (`--all`
    // creates its DIR.)
    match args.output.as_deref() {
        Some(dir) if !args.all && (dir.ends_with('/') || args.names.len() > 1) => {
            cli::existing_dir("-o", Path::new(dir))?
        }
        _ => {}
    }
    let names = match (&args.names[..], args.all) {
        ([], false) => vec![pick::pick(&args.peer, USAGE)?],
        (names, _) => names.to_vec(),
    };
    fetch::run(&args.request(names))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_args(args: &[&str]) -> Result<Args> {
        parse(&mut lexopt::Parser::from_args(args.iter().copied())).map(|a| a.unwrap())
    }

    #[test]
    fn flags_parse_and_bad_digests_are_usage_errors() {
        let a = parse_args(&[
            "h:1",
            "n",
            "-o",
            "p",
            "--sha256",
            &"A".repeat(64),
            "--retries",
            "3",
            "-q",
        ])
        .unwrap();
        assert_eq!(a.peer.addr, "h:1");
        assert_eq!(a.names, ["n"]);
        assert_eq!(a.sha256, Some([0xaa; 32]));
        assert_eq!(a.retries, 3);
        assert!(a.quiet);
        assert_eq!(
            parse_args(&["h", "n", "--sha256", "abc"])
                .unwrap_err()
                .exit_code(),
            2
        );
        assert_eq!(parse_args(&[]).unwrap_err().exit_code(), 2);
        let one_off = format!("{}g{}", "a".repeat(10), "b".repeat(53));
        assert_eq!(
            bad_digest(&one_off),
            format!(
                "--sha256 needs 64 hex digits: character 11 of '{one_off}' is 'g', not a hex digit"
            )
        );
        assert_eq!(
            bad_digest("abc"),
            "--sha256 needs 64 hex digits, not 3 ('abc')"
        );
        assert_eq!(
            parse_args(&["h", "n", "extra"]).unwrap().names,
            ["n", "extra"]
        );
    }

    #[test]
    fn where_the_bytes_go_is_one_of_three_modes() {
        let mode = |args: &[&str]| {
            let a = parse_args(args).unwrap();
            let names = a.names.clone();
            a.request(names).mode
        };
        assert!(matches!(mode(&["h", "n", "-o", "-"]), Mode::Stdout { name } if name == "n"));
        assert!(
            matches!(mode(&["h", "--all", "-o", "d"]), Mode::All { dir, .. } if dir.as_os_str() == "d")
        );
        assert!(matches!(mode(&["h", "n"]), Mode::File { output: None, .. }));
        assert!(
            matches!(mode(&["h", "sub/", "--all"]), Mode::All { prefix: Some(p), .. } if p == "sub/")
        );
        assert!(
            matches!(mode(&["h", "--all", "--prefix", "sub"]), Mode::All { prefix: Some(p), .. } if p == "sub/")
        );
        for bad in [
            &["h", "--legacy"][..],
            &["h", "1", "--legacy", "--retries", "1"],
            &["h", "1", "--legacy", "--limit-rate", "1k"],
            &["h", "n", "m", "--all"],
            &["h", "n", "--hidden"],
            &["h", "sub/"],
            &["h", "a/", "b/", "--all"],
            &["h", "--prefix", "a/"],
            &["h", "a", "b", "--sha256", &"a".repeat(64)],
            &["h", "a", "b", "-o", "-"],
        ] {
            assert_eq!(parse_args(bad).unwrap_err().exit_code(), 2, "{bad:?}");
        }
    }
}
