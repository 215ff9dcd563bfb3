//! Protocol v1's client: one connection to a tcpfetch server, with one
//! method per request, and its [`Source`] face for the commands.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::client::addr::{connect, Timeouts};
use crate::client::source::{Header, Listing, Pong, Source};
use crate::error::{Error, Phase, Result};
use crate::proto::auth::{self, Key, Session, Side};
use crate::proto::{self, FileHeader, ListEntry, Request, MAX_LINE};
use crate::util::hex::Digest;

/// The most memory a `LIST` answer may take on the client (names plus
/// per-entry overhead): a hostile server cannot make it allocate more.
const MAX_LIST_BYTES: usize = 256 << 20;

/// One connection to a tcpfetch server.
pub struct Connection {
    reader: BufReader<TcpStream>,
    /// The address actually connected to, for messages.
    pub peer: SocketAddr,
    /// Present after a successful key handshake.
    session: Option<Session>,
    /// Whether the server has sent anything yet: one that closes without a
    /// word is likely the old Python tcp-server, which does that (or dies)
    /// on a protocol v1 request.
    answered: bool,
    /// Whether a `GET` asks for the modification time (`GET +mtime`).
    ask_mtime: AskMtime,
}

/// Whether `GET` asks for modification times (`GET +mtime`). Clones share
/// it, so every connection one command makes to a server learns at once
/// that the server is older than the form: it turns it down once a run,
/// not once a file.
#[derive(Debug, Clone)]
pub struct AskMtime(Arc<AtomicBool>);

impl AskMtime {
    pub fn new(ask: bool) -> AskMtime {
        AskMtime(Arc::new(AtomicBool::new(ask)))
    }

    fn asks(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    fn stop(&self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

impl Connection {
    /// Connect to the first address of `addr` that accepts.
    pub fn open(addr: &str, timeouts: Timeouts) -> Result<Connection> {
        let (reader, peer) = connect(addr, timeouts)?;
        Ok(Connection {
            reader,
            peer,
            session: None,
            answered: false,
            ask_mtime: AskMtime::new(true),
        })
    }

    /// Connect, and with a key run the handshake before anything else;
    /// `GET` asks for modification times as `ask_mtime` says.
    pub fn open_with_key(
        addr: &str,
        timeouts: Timeouts,
        key: Option<&Key>,
        ask_mtime: &AskMtime,
    ) -> Result<Connection> {
        let mut conn = Connection::open(addr, timeouts)?;
        conn.ask_mtime = ask_mtime.clone();
        if let Some(key) = key {
            conn.authenticate(key)?;
        }
        Ok(conn)
    }

    /// The client's half of the key handshake (see `auth`). The server must
    /// prove it holds the key before we prove that we do.
    pub fn authenticate(&mut self, key: &Key) -> Result<()> {
        let client_nonce = crate::secret::nonce()?;
        self.write_line(&auth::encode_auth(&client_nonce))?;
        let answer = match self.read_status() {
            Err(Error::Remote {
                code: crate::proto::ErrorCode::BadRequest,
                ..
            }) => {
                return Err(Error::Other(
                    "the server does not use a key (it did not understand AUTH); drop --key-file or give the server one".into(),
                ))
            }
            other => other?,
        };
        let (server_nonce, proof) = auth::parse_auth_answer(&answer)?;
        let session = Session::new(key.clone(), client_nonce, server_nonce);
        if !session.check_proof(Side::Server, &proof) {
            return Err(Error::Other(
                "authentication failed: the server and this client do not hold the same key".into(),
            ));
        }
        self.write_line(&auth::encode_prove(&session.proof(Side::Client)))?;
        match self.read_status() {
            Err(Error::Remote {
                code: crate::proto::ErrorCode::Forbidden,
                ..
            }) => {
                return Err(Error::Other(
                    "authentication failed: the server and this client do not hold the same key"
                        .into(),
                ))
            }
            other => other?,
        };
        self.session = Some(session);
        Ok(())
    }

    /// Send `PING`; the server's version text (`tcpfetch 0.1.0`).
    pub fn ping(&mut self) -> Result<String> {
        self.send(&Request::Ping)?;
        let details = self.read_status()?;
        proto::parse_ping_answer(&details)?;
        Ok(details)
    }

    /// Send `LIST`; every entry, in the server's order.
    pub fn list(&mut self) -> Result<Vec<ListEntry>> {
        self.send(&Request::List)?;
        let count = proto::parse_list_count(&self.read_status()?)?;
        let mut entries = Vec::with_capacity(count.min(4096) as usize);
        let mut budget = MAX_LIST_BYTES;
        for _ in 0..count {
            let line = self.read_line(Phase::ReceiveList)?;
            budget = budget.checked_sub(line.len() + 64).ok_or_else(|| {
                Error::protocol(format!(
                    "the server's file list is larger than {} MiB; not read",
                    MAX_LIST_BYTES >> 20
                ))
            })?;
            entries.push(ListEntry::parse(&line)?);
        }
        Ok(entries)
    }

    /// Send `GET offset name` and read the header. On success exactly
    /// `size - offset` bytes follow: read them with [`Source::body`].
    ///
    /// The request asks for the modification time (`GET +mtime`). A server
    /// older than that form answers `bad-request`: the plain `GET` follows,
    /// and no connection sharing this one's [`AskMtime`] asks again. (A
    /// plain `GET` refused as well was refused for another reason, and the
    /// server may still know the form.)
    pub fn request_file(&mut self, name: &str, offset: u64) -> Result<FileHeader> {
        // A name with a line feed would smuggle a second request onto the
        // wire; one the server must refuse is better caught here.
        proto::check_name(name).map_err(|why| {
            Error::usage(format!(
                "cannot request '{}': {why}",
                proto::printable(name.as_bytes())
            ))
        })?;
        let with_option = Request::Get {
            offset,
            name: name.to_string(),
            mtime: true,
        };
        // The longest names fit a line only without the option.
        let ask = self.ask_mtime.asks() && with_option.encode().len() <= MAX_LINE + 1;
        match self.get(name, offset, ask) {
            Err(Error::Remote {
                code: proto::ErrorCode::BadRequest,
                ..
            }) if ask => {
                let header = self.get(name, offset, false)?;
                self.ask_mtime.stop();
                Ok(header)
            }
            other => other,
        }
    }

    /// One `GET` (`+mtime` if `mtime`) and its header, its MAC checked.
    fn get(&mut self, name: &str, offset: u64, mtime: bool) -> Result<FileHeader> {
        self.send(&Request::Get {
            offset,
            name: name.to_string(),
            mtime,
        })?;
        let number = self.session.as_mut().map(Session::next_request);
        let (header, mac) = FileHeader::parse_with_mac(&self.read_status()?, mtime)?;
        if let (Some(session), Some(number)) = (&self.session, number) {
            let want = session.get_mac(number, name, offset, &header);
            if !mac.is_some_and(|m| auth::same_mac(&m, &want)) {
                return Err(Error::Integrity(
                    "the server's answer does not carry a valid MAC for this session: the size and digest were not sent by a server holding the key".into(),
                ));
            }
        }
        if offset > header.size {
            return Err(Error::protocol(format!(
                "the server sent a {}-byte file for a request from offset {offset}",
                header.size
            )));
        }
        Ok(header)
    }

    fn send(&mut self, request: &Request) -> Result<()> {
        // A GET is numbered when its answer is checked; other requests here.
        if !matches!(request, Request::Get { .. }) {
            if let Some(session) = self.session.as_mut() {
                session.next_request();
            }
        }
        self.write_line(&request.encode())
    }

    fn write_line(&mut self, line: &[u8]) -> Result<()> {
        self.reader
            .get_mut()
            .write_all(line)
            .map_err(|e| Error::net(Phase::SendRequest, e))
    }

    fn read_status(&mut self) -> Result<String> {
        // The old server answers with a length header, never a line: say
        // so now rather than wait for a line feed that will not come.
        let start = self.reader.fill_buf();
        let start = start.map_err(|e| Error::net(Phase::ReceiveHeader, e))?;
        if crate::proto::sniff::is_legacy(start) {
            return Err(Error::protocol(format!(
                "{} looks like the old Python tcp-server (it answered with a length header); add --legacy",
                self.peer
            )));
        }
        let line = self.read_line(Phase::ReceiveHeader)?;
        Ok(proto::parse_status(&line)?)
    }

    fn read_line(&mut self, phase: Phase) -> Result<Vec<u8>> {
        match proto::read_line(&mut self.reader, MAX_LINE) {
            Ok(Some(line)) => {
                self.answered = true;
                Ok(line)
            }
            Ok(None) if !self.answered => Err(Error::closed(format!(
                "{} closed the connection without answering (if it is the old Python tcp-server, add --legacy)",
                self.peer
            ))),
            Ok(None) | Err(proto::LineError::Truncated) => Err(Error::closed(format!("{} closed the connection while {phase}", self.peer))),
            Err(proto::LineError::TooLong) => Err(Error::protocol(format!(
                "the peer sent a line longer than {MAX_LINE} bytes while {phase}; it is not a tcpfetch server"
            ))),
            Err(proto::LineError::Io(e)) => Err(Error::net(phase, e)),
        }
    }
}

impl Source for Connection {
    fn peer(&self) -> SocketAddr {
        self.peer
    }

    fn keeps_connection(&self) -> bool {
        true
    }

    fn resumable(&self) -> bool {
        true
    }

    fn ping(&mut self) -> Result<Pong> {
        Ok(Pong {
            server: crate::util::format::visible(&Connection::ping(self)?),
            answer: "",
        })
    }

    fn list(&mut self) -> Result<Listing> {
        Connection::list(self).map(Listing::Files)
    }

    fn local_names(&mut self, name: &str) -> Result<Vec<String>> {
        Ok(vec![name.to_string()])
    }

    fn request(&mut self, name: &str, offset: u64) -> Result<Header> {
        let header = self.request_file(name, offset)?;
        Ok(Header {
            size: header.size,
            digest: Some(header.digest),
            mtime: header.mtime.known(),
            note: None,
        })
    }

    fn body(&mut self, len: u64) -> io::Take<&mut dyn BufRead> {
        let reader: &mut dyn BufRead = &mut self.reader;
        reader.take(len)
    }

    fn vouched_digest(&mut self, header: &Header) -> Result<Digest> {
        header
            .digest
            .ok_or_else(|| Error::protocol("the server's header carried no digest"))
    }
}
