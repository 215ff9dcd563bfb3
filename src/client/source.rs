//! A server to download from, whichever protocol it speaks.
//!
//! [`Source`] is what every command needs from a server: answer a ping,
//! list its files, and send one file from an offset (a header, then the
//! body). Protocol v1's [`Connection`](super::Connection) and the old
//! protocol's [`LegacySession`](super::legacy::LegacySession) both implement
//! it, so `get`, `list`, `ping` and `bench` have one path each and the
//! protocol is chosen once, when the command line is parsed
//! ([`Peer`](super::Peer)).
//!
//! The two protocols differ in what the trait has to leave room for:
//! - v1 sends the file's digest before the body; the old protocol sends it
//!   only when asked (`DIGEST<n>`) after the body, so the digest the
//!   pipeline checks against comes from [`Source::vouched_digest`], called
//!   after the body, and [`Header::digest`] is `None` until then.
//! - v1 can start a file at any offset (resume, the already-here check);
//!   the old protocol cannot ([`Source::resumable`]).
//! - the old server closes after each file or `TEST`, so a connection
//!   carries one request there ([`Source::keeps_connection`]).

use std::io::{self, BufRead};
use std::net::SocketAddr;
use std::time::SystemTime;

use crate::error::{Error, Result};
use crate::proto::ListEntry;
use crate::util::hex::Digest;

/// The answer to a file request; `size - offset` body bytes follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub size: u64,
    /// The server's digest when it comes with the header (v1).
    pub digest: Option<Digest>,
    /// The file's modification time on the server, when it told one (v1
    /// `GET +mtime`); the download is given it.
    pub mtime: Option<SystemTime>,
    /// What the summary line adds about where the file came from.
    pub note: Option<String>,
}

/// The answer to a ping.
#[derive(Debug, Clone)]
pub struct Pong {
    /// Who answered: the server's version text, or what it is.
    pub server: String,
    /// Its word for "yes", shown before the time (empty for v1).
    pub answer: &'static str,
}

/// A server's file list, in its protocol's own terms.
#[derive(Debug, Clone)]
pub enum Listing {
    /// Protocol v1: names, sizes, and digests the server has computed.
    Files(Vec<ListEntry>),
    /// The old protocol: numbered names, and the raw text they came in.
    Numbered {
        entries: Vec<NumberedEntry>,
        raw: String,
    },
}

impl Listing {
    /// The entries with sizes; the old protocol's list has none.
    pub fn into_files(self) -> Result<Vec<ListEntry>> {
        match self {
            Listing::Files(entries) => Ok(entries),
            Listing::Numbered { .. } => Err(Error::Other(
                "the old protocol's list has no sizes; give the file's number".into(),
            )),
        }
    }
}

/// One open conversation with a server.
pub trait Source {
    /// The address actually connected to, for messages.
    fn peer(&self) -> SocketAddr;
    /// Whether a second request may follow on this connection.
    fn keeps_connection(&self) -> bool;
    /// Whether a file can be asked for from an offset past 0.
    fn resumable(&self) -> bool;
    fn ping(&mut self) -> Result<Pong>;
    fn list(&mut self) -> Result<Listing>;
    /// The names a download of `name` may be saved under, best first (the
    /// old protocol's files are asked for by number; their listed name, if
    /// any, names the file).
    fn local_names(&mut self, name: &str) -> Result<Vec<String>>;
    /// Ask for `name` from `offset`; on success `size - offset` bytes follow.
    fn request(&mut self, name: &str, offset: u64) -> Result<Header>;
    /// The next `len` bytes of the stream: the body of the file requested,
    /// buffered, so a reader without a buffer of its own can hash the
    /// bytes where they were read (a bench client).
    fn body(&mut self, len: u64) -> io::Take<&mut dyn BufRead>;
    /// After the whole body: the digest the server vouches for.
    fn vouched_digest(&mut self, header: &Header) -> Result<Digest>;
}

/// One numbered entry of the old server's file list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberedEntry {
    pub number: u64,
    pub name: String,
}
