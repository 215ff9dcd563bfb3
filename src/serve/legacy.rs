//! `serve --legacy-listen ADDR`: the old protocol on a second listener,
//! serving the same directory (and sharing the digest cache) as the main
//! one. Files are numbered 1..N in `LIST` order (sorted by name).
//!
//! Each connection runs on its own thread, with the same `--max-clients`
//! (counted separately) and `--idle-timeout` as the main listener. Whatever
//! a peer sends — nothing, garbage, a hostile pickle, a header claiming
//! gigabytes — ends its own connection with one log line, never the server.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Instant;

use crate::error::{Error, LegacyStep, Phase, Result};
use crate::serve::body;
use crate::serve::listener::{DeadlineReader, Handler, Refusal};
use crate::serve::listing::Snapshot;
use crate::serve::log;
use crate::serve::Shared;
use crate::util::hex::Digest;

use crate::proto::legacy::wire::{self, WireError, MAX_REPLY, MAX_REQUEST};

/// The most control messages one connection may send (a whole session is
/// four).
const MAX_MESSAGES: usize = 16;
/// The file list must fit in one message a client accepts, with room for
/// the pickle around it.
const LIST_BUDGET: usize = MAX_REPLY - 1024;

/// The old protocol's handler.
pub struct Legacy(pub Shared);

impl Handler for Legacy {
    fn handle(&self, stream: TcpStream, peer: SocketAddr) {
        handle(&self.0, &stream, peer);
    }

    /// The old protocol has no way to say "busy" or "forbidden": the
    /// connection just ends.
    fn refusal(&self, _why: Refusal) -> Vec<u8> {
        Vec::new()
    }
}

/// The files as numbered for this session, and the file last sent.
struct Session {
    names: Option<Arc<Snapshot>>,
    sent: Option<(u64, Digest)>,
}

/// What to do after answering one message.
enum Next {
    Continue,
    Close,
}

fn handle(shared: &Shared, stream: &TcpStream, peer: SocketAddr) {
    let idle = shared.config.idle_timeout;
    let mut session = Session {
        names: None,
        sent: None,
    };
    if wrong_protocol(stream, peer, shared) {
        return;
    }
    for count in 0..MAX_MESSAGES {
        let mut reader = DeadlineReader::new(stream, idle);
        let message = wire::read_message(&mut reader, MAX_REQUEST)
            .map_err(|e| Error::wire(Phase::Legacy(LegacyStep::AwaitMessage), e));
        let text = match message {
            Ok(Some(text)) => text,
            Ok(None) if count == 0 => {
                shared.log.peer(peer, "- left without a message");
                return;
            }
            Ok(None) => return,
            Err(e) => {
                shared.log.peer(peer, &format!("- {e}; closing"));
                return;
            }
        };
        let started = Instant::now();
        let answered = answer(shared, &mut session, stream, &text);
        // With -q the line is not even built, as in v1.
        if !shared.config.quiet {
            let request = text.as_bytes();
            let line = match &answered {
                Ok((_, Sent { sent, due })) => {
                    log::request(request, &log::transfer(*sent, *due), started)
                }
                Err(e) => format!("{} {e}; closing", log::quoted(request)),
            };
            shared.log.peer(peer, &line);
        }
        match answered {
            Ok((Next::Continue, Sent { sent, due })) if sent >= due => {}
            _ => return,
        }
    }
    shared.log.peer(
        peer,
        &format!("- more than {MAX_MESSAGES} messages; closing"),
    );
}

/// A protocol v1 client (`ping` without `--legacy`) would wait for a line
/// that never comes: answer it with one message, which its first read
/// recognises as the old protocol, and close.
fn wrong_protocol(stream: &TcpStream, peer: SocketAddr, shared: &Shared) -> bool {
    let mut start = [0u8; 8];
    let _ = stream.set_read_timeout(Some(shared.config.idle_timeout));
    let seen = match stream.peek(&mut start) {
        Ok(seen) => seen,
        Err(e) => {
            let e = Error::net(Phase::Legacy(LegacyStep::AwaitMessage), e);
            shared.log.peer(peer, &format!("- {e}; closing"));
            return true;
        }
    };
    if !crate::proto::sniff::is_v1_request(&start[..seen]) {
        return false;
    }
    let _ = wire::write_message(
        &mut &*stream,
        "THIS IS THE OLD TCP-SERVER PROTOCOL; USE --LEGACY",
    );
    shared.log.peer(peer, "- a protocol v1 client; closing");
    true
}

/// File bytes sent of those due (both 0 for a message without a file).
#[derive(Default)]
struct Sent {
    sent: u64,
    due: u64,
}

/// Answer one message: what comes next, and the file bytes sent.
fn answer(
    shared: &Shared,
    session: &mut Session,
    stream: &TcpStream,
    text: &str,
) -> Result<(Next, Sent)> {
    let mut out = stream;
    let word = text.trim().to_uppercase();
    match word.as_str() {
        "TEST" => {
            wire::write_message(&mut out, "OK")
                .map_err(|e| Error::wire(Phase::Legacy(LegacyStep::AnswerTest), e))?;
            Ok((Next::Close, Sent::default()))
        }
        "HELLO" => {
            wire::write_message(&mut out, "HELLO BACK")
                .map_err(|e| Error::wire(Phase::Legacy(LegacyStep::AnswerHello), e))?;
            Ok((Next::Continue, Sent::default()))
        }
        "PREPARED" => {
            let names = numbered(shared);
            wire::write_message(&mut out, &listing(names.entries()))
                .map_err(|e| Error::wire(Phase::Legacy(LegacyStep::SendList), e))?;
            session.names = Some(names);
            Ok((Next::Continue, Sent::default()))
        }
        _ => {
            if let Some(n) = crate::proto::parse_decimal(word.as_bytes()) {
                let (sent, digest) = send_file(shared, session, stream, n)?;
                session.sent = Some((n, digest));
                return Ok((Next::Continue, sent));
            }
            let digits = word.strip_prefix("DIGEST").map(str::trim);
            if let Some(n) = digits.and_then(|d| crate::proto::parse_decimal(d.as_bytes())) {
                let digest = match session.sent {
                    Some((sent, digest)) if sent == n => digest,
                    _ => open(shared, session, n)?.1,
                };
                send_digest(stream, &digest)
                    .map_err(|e| Error::net(Phase::Legacy(LegacyStep::SendDigest), e))?;
                return Ok((Next::Close, Sent::default()));
            }
            Err(Error::protocol(
                "unknown message (expected HELLO, PREPARED, a file number, DIGEST<n> or TEST)",
            ))
        }
    }
}

/// The served files, numbered from 1 in `LIST` order (the snapshot `LIST`
/// shares).
fn numbered(shared: &Shared) -> Arc<Snapshot> {
    shared.listings.get(&shared.root)
}

/// `ARCHIVOS: 1. <name>`, further entries on lines of their own, cut short
/// (with a note) before it outgrows one message.
pub fn listing(names: &[impl AsRef<str>]) -> String {
    let mut text = String::from("ARCHIVOS:");
    for (i, name) in names.iter().enumerate() {
        let entry = format!("{}. {}", i + 1, name.as_ref());
        if text.len() + entry.len() + 40 > LIST_BUDGET {
            text.push_str(&format!(
                "\n({} more; ask for them by number)",
                names.len() - i
            ));
            break;
        }
        text.push_str(if i == 0 { " " } else { "\n" });
        text.push_str(&entry);
    }
    text
}

/// Open file `n` of the session's numbering and get its digest.
fn open(
    shared: &Shared,
    session: &mut Session,
    n: u64,
) -> Result<(crate::serve::files::OpenFile, Digest)> {
    let names = session.names.get_or_insert_with(|| numbered(shared));
    let names = names.entries();
    let count = names.len();
    let name = usize::try_from(n)
        .ok()
        .and_then(|n| n.checked_sub(1))
        .and_then(|i| names.get(i))
        .ok_or_else(|| Error::Other(format!("no file {n} (files are 1 to {count})")))?;
    let open = shared
        .root
        .open(&name.name)
        .map_err(|r| Error::Other(format!("{}: {}", r.code, r.message)))?;
    let digest = open
        .digest(&shared.cache)
        .map_err(|e| Error::local("cannot read the file", e))?;
    Ok((open, digest))
}

/// `DIGEST<n>`'s answer: a length header of 32 and the raw digest, sent as
/// a file's header and body are ([`body::send_header`] queues the header
/// with `MSG_MORE`), so both leave in one segment rather than two.
fn send_digest(stream: &TcpStream, digest: &Digest) -> std::io::Result<()> {
    let header = wire::encode_header(digest.len() as u64)
        .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    body::send_header(stream, &header, digest.len() as u64)?;
    (&*stream).write_all(digest)
}

/// The size header, then exactly that many raw bytes (fewer if the client
/// went away or the file shrank).
fn send_file(
    shared: &Shared,
    session: &mut Session,
    stream: &TcpStream,
    n: u64,
) -> Result<(Sent, Digest)> {
    let (open, digest) = open(shared, session, n)?;
    let size = open.meta.len();
    let Some(header) = wire::encode_header(size) else {
        return Err(Error::Other(format!(
            "file {n} is {size} bytes, too large for the old protocol's 10-digit header"
        )));
    };
    body::send_header(stream, &header, size)
        .map_err(|e| Error::wire(Phase::Legacy(LegacyStep::SendSize), WireError::Io(e)))?;
    let sent = body::send(&open.file, 0, stream, size, shared.config.max_rate);
    Ok((Sent { sent, due: size }, digest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::legacy::parse_listing;

    #[test]
    fn one_file_lists_exactly_as_the_old_server_does() {
        assert_eq!(listing(&["data.bin"]), "ARCHIVOS: 1. data.bin");
        assert_eq!(listing(&[] as &[&str]), "ARCHIVOS:");
    }

    #[test]
    fn listings_parse_back_and_stay_within_one_message() {
        let names: Vec<String> = (0..10_000)
            .map(|i| format!("dir/file-{i:05}.bin"))
            .collect();
        let text = listing(&names);
        assert!(text.len() <= LIST_BUDGET);
        let parsed = parse_listing(&text);
        assert!(parsed.len() > 100 && parsed.len() < names.len());
        for (i, e) in parsed.iter().enumerate() {
            assert_eq!(
                (e.number, e.name.as_str()),
                (i as u64 + 1, names[i].as_str())
            );
        }
        assert!(text.ends_with("more; ask for them by number)"));
        assert!(wire::encode_message(&text).len() <= MAX_REPLY + wire::HEADER_LEN);
    }
}
