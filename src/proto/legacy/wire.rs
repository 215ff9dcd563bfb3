//! The old protocol's framing: a 10-byte ASCII length header, then either a
//! pickled message or raw bytes. Pure: bytes in, values out, on `Read` and
//! `Write`; every length from the peer is bounded before anything is read.

use std::fmt;
use std::io::{self, Read, Write};

use crate::proto::legacy::pickle::{self, Value};
use crate::util::io::fill;

/// What can go wrong with a frame. The caller knows which step of the
/// conversation it was in and turns this into the program's error.
#[derive(Debug)]
pub enum WireError {
    /// Reading or writing the connection failed.
    Io(io::Error),
    /// The peer closed the connection in the middle of a frame.
    Closed,
    /// The bytes break the framing or the message format.
    Malformed(String),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Io(e) => write!(f, "{e}"),
            WireError::Closed => write!(f, "the peer closed the connection mid-message"),
            WireError::Malformed(why) => write!(f, "{why}"),
        }
    }
}

pub type Result<T, E = WireError> = std::result::Result<T, E>;

/// An early end of the stream is the peer leaving; anything else is I/O.
fn read_error(e: io::Error) -> WireError {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => WireError::Closed,
        _ => WireError::Io(e),
    }
}

/// Every header is this long: the length in ASCII decimal, left-justified
/// and padded with spaces (Python `f"{n:<10}"`).
pub const HEADER_LEN: usize = 10;
/// The longest control message a server accepts. Clients send `HELLO`,
/// `PREPARED`, a number and `DIGEST<n>`: a few dozen bytes each.
pub const MAX_REQUEST: usize = 4 * 1024;
/// The longest control message a client accepts: the file list is one
/// message, so it is allowed to be larger.
pub const MAX_REPLY: usize = 64 * 1024;
/// The largest length a 10-character header can carry.
pub const MAX_HEADER_VALUE: u64 = 9_999_999_999;

/// The header for a payload of `n` bytes; `None` when `n` has more than 10
/// digits (the old protocol cannot frame it).
pub fn encode_header(n: u64) -> Option<[u8; HEADER_LEN]> {
    if n > MAX_HEADER_VALUE {
        return None;
    }
    let text = format!("{n:<HEADER_LEN$}");
    let mut out = [0u8; HEADER_LEN];
    out.copy_from_slice(text.as_bytes());
    Some(out)
}

/// Parse a header. Python's `int()` reads it on the old side, so spaces
/// around the digits are fine; anything else is not.
pub fn parse_header(header: &[u8; HEADER_LEN]) -> Result<u64, String> {
    let digits = header.trim_ascii();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(format!(
            "bad length header '{}' (expected up to 10 digits padded with spaces)",
            crate::proto::printable(header)
        ));
    }
    // At most 10 digits: always fits.
    Ok(digits
        .iter()
        .fold(0u64, |acc, &d| acc * 10 + u64::from(d - b'0')))
}

/// A whole control message: header, then the pickle of
/// `{"messageSize": n, "message": text}`.
pub fn encode_message(text: &str) -> Vec<u8> {
    let body = pickle::encode_message(text);
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    // A message is never near 10 GB: the callers bound what they send.
    out.extend_from_slice(&encode_header(body.len() as u64).unwrap_or([b'0'; HEADER_LEN]));
    out.extend_from_slice(&body);
    out
}

/// Send one control message.
pub fn write_message(w: &mut impl Write, text: &str) -> Result<()> {
    w.write_all(&encode_message(text))
        .and_then(|()| w.flush())
        .map_err(WireError::Io)
}

/// Read a header. `Ok(None)` when the peer closed the connection before
/// sending a single byte; a header cut short is an error.
pub fn read_header(r: &mut impl Read) -> Result<Option<u64>> {
    let mut header = [0u8; HEADER_LEN];
    let (filled, result) = fill(r, &mut header);
    result.map_err(WireError::Io)?;
    match filled {
        0 => Ok(None),
        HEADER_LEN => parse_header(&header)
            .map(Some)
            .map_err(WireError::Malformed),
        _ => Err(WireError::Closed),
    }
}

/// Read one control message of at most `max` bytes and return its text.
/// `Ok(None)` when the peer closed the connection instead of sending one.
pub fn read_message(r: &mut impl Read, max: usize) -> Result<Option<String>> {
    let Some(len) = read_header(r)? else {
        return Ok(None);
    };
    if len > max as u64 {
        return Err(WireError::Malformed(format!(
            "a control message of {len} bytes (at most {max} accepted)"
        )));
    }
    let mut body = vec![0u8; len as usize];
    r.read_exact(&mut body).map_err(read_error)?;
    decode_message(&body).map(Some)
}

/// The `message` string of a pickled control message.
pub fn decode_message(body: &[u8]) -> Result<String> {
    let dict = pickle::decode(body).map_err(|e| WireError::Malformed(e.to_string()))?;
    dict.into_iter()
        .find_map(|(k, v)| match (k.as_str(), v) {
            ("message", Value::Str(s)) => Some(s),
            _ => None,
        })
        .ok_or_else(|| WireError::Malformed("the message dict has no 'message' string".into()))
}

/// Read exactly 32 bytes after a header that must say 32: a SHA-256.
pub fn read_digest(r: &mut impl Read) -> Result<[u8; 32]> {
    match read_header(r)? {
        Some(32) => {}
        Some(n) => {
            return Err(WireError::Malformed(format!(
                "the digest header says {n} bytes, not 32"
            )))
        }
        None => return Err(WireError::Closed),
    }
    let mut digest = [0u8; 32];
    r.read_exact(&mut digest).map_err(read_error)?;
    Ok(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_left_justified_decimal() {
        assert_eq!(&encode_header(0).unwrap(), b"0         ");
        assert_eq!(&encode_header(39).unwrap(), b"39        ");
        assert_eq!(&encode_header(MAX_HEADER_VALUE).unwrap(), b"9999999999");
        assert_eq!(encode_header(MAX_HEADER_VALUE + 1), None);
        for n in [0, 1, 32, 4096, 123_456_789, MAX_HEADER_VALUE] {
            assert_eq!(parse_header(&encode_header(n).unwrap()), Ok(n));
        }
        assert_eq!(parse_header(b"        12"), Ok(12));
    }

    #[test]
    fn bad_headers_are_refused() {
        for bad in [
            b"          ",
            b"1 2       ",
            b"-1        ",
            b"+1        ",
            b"0x10      ",
            b"\x80\x04\x95abcdefg",
        ] {
            assert!(parse_header(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn messages_round_trip() {
        let wire = encode_message("HELLO BACK");
        assert_eq!(&wire[..10], format!("{:<10}", wire.len() - 10).as_bytes());
        let got = read_message(&mut &wire[..], MAX_REQUEST).unwrap();
        assert_eq!(got.as_deref(), Some("HELLO BACK"));
    }

    #[test]
    fn a_peer_that_leaves_before_a_message_is_not_an_error() {
        assert_eq!(read_message(&mut &b""[..], 10).unwrap(), None);
    }

    #[test]
    fn oversized_truncated_and_bad_messages_are_errors() {
        let wire = encode_message("HELLO");
        let rows: Vec<(Vec<u8>, &str)> = vec![
            (b"4097      ".to_vec(), "at most 4096"),
            (b"9999999999".to_vec(), "at most"),
            (wire[..5].to_vec(), "closed"),
            (wire[..wire.len() - 1].to_vec(), "closed"),
            (b"3         abc".to_vec(), "PROTO"),
            (
                framed(&pickle::encode(&[("x", &Value::Int(1))])),
                "no 'message'",
            ),
        ];
        for (bytes, want) in rows {
            let err = read_message(&mut &bytes[..], MAX_REQUEST).unwrap_err();
            assert!(err.to_string().contains(want), "{bytes:?}: {err}");
        }
    }

    #[test]
    fn digests_need_a_header_of_32() {
        let mut good = b"32        ".to_vec();
        good.extend_from_slice(&[7u8; 32]);
        assert_eq!(read_digest(&mut &good[..]).unwrap(), [7u8; 32]);
        let mut bad = b"31        ".to_vec();
        bad.extend_from_slice(&[7u8; 31]);
        assert!(read_digest(&mut &bad[..]).is_err());
        assert!(read_digest(&mut &good[..20]).is_err());
        assert!(read_digest(&mut &b""[..]).is_err());
    }

    #[test]
    fn the_message_limit_holds_at_its_edge() {
        let wire = encode_message("HELLO");
        let len = wire.len() - HEADER_LEN;
        let got = read_message(&mut &wire[..], len).unwrap();
        assert_eq!(got.as_deref(), Some("HELLO"));
        let err = read_message(&mut &wire[..], len - 1).unwrap_err();
        let want = format!(
            "a control message of {len} bytes (at most {} accepted)",
            len - 1
        );
        assert_eq!(err.to_string(), want);
        // A message whose 'message' is not a string has none.
        let int = framed(&pickle::encode(&[("message", &Value::Int(5))]));
        let err = read_message(&mut &int[..], MAX_REQUEST).unwrap_err();
        assert!(err.to_string().contains("no 'message' string"), "{err}");
        // A digest's header is read as any header is.
        let err = read_digest(&mut &b"3 2       "[..]).unwrap_err();
        assert!(err.to_string().contains("bad length header"), "{err}");
    }

    /// A header in front of arbitrary bytes.
    fn framed(body: &[u8]) -> Vec<u8> {
        let mut v = encode_header(body.len() as u64).unwrap().to_vec();
        v.extend_from_slice(body);
        v
    }
}
