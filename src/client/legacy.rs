//! The client side of the old protocol: a [`LegacySession`] with an old
//! Python tcp-server (or `serve --legacy-listen`), which the commands use
//! through [`Source`] as they use a v1 connection.
//!
//! A session is `HELLO` → `HELLO BACK`, `PREPARED` → the numbered list, then
//! a file number → its size and raw bytes, then `DIGEST<n>` → its SHA-256;
//! the server closes after that, or after `TEST` → `OK`. The original server
//! fails when a connection ends any other way, so a session that did not end
//! with `DIGEST<n>` ends with `TEST`, as the original client's do.

use std::io::{self, BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::client::addr::{connect, Timeouts};
use crate::client::source::{Header, Listing, NumberedEntry as Entry, Pong, Source};
use crate::error::{Error, LegacyStep, Phase, Result};
use crate::proto::legacy::wire::{self, MAX_REPLY};
use crate::util::format;
use crate::util::hex::Digest;

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

/// Where a session is, for how it must end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Between messages: a `TEST` ends it cleanly.
    Idle,
    /// File `n`'s bytes are on their way; only `DIGEST<n>` may follow.
    Sending(u64),
    /// The server has closed (or will): nothing more to say.
    Ended,
}

/// One connection to an old server.
pub struct LegacySession {
    reader: BufReader<TcpStream>,
    peer: SocketAddr,
    /// The raw answer to `PREPARED` and its entries, once asked for.
    listing: Option<(String, Vec<Entry>)>,
    stage: Stage,
}

impl LegacySession {
    /// Connect; the handshake waits until a list or a file is asked for.
    pub fn open(addr: &str, timeouts: Timeouts) -> Result<LegacySession> {
        let (reader, peer) = connect(addr, timeouts)?;
        Ok(LegacySession {
            reader,
            peer,
            listing: None,
            stage: Stage::Idle,
        })
    }

    fn send(&mut self, text: &str, phase: Phase) -> Result<()> {
        let sent =
            wire::write_message(self.reader.get_mut(), text).map_err(|e| Error::wire(phase, e));
        self.broken_if(sent)
    }

    fn receive(&mut self, phase: Phase) -> Result<String> {
        // A tcpfetch server answers a message it cannot read at once, with
        // a line: tell the user which protocol it speaks.
        let v1 = match self.reader.fill_buf() {
            Ok(start) => Ok(crate::proto::sniff::is_v1_answer(start)),
            Err(e) => Err(Error::net(phase, e)),
        };
        if self.broken_if(v1)? {
            self.stage = Stage::Ended;
            return Err(Error::protocol(format!(
                "{} is a tcpfetch server (it answered TCPFETCH/1); drop --legacy",
                self.peer
            )));
        }
        let received = wire::read_message(&mut self.reader, MAX_REPLY)
            .map_err(|e| Error::wire(phase, e))
            .and_then(|m| {
                m.ok_or_else(|| {
                    Error::closed(format!("{} closed the connection while {phase}", self.peer))
                })
            });
        self.broken_if(received)
    }

    /// Send `message` (the step `send`) and require `want` back (the step
    /// `wait`), case and surrounding space aside.
    fn exchange(
        &mut self,
        message: &str,
        send: LegacyStep,
        want: &str,
        wait: LegacyStep,
    ) -> Result<()> {
        self.send(message, Phase::Legacy(send))?;
        let answer = self.receive(Phase::Legacy(wait))?;
        if !answer.trim().eq_ignore_ascii_case(want) {
            return Err(Error::protocol(format!(
                "expected {want} from a legacy server, got '{}'",
                crate::proto::printable(answer.as_bytes())
            )));
        }
        Ok(())
    }

    /// A failed send or receive leaves the conversation mid-message (or
    /// the peer gone, or silent): there is nothing clean left to say.
    fn broken_if<T>(&mut self, result: Result<T>) -> Result<T> {
        if result.is_err() {
            self.stage = Stage::Ended;
        }
        result
    }

    /// `HELLO` → `HELLO BACK`, `PREPARED` → the list (once per session).
    fn handshake(&mut self) -> Result<&(String, Vec<Entry>)> {
        if self.listing.is_none() {
            self.exchange(
                "HELLO",
                LegacyStep::SendHello,
                "HELLO BACK",
                LegacyStep::AwaitHelloBack,
            )?;
            self.send("PREPARED", Phase::Legacy(LegacyStep::SendPrepared))?;
            let raw = self.receive(Phase::Legacy(LegacyStep::AwaitList))?;
            let entries = parse_listing(&raw);
            self.listing = Some((raw, entries));
        }
        self.listing
            .as_ref()
            .ok_or_else(|| Error::Other("the legacy list went missing".into()))
    }

    /// The number `name` stands for, and the name listed for it.
    fn resolve(&mut self, name: &str) -> Result<(u64, Option<String>)> {
        let (_, listing) = self.handshake()?;
        match Wanted::parse(name) {
            Wanted::Number(n) => Ok((
                n,
                listing
                    .iter()
                    .find(|e| e.number == n)
                    .map(|e| e.name.clone()),
            )),
            Wanted::Name(name) => {
                let entry = find_name(listing, &name).ok_or_else(|| {
                    Error::NotListed(format!(
                        "'{name}' is not in the legacy server's list ({}); ask for a number instead",
                        describe_listing(listing)
                    ))
                })?;
                Ok((entry.number, Some(entry.name.clone())))
            }
        }
    }

    /// End as the original client does, so the original server, which
    /// fails on a connection closed at any other point, stays up. Best
    /// effort, briefly: the session is over either way.
    fn end(&mut self) {
        if self.stage != Stage::Idle {
            return;
        }
        self.stage = Stage::Ended;
        let _ = self
            .reader
            .get_ref()
            .set_read_timeout(Some(Duration::from_secs(2)));
        let _ = self.exchange("TEST", LegacyStep::SendTest, "OK", LegacyStep::AwaitOk);
    }
}

impl Drop for LegacySession {
    fn drop(&mut self) {
        self.end();
    }
}

impl Source for LegacySession {
    fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The old server closes after each file and after `TEST`.
    fn keeps_connection(&self) -> bool {
        false
    }

    /// The old protocol has no offsets: a file always starts at byte 0.
    fn resumable(&self) -> bool {
        false
    }

    /// `TEST` → `OK`.
    fn ping(&mut self) -> Result<Pong> {
        self.stage = Stage::Ended;
        self.exchange("TEST", LegacyStep::SendTest, "OK", LegacyStep::AwaitOk)?;
        Ok(Pong {
            server: "legacy server".into(),
            answer: "OK ",
        })
    }

    fn list(&mut self) -> Result<Listing> {
        let (raw, entries) = self.handshake()?.clone();
        Ok(Listing::Numbered { entries, raw })
    }

    /// The name asked for, or the one listed for the number asked for;
    /// `file-N` when neither can name a local file. The server's name is
    /// never taken when it has a dot component (`.bashrc`): the server
    /// does not choose which of the user's dotfiles to write.
    fn local_names(&mut self, name: &str) -> Result<Vec<String>> {
        let (number, listed) = self.resolve(name)?;
        let fallback = format!("file-{number}");
        let first = match Wanted::parse(name) {
            Wanted::Name(asked) => asked,
            Wanted::Number(_) => listed
                .filter(|listed| !crate::proto::has_dot_component(listed))
                .unwrap_or_else(|| fallback.clone()),
        };
        Ok(vec![first, fallback])
    }

    fn request(&mut self, name: &str, offset: u64) -> Result<Header> {
        if offset > 0 {
            return Err(Error::Other(
                "the old protocol cannot start a file past its first byte".into(),
            ));
        }
        let (number, _) = self.resolve(name)?;
        self.send(&number.to_string(), Phase::Legacy(LegacyStep::AskFile))?;
        self.stage = Stage::Sending(number);
        let size = wire::read_header(&mut self.reader).map_err(|e| Error::wire(Phase::Legacy(LegacyStep::AwaitSize), e))?
            .ok_or_else(|| {
                Error::closed(format!(
                    "{} closed the connection instead of sending file {number} (does it have that many files?)",
                    self.peer
                ))
            })?;
        Ok(Header {
            size,
            digest: None,
            // The old protocol has no modification times.
            mtime: None,
            note: Some(format!("legacy server, file {number}")),
        })
    }

    fn body(&mut self, len: u64) -> io::Take<&mut dyn BufRead> {
        let reader: &mut dyn BufRead = &mut self.reader;
        reader.take(len)
    }

    /// `DIGEST<n>` → the 32 raw bytes of the file's SHA-256.
    fn vouched_digest(&mut self, _header: &Header) -> Result<Digest> {
        let Stage::Sending(number) = self.stage else {
            return Err(Error::Other("no file was asked for".into()));
        };
        self.stage = Stage::Ended;
        self.send(
            &format!("DIGEST{number}"),
            Phase::Legacy(LegacyStep::AskDigest),
        )?;
        wire::read_digest(&mut self.reader)
            .map_err(|e| Error::wire(Phase::Legacy(LegacyStep::AwaitDigest), e))
    }
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
