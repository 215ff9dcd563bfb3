//! The access log: one line per event on stderr, stamped with the time.
//!
//! Each listener logs under its own tag, so the lines of the two protocols
//! read alike (`1.2.3.4:5 - busy …`, `1.2.3.4:5 legacy - busy …`).

use std::net::SocketAddr;
use std::time::SystemTime;

#[derive(Debug, Clone, Copy)]
pub struct Log {
    quiet: bool,
    /// Written after the peer's address: empty for protocol v1, `legacy `
    /// for the old protocol.
    tag: &'static str,
}

impl Log {
    pub fn new(quiet: bool, tag: &'static str) -> Log {
        Log { quiet, tag }
    }

    /// A log that writes nothing (`-q`, and `ui`, which keeps no log).
    pub fn off() -> Log {
        Log::new(true, "")
    }

    pub fn tag(&self) -> &'static str {
        self.tag
    }

    /// One line, stamped with the time.
    pub fn line(&self, text: &str) {
        if !self.quiet {
            eprintln!("{} {text}", crate::util::format::rfc3339(SystemTime::now()));
        }
    }

    /// A line about one peer: `<peer> <tag><text>`.
    pub fn peer(&self, peer: SocketAddr, text: &str) {
        if !self.quiet {
            self.line(&format!("{peer} {}{text}", self.tag));
        }
    }
}
