//! `tcpfetch get`: download one file, verified, atomic and resumable.
//!
//! The bytes go to `PATH.part` while they are hashed; `PATH` appears only
//! after the digest matched the server's header (and `--sha256`, when given).
//! Next to the `.part` a one-line `PATH.part.sha256` remembers which version
//! of the file the bytes belong to, so a resume never splices two versions.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lexopt::prelude::*;
use sha2::{Digest as _, Sha256};

use crate::client::{Connection, Timeouts};
use crate::digest::{self, PipelinedHasher};
use crate::error::{Error, Phase, Result};
use crate::proto::auth::Key;
use crate::proto::{ErrorCode, FileHeader};
use crate::util::cli;
use crate::util::format;
use crate::util::hex::{self, Digest};
use crate::util::progress::Progress;

const USAGE: &str = "\
Usage: tcpfetch get ADDR [NAME] [OPTIONS]
       tcpfetch get ADDR --all [-o DIR] [--manifest SHA256SUMS] [OPTIONS]

Download NAME from a tcpfetch server. The bytes are hashed as they arrive and
the file is kept only when its SHA-256 matches the digest the server sent
(and --sha256, when given). An interrupted download resumes where it stopped.
Without NAME, on a terminal, the server's files are listed to pick from.

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
  --manifest FILE       a SHA256SUMS manifest carried by hand: every file
                        must match it (the check that does not trust the
                        server); with --all, files it does not name are
                        refused unless --allow-unlisted
  --allow-unlisted      with --all --manifest: fetch unlisted files too
  -q, --quiet           no progress line and no summary
  --legacy              speak the old Python tcp-server protocol; NAME is
                        the file's number there (1, 2, ...) or its name
  -h, --help            show this help

Exit status: 0 verified, 1 failure, 2 usage error, 3 integrity failure.
";

#[derive(Debug, Clone)]
pub struct Args {
    pub addr: String,
    pub name: Option<String>,
    pub output: Option<String>,
    pub sha256: Option<Digest>,
    pub force: bool,
    pub quiet: bool,
    pub retries: u32,
    pub retry_wait: Duration,
    pub timeouts: Timeouts,
    pub limit_rate: Option<u64>,
    pub key: Option<Key>,
    /// `--legacy`: speak the old Python tcp-server protocol (src/legacy).
    pub legacy: bool,
    /// `--all`: every served file, into `-o DIR` (src/mirror.rs).
    pub all: bool,
    /// `--manifest FILE`: digests carried by hand, checked for every file.
    pub manifest: Option<PathBuf>,
    pub allow_unlisted: bool,
}

impl Default for Args {
    fn default() -> Args {
        Args {
            addr: String::new(),
            name: None,
            output: None,
            sha256: None,
            force: false,
            quiet: false,
            retries: 0,
            retry_wait: Duration::from_secs(1),
            timeouts: Timeouts::default(),
            limit_rate: None,
            key: None,
            legacy: false,
            all: false,
            manifest: None,
            allow_unlisted: false,
        }
    }
}

pub fn parse(parser: &mut lexopt::Parser) -> Result<Option<Args>> {
    let mut positional = Vec::new();
    let mut args = Args::default();
    while let Some(arg) = parser.next()? {
        if let Some(done) = cli::common_flag(&arg, USAGE) {
            return done.map(|()| None);
        }
        match arg {
            Short('o') | Long("output") => args.output = Some(cli::string_value(parser)?),
            Long("sha256") => args.sha256 = Some(digest_value(parser)?),
            Long("force") => args.force = true,
            Short('q') | Long("quiet") => args.quiet = true,
            Long("retries") => args.retries = cli::number_value(parser, "--retries")?,
            Long("retry-wait") => args.retry_wait = cli::seconds_value(parser, "--retry-wait")?,
            Long("timeout") => args.timeouts.io = cli::seconds_value(parser, "--timeout")?,
            Long("limit-rate") => {
                args.limit_rate = Some(
                    crate::util::pace::parse_rate(&cli::string_value(parser)?)
                        .map_err(Error::Usage)?,
                )
            }
            Long("key-file") => args.key = Some(Key::load(&PathBuf::from(parser.value()?))?),
            Long("legacy") => args.legacy = true, // legacy hook
            Long("all") => args.all = true,
            Long("manifest") => args.manifest = Some(PathBuf::from(parser.value()?)),
            Long("allow-unlisted") => args.allow_unlisted = true,
            Value(v) if positional.len() < 2 => positional.push(v.string()?),
            _ => return Err(arg.unexpected().into()),
        }
    }
    let mut positional = positional.into_iter();
    args.addr = cli::required(positional.next(), "ADDR", USAGE)?;
    args.name = positional.next();
    if args.all && args.name.is_some() {
        return Err(Error::usage("give either NAME or --all, not both"));
    }
    if args.all && (args.sha256.is_some() || args.output.as_deref() == Some("-")) {
        return Err(Error::usage(
            "--all takes no --sha256 and no '-o -' (use --manifest)",
        ));
    }
    if args.legacy && (args.all || args.key.is_some() || args.limit_rate.is_some()) {
        return Err(Error::usage(
            "--legacy takes neither --all, --key-file nor --limit-rate: the old protocol has no room for them",
        ));
    }
    if args.allow_unlisted && args.manifest.is_none() {
        return Err(Error::usage(
            "--allow-unlisted only makes sense with --manifest",
        ));
    }
    Ok(Some(args))
}

fn digest_value(parser: &mut lexopt::Parser) -> Result<Digest> {
    let text = cli::string_value(parser)?;
    hex::decode_digest(text.trim())
        .ok_or_else(|| Error::usage(format!("--sha256 needs 64 hex digits, not '{text}'")))
}

pub fn run(mut args: Args) -> Result<()> {
    if args.all {
        return crate::fetch::mirror::run(&args);
    }
    if args.legacy {
        if let (Some(manifest), Some(name)) = (&args.manifest, &args.name) {
            args.sha256 = Some(digest_from_manifest(manifest, name, args.sha256)?);
        }
        return crate::client::legacy::get(&args); // legacy hook
    }
    let name = match &args.name {
        Some(name) => name.clone(),
        None => pick(&args)?,
    };
    if let Some(manifest) = &args.manifest {
        args.sha256 = Some(digest_from_manifest(manifest, &name, args.sha256)?);
    }
    if args.output.as_deref() == Some("-") {
        return with_retries(&args, || to_stdout(&args, &name));
    }
    let path = local_path(&name, args.output.as_deref())?;
    fetch_file(&args, &name, &path).map(drop)
}

/// `--manifest` with one NAME: the digest the manifest gives it, which must
/// agree with `--sha256` when both are given.
fn digest_from_manifest(path: &Path, name: &str, given: Option<Digest>) -> Result<Digest> {
    let file = fs::File::open(path)
        .map_err(|e| Error::local(format!("cannot open manifest '{}'", path.display()), e))?;
    let (entries, _) = crate::digest::manifest::read_all(io::BufReader::new(file))
        .map_err(|e| Error::local(format!("cannot read manifest '{}'", path.display()), e))?;
    let found = entries
        .iter()
        .find(|e| e.name == name.as_bytes())
        .map(|e| e.digest)
        .ok_or_else(|| {
            Error::Integrity(format!(
                "'{name}' is not in the manifest '{}'",
                path.display()
            ))
        })?;
    match given {
        Some(d) if d != found => Err(Error::usage(
            "--sha256 and --manifest disagree about this file",
        )),
        _ => Ok(found),
    }
}

/// What a finished download saved.
#[derive(Debug, Clone)]
pub struct Saved {
    pub path: PathBuf,
    pub size: u64,
    pub digest: Digest,
    /// The file was already there and identical; nothing was transferred.
    pub already: bool,
}

/// Download `name` to `path` with everything `get` promises (resume,
/// verification, retries); also used by `get --all`.
pub fn fetch_file(args: &Args, name: &str, path: &Path) -> Result<Saved> {
    with_retries(args, || download(args, name, path, &mut |_, _| {}))
}

/// Download `name` into the directory `dir` as `get` does (verified,
/// atomic, resumable; only the name's last component is used), calling
/// `observe(done, size)` as bytes arrive. For `ui`, which shows progress in
/// a page instead of a terminal line.
pub fn fetch_to(
    addr: &str,
    name: &str,
    dir: &Path,
    timeouts: Timeouts,
    observe: &mut dyn FnMut(u64, u64),
) -> Result<Saved> {
    if !dir.is_dir() {
        return Err(Error::Other(format!(
            "'{}' is not a directory",
            dir.display()
        )));
    }
    let path = dir.join(local_path(name, None)?);
    let args = Args {
        addr: addr.to_string(),
        name: Some(name.to_string()),
        quiet: true,
        timeouts,
        ..Args::default()
    };
    download(&args, name, &path, observe)
}

/// Run `attempt` again after transient failures, with exponential backoff
/// and jitter. A definite answer (not found, forbidden, a digest mismatch of
/// a complete file) is never retried.
fn with_retries<T>(args: &Args, mut attempt: impl FnMut() -> Result<T>) -> Result<T> {
    let mut wait = args.retry_wait;
    let mut tries_left = args.retries;
    loop {
        match attempt() {
            Err(e) if tries_left > 0 && e.is_transient() => {
                let pause = jitter(wait).min(MAX_RETRY_WAIT);
                if !args.quiet {
                    eprintln!(
                        "tcpfetch: {e}; retrying in {:.1} s ({tries_left} left)",
                        pause.as_secs_f64()
                    );
                }
                std::thread::sleep(pause);
                tries_left -= 1;
                wait = (wait * 2).min(MAX_RETRY_WAIT);
            }
            result => return result,
        }
    }
}

/// The longest pause between two retries, jitter included.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(60);

/// `wait` scaled by a factor in [0.5, 1.5), so many clients that failed
/// together do not all come back in the same instant.
fn jitter(wait: Duration) -> Duration {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mixed = u64::from(nanos).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40;
    wait.mul_f64(0.5 + (mixed as f64 / (1u64 << 24) as f64))
}

/// Where a download of `name` goes: `-o PATH`, inside `-o DIR`, or the last
/// component of `name` in the current directory. The name came from the
/// user (or the server's list): only its last component is ever used, and
/// one that could point elsewhere is refused.
pub fn local_path(name: &str, output: Option<&str>) -> Result<PathBuf> {
    let base = || -> Result<&str> {
        let last = name.rsplit('/').next().unwrap_or("");
        if last.is_empty() || last == "." || last == ".." || last.chars().any(char::is_control) {
            return Err(Error::usage(format!(
                "cannot derive a file name from '{name}'; give one with -o PATH"
            )));
        }
        Ok(last)
    };
    match output {
        Some(out) if Path::new(out).is_dir() => Ok(Path::new(out).join(base()?)),
        // `-o DIR/` promises a directory; without one the `.part` would be
        // a hidden file inside a directory that does not exist.
        Some(out) if out.ends_with('/') => {
            Err(Error::Other(format!("-o {out}: no such directory")))
        }
        Some(out) => Ok(PathBuf::from(out)),
        None => Ok(PathBuf::from(base()?)),
    }
}

/// A connection to the server, authenticated when a key was given.
fn connect(args: &Args) -> Result<Connection> {
    Connection::open_with_key(&args.addr, args.timeouts, args.key.as_ref())
}

fn part_path(path: &Path) -> PathBuf {
    suffixed(path, ".part")
}

fn sidecar_path(path: &Path) -> PathBuf {
    suffixed(path, ".part.sha256")
}

fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Returns what is now at `path`, and whether it was already there.
fn download(
    args: &Args,
    name: &str,
    path: &Path,
    observe: &mut dyn FnMut(u64, u64),
) -> Result<Saved> {
    let started = Instant::now();
    let mut conn = connect(args)?;
    if !args.force {
        if let Some(header) = already_here(&mut conn, args, name, path)? {
            if !args.quiet {
                eprintln!(
                    "tcpfetch: {} is already here and identical ({} bytes, sha256 {}); nothing to do (--force downloads anyway)",
                    path.display(),
                    header.size,
                    hex::encode(&header.digest)
                );
            }
            return Ok(Saved {
                path: path.to_path_buf(),
                size: header.size,
                digest: header.digest,
                already: true,
            });
        }
    }
    let part = part_path(path);
    let part_file = lock_part(&part)?;
    let result = fetch_into_part(&mut conn, args, name, path, &part_file, started, observe);
    // A failure before the first byte leaves no empty .part behind.
    if result.is_err() && part_file.metadata().is_ok_and(|m| m.len() == 0) {
        discard(path);
    }
    result
}

/// The transfer itself, into the locked `.part`: resume or start, check the
/// header against `--sha256`, receive, verify, rename into place.
fn fetch_into_part(
    conn: &mut Connection,
    args: &Args,
    name: &str,
    path: &Path,
    part_file: &File,
    started: Instant,
    observe: &mut dyn FnMut(u64, u64),
) -> Result<Saved> {
    let part = part_path(path);
    let (header, state, offset) = start_or_resume(conn, args, name, path, part_file)?;
    check_expected(args.sha256, &header.digest, "the server's digest")?;
    fs::write(
        sidecar_path(path),
        format!("{}\n", hex::encode(&header.digest)),
    )
    .map_err(|e| {
        Error::local(
            format!("cannot write '{}'", sidecar_path(path).display()),
            e,
        )
    })?;
    let label = path.display().to_string();
    let mut sink = PartFile {
        file: part_file,
        path: &part,
    };
    let digest = receive(
        conn, &header, offset, state, &mut sink, &label, args, observe,
    )?;
    if let Err(e) = verify(&header, args.sha256, &digest) {
        discard(path);
        return Err(e);
    }
    fs::rename(&part, path).map_err(|e| {
        Error::local(
            format!("cannot rename '{}' to '{}'", part.display(), path.display()),
            e,
        )
    })?;
    let _ = fs::remove_file(sidecar_path(path));
    if !args.quiet {
        summary(
            &label,
            header.size - offset,
            header.size,
            started.elapsed(),
            &digest,
        );
    }
    Ok(Saved {
        path: path.to_path_buf(),
        size: header.size,
        digest,
        already: false,
    })
}

/// When `path` already holds the server's file, its header; otherwise
/// `None`, with `conn` ready for the next request.
///
/// Asking for `GET <local size>` costs nothing when the sizes match (no
/// bytes follow), and only then is the local file hashed.
fn already_here(
    conn: &mut Connection,
    args: &Args,
    name: &str,
    path: &Path,
) -> Result<Option<FileHeader>> {
    let Ok(meta) = fs::metadata(path) else {
        return Ok(None);
    };
    if !meta.is_file() {
        return Err(Error::Other(format!(
            "'{}' exists and is not a regular file",
            path.display()
        )));
    }
    let header = match conn.request_file(name, meta.len()) {
        Ok(header) => header,
        Err(Error::Remote {
            code: ErrorCode::BadRequest,
            ..
        }) => return Ok(None), // the local file is longer than the server's
        Err(e) => return Err(e),
    };
    if header.size != meta.len() {
        // The rest of the file is on its way; a fresh connection is cheaper
        // than reading it only to throw it away.
        *conn = connect(args)?;
        return Ok(None);
    }
    let (local, _) = digest::hash_path(path)
        .map_err(|e| Error::local(format!("cannot read '{}'", path.display()), e))?;
    if local != header.digest {
        // Hashing a large local file can outlast the server's idle
        // timeout, which would have closed this connection meanwhile.
        *conn = connect(args)?;
        return Ok(None);
    }
    check_expected(args.sha256, &local, "the existing file's digest")?;
    Ok(Some(header))
}

/// Send the `GET` that starts the transfer: from the end of a `.part` of
/// the same version when there is one, else from the start. Returns the
/// header, the hash state of the bytes already on disk, and the offset.
fn start_or_resume(
    conn: &mut Connection,
    args: &Args,
    name: &str,
    path: &Path,
    part_file: &File,
) -> Result<(FileHeader, Sha256, u64)> {
    let part = part_path(path);
    let resumable = fs::metadata(&part)
        .map(|m| m.is_file() && m.len() > 0)
        .unwrap_or(false);
    if resumable {
        let (state, offset) = digest::state_of_prefix(&part)
            .map_err(|e| Error::local(format!("cannot read '{}'", part.display()), e))?;
        // Hashing a large .part can outlast the server's idle timeout, and
        // `conn` sat unused meanwhile: ask on a fresh connection.
        *conn = connect(args)?;
        let same_version = |header: &FileHeader| {
            fs::read_to_string(sidecar_path(path))
                .ok()
                .and_then(|t| hex::decode_digest(t.trim()))
                .is_none_or(|d| d == header.digest)
        };
        match conn.request_file(name, offset) {
            Ok(header) if same_version(&header) => return Ok((header, state, offset)),
            Ok(_) => {
                // The server's file changed since the .part began, and the
                // rest of the new version is already on its way.
                *conn = connect(args)?;
            }
            // The .part is longer than the server's file: another version.
            Err(Error::Remote {
                code: ErrorCode::BadRequest,
                ..
            }) => {}
            Err(e) => return Err(e),
        }
        if !args.quiet {
            eprintln!(
                "tcpfetch: the server's file changed since '{}' began; starting over",
                part.display()
            );
        }
        part_file
            .set_len(0)
            .map_err(|e| Error::local(format!("cannot truncate '{}'", part.display()), e))?;
        let _ = fs::remove_file(sidecar_path(path));
    }
    let header = conn.request_file(name, 0)?;
    Ok((header, Sha256::new(), 0))
}

/// Remove a `.part` and its version note (after a failed check, or when
/// the server's file changed).
/// Open (or create) `PATH.part` for appending and lock it, so that two
/// downloads to the same PATH (two cron jobs, the page and the command line)
/// cannot interleave their bytes in one `.part`: the second is refused. The
/// lock lives as long as the returned handle and goes with the file when it
/// is renamed into place.
fn lock_part(part: &Path) -> Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(part)
        .map_err(|e| Error::local(format!("cannot write '{}'", part.display()), e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Other(format!(
            "another download to '{}' is in progress (its '{}' is locked)",
            part.with_extension("").display(),
            part.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(Error::local(format!("cannot lock '{}'", part.display()), e))
        }
    }
}

fn discard(path: &Path) {
    let _ = fs::remove_file(part_path(path));
    let _ = fs::remove_file(sidecar_path(path));
}

/// Where received bytes go.
trait Sink {
    fn write(&mut self, bytes: &[u8]) -> Result<()>;
}

struct PartFile<'a> {
    file: &'a File,
    path: &'a Path,
}

impl Sink for PartFile<'_> {
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        (&*self.file).write_all(bytes).map_err(|e| {
            Error::local(
                format!(
                    "cannot write '{}' (the partial download is kept; run again to resume)",
                    self.path.display()
                ),
                e,
            )
        })
    }
}

/// Standard output, and how many bytes went to it.
struct Stdout(io::Stdout, u64);

impl Sink for Stdout {
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.0
            .write_all(bytes)
            .map_err(|e| Error::local("cannot write to stdout", e))?;
        self.1 += bytes.len() as u64;
        Ok(())
    }
}

/// Receive the body (`size - offset` bytes) into `sink`, hashing it on a
/// second thread while this one receives and writes. The digest covers the
/// bytes in `state` (an earlier prefix) plus everything received.
/// `observe(done, size)` hears of every chunk written.
#[allow(clippy::too_many_arguments)]
fn receive(
    conn: &mut Connection,
    header: &FileHeader,
    offset: u64,
    state: Sha256,
    sink: &mut dyn Sink,
    label: &str,
    args: &Args,
    observe: &mut dyn FnMut(u64, u64),
) -> Result<Digest> {
    let mut hasher =
        PipelinedHasher::start(state).map_err(|e| Error::local("cannot start the hasher", e))?;
    let mut progress = Progress::new(label, Some(header.size), args.quiet);
    let mut pacer = args.limit_rate.map(crate::util::pace::Pacer::new);
    let mut body = conn.body(header.size - offset);
    let mut done = offset;
    loop {
        let mut buf = hasher.buffer();
        if let Some(pacer) = &pacer {
            buf.truncate(pacer.chunk().min(buf.len() as u64) as usize);
        }
        let n = fill(&mut body, &mut buf).map_err(|e| Error::net(Phase::ReceiveBody, e))?;
        if n == 0 {
            break;
        }
        buf.truncate(n);
        sink.write(&buf)?;
        hasher.update(buf);
        done += n as u64;
        progress.update(done, offset);
        observe(done, header.size);
        if let Some(pacer) = &mut pacer {
            pacer.pace(n as u64);
        }
    }
    progress.finish();
    if done < header.size {
        return Err(Error::closed(format!(
                "the server closed the connection after {done} of {} bytes (the partial download is kept; run again to resume)",
                header.size
            )));
    }
    hasher
        .finish()
        .map_err(|e| Error::local("hashing failed", e))
}

/// Read until `buf` is full or the stream ends: fewer, larger writes and
/// hand-overs than one per socket read.
pub(crate) fn fill(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if filled > 0 => {
                // Keep what arrived; the error shows again on the next read.
                let _ = e;
                break;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The received bytes must match the server's header and `--sha256`.
fn verify(header: &FileHeader, expected: Option<Digest>, got: &Digest) -> Result<()> {
    if *got != header.digest {
        return Err(Error::Integrity(format!(
            "received bytes hash to {} but the server announced {}; nothing was saved",
            hex::encode(got),
            hex::encode(&header.digest)
        )));
    }
    check_expected(expected, got, "the download's digest")
}

fn check_expected(expected: Option<Digest>, got: &Digest, what: &str) -> Result<()> {
    match expected {
        Some(want) if want != *got => Err(Error::Integrity(format!(
            "{what} is {} but --sha256 expects {}; nothing was saved",
            hex::encode(got),
            hex::encode(&want)
        ))),
        _ => Ok(()),
    }
}

fn summary(label: &str, transferred: u64, size: u64, elapsed: Duration, digest: &Digest) {
    eprintln!(
        "{label}: {size} bytes ({}) in {}, {}, sha256 verified {}",
        format::bytes(size),
        format::seconds(elapsed),
        format::rate(transferred, elapsed),
        hex::encode(digest)
    );
}

/// `-o -`: stream to stdout. Nothing can be taken back once written, so
/// the check comes at the end and a mismatch is reported (exit 3) for the
/// reader of the pipe to act on.
fn to_stdout(args: &Args, name: &str) -> Result<()> {
    let started = Instant::now();
    let mut conn = connect(args)?;
    let header = conn.request_file(name, 0)?;
    check_expected(args.sha256, &header.digest, "the server's digest")?;
    let mut sink = Stdout(io::stdout(), 0);
    let digest = receive(
        &mut conn,
        &header,
        0,
        Sha256::new(),
        &mut sink,
        name,
        args,
        &mut |_, _| {},
    )
    .map_err(|e| match e {
        // What went down the pipe cannot be taken back: a retry from the
        // start would repeat it.
        e if sink.1 > 0 && e.is_transient() => Error::Other(format!(
            "{e}; {} bytes already went to stdout, so this is not retried",
            sink.1
        )),
        e => e,
    })?;
    sink.0
        .flush()
        .map_err(|e| Error::local("cannot write to stdout", e))?;
    verify(&header, args.sha256, &digest)
        .map_err(|e| Error::Integrity(format!("{e}; discard what was written to stdout")))?;
    if !args.quiet {
        summary(name, header.size, header.size, started.elapsed(), &digest);
    }
    Ok(())
}

/// No NAME: on a terminal, list the server's files and ask which one.
fn pick(args: &Args) -> Result<String> {
    if !io::stdin().is_terminal() || !io::stderr().is_terminal() {
        return Err(Error::usage(format!(
            "missing NAME (the file to download)\n\n{USAGE}"
        )));
    }
    let entries = connect(args)?.list()?;
    if entries.is_empty() {
        return Err(Error::Other("the server offers no files".into()));
    }
    let mut err = io::stderr().lock();
    let width = entries.len().to_string().len();
    for (i, e) in entries.iter().enumerate() {
        let _ = writeln!(
            err,
            "{:>width$}) {:>10}  {}",
            i + 1,
            format::bytes(e.size),
            e.name
        );
    }
    let _ = write!(
        err,
        "download which file? [1-{}, q to cancel] ",
        entries.len()
    );
    let _ = err.flush();
    let mut answer = String::new();
    io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| Error::local("cannot read the answer", e))?;
    let answer = answer.trim();
    if answer.is_empty() || answer.eq_ignore_ascii_case("q") {
        return Err(Error::Other("cancelled".into()));
    }
    match answer.parse::<usize>() {
        Ok(n) if (1..=entries.len()).contains(&n) => Ok(entries[n - 1].name.clone()),
        _ => entries
            .iter()
            .find(|e| e.name == answer)
            .map(|e| e.name.clone())
            .ok_or_else(|| Error::Other(format!("'{answer}' is not one of the listed files"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_args(args: &[&str]) -> Result<Args> {
        parse(&mut lexopt::Parser::from_args(args.iter().copied())).map(|a| a.unwrap())
    }

    #[test]
    fn local_paths_use_only_the_last_component() {
        assert_eq!(
            local_path("a/b/c.txt", None).unwrap(),
            PathBuf::from("c.txt")
        );
        assert_eq!(
            local_path("c.txt", Some("x/y.bin")).unwrap(),
            PathBuf::from("x/y.bin")
        );
        let tmp = std::env::temp_dir();
        assert_eq!(
            local_path("d/c.txt", tmp.to_str()).unwrap(),
            tmp.join("c.txt")
        );
        for bad in ["a/", "a/..", ".", "..", "x/\u{1b}[2J"] {
            assert_eq!(local_path(bad, None).unwrap_err().exit_code(), 2, "{bad}");
        }
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
        assert_eq!(a.addr, "h:1");
        assert_eq!(a.name.as_deref(), Some("n"));
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
        assert_eq!(parse_args(&["h", "n", "extra"]).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn verification_names_both_digests() {
        let header = FileHeader {
            size: 1,
            digest: [1; 32],
        };
        let err = verify(&header, None, &[2; 32]).unwrap_err();
        assert_eq!(err.exit_code(), 3);
        let text = err.to_string();
        assert!(text.contains(&hex::encode(&[1; 32])) && text.contains(&hex::encode(&[2; 32])));
        assert!(verify(&header, Some([3; 32]), &[1; 32]).is_err());
        assert!(verify(&header, Some([1; 32]), &[1; 32]).is_ok());
    }

    #[test]
    fn fill_reads_until_full_or_end() {
        let data = vec![7u8; 300];
        let mut reader = io::BufReader::with_capacity(16, &data[..]);
        let mut buf = vec![0u8; 256];
        assert_eq!(fill(&mut reader, &mut buf).unwrap(), 256);
        assert_eq!(fill(&mut reader, &mut buf).unwrap(), 44);
        assert_eq!(fill(&mut reader, &mut buf).unwrap(), 0);
    }

    #[test]
    fn jitter_stays_within_half_to_one_and_a_half() {
        for _ in 0..100 {
            let j = jitter(Duration::from_secs(2));
            assert!(
                j >= Duration::from_secs(1) && j < Duration::from_secs(3),
                "{j:?}"
            );
        }
    }
}
