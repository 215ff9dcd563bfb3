//! The client side of the old protocol: `get --legacy`, `list --legacy`,
//! `ping --legacy`, and [`fetch`], one whole download session, which `bench`
//! can call as it is.

use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::client::{self, Timeouts};
use crate::digest::PipelinedHasher;
use crate::error::{Error, LegacyStep, Phase, Result};
use crate::util::format;
use crate::util::hex::{self, Digest};
use crate::util::progress::Progress;

use crate::proto::legacy::wire::{self, MAX_REPLY};

/// Which file to ask an old server for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wanted {
    /// The number the old server uses (`1`, `2`, …).
    Number(u64),
    /// A name from its list (matched exactly, else ignoring case: the old
    /// server upper-cases what it sends).
    Name(String),
}

impl Wanted {
    /// Digits are a number; anything else is a name.
    pub fn parse(text: &str) -> Wanted {
        match crate::proto::parse_decimal(text.as_bytes()) {
            Some(n) => Wanted::Number(n),
            None => Wanted::Name(text.to_string()),
        }
    }
}

/// One numbered entry of the old server's file list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub number: u64,
    pub name: String,
}

/// Parse the answer to `PREPARED`: `ARCHIVOS: 1. <name>`, with further
/// entries (`2. <name>`, …) on lines of their own when tcpfetch serves.
pub fn parse_listing(text: &str) -> Vec<Entry> {
    let body = match text.get(..9) {
        Some(head) if head.eq_ignore_ascii_case("archivos:") => &text[9..],
        _ => text,
    };
    body.lines()
        .filter_map(|line| {
            let (number, name) = line.trim().split_once(". ")?;
            let number = crate::proto::parse_decimal(number.as_bytes())?;
            Some(Entry {
                number,
                name: name.to_string(),
            })
        })
        .collect()
}

/// How long each phase of one legacy download took.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    /// TCP connect.
    pub connect: Duration,
    /// `HELLO` → `HELLO BACK`, then `PREPARED` → the file list.
    pub handshake: Duration,
    /// The file number sent → its size header received.
    pub first_byte: Duration,
    /// The size header → the last byte received and hashed.
    pub transfer: Duration,
    /// Everything, connect included.
    pub total: Duration,
}

/// What one legacy download produced. The two digests are returned as they
/// are: [`Fetched::check`] turns a mismatch into an integrity error.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub number: u64,
    pub size: u64,
    pub server_digest: Digest,
    pub computed_digest: Digest,
    pub timings: Timings,
}

impl Fetched {
    /// The old client's `Correcto`: the bytes hash to what the server sent.
    pub fn check(&self) -> Result<()> {
        if self.server_digest == self.computed_digest {
            return Ok(());
        }
        Err(Error::Integrity(format!(
            "received bytes hash to {} but the legacy server sent {}",
            hex::encode(&self.computed_digest),
            hex::encode(&self.server_digest)
        )))
    }
}

/// Where the bytes of a legacy download go.
pub trait Sink {
    /// Called once, when the size header has arrived and before any byte.
    fn start(&mut self, number: u64, name: Option<&str>, size: u64) -> Result<()>;
    fn write(&mut self, bytes: &[u8]) -> Result<()>;
}

/// Throws the bytes away (they are still hashed): for `bench`.
pub struct Discard;

impl Sink for Discard {
    fn start(&mut self, _: u64, _: Option<&str>, _: u64) -> Result<()> {
        Ok(())
    }
    fn write(&mut self, _: &[u8]) -> Result<()> {
        Ok(())
    }
}

/// One connection to an old server.
struct Session {
    reader: BufReader<TcpStream>,
    peer: SocketAddr,
}

impl Session {
    fn open(addr: &str, timeouts: Timeouts) -> Result<Session> {
        let mut last = None;
        for target in client::resolve(addr)? {
            match TcpStream::connect_timeout(&target, timeouts.connect) {
                Ok(stream) => {
                    let setup = || -> io::Result<()> {
                        stream.set_nodelay(true)?;
                        stream.set_read_timeout(Some(timeouts.io))?;
                        stream.set_write_timeout(Some(timeouts.io))
                    };
                    setup().map_err(|e| Error::network("cannot set up the connection", e))?;
                    return Ok(Session {
                        reader: BufReader::with_capacity(8 * 1024, stream),
                        peer: target,
                    });
                }
                Err(e) => last = Some((target, e)),
            }
        }
        let (target, source) =
            last.ok_or_else(|| Error::Other(format!("no address for {addr}")))?;
        if matches!(
            source.kind(),
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
        ) {
            return Err(Error::Timeout {
                phase: Phase::Connect,
            });
        }
        Err(Error::Connect {
            addr: target.to_string(),
            source,
        })
    }

    fn send(&mut self, text: &str, phase: Phase) -> Result<()> {
        wire::write_message(self.reader.get_mut(), text, phase)
    }

    fn receive(&mut self, phase: Phase) -> Result<String> {
        wire::read_message(&mut self.reader, MAX_REPLY, phase)?.ok_or_else(|| {
            Error::closed(format!("{} closed the connection while {phase}", self.peer))
        })
    }

    /// `HELLO` → `HELLO BACK`, `PREPARED` → the list.
    fn handshake(&mut self) -> Result<String> {
        self.send("HELLO", Phase::Legacy(LegacyStep::SendHello))?;
        let answer = self.receive(Phase::Legacy(LegacyStep::AwaitHelloBack))?;
        if !answer.trim().eq_ignore_ascii_case("HELLO BACK") {
            return Err(Error::protocol(format!(
                "expected HELLO BACK from a legacy server, got '{}'",
                crate::proto::printable(answer.as_bytes())
            )));
        }
        self.send("PREPARED", Phase::Legacy(LegacyStep::SendPrepared))?;
        self.receive(Phase::Legacy(LegacyStep::AwaitList))
    }
}

/// One whole legacy session: connect, `HELLO`, `PREPARED`, ask for the
/// file, receive and hash it into `sink`, ask for its digest. The caller
/// decides what a digest mismatch means ([`Fetched::check`]).
pub fn fetch(
    addr: &str,
    wanted: &Wanted,
    timeouts: Timeouts,
    sink: &mut dyn Sink,
) -> Result<Fetched> {
    let started = Instant::now();
    let mut session = Session::open(addr, timeouts)?;
    let connected = Instant::now();
    let listing = parse_listing(&session.handshake()?);
    let (number, name) = match wanted {
        Wanted::Number(n) => (
            *n,
            listing
                .iter()
                .find(|e| e.number == *n)
                .map(|e| e.name.clone()),
        ),
        Wanted::Name(name) => {
            let entry = find_name(&listing, name).ok_or_else(|| {
                Error::Other(format!(
                    "'{name}' is not in the legacy server's list ({}); ask for a number instead",
                    describe_listing(&listing)
                ))
            })?;
            (entry.number, Some(entry.name.clone()))
        }
    };
    let listed = Instant::now();
    session.send(&number.to_string(), Phase::Legacy(LegacyStep::AskFile))?;
    let size = wire::read_header(&mut session.reader, Phase::Legacy(LegacyStep::AwaitSize))?
        .ok_or_else(|| {
            Error::closed(format!(
                    "{} closed the connection instead of sending file {number} (does it have that many files?)",
                    session.peer
                ))
        })?;
    let header_at = Instant::now();
    sink.start(number, name.as_deref(), size)?;
    let computed_digest = receive(&mut session.reader, size, sink)?;
    let received = Instant::now();
    session.send(
        &format!("DIGEST{number}"),
        Phase::Legacy(LegacyStep::AskDigest),
    )?;
    let server_digest =
        wire::read_digest(&mut session.reader, Phase::Legacy(LegacyStep::AwaitDigest))?;
    let done = Instant::now();
    Ok(Fetched {
        number,
        size,
        server_digest,
        computed_digest,
        timings: Timings {
            connect: connected - started,
            handshake: listed - connected,
            first_byte: header_at - listed,
            transfer: received - header_at,
            total: done - started,
        },
    })
}

fn find_name<'a>(listing: &'a [Entry], name: &str) -> Option<&'a Entry> {
    listing.iter().find(|e| e.name == name).or_else(|| {
        let upper = name.to_uppercase();
        let mut matches = listing.iter().filter(|e| e.name.to_uppercase() == upper);
        match (matches.next(), matches.next()) {
            (Some(one), None) => Some(one),
            _ => None,
        }
    })
}

fn describe_listing(listing: &[Entry]) -> String {
    if listing.is_empty() {
        return "it listed none".into();
    }
    let shown: Vec<String> = listing
        .iter()
        .take(5)
        .map(|e| format!("{}. {}", e.number, format::visible(&e.name)))
        .collect();
    let more = if listing.len() > 5 { ", …" } else { "" };
    format!("it lists {}{more}", shown.join(", "))
}

/// Exactly `size` raw bytes into `sink`, hashed on a second thread.
fn receive(reader: &mut impl Read, size: u64, sink: &mut dyn Sink) -> Result<Digest> {
    let mut hasher = PipelinedHasher::start(Default::default())
        .map_err(|e| Error::local("cannot start the hasher", e))?;
    let mut body = reader.take(size);
    let mut done = 0u64;
    loop {
        let mut buf = hasher.buffer();
        let filled = crate::cmd::get::fill(&mut body, &mut buf)
            .map_err(|e| Error::net(Phase::ReceiveBody, e))?;
        if filled == 0 {
            break;
        }
        buf.truncate(filled);
        sink.write(&buf)?;
        hasher.update(buf);
        done += filled as u64;
    }
    if done < size {
        return Err(Error::closed(format!(
            "the legacy server closed the connection after {done} of {size} bytes"
        )));
    }
    hasher
        .finish()
        .map_err(|e| Error::local("hashing failed", e))
}

/// `get --legacy ADDR N`: the download goes to `PATH.part` and becomes
/// `PATH` only once its digest matched.
pub fn get(args: &crate::cmd::get::Args) -> Result<()> {
    if args.retries > 0 {
        return Err(Error::usage(
            "--retries is not available with --legacy (the old protocol cannot resume)",
        ));
    }
    let Some(text) = args.name.as_deref() else {
        return Err(Error::usage(
            "missing N: the file's number on the legacy server (see 'tcpfetch list --legacy ADDR'), or its name",
        ));
    };
    let wanted = Wanted::parse(text);
    let mut sink = FileSink {
        wanted: &wanted,
        output: args.output.as_deref(),
        quiet: args.quiet,
        target: None,
        progress: None,
    };
    let result = fetch(&args.addr, &wanted, args.timeouts, &mut sink);
    let target = sink.target.take();
    let fetched = match result {
        Ok(f) => f,
        Err(e) => {
            discard(target);
            return Err(e);
        }
    };
    let checked = fetched.check().and_then(|()| match args.sha256 {
        Some(want) if want != fetched.computed_digest => Err(Error::Integrity(format!(
            "the download's digest is {} but --sha256 expects {}",
            hex::encode(&fetched.computed_digest),
            hex::encode(&want)
        ))),
        _ => Ok(()),
    });
    let label = match target {
        Some(Target::File { path, part, file }) => {
            drop(file);
            if let Err(e) = checked {
                let _ = fs::remove_file(&part);
                return Err(suffix(e, "; nothing was saved"));
            }
            fs::rename(&part, &path).map_err(|e| {
                Error::local(
                    format!("cannot rename '{}' to '{}'", part.display(), path.display()),
                    e,
                )
            })?;
            path.display().to_string()
        }
        _ => {
            io::stdout()
                .flush()
                .map_err(|e| Error::local("cannot write to stdout", e))?;
            checked.map_err(|e| suffix(e, "; discard what was written to stdout"))?;
            "stdout".to_string()
        }
    };
    if !args.quiet {
        eprintln!(
            "{label}: {} bytes ({}) in {}, {}, sha256 verified {} (legacy server, file {})",
            fetched.size,
            format::bytes(fetched.size),
            format::seconds(fetched.timings.total),
            format::rate(fetched.size, fetched.timings.transfer),
            hex::encode(&fetched.computed_digest),
            fetched.number
        );
    }
    Ok(())
}

/// Remove the `.part` of a download that failed.
fn discard(target: Option<Target>) {
    if let Some(Target::File { part, file, .. }) = target {
        drop(file);
        let _ = fs::remove_file(part);
    }
}

fn suffix(e: Error, tail: &str) -> Error {
    match e {
        Error::Integrity(msg) => Error::Integrity(format!("{msg}{tail}")),
        other => other,
    }
}

enum Target {
    File {
        path: PathBuf,
        part: PathBuf,
        file: File,
    },
    Stdout(io::Stdout),
}

/// The sink of `get --legacy`: a `.part` file (or stdout), named once the
/// server's list has said what the number stands for.
struct FileSink<'a> {
    wanted: &'a Wanted,
    output: Option<&'a str>,
    quiet: bool,
    target: Option<Target>,
    /// The progress line, bytes so far, and the size.
    progress: Option<(Progress, u64, u64)>,
}

impl FileSink<'_> {
    /// The local path: from the name asked for, else the name the server
    /// listed for the number, else `file-N`.
    fn path(&self, number: u64, listed: Option<&str>) -> Result<PathBuf> {
        let fallback = format!("file-{number}");
        let name = match self.wanted {
            Wanted::Name(n) => n.as_str(),
            Wanted::Number(_) => listed.unwrap_or(&fallback),
        };
        crate::cmd::get::local_path(name, self.output)
            .or_else(|_| crate::cmd::get::local_path(&fallback, self.output))
    }
}

impl Sink for FileSink<'_> {
    fn start(&mut self, number: u64, name: Option<&str>, size: u64) -> Result<()> {
        let label;
        if self.output == Some("-") {
            self.target = Some(Target::Stdout(io::stdout()));
            label = format!("file {number}");
        } else {
            let path = self.path(number, name)?;
            if path.is_dir() {
                return Err(Error::Other(format!("'{}' is a directory", path.display())));
            }
            let part = part_path(&path);
            let file = File::create(&part)
                .map_err(|e| Error::local(format!("cannot write '{}'", part.display()), e))?;
            label = path.display().to_string();
            self.target = Some(Target::File { path, part, file });
        }
        self.progress = Some((Progress::new(&label, Some(size), self.quiet), 0, size));
        Ok(())
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        match &mut self.target {
            Some(Target::File { part, file, .. }) => file
                .write_all(bytes)
                .map_err(|e| Error::local(format!("cannot write '{}'", part.display()), e))?,
            Some(Target::Stdout(out)) => out
                .write_all(bytes)
                .map_err(|e| Error::local("cannot write to stdout", e))?,
            None => return Err(Error::Other("bytes arrived before the size".into())),
        }
        if let Some((progress, done, size)) = &mut self.progress {
            *done += bytes.len() as u64;
            progress.update(*done, 0);
            if *done >= *size {
                progress.finish();
            }
        }
        Ok(())
    }
}

fn part_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".part");
    PathBuf::from(s)
}

/// `list --legacy ADDR`: the numbered list, as the old server sends it.
pub fn list(args: &crate::cmd::list::Args) -> Result<()> {
    let mut session = Session::open(&args.addr, client::Timeouts::default())?;
    let raw = session.handshake()?;
    // The old session would go on with a number; leaving here simply
    // closes the connection.
    drop(session);
    let entries = parse_listing(&raw);
    let text = if args.json {
        entries
            .iter()
            .map(|e| {
                format!(
                    "{{\"number\":{},\"name\":{}}}\n",
                    e.number,
                    format::json_string(&e.name)
                )
            })
            .collect()
    } else if entries.is_empty() {
        format!("{}\n", crate::proto::printable(raw.as_bytes()))
    } else {
        let width = entries
            .iter()
            .map(|e| e.number.to_string().len())
            .max()
            .unwrap_or(1);
        entries
            .iter()
            .map(|e| format!("{:>width$}  {}\n", e.number, format::visible(&e.name)))
            .collect()
    };
    crate::util::cli::print_text(&text)
}

/// `ping --legacy ADDR`: the old protocol's `TEST` → `OK`, one connection
/// per ping (the old server closes after answering).
pub fn ping(args: &crate::cmd::ping::Args) -> Result<()> {
    for _ in 0..args.count {
        let started = Instant::now();
        let mut session = Session::open(&args.addr, client::Timeouts::default())?;
        let connect_ms = ms(started.elapsed());
        let sent = Instant::now();
        session.send("TEST", Phase::Legacy(LegacyStep::SendTest))?;
        let answer = session.receive(Phase::Legacy(LegacyStep::AwaitOk))?;
        if !answer.trim().eq_ignore_ascii_case("OK") {
            return Err(Error::protocol(format!(
                "expected OK from a legacy server, got '{}'",
                crate::proto::printable(answer.as_bytes())
            )));
        }
        crate::util::cli::print_text(&format!(
            "legacy server at {}: OK time={:.3} ms (connect {connect_ms:.3} ms)\n",
            session.peer,
            ms(sent.elapsed())
        ))?;
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_names_are_told_apart() {
        assert_eq!(Wanted::parse("1"), Wanted::Number(1));
        assert_eq!(Wanted::parse("a.txt"), Wanted::Name("a.txt".into()));
        assert_eq!(Wanted::parse("-1"), Wanted::Name("-1".into()));
    }

    #[test]
    fn listings_parse_in_both_forms() {
        let old = parse_listing("ARCHIVOS: 1. DATA.BIN");
        assert_eq!(
            old,
            vec![Entry {
                number: 1,
                name: "DATA.BIN".into()
            }]
        );
        let new = parse_listing("ARCHIVOS: 1. a b.txt\n2. sub/c. d.txt\n");
        assert_eq!(new.len(), 2);
        assert_eq!(new[1].name, "sub/c. d.txt");
        assert!(parse_listing("ARCHIVOS:").is_empty());
        assert!(parse_listing("nonsense").is_empty());
    }

    #[test]
    fn names_match_exactly_then_ignoring_case() {
        let listing = parse_listing("ARCHIVOS: 1. A.TXT\n2. b.txt\n3. B.TXT");
        assert_eq!(find_name(&listing, "a.txt").map(|e| e.number), Some(1));
        assert_eq!(find_name(&listing, "B.TXT").map(|e| e.number), Some(3));
        assert_eq!(find_name(&listing, "b.txt").map(|e| e.number), Some(2));
        assert_eq!(find_name(&listing, "B.txt"), None); // ambiguous
        assert_eq!(find_name(&listing, "c"), None);
    }
}
