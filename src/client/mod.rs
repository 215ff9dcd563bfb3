//! The client side: where a server is ([`addr`]), the two protocols'
//! conversations ([`v1`], [`legacy`]) and what the commands see of either
//! ([`source`]). Commands (`get`, `list`, `ping`, `bench`) build on
//! [`Source`]; none of them touches a wire format directly.

pub mod addr;
pub mod legacy;
pub mod source;
pub mod v1;

pub use addr::{resolve, split_addr, Timeouts};
pub use source::{Header, Listing, Source};
pub use v1::{AskMtime, Connection};

use crate::error::Result;
use crate::proto::auth::Key;
use legacy::LegacySession;

/// Which protocol a server speaks, with what it needs.
#[derive(Debug, Clone)]
pub enum Protocol {
    V1 {
        key: Option<Key>,
        /// Whether downloads ask for (and keep) the server's modification
        /// times: `get --no-mtime` says no.
        mtime: AskMtime,
    },
    /// The old Python tcp-server (`--legacy`).
    Legacy,
}

/// `--key-file` and `--legacy` as `list`, `ping` and `bench` read them
/// (`get` checks them against its other flags itself).
#[derive(Debug, Default)]
pub struct ProtocolFlags {
    key: Option<Key>,
    pub legacy: bool,
}

impl ProtocolFlags {
    /// `--key-file FILE`: the key, loaded now so a bad file is a usage
    /// error before any connection.
    pub fn key_file(&mut self, parser: &mut lexopt::Parser) -> Result<()> {
        self.key = Some(Key::load(parser.value()?.as_ref())?);
        Ok(())
    }

    /// The protocol the command line asks for: `--legacy` is the old one,
    /// which has no keys (`--key-file` has always been ignored with it by
    /// `list`, `ping` and `bench`).
    pub fn protocol(self) -> Protocol {
        match self.legacy {
            true => Protocol::Legacy,
            // ping, list and bench keep no file's time: their GETs (list
            // --sha256sums, bench's load) stay the plain ones.
            false => Protocol::V1 {
                key: self.key,
                mtime: AskMtime::new(false),
            },
        }
    }
}

/// A server, and how to talk to it: what a command line's `ADDR`,
/// `--timeout`, `--key-file` and `--legacy` amount to.
#[derive(Debug, Clone)]
pub struct Peer {
    pub addr: String,
    pub timeouts: Timeouts,
    pub protocol: Protocol,
}

impl Peer {
    /// A protocol v1 server without a key.
    pub fn v1(addr: &str, timeouts: Timeouts) -> Peer {
        Peer {
            addr: addr.to_string(),
            timeouts,
            protocol: Protocol::V1 {
                key: None,
                mtime: AskMtime::new(true),
            },
        }
    }

    /// Connect (and authenticate, with a key).
    pub fn open(&self) -> Result<Box<dyn Source>> {
        Ok(match &self.protocol {
            Protocol::V1 { key, mtime } => Box::new(Connection::open_with_key(
                &self.addr,
                self.timeouts,
                key.as_ref(),
                mtime,
            )?),
            Protocol::Legacy => Box::new(LegacySession::open(&self.addr, self.timeouts)?),
        })
    }
}
