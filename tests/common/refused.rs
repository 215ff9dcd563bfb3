//! A refused client that is still sending (past `--max-clients`, past the
//! ui's cap): the server writes its refusal, then drains what the client
//! sends for a while before it closes, so the client reads the refusal
//! instead of a reset. The while is bounded (`REJECT_LINGER`, 2 s, in
//! src/serve/listener.rs): a client on a loaded machine can still be
//! sending after it, and its reset then says nothing about the server.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

/// How long a server drains a refused connection after it accepts it
/// (src/serve/listener.rs).
pub const REJECT_LINGER: Duration = Duration::from_secs(2);

/// What a refused client that kept sending saw.
pub enum Refused {
    /// The server's answer, read to its close.
    Answer(Vec<u8>),
    /// A reset that came after the server's drain may have ended: this
    /// client was too slow for a verdict.
    TooSlow(String),
}

/// Send `bytes` on `s`, connected at `connected`, 4 KiB at a time and
/// 2 ms apart, as a client still sending its requests would; then close
/// our side and read until the server closes. A reset within
/// [`REJECT_LINGER`] of the connect (the refusal is written at the accept,
/// after it) is the server closing under a client it should drain: that
/// panics.
pub fn keep_sending(s: &mut TcpStream, connected: Instant, bytes: &[u8]) -> Refused {
    // Only a bound on a hang: the server closes once the client has.
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let reset = |what: &str, e: std::io::Error| {
        let after = connected.elapsed();
        assert!(
            after >= REJECT_LINGER,
            "{what} {after:?} after the connect, within the drain: {e}"
        );
        Refused::TooSlow(format!("{what} {after:?} after the connect: {e}"))
    };
    for chunk in bytes.chunks(4096) {
        if let Err(e) = s.write_all(chunk) {
            return reset("the refused client's send was reset", e);
        }
        thread::sleep(Duration::from_millis(2));
    }
    let _ = s.shutdown(Shutdown::Write);
    let mut answer = Vec::new();
    match s.read_to_end(&mut answer) {
        Ok(_) => Refused::Answer(answer),
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            panic!("the server neither answered nor closed in 60 s: {answer:?}")
        }
        Err(e) => reset("the refused client's read was reset", e),
    }
}

/// Run `attempt` (one refused client, from its connect) until it gives a
/// verdict, at most 5 times: the answer it read.
pub fn refused_while_sending(mut attempt: impl FnMut() -> Refused) -> Vec<u8> {
    for _ in 0..5 {
        match attempt() {
            Refused::Answer(answer) => return answer,
            Refused::TooSlow(why) => eprintln!("{why}; again"),
        }
    }
    panic!("5 refused clients in a row were slower than the server's drain");
}
