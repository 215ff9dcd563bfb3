//! `tcpfetch serve`: many clients at once, one thread each, every one of
//! them bounded in time and in what it can make the server buffer.

pub mod access;
pub mod body;
pub mod files;
pub mod legacy;
pub mod listener;
pub mod log;

use std::io::{self, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use lexopt::prelude::*;

use crate::digest::DigestCache;
use crate::error::{Error, Result};
use crate::proto::auth::{self, Key, Session, Side};
use crate::proto::DEFAULT_PORT;
use crate::proto::{self, ErrorCode, FileHeader, ListEntry, Request, MAX_LINE};
use crate::serve::access::{AllowList, Cidr};
use crate::serve::files::{FileKey, Root};
use crate::serve::listener::{close_gently, DeadlineReader, Handler, Listener, Refusal};
use crate::serve::log::Log;
use crate::util::cli::{self, VERSION};

const USAGE: &str = "\
Usage: tcpfetch serve [DIR] [OPTIONS]

Serve the regular files under DIR (default: the current directory), read-only.
Prints 'listening on IP:PORT' as its first line on stdout, then one access-log
line per request on stderr.

Options:
  --listen ADDR          address to listen on (default 0.0.0.0:1236; port 0
                         picks a free port)
  --max-clients N        most connections served at once; more get 'ERR busy'
                         (default 1024)
  --idle-timeout SECS    drop a client that sends or reads nothing for this
                         long, or takes longer to send one request (default 30)
  --hidden               also serve dotfiles and dot-directories
  --allow CIDR           accept connections only from these prefixes
                         (repeatable; IPv4 or IPv6, e.g. 10.0.0.0/8)
  --key-file FILE        require clients to prove they hold this shared key
                         (at least 32 bytes, mode 600) and authenticate every
                         digest sent
  --max-rate RATE        cap each connection's send rate, bytes per second
                         with an optional k, M or G suffix
  --precompute           hash every file in the background at start-up
                         (progress on stderr), so first GETs start at once
  --quiet-ping           do not log PING requests (load-balancer health
                         checks), only everything else
  --legacy-listen ADDR   also answer the old Python tcp-server protocol on
                         ADDR (files numbered 1..N in LIST order); prints
                         'legacy listening on IP:PORT' as the second line
  -q, --quiet            no access log
  -h, --help             show this help
";

/// How a `serve` was asked to run.
#[derive(Debug, Clone)]
pub struct Config {
    pub dir: PathBuf,
    pub listen: String,
    pub max_clients: usize,
    pub idle_timeout: Duration,
    pub hidden: bool,
    pub quiet: bool,
    pub allow: AllowList,
    pub key: Option<Key>,
    pub max_rate: Option<u64>,
    pub precompute: bool,
    pub quiet_ping: bool,
    /// `--legacy-listen ADDR`: also speak the old Python protocol there.
    pub legacy_listen: Option<String>,
}

/// `None` when the arguments asked for `--help` and it has been printed.
pub fn parse(parser: &mut lexopt::Parser) -> Result<Option<Config>> {
    let mut config = Config {
        dir: PathBuf::from("."),
        listen: format!("0.0.0.0:{DEFAULT_PORT}"),
        max_clients: 1024,
        idle_timeout: Duration::from_secs(30),
        hidden: false,
        quiet: false,
        allow: AllowList::default(),
        key: None,
        max_rate: None,
        precompute: false,
        quiet_ping: false,
        legacy_listen: None,
    };
    let mut dir = None;
    while let Some(arg) = parser.next()? {
        if let Some(done) = cli::common_flag(&arg, USAGE) {
            return done.map(|()| None);
        }
        match arg {
            Long("listen") => config.listen = cli::string_value(parser)?,
            Long("max-clients") => {
                config.max_clients = cli::number_value(parser, "--max-clients")?;
                if config.max_clients == 0 {
                    return Err(Error::usage("--max-clients must be at least 1"));
                }
            }
            Long("idle-timeout") => {
                config.idle_timeout = cli::seconds_value(parser, "--idle-timeout")?
            }
            Long("hidden") => config.hidden = true,
            Long("precompute") => config.precompute = true,
            Long("quiet-ping") => config.quiet_ping = true,
            Long("allow") => config
                .allow
                .push(Cidr::parse(&cli::string_value(parser)?).map_err(Error::Usage)?),
            Long("key-file") => config.key = Some(Key::load(&PathBuf::from(parser.value()?))?),
            Long("max-rate") => {
                config.max_rate = Some(
                    crate::util::pace::parse_rate(&cli::string_value(parser)?)
                        .map_err(Error::Usage)?,
                )
            }
            Short('q') | Long("quiet") => config.quiet = true,
            Long("legacy-listen") => config.legacy_listen = Some(cli::string_value(parser)?),
            Value(v) if dir.is_none() => dir = Some(PathBuf::from(v)),
            _ => return Err(arg.unexpected().into()),
        }
    }
    if let Some(dir) = dir {
        config.dir = dir;
    }
    if config.key.is_some() && config.legacy_listen.is_some() {
        // The old protocol has no way to authenticate: a legacy listener
        // would serve every file to anyone, key or not.
        return Err(Error::usage(
            "--legacy-listen cannot be combined with --key-file: the old protocol cannot authenticate",
        ));
    }
    Ok(Some(config))
}

/// What every connection thread shares.
struct Shared {
    root: Arc<Root>,         // Arc: shared with the legacy listener
    cache: Arc<DigestCache>, // Arc: shared with the legacy listener
    config: Config,
    log: Log,
}

impl Handler for Shared {
    fn handle(&self, stream: TcpStream, peer: SocketAddr) {
        handle_connection(self, &stream, peer);
    }

    fn refusal(&self, why: Refusal) -> Vec<u8> {
        match why {
            Refusal::Forbidden => {
                proto::encode_err(ErrorCode::Forbidden, "your address is not allowed here")
            }
            Refusal::Busy => {
                proto::encode_err(ErrorCode::Busy, "too many clients; try again shortly")
            }
        }
    }
}

pub fn run(config: Config) -> Result<()> {
    let root = Root::new(&config.dir, config.hidden)
        .map_err(|e| Error::local(format!("cannot serve '{}'", config.dir.display()), e))?;
    let listener = bind(&config.listen)?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::local("cannot read the listening address", e))?;
    announce(&format!("listening on {local}"))?;
    let (root, cache) = (Arc::new(root), Arc::new(DigestCache::default()));
    // --- legacy hook: the old protocol on a second listener (src/legacy).
    if let Some(addr) = &config.legacy_listen {
        let legacy = bind(addr)?;
        let local = legacy
            .local_addr()
            .map_err(|e| Error::local("cannot read the listening address", e))?;
        announce(&format!("legacy listening on {local}"))?;
        let (root, cache, config) = (Arc::clone(&root), Arc::clone(&cache), config.clone());
        thread::Builder::new()
            .name("legacy accept".into())
            .spawn(move || crate::serve::legacy::serve(legacy, root, cache, config))
            .map_err(|e| Error::local("cannot start the legacy listener", e))?;
    }
    // --- end legacy hook
    let listener = Listener {
        socket: listener,
        name: "client",
        log: Log::new(config.quiet, ""),
        max_clients: config.max_clients,
        write_timeout: config.idle_timeout,
        allow: config.allow.clone(),
    };
    let shared = Arc::new(Shared {
        root,
        cache,
        log: listener.log,
        config,
    });
    if shared.config.precompute {
        let worker = Arc::clone(&shared);
        // Hashing is best effort: without the thread, GETs hash on demand.
        let _ = thread::Builder::new()
            .name("precompute".into())
            .spawn(move || precompute(&worker));
    }
    listener.run(&shared);
    Ok(())
}

fn bind(listen: &str) -> Result<TcpListener> {
    let addrs = crate::client::resolve(listen)?;
    TcpListener::bind(&addrs[..]).map_err(|e| Error::local(format!("cannot listen on {listen}"), e))
}

/// Print one line on stdout and flush it at once: scripts and tests wait
/// for it before they connect.
fn announce(line: &str) -> Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|e| Error::local("cannot write to stdout", e))
}

/// `--precompute`: hash every listed file through the cache, in the
/// background, reporting progress on stderr. Clients asking for a file in
/// the meantime wait for the same single hash instead of starting another.
fn precompute(shared: &Shared) {
    let started = Instant::now();
    let files = shared.root.list();
    let total: u64 = files.iter().map(|f| f.meta.len()).sum();
    let mut done = 0u64;
    let mut last_report = Instant::now();
    for (i, item) in files.iter().enumerate() {
        if let Ok(open) = shared.root.open(&item.name) {
            let key = FileKey::of(&open.meta);
            if let Err(e) = shared.cache.get(&open.path, &open.file, &key) {
                log_line(
                    shared,
                    &format!(
                        "- precompute: {}: {}",
                        item.name,
                        crate::error::describe_io(&e)
                    ),
                );
            }
        }
        done += item.meta.len();
        if last_report.elapsed() < Duration::from_secs(1) {
            continue;
        }
        last_report = Instant::now();
        eprintln!(
            "precompute: {}/{} files, {} of {} hashed",
            i + 1,
            files.len(),
            crate::util::format::bytes(done),
            crate::util::format::bytes(total)
        );
    }
    eprintln!(
        "precompute: done, {} files ({}) in {}",
        files.len(),
        crate::util::format::bytes(total),
        crate::util::format::seconds(started.elapsed())
    );
}

/// Whether the connection can carry another request.
enum Next {
    Continue,
    Close,
}

fn handle_connection(shared: &Shared, stream: &TcpStream, peer: SocketAddr) {
    let idle = shared.config.idle_timeout;
    let mut reader = BufReader::with_capacity(8 * 1024, DeadlineReader::new(stream, idle));
    let mut session = match &shared.config.key {
        Some(key) => match handshake(shared, stream, &mut reader, key, peer) {
            Some(session) => Some(session),
            None => return,
        },
        None => None,
    };
    loop {
        let Some(line) = next_line(shared, stream, &mut reader, peer) else {
            return;
        };
        let started = Instant::now();
        let (outcome, status, bytes) = respond(shared, stream, &line, session.as_mut());
        let health_check = line == b"PING" && shared.config.quiet_ping;
        if !health_check {
            log_line(
                shared,
                &format!(
                    "{peer} \"{}\" {status} {bytes} {:.1}ms",
                    proto::printable(&line),
                    started.elapsed().as_secs_f64() * 1000.0
                ),
            );
        }
        if let Next::Close = outcome {
            return;
        }
        // Anything unread in the buffer is the client's next request; the
        // wait for it starts a fresh deadline at the top of the loop.
    }
}

type LineReader<'a> = BufReader<DeadlineReader<'a>>;

/// The next request line, with a fresh deadline; `None` when the connection
/// is over (EOF, timeout, or a line too long to keep the framing).
fn next_line(
    shared: &Shared,
    stream: &TcpStream,
    reader: &mut LineReader<'_>,
    peer: SocketAddr,
) -> Option<Vec<u8>> {
    reader.get_mut().renew(shared.config.idle_timeout);
    match proto::read_line(reader, MAX_LINE) {
        Ok(line) => line,
        Err(proto::LineError::TooLong) => {
            let msg = format!("request line longer than {MAX_LINE} bytes");
            let _ = (&*stream).write_all(&proto::encode_err(ErrorCode::BadRequest, &msg));
            log_line(shared, &format!("{peer} - bad-request: {msg}; closing"));
            close_gently(stream);
            None
        }
        Err(proto::LineError::Truncated) => None,
        Err(proto::LineError::Io(e)) => {
            if matches!(
                e.kind(),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
            ) {
                log_line(shared, &format!("{peer} - idle timeout; closing"));
            }
            None
        }
    }
}

/// How long a failed authentication waits before it is answered, so that
/// guessing is slow and timing tells nothing.
const AUTH_FAILURE_DELAY: Duration = Duration::from_secs(1);

/// The server's half of the key handshake (see `auth`): `AUTH <nonce>` in,
/// our nonce and proof out, `PROVE <proof>` in. `None` closes the connection.
fn handshake(
    shared: &Shared,
    stream: &TcpStream,
    reader: &mut LineReader<'_>,
    key: &Key,
    peer: SocketAddr,
) -> Option<Session> {
    let refuse = |why: &str, message: &str| {
        log_line(shared, &format!("{peer} - forbidden: {why}"));
        let _ = (&*stream).write_all(&proto::encode_err(ErrorCode::Forbidden, message));
    };
    let mut line = next_line(shared, stream, reader, peer)?;
    // PING is answered before authentication: load-balancer health checks
    // have no key, and the answer tells only what a refusal would (that a
    // tcpfetch server is here, and its version).
    while line == b"PING" {
        let pong = proto::encode_ok(&format!("tcpfetch {VERSION}"));
        (&*stream).write_all(&pong).ok()?;
        if !shared.config.quiet_ping {
            log_line(
                shared,
                &format!("{peer} \"PING\" ok 0 (before authentication)"),
            );
        }
        line = next_line(shared, stream, reader, peer)?;
    }
    let Ok(client_nonce) = auth::parse_auth(&line) else {
        refuse(
            "no authentication",
            "this server requires a key: use --key-file",
        );
        return None;
    };
    let server_nonce = match crate::secret::nonce() {
        Ok(n) => n,
        Err(e) => {
            log_line(shared, &format!("{peer} - internal: {e}"));
            return None;
        }
    };
    let session = Session::new(key.clone(), client_nonce, server_nonce);
    let challenge = auth::encode_auth_answer(&server_nonce, &session.proof(Side::Server));
    (&*stream).write_all(&challenge).ok()?;
    let line = next_line(shared, stream, reader, peer)?;
    let proven = auth::parse_prove(&line).is_ok_and(|p| session.check_proof(Side::Client, &p));
    if !proven {
        thread::sleep(AUTH_FAILURE_DELAY);
        refuse("authentication failed", "authentication failed");
        return None;
    }
    (&*stream).write_all(&auth::encode_authenticated()).ok()?;
    log_line(shared, &format!("{peer} - authenticated"));
    Some(session)
}

/// Answer one request line: what happens next, the status for the log
/// (`ok` or the error code), and the body bytes sent.
fn respond(
    shared: &Shared,
    stream: &TcpStream,
    line: &[u8],
    session: Option<&mut Session>,
) -> (Next, String, u64) {
    // Every line counts, answered or not, so both ends number alike.
    let auth = session.map(|s| {
        let n = s.next_request();
        (&*s, n)
    });
    let result = match Request::parse(line) {
        Err(msg) => Err((ErrorCode::BadRequest, msg)),
        Ok(Request::Ping) => send(stream, &proto::encode_ok(&format!("tcpfetch {VERSION}"))),
        Ok(Request::List) => send_list(shared, stream),
        Ok(Request::Get { offset, name }) => send_file(shared, stream, offset, &name, auth),
    };
    match result {
        Ok((next, bytes)) => (next, "ok".into(), bytes),
        Err((code, message)) => {
            let sent = send(stream, &proto::encode_err(code, &message));
            let next = sent.map_or(Next::Close, |(n, _)| n);
            (next, format!("{code} ({message})"), 0)
        }
    }
}

type Sent = std::result::Result<(Next, u64), (ErrorCode, String)>;

/// Write a whole status line; a peer that went away ends the connection.
fn send(stream: &TcpStream, bytes: &[u8]) -> Sent {
    match (&*stream).write_all(bytes) {
        Ok(()) => Ok((Next::Continue, 0)),
        Err(_) => Ok((Next::Close, 0)),
    }
}

fn send_list(shared: &Shared, stream: &TcpStream) -> Sent {
    let listed = shared.root.list();
    let mut out = BufWriter::with_capacity(64 * 1024, stream);
    let mut write = || -> io::Result<()> {
        out.write_all(&proto::encode_ok(&listed.len().to_string()))?;
        for item in &listed {
            let entry = ListEntry {
                size: item.meta.len(),
                digest: shared.cache.peek(&item.path, &FileKey::of(&item.meta)),
                name: item.name.clone(),
            };
            out.write_all(entry.encode().as_bytes())?;
        }
        out.flush()
    };
    match write() {
        Ok(()) => Ok((Next::Continue, 0)),
        Err(_) => Ok((Next::Close, 0)),
    }
}

fn send_file(
    shared: &Shared,
    stream: &TcpStream,
    offset: u64,
    name: &str,
    auth: Option<(&Session, u64)>,
) -> Sent {
    let mut open = shared.root.open(name).map_err(|r| (r.code, r.message))?;
    let key = FileKey::of(&open.meta);
    let digest = shared
        .cache
        .get(&open.path, &open.file, &key)
        .map_err(|e| {
            (
                ErrorCode::Internal,
                format!("cannot read the file: {}", crate::error::describe_io(&e)),
            )
        })?;
    let size = key.size;
    if offset > size {
        return Err((
            ErrorCode::BadRequest,
            format!("offset {offset} is past the end of the file ({size} bytes)"),
        ));
    }
    let mac = auth.map(|(session, number)| session.get_mac(number, name, offset, size, &digest));
    if let (Next::Close, _) = send(
        stream,
        &FileHeader { size, digest }.encode_with_mac(mac.as_ref()),
    )? {
        return Ok((Next::Close, 0));
    }
    let want = size - offset;
    // After the header the framing depends on sending exactly `want` bytes:
    // any failure from here on must close the connection.
    if open.file.seek(SeekFrom::Start(offset)).is_err() {
        return Ok((Next::Close, 0));
    }
    let sent = body::send(&mut open.file, stream, want, shared.config.max_rate);
    if sent < want {
        // The file shrank while it was sent, or the client went away.
        return Ok((Next::Close, sent));
    }
    Ok((Next::Continue, sent))
}

fn log_line(shared: &Shared, text: &str) {
    shared.log.line(text);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_args(args: &[&str]) -> Result<Config> {
        parse(&mut lexopt::Parser::from_args(args.iter().copied())).map(|c| c.unwrap())
    }

    #[test]
    fn defaults_and_flags() {
        let c = parse_args(&[]).unwrap();
        assert_eq!(c.listen, "0.0.0.0:1236");
        assert_eq!(c.max_clients, 1024);
        assert_eq!(c.idle_timeout, Duration::from_secs(30));
        let c = parse_args(&[
            "dir",
            "--listen",
            "127.0.0.1:0",
            "--max-clients",
            "5",
            "--idle-timeout",
            "1.5",
            "-q",
        ])
        .unwrap();
        assert_eq!(c.dir, PathBuf::from("dir"));
        assert_eq!(c.max_clients, 5);
        assert_eq!(c.idle_timeout, Duration::from_millis(1500));
        assert!(c.quiet);
    }

    #[test]
    fn bad_flags_are_usage_errors() {
        for args in [
            &["--max-clients", "0"][..],
            &["--max-clients", "x"],
            &["a", "b"],
            &["--bogus"],
        ] {
            assert_eq!(parse_args(args).unwrap_err().exit_code(), 2, "{args:?}");
        }
    }
}
