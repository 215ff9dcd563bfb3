//! Protocol v1's side of `serve`: one connection's request loop, the key
//! handshake, and the answers to PING, LIST and GET.

use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use crate::digest::{FileKey, Rewritten};
use crate::proto::auth::{self, Key, Session, Side};
use crate::proto::{self, ErrorCode, FileHeader, ListEntry, Mtime, Request, MAX_LINE};
use crate::serve::body;
use crate::serve::listener::{close_gently, DeadlineReader, Handler, Refusal, REQUEST_BUFFER};
use crate::serve::listing::Entry;
use crate::serve::log;
use crate::serve::Shared;
use crate::util::cli::VERSION;

/// The write buffer of a `LIST` answer: a few hundred lines per write.
const LIST_BUFFER: usize = 32 * 1024;

/// Protocol v1's handler.
pub struct V1(pub Shared);

impl Handler for V1 {
    fn handle(&self, stream: TcpStream, peer: SocketAddr) {
        handle_connection(&self.0, &stream, peer);
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

/// Whether the connection can carry another request.
enum Next {
    Continue,
    Close,
}

fn handle_connection(shared: &Shared, stream: &TcpStream, peer: SocketAddr) {
    let idle = shared.config.idle_timeout;
    let mut reader = BufReader::with_capacity(REQUEST_BUFFER, DeadlineReader::new(stream, idle));
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
        let (outcome, result) = respond(shared, stream, &line, session.as_mut());
        // With -q the line is not even built: quoting the request and
        // formatting the line cost about 1 µs a request (of about 30 µs
        // for a new connection and 1 KiB).
        let health_check = line == b"PING" && shared.config.quiet_ping;
        if !health_check && !shared.config.quiet {
            shared
                .log
                .peer(peer, &log::request(&line, &result, started));
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
    // The first read of the request is made here, and what it says stands:
    // a client that closed (or a timeout) is not asked again by
    // `read_line`, which cost every connection a second `recv`.
    let legacy = match reader.fill_buf() {
        Ok([]) => return None,
        Ok(start) => proto::sniff::is_legacy(start),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => false,
        Err(e) => return read_failed(shared, peer, &e),
    };
    // An old-protocol client sends a length header and no line feed:
    // answer it now, in a form its own first read recognises.
    if legacy {
        let msg = "this is a tcpfetch server (protocol v1), not the old tcp-server; drop --legacy";
        let _ = (&*stream).write_all(&proto::encode_err(ErrorCode::BadRequest, msg));
        shared
            .log
            .peer(peer, "- bad-request: an old-protocol client; closing");
        close_gently(stream);
        return None;
    }
    match proto::read_line(reader, MAX_LINE) {
        Ok(line) => line,
        Err(proto::LineError::TooLong) => {
            let msg = format!("request line longer than {MAX_LINE} bytes");
            let _ = (&*stream).write_all(&proto::encode_err(ErrorCode::BadRequest, &msg));
            shared
                .log
                .peer(peer, &format!("- bad-request: {msg}; closing"));
            close_gently(stream);
            None
        }
        Err(proto::LineError::Truncated) => None,
        Err(proto::LineError::Io(e)) => read_failed(shared, peer, &e),
    }
}

/// The end of a connection whose request could not be read.
fn read_failed(shared: &Shared, peer: SocketAddr, e: &io::Error) -> Option<Vec<u8>> {
    if matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    ) {
        shared.log.peer(peer, "- idle timeout; closing");
    }
    None
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
        shared.log.peer(peer, &format!("- forbidden: {why}"));
        let _ = (&*stream).write_all(&proto::encode_err(ErrorCode::Forbidden, message));
    };
    let mut line = next_line(shared, stream, reader, peer)?;
    // PING is answered before authentication: load-balancer health checks
    // have no key, and the answer tells only what a refusal would (that a
    // tcpfetch server is here, and its version).
    while line == b"PING" {
        (&*stream)
            .write_all(&proto::encode_ping_answer(VERSION))
            .ok()?;
        if !shared.config.quiet_ping {
            shared
                .log
                .peer(peer, "\"PING\" ok 0 (before authentication)");
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
            shared.log.peer(peer, &format!("- internal: {e}"));
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
    shared.log.peer(peer, "- authenticated");
    Some(session)
}

/// Answer one request line: what happens next, and the result for the log:
/// `ok <body bytes>`, `aborted <sent>/<due>` for a file cut short (the
/// client went away, or the file shrank), or `<code> (<message>) 0`.
fn respond(
    shared: &Shared,
    stream: &TcpStream,
    line: &[u8],
    session: Option<&mut Session>,
) -> (Next, String) {
    // Every line counts, answered or not, so both ends number alike.
    let auth = session.map(|s| {
        let n = s.next_request();
        (&*s, n)
    });
    let result = match Request::parse(line) {
        Err(msg) => Err((ErrorCode::BadRequest, msg)),
        Ok(Request::Ping) => send(stream, &proto::encode_ping_answer(VERSION)),
        Ok(Request::List) => send_list(shared, stream),
        Ok(Request::Get {
            offset,
            name,
            mtime,
        }) => send_file(shared, stream, offset, &name, mtime, auth),
    };
    match result {
        // A body cut short leaves the framing broken: the connection ends.
        Ok(Done { next, sent, due }) => {
            let next = if sent < due { Next::Close } else { next };
            (next, log::transfer(sent, due))
        }
        Err((code, message)) => {
            let next =
                send(stream, &proto::encode_err(code, &message)).map_or(Next::Close, |d| d.next);
            (next, format!("{code} ({message}) 0"))
        }
    }
}

/// An answer that went out (or was cut short): what comes next, and the
/// body bytes sent of those due.
struct Done {
    next: Next,
    sent: u64,
    due: u64,
}

impl Done {
    fn with(next: Next) -> Done {
        Done {
            next,
            sent: 0,
            due: 0,
        }
    }
}

type Sent = std::result::Result<Done, (ErrorCode, String)>;

/// Write a whole status line; a peer that went away ends the connection.
fn send(stream: &TcpStream, bytes: &[u8]) -> Sent {
    match (&*stream).write_all(bytes) {
        Ok(()) => Ok(Done::with(Next::Continue)),
        Err(_) => Ok(Done::with(Next::Close)),
    }
}

/// The listing, from the snapshot every connection shares; each file's
/// size and (cached) digest are read as its line is written, so what a
/// connection holds while a slow client reads is the snapshot's `Arc` and
/// one small buffer. The log counts the entry lines as the body: `ok N`,
/// or `aborted SENT/DUE` when the client went away part-way.
fn send_list(shared: &Shared, stream: &TcpStream) -> Sent {
    let listing = shared.listings.get(&shared.root);
    let entries = listing.entries();
    let head = proto::encode_ok(&entries.len().to_string());
    let mut out = BufWriter::with_capacity(LIST_BUFFER, stream);
    // Body bytes handed to `out` (what it still holds when a write fails
    // never reached the client), and those of the whole listing: the lines
    // after a failed write are still measured, so the log can say how
    // much of the listing was due.
    let (mut handed, mut due) = (0u64, 0u64);
    let mut result = out.write_all(&head);
    for item in entries {
        let line = list_line(shared, item);
        due += line.len() as u64;
        if result.is_ok() {
            result = out.write_all(line.as_bytes());
            handed += if result.is_ok() { line.len() as u64 } else { 0 };
        }
    }
    if result.and_then(|()| out.flush()).is_ok() {
        return Ok(Done {
            next: Next::Continue,
            sent: due,
            due,
        });
    }
    // What `out` still holds never reached the client: of the entry lines,
    // `handed` less that (nothing while the head itself is held).
    let sent = handed.saturating_sub(out.buffer().len() as u64);
    // What `out` still holds is let go unwritten: dropped, a `BufWriter`
    // writes it once more, and a client that stopped reading would hold
    // the thread for a second write timeout.
    let _ = out.into_parts();
    Ok(Done {
        next: Next::Close,
        sent,
        due,
    })
}

/// One file's line of the listing. A file removed since the snapshot was
/// taken still has its line (the count is sent): empty, with no digest.
fn list_line(shared: &Shared, item: &Entry) -> String {
    let (size, digest) = item.stat(&shared.root).map_or((0, None), |(path, meta)| {
        (meta.len(), shared.cache.peek(&path, &FileKey::of(&meta)))
    });
    let entry = ListEntry {
        size,
        digest,
        name: item.name.to_string(),
    };
    entry.encode()
}

fn send_file(
    shared: &Shared,
    stream: &TcpStream,
    offset: u64,
    name: &str,
    with_mtime: bool,
    auth: Option<(&Session, u64)>,
) -> Sent {
    let open = shared.root.open(name).map_err(|r| (r.code, r.message))?;
    let digest = open.digest(&shared.cache).map_err(|e| {
        match e.get_ref().and_then(|e| e.downcast_ref::<Rewritten>()) {
            // Not the server's failure, and it may pass: `busy`, which
            // clients retry after a pause.
            Some(rewritten) => (ErrorCode::Busy, rewritten.to_string()),
            None => (
                ErrorCode::Internal,
                format!("cannot read the file: {}", crate::error::describe_io(&e)),
            ),
        }
    })?;
    let size = open.meta.len();
    if offset > size {
        return Err((
            ErrorCode::BadRequest,
            format!("offset {offset} is past the end of the file ({size} bytes)"),
        ));
    }
    // Only a client that asked gets the mtime field: older ones reject it.
    let mtime = match (with_mtime, open.meta.modified()) {
        (false, _) => Mtime::NotAsked,
        (true, Ok(time)) => Mtime::At(time),
        (true, Err(_)) => Mtime::Unknown,
    };
    let header = FileHeader {
        size,
        digest,
        mtime,
    };
    let mac = auth.map(|(session, number)| session.get_mac(number, name, offset, &header));
    let header = header.encode_with_mac(mac.as_ref());
    let due = size - offset;
    let cut = |sent| Done {
        next: Next::Close,
        sent,
        due,
    };
    if body::send_header(stream, &header, due).is_err() {
        return Ok(cut(0));
    }
    // After the header the framing depends on sending exactly `due` bytes:
    // any failure from here on must close the connection.
    let sent = body::send(&open.file, offset, stream, due, shared.config.max_rate);
    if sent < due {
        // The file shrank while it was sent, or the client went away.
        return Ok(cut(sent));
    }
    Ok(Done {
        next: Next::Continue,
        sent,
        due,
    })
}
