//! The download pipeline: from a [`Request`] to a verified file in place.
//!
//! One file per stage. `cmd/get.rs` parses the command line into a
//! [`Request`]; this module plans it (retries, the already-here check, the
//! resume); [`receive()`] moves the bytes from the [`Source`] into the sink
//! while hashing them; [`part`] stages them in `PATH.part` and renames them
//! into place once the digest matched. `get --all` ([`mirror`]) runs the
//! same plan for every listed file, and `ui` and `bench` use the same
//! pieces.

pub mod backoff;
pub mod batch;
pub mod expect;
pub mod manifest;
pub mod mirror;
pub mod part;
pub mod path;
pub mod receive;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

use crate::client::{Header, Peer, Source, Timeouts};
use crate::error::{Error, Result};
use crate::proto::ErrorCode;
use crate::util::format;
use crate::util::hex::{self, Digest};
use crate::util::pace::Pacer;
use crate::util::progress::Progress;

use self::backoff::Backoff;
use self::expect::{check_expected, explain, suffix};
pub use self::expect::{verify, Expected};
use self::manifest::Manifest;
use self::part::Part;
pub use self::path::local_path;
use self::path::path_for;
use self::receive::{receive, Hasher, Stdout, Watch};

/// What to download, from where, to where, and what it must match.
#[derive(Debug, Clone)]
pub struct Request {
    pub peer: Peer,
    pub mode: Mode,
    /// `--sha256`: the digest the user expects (one file only).
    pub sha256: Option<Digest>,
    /// `--manifest`: digests carried by hand, checked for every file.
    pub manifest: Option<PathBuf>,
    /// `--force`: download even when the file is already here.
    pub force: bool,
    /// Retries after transient failures, and the pause before each.
    pub retries: u32,
    pub backoff: Backoff,
    /// `--limit-rate`, in bytes per second.
    pub limit_rate: Option<u64>,
    pub quiet: bool,
    /// Flush each file to disk before it is renamed into place (not with
    /// `--no-fsync`).
    pub durable: bool,
}

/// Where the bytes go.
#[derive(Debug, Clone)]
pub enum Mode {
    /// One file, to `-o PATH`, inside `-o DIR`, or named after NAME; or
    /// several, each inside `-o DIR` or named after its NAME, with a
    /// summary at the end (`get ADDR NAME...`).
    File {
        names: Vec<String>,
        output: Option<String>,
    },
    /// One file to standard output (`-o -`), checked at the end.
    Stdout { name: String },
    /// Every served file into `dir` (`--all`), or only those under
    /// `prefix` (`get ADDR sub/ --all`, `--prefix sub/`).
    All {
        dir: PathBuf,
        allow_unlisted: bool,
        /// `--hidden`: save names with a dot component too.
        hidden: bool,
        prefix: Option<String>,
    },
}

/// The longest pause between two retries of `get`, spread included.
pub const MAX_RETRY_WAIT: Duration = Duration::from_secs(60);

impl Request {
    /// A plain download of one file by protocol v1, as `ui` starts one.
    pub fn one_file(peer: Peer, name: &str) -> Request {
        Request {
            peer,
            mode: Mode::File {
                names: vec![name.to_string()],
                output: None,
            },
            sha256: None,
            manifest: None,
            force: false,
            retries: 0,
            backoff: Backoff {
                first: Duration::from_secs(1),
                cap: MAX_RETRY_WAIT,
            },
            limit_rate: None,
            quiet: true,
            durable: true,
        }
    }

    /// `--manifest`, read (once per run: several NAMEs share it).
    fn load_manifest(&self) -> Result<Option<Manifest>> {
        self.manifest.as_deref().map(Manifest::load).transpose()
    }

    /// The digest one NAME must have: from the manifest, else `--sha256`.
    fn expected(&self, manifest: Option<&Manifest>, name: &str) -> Result<Option<Expected>> {
        match manifest {
            Some(manifest) => {
                let digest = manifest.digest_for(name, self.sha256)?;
                Ok(Some(Expected::from_manifest(manifest, digest)))
            }
            None => Ok(self.sha256.map(|digest| Expected {
                digest,
                from: "--sha256".into(),
            })),
        }
    }

    /// The hooks around the receive loop for a download labelled `label`.
    fn watch<'a>(&self, label: &str, size: u64, observe: Observe<'a>) -> Watch<'a> {
        Watch {
            pacer: self.limit_rate.map(Pacer::new),
            progress: Some(Progress::new(label, Some(size), self.quiet)),
            observe: Some(observe),
        }
    }
}

/// Who hears of each chunk, as `(done, size)`, and may stop the transfer
/// with an error.
type Observe<'a> = &'a mut dyn FnMut(u64, u64) -> Result<()>;

/// Run a request to the end.
pub fn run(request: &Request) -> Result<()> {
    match &request.mode {
        Mode::All {
            dir,
            allow_unlisted,
            hidden,
            prefix,
        } => mirror::run(request, dir, *allow_unlisted, *hidden, prefix.as_deref()),
        Mode::Stdout { name } => {
            let expected = request.expected(request.load_manifest()?.as_ref(), name)?;
            with_retries(request, || to_stdout(request, name, expected.as_ref()))
        }
        Mode::File { names, output } if names.len() == 1 => {
            let (name, output) = (&names[0], output.as_deref());
            // A name or -o that cannot make a path is a usage error, told
            // before the manifest is read or anything connects.
            local_path(name, output)?;
            let manifest = request.load_manifest()?;
            one_file(request, manifest.as_ref(), name, output).map(drop)
        }
        Mode::File { names, output } => batch::several(request, names, output.as_deref()),
    }
}

/// `get ADDR NAME [-o PATH]`: one file, checked against what the user
/// expects of it. The caller has checked that NAME and `-o` make a path
/// ([`local_path`]): a usage error, told before any connection. (The
/// source may still name the file better: the old protocol's numbers
/// stand for listed names.)
pub fn one_file(
    request: &Request,
    manifest: Option<&Manifest>,
    name: &str,
    output: Option<&str>,
) -> Result<Saved> {
    let expected = request.expected(manifest, name)?;
    fetch_file(request, name, &Place::Output(output), expected.as_ref())
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

/// Where one file goes.
pub enum Place<'a> {
    /// `-o`, as `get` takes it (see [`local_path`]).
    Output(Option<&'a str>),
    /// Exactly here (`get --all` has checked the path).
    Exactly(&'a Path),
}

/// Download `name` with everything `get` promises (resume, verification,
/// retries).
pub fn fetch_file(
    request: &Request,
    name: &str,
    place: &Place,
    expected: Option<&Expected>,
) -> Result<Saved> {
    with_retries(request, || {
        let mut source = request.peer.open()?;
        let path = match place {
            Place::Exactly(path) => path.to_path_buf(),
            Place::Output(output) => path_for(&source.local_names(name)?, *output)?,
        };
        download(request, &mut source, name, &path, expected, &mut |_, _| {
            Ok(())
        })
        .map_err(|e| explain(e, name, source.peer()))
    })
}

/// Download `name` to `path`, a file in an existing directory, as `get`
/// does (verified, atomic, resumable), calling `observe(done, size)` as
/// bytes arrive (first with the offset a resume starts at). For `ui`,
/// which saves a name's last component in its downloads directory and
/// shows progress in a page instead of a terminal line; an error from
/// `observe` (its Cancel) stops the download and keeps the `.part` to
/// resume from, as an interrupted `get` does. A failure reads as `get`'s
/// (see [`explain`]).
pub fn fetch_to(
    addr: &str,
    name: &str,
    path: &Path,
    timeouts: Timeouts,
    observe: Observe,
) -> Result<Saved> {
    let dir = part::parent(path);
    if !dir.is_dir() {
        return Err(Error::Other(format!(
            "'{}' is not a directory",
            dir.display()
        )));
    }
    let request = Request::one_file(Peer::v1(addr, timeouts), name);
    let mut source = request.peer.open()?;
    download(&request, &mut source, name, path, None, observe)
        .map_err(|e| explain(e, name, source.peer()))
}

/// Run `attempt` again after transient failures, with exponential backoff
/// and jitter. A definite answer (not found, forbidden, a digest mismatch of
/// a complete file) is never retried.
fn with_retries<T>(request: &Request, mut attempt: impl FnMut() -> Result<T>) -> Result<T> {
    let mut retry = 0;
    loop {
        match attempt() {
            Err(e) if retry < request.retries && e.is_transient() => {
                retry += 1;
                let pause = request.backoff.pause(retry, backoff::clock_seed());
                if !request.quiet {
                    eprintln!(
                        "tcpfetch: {e}; retrying in {:.1} s ({} left)",
                        pause.as_secs_f64(),
                        request.retries - retry + 1
                    );
                }
                std::thread::sleep(pause);
            }
            result => return result,
        }
    }
}

/// One attempt: skip a file already here, else receive into `PATH.part`
/// (resuming what is there) and commit it once verified.
fn download(
    request: &Request,
    source: &mut Box<dyn Source>,
    name: &str,
    path: &Path,
    expected: Option<&Expected>,
    observe: Observe,
) -> Result<Saved> {
    let started = Instant::now();
    if !request.force && source.resumable() {
        if let Some(saved) = already_here(request, source, name, path, expected)? {
            return Ok(saved);
        }
    }
    let mut part = Part::open(path, request.durable)?;
    let received = match receive_into(request, source, name, &mut part, expected, observe) {
        Ok(received) => received,
        Err(e) if source.resumable() => {
            let e = kept_for_resume(e, &part);
            part.keep_or_discard();
            return Err(e);
        }
        Err(e) => {
            part.discard();
            return Err(e);
        }
    };
    let Received {
        header,
        offset,
        got,
        vouched,
    } = received;
    if let Err(e) = vouched.and_then(|vouched| verify(&vouched, expected, &got)) {
        part.discard();
        return Err(suffix(e, "; nothing was saved"));
    }
    part.commit(header.mtime)?;
    let saved = Saved {
        path: path.to_path_buf(),
        size: header.size,
        digest: got,
        already: false,
    };
    if !request.quiet {
        summary(&saved, &header, header.size - offset, started.elapsed());
    }
    Ok(saved)
}

/// A body received into a `.part`, not yet verified.
struct Received {
    header: Header,
    /// Where this attempt started (past what an earlier one left).
    offset: u64,
    /// The digest of the bytes.
    got: Digest,
    /// The digest the server vouches for; failing to learn it fails the
    /// check (the bytes cannot be trusted, nor resumed from).
    vouched: Result<Digest>,
}

/// The transfer into the locked `.part`: resume or start, check the header
/// against the expected digest, receive, learn the server's digest.
fn receive_into(
    request: &Request,
    source: &mut Box<dyn Source>,
    name: &str,
    part: &mut Part,
    expected: Option<&Expected>,
    observe: Observe,
) -> Result<Received> {
    let (header, state, offset) = start_or_resume(request, source, name, part)?;
    if let Some(digest) = header.digest {
        check_expected(expected, &digest, "the server's digest")
            .map_err(|e| suffix(e, "; nothing was saved"))?;
        part.record(&digest)?;
    }
    let label = shown(part.path());
    let mut watch = request.watch(&label, header.size, observe);
    let got = receive(
        &mut source.body(header.size - offset),
        header.size,
        offset,
        part,
        Hasher::pipelined(state)?,
        &mut watch,
    )?;
    let vouched = source.vouched_digest(&header);
    Ok(Received {
        header,
        offset,
        got,
        vouched,
    })
}

/// When `path` already holds the server's file, what it holds; otherwise
/// `None`, with `source` ready for the next request.
///
/// Asking for `GET <local size>` costs nothing when the sizes match (no
/// bytes follow), and only then is the local file hashed.
fn already_here(
    request: &Request,
    source: &mut Box<dyn Source>,
    name: &str,
    path: &Path,
    expected: Option<&Expected>,
) -> Result<Option<Saved>> {
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(None);
    };
    if !meta.is_file() {
        return Err(Error::Other(format!(
            "'{}' exists and is not a regular file",
            path.display()
        )));
    }
    let header = match source.request(name, meta.len()) {
        Ok(header) => header,
        Err(Error::Remote {
            code: ErrorCode::BadRequest,
            ..
        }) => return Ok(None), // the local file is longer than the server's
        Err(e) => return Err(e),
    };
    let Some(digest) = header.digest.filter(|_| header.size == meta.len()) else {
        // The rest of the file is on its way; a fresh connection is cheaper
        // than reading it only to throw it away.
        *source = request.peer.open()?;
        return Ok(None);
    };
    let (local, _) = crate::digest::hash_path(path)
        .map_err(|e| Error::local(format!("cannot read '{}'", path.display()), e))?;
    if local != digest {
        // Hashing a large local file can outlast the server's idle
        // timeout, which would have closed this connection meanwhile.
        *source = request.peer.open()?;
        return Ok(None);
    }
    check_expected(expected, &local, "the existing file's digest")
        .map_err(|e| suffix(e, "; nothing was saved"))?;
    if !request.quiet {
        // Not an error, so not `tcpfetch:`: one line per file, as a
        // download's summary is.
        eprintln!(
            "{}: already here and identical ({} bytes, sha256 {}); nothing to do (--force downloads anyway)",
            shown(path),
            header.size,
            hex::encode(&digest)
        );
    }
    Ok(Some(Saved {
        path: path.to_path_buf(),
        size: header.size,
        digest,
        already: true,
    }))
}

/// Ask for the file: from the end of a `.part` of the same version when
/// there is one (and the protocol can), else from the start. Returns the
/// header, the hash state of the bytes already on disk, and the offset.
fn start_or_resume(
    request: &Request,
    source: &mut Box<dyn Source>,
    name: &str,
    part: &mut Part,
) -> Result<(Header, Sha256, u64)> {
    if source.resumable() && part.len() > 0 {
        // Without a record nobody knows which version the bytes are of
        // (an empty one is what a power cut can leave): start over.
        let why = match part.recorded() {
            None => "has no record of the version it belongs to",
            Some(recorded) => {
                let (state, offset) = part.prefix()?;
                // Hashing a large .part can outlast the server's idle
                // timeout, and the connection sat unused meanwhile: ask on
                // a fresh one.
                *source = request.peer.open()?;
                match source.request(name, offset) {
                    Ok(header) if header.digest == Some(recorded) => {
                        if !request.quiet {
                            // As curl says it: a resumed download is no
                            // surprise.
                            eprintln!(
                                "{}: resuming at byte {offset} of {}",
                                part.path().display(),
                                header.size
                            );
                        }
                        return Ok((header, state, offset));
                    }
                    // The server's file changed since the .part began, and
                    // the rest of the new version is already on its way.
                    Ok(_) => *source = request.peer.open()?,
                    // The .part is longer than the server's file: another
                    // version.
                    Err(Error::Remote {
                        code: ErrorCode::BadRequest,
                        ..
                    }) => {}
                    Err(e) => return Err(e),
                }
                "is of a version the server no longer has"
            }
        };
        if !request.quiet {
            eprintln!(
                "tcpfetch: '{}' {why}; starting over",
                part.staged().display()
            );
        }
    }
    part.restart()?;
    let header = source.request(name, 0)?;
    Ok((header, Sha256::new(), 0))
}

/// A body cut short left its bytes in the `.part`: say so.
fn kept_for_resume(e: Error, part: &Part) -> Error {
    match e {
        Error::Network { context, source }
            if source.kind() == std::io::ErrorKind::UnexpectedEof && part.len() > 0 =>
        {
            Error::Network {
                context: format!("{context} (the partial download is kept; run again to resume)"),
                source,
            }
        }
        e => e,
    }
}

/// `-o -`: stream to stdout. Nothing can be taken back once written, so
/// the check comes at the end and a mismatch is reported (exit 3) for the
/// reader of the pipe to act on.
fn to_stdout(request: &Request, name: &str, expected: Option<&Expected>) -> Result<()> {
    let started = Instant::now();
    let mut source = request.peer.open()?;
    let header = source.request(name, 0)?;
    if let Some(digest) = header.digest {
        check_expected(expected, &digest, "the server's digest")?;
    }
    let mut sink = Stdout::new();
    let mut ignore = |_, _| Ok(());
    let mut watch = request.watch(name, header.size, &mut ignore);
    let got = receive(
        &mut source.body(header.size),
        header.size,
        0,
        &mut sink,
        Hasher::pipelined(Sha256::new())?,
        &mut watch,
    )
    .map_err(|e| match e {
        // What went down the pipe cannot be taken back: a retry from the
        // start would repeat it.
        e if sink.written > 0 && e.is_transient() => Error::Other(format!(
            "{e}; {} bytes already went to stdout, so this is not retried",
            sink.written
        )),
        e => e,
    })?;
    sink.flush()?;
    source
        .vouched_digest(&header)
        .and_then(|vouched| verify(&vouched, expected, &got))
        .map_err(|e| suffix(e, "; discard what was written to stdout"))?;
    if !request.quiet {
        let saved = Saved {
            path: PathBuf::from(name),
            size: header.size,
            digest: got,
            already: false,
        };
        summary(&saved, &header, header.size, started.elapsed());
    }
    Ok(())
}

/// A local path named after the server's name, escaped for the terminal
/// as the name itself would be.
fn shown(path: &Path) -> String {
    format::visible(&path.display().to_string())
}

fn summary(saved: &Saved, header: &Header, transferred: u64, elapsed: Duration) {
    let note = header
        .note
        .as_ref()
        .map_or_else(String::new, |n| format!(" ({n})"));
    // A transfer too short to time gets no rate rather than `0.0 MB/s`.
    let rate = format::rate(transferred, elapsed).map_or_else(String::new, |r| format!(", {r}"));
    eprintln!(
        "{}: {} bytes ({}) in {}{rate}, sha256 verified {}{note}",
        shown(&saved.path),
        saved.size,
        format::bytes(saved.size),
        format::seconds(elapsed),
        hex::encode(&saved.digest)
    );
}
