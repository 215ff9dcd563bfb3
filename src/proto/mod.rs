//! Protocol v1: the lines tcpfetch speaks over TCP, parsed by hand.
//!
//! This module knows bytes, not sockets: everything here works on slices and
//! on `BufRead`/`Write`, so it is tested without a network. It is also where
//! the bounds live: no line longer than [`MAX_LINE`] is ever buffered.
//!
//! # Requests
//!
//! A request is one line. LF ends it; a CR right before the LF is tolerated.
//! A line holds at most 4096 bytes, terminator excluded.
//!
//! ```text
//! PING
//! LIST
//! GET <offset> <name>
//! GET +mtime <offset> <name>
//! ```
//!
//! `<offset>` is a decimal byte offset (digits only, fits in 64 bits).
//! `<name>` is the rest of the line: a relative path with `/` separators,
//! UTF-8, spaces allowed, no control characters. `+mtime` is an option:
//! the answer carries the file's modification time too. An option is `+`
//! and a word (no offset starts so); one this server does not know is
//! `bad-request`.
//!
//! # Responses
//!
//! Every response starts with a status line:
//!
//! ```text
//! TCPFETCH/1 OK <details>
//! TCPFETCH/1 ERR <code> <message>
//! ```
//!
//! `<code>` is one of `bad-request`, `not-found`, `forbidden`, `busy`,
//! `internal`. Clients treat an unknown code as a failure too.
//!
//! - `PING` → `TCPFETCH/1 OK tcpfetch <version>`
//! - `LIST` → `TCPFETCH/1 OK <count>`, then `count` lines
//!   `<size> <sha256-hex or -> <name>`, sorted by name (`-` when the server
//!   has not hashed the file yet).
//! - `GET <offset> <name>` → `TCPFETCH/1 OK <size> <sha256-hex>`: size and
//!   digest of the *whole* file, then exactly `size - offset` raw bytes. An
//!   offset past the end is `bad-request`.
//! - `GET +mtime <offset> <name>` → `TCPFETCH/1 OK <size> <sha256-hex>
//!   <mtime>`, then the bytes as above. `<mtime>` is the file's modification
//!   time, `<seconds>.<nanoseconds>` since the Unix epoch (seconds decimal,
//!   nanoseconds exactly 9 digits), or `-` when the server cannot tell (or
//!   it is before 1970). With a key the MAC follows it (see [`auth`]).
//!   Clients also take an answer without the field (a server that ignored
//!   the option) as one without a time.
//!
//! # Compatibility of the modification time
//!
//! The first clients parse the `GET` answer as `<size> <digest> [<mac>]`
//! and refuse anything more (a third field that is not a MAC, a fourth),
//! so a server sends the mtime field only to a request that asked for it:
//! a plain `GET` gets the answer it always got, byte for byte, MAC
//! included. The other way, a server older than the option reads
//! `GET +mtime 0 f` as a non-numeric offset and answers `bad-request`,
//! keeping the connection; the client then sends the plain `GET` and does
//! not ask that server again for the rest of the command (one extra round
//! trip per run against an old server, none against a new one). A plain
//! `GET` refused as well was refused for its own reason, and that error is
//! the answer. A name so long that the option would push the request past
//! 4096 bytes is asked for without it. Request numbers for the MAC count
//! the refused line too, on both ends.
//!
//! After a complete response the server reads the next request on the same
//! connection. It closes the connection on EOF, after the idle timeout, and
//! after an error that loses the framing (a line that is too long).
//!
//! # Transcript
//!
//! ```text
//! $ printf 'PING\nLIST\nGET 0 hello.txt\nGET +mtime 6 hello.txt\nGET 0 ../etc/passwd\n' | nc -N 127.0.0.1 1236
//! TCPFETCH/1 OK tcpfetch 0.1.0
//! TCPFETCH/1 OK 2
//! 12 - hello.txt
//! 3 - sub/a b.txt
//! TCPFETCH/1 OK 12 a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447
//! hello world
//! TCPFETCH/1 OK 12 a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447 1700000000.123456789
//! world
//! TCPFETCH/1 ERR forbidden path leaves the served directory
//! ```

mod answer;
pub mod auth;
mod error;
pub mod legacy;
mod line;
pub mod sniff;

pub use answer::encode_ping_answer;
pub use answer::{parse_list_count, parse_ping_answer, FileHeader, ListEntry, Mtime};
pub use error::{Message, ProtoError};
pub use line::{read_line, LineError};

/// The port a server listens on and a client connects to by default.
pub const DEFAULT_PORT: u16 = 1236;

use crate::util::format;

/// The protocol tag that starts every status line.
pub const TAG: &str = "TCPFETCH/1";
/// The longest line (request or status or list entry) either side buffers,
/// without its terminator.
pub const MAX_LINE: usize = 4096;
/// The most entries a client accepts in one `LIST` answer; a bound on what a
/// hostile server can make it allocate.
pub const MAX_LIST_ENTRIES: u64 = 10_000_000;

/// What a client asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Ping,
    List,
    /// `mtime`: the request asked for the file's modification time
    /// (`GET +mtime <offset> <name>`).
    Get {
        offset: u64,
        name: String,
        mtime: bool,
    },
}

impl Request {
    /// Parse one request line (without its terminator). The error is the
    /// message of the `bad-request` answer.
    pub fn parse(line: &[u8]) -> Result<Request, String> {
        match line {
            b"PING" => return Ok(Request::Ping),
            b"LIST" => return Ok(Request::List),
            _ => {}
        }
        let Some(rest) = line.strip_prefix(b"GET ") else {
            return Err(unknown_command(line));
        };
        // An option is '+' and a word, which no offset can be.
        let (mtime, rest) = match rest {
            [b'+', letter, ..] if letter.is_ascii_alphabetic() => {
                let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
                if &rest[..end] != MTIME_OPTION {
                    return Err("unknown GET option; the one known is +mtime".into());
                }
                (true, rest.get(end + 1..).unwrap_or_default())
            }
            _ => (false, rest),
        };
        let space = rest.iter().position(|&b| b == b' ').ok_or(GET_USAGE)?;
        let offset = parse_decimal(&rest[..space]).ok_or("offset must be a decimal number")?;
        let name = std::str::from_utf8(&rest[space + 1..]).map_err(|_| "name is not UTF-8")?;
        check_name(name)?;
        Ok(Request::Get {
            offset,
            name: name.to_string(),
            mtime,
        })
    }

    /// The request as it goes on the wire, terminator included.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Request::Ping => b"PING\n".to_vec(),
            Request::List => b"LIST\n".to_vec(),
            Request::Get {
                offset,
                name,
                mtime,
            } => {
                let option = if *mtime { "+mtime " } else { "" };
                format!("GET {option}{offset} {name}\n").into_bytes()
            }
        }
    }
}

/// The `GET` option that asks for the modification time.
const MTIME_OPTION: &[u8] = b"+mtime";
/// What a `GET` without both an offset and a name is told.
const GET_USAGE: &str = "GET needs an offset and a name: GET <offset> <name>";

fn unknown_command(line: &[u8]) -> String {
    let word: Vec<u8> = line
        .iter()
        .take_while(|&&b| b != b' ')
        .take(16)
        .copied()
        .collect();
    match &word[..] {
        b"PING" | b"LIST" => format!("{} takes nothing after it", printable(&word)),
        b"GET" => GET_USAGE.into(),
        _ => format!(
            "unknown command '{}'; expected PING, LIST or GET <offset> <name>",
            printable(&word)
        ),
    }
}

/// Whether `name` may appear in a request: not empty, no control characters,
/// and short enough that `GET <offset> <name>` fits in a line.
pub fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("name is empty");
    }
    if name.chars().any(char::is_control) {
        return Err("name contains a control character");
    }
    // "GET " + 20 digits + " " leaves this much of a line for the name.
    if name.len() > MAX_LINE - 25 {
        return Err("name is too long");
    }
    Ok(())
}

/// Whether a `/`-separated name has a component starting with `.`: a
/// dotfile or a directory like `.ssh`. Such files configure programs
/// (`.bashrc`, `.ssh/authorized_keys`), so a client never takes one of a
/// server's names as a local name unless the user said so.
pub fn has_dot_component(name: &str) -> bool {
    name.split('/').any(|part| part.starts_with('.'))
}

/// A decimal `u64`: ASCII digits only, no sign, no overflow.
pub fn parse_decimal(text: &[u8]) -> Option<u64> {
    if text.is_empty() || text.len() > 20 {
        return None;
    }
    text.iter().try_fold(0u64, |acc, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

/// The error codes of `TCPFETCH/1 ERR <code> <message>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BadRequest,
    NotFound,
    Forbidden,
    Busy,
    Internal,
    /// A code this version does not know (a newer server's).
    Unknown,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad-request",
            ErrorCode::NotFound => "not-found",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::Busy => "busy",
            ErrorCode::Internal => "internal",
            ErrorCode::Unknown => "unknown",
        }
    }

    fn parse(text: &str) -> ErrorCode {
        match text {
            "bad-request" => ErrorCode::BadRequest,
            "not-found" => ErrorCode::NotFound,
            "forbidden" => ErrorCode::Forbidden,
            "busy" => ErrorCode::Busy,
            "internal" => ErrorCode::Internal,
            _ => ErrorCode::Unknown,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `TCPFETCH/1 OK <details>\n`
pub fn encode_ok(details: &str) -> Vec<u8> {
    format!("{TAG} OK {details}\n").into_bytes()
}

/// `TCPFETCH/1 ERR <code> <message>\n`; control characters in the message
/// become spaces so it can never break the framing.
pub fn encode_err(code: ErrorCode, message: &str) -> Vec<u8> {
    let clean: String = message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(512)
        .collect();
    format!("{TAG} ERR {code} {clean}\n").into_bytes()
}

/// Parse a status line. `Ok(details)` for `OK`; an `ERR` line becomes
/// [`ProtoError::Remote`]; anything else says the peer does not speak v1.
pub fn parse_status(line: &[u8]) -> Result<String, ProtoError> {
    let Ok(text) = std::str::from_utf8(line) else {
        return Err(not_tcpfetch(line));
    };
    let Some(rest) = text.strip_prefix(TAG).and_then(|r| r.strip_prefix(' ')) else {
        if let Some(version) = text.strip_prefix("TCPFETCH/") {
            let version: String = version
                .chars()
                .take_while(|c| !c.is_whitespace())
                .take(10)
                .collect();
            // Our own tag without the space after it (`TCPFETCH/1`,
            // `TCPFETCH/1\tOK`) is a broken v1 line, not another version.
            if version != "1" {
                return Err(ProtoError::Version(format::visible(&version)));
            }
            return Err(ProtoError::malformed(Message::StatusLine, line));
        }
        return Err(not_tcpfetch(line));
    };
    if rest == "OK" {
        return Ok(String::new());
    }
    if let Some(details) = rest.strip_prefix("OK ") {
        return Ok(details.to_string());
    }
    if let Some(err) = rest.strip_prefix("ERR ") {
        let (code, message) = err.split_once(' ').unwrap_or((err, ""));
        let parsed = ErrorCode::parse(code);
        // A newer server's code is not known here, but the user should
        // still see it rather than the word 'unknown' alone. The message
        // reaches a terminal: a hostile server's escapes are shown, not run.
        let message = format::visible(message);
        let message = if parsed == ErrorCode::Unknown {
            format!("{}: {message}", printable(code.as_bytes()))
        } else {
            message
        };
        return Err(ProtoError::Remote {
            code: parsed,
            message,
        });
    }
    Err(ProtoError::malformed(Message::StatusLine, line))
}

fn not_tcpfetch(line: &[u8]) -> ProtoError {
    ProtoError::NotTcpfetch(printable(line))
}

/// At most 60 bytes of `bytes`, with anything unprintable escaped, for
/// quoting a peer's garbage in an error message.
pub fn printable(bytes: &[u8]) -> String {
    let cut = bytes.len().min(60);
    let mut out = format::visible(&String::from_utf8_lossy(&bytes[..cut]));
    if bytes.len() > cut {
        out.push('…');
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::line::tests::lines;
    use super::*;

    #[test]
    fn requests_round_trip() {
        let cases = [
            Request::Ping,
            Request::List,
            Request::Get {
                offset: 0,
                name: "a.txt".into(),
                mtime: false,
            },
            Request::Get {
                offset: u64::MAX,
                name: "dir/ü n i c ö d e.bin".into(),
                mtime: true,
            },
            Request::Get {
                offset: 7,
                name: " leading space".into(),
                mtime: false,
            },
            Request::Get {
                offset: 7,
                name: "+mtime 3 x".into(),
                mtime: true,
            },
        ];
        for req in cases {
            let wire = req.encode();
            assert_eq!(wire.last(), Some(&b'\n'));
            let parsed = Request::parse(&wire[..wire.len() - 1]).unwrap();
            assert_eq!(parsed, req);
        }
    }

    #[test]
    fn malformed_requests_are_rejected_with_a_reason() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "unknown command"),
            (b"ping", "unknown command"),
            (b"PING ", "PING takes nothing"),
            (b"LIST all", "LIST takes nothing"),
            (b"FETCH a", "unknown command"),
            (b"GET", "GET needs"),
            (b"GET ", "GET needs"),
            (b"GET 0", "GET needs"),
            (b"GET x a", "offset"),
            (b"GET -1 a", "offset"),
            (b"GET +1 a", "offset"),
            (b"GET  a", "offset"),
            (b"GET 18446744073709551616 a", "offset"),
            (b"GET 0 ", "empty"),
            (b"GET 0 a\x00b", "control"),
            (b"GET 0 a\tb", "control"),
            (b"GET 0 \xff\xfe", "UTF-8"),
            (b"GET +mtime", "GET needs"),
            (b"GET +mtime a", "GET needs"),
            (b"GET +mtime x a", "offset"),
            (b"GET +mtime +mtime 0 a", "offset"),
            (b"GET +size 0 a", "unknown GET option"),
        ];
        for (line, expected) in cases {
            let err = Request::parse(line).unwrap_err();
            assert!(
                err.contains(expected),
                "{:?}: got {err:?}, wanted {expected:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn status_lines_round_trip() {
        assert_eq!(
            parse_status(b"TCPFETCH/1 OK tcpfetch 1.0").unwrap(),
            "tcpfetch 1.0"
        );
        assert_eq!(parse_status(b"TCPFETCH/1 OK").unwrap(), "");
        for code in [
            ErrorCode::BadRequest,
            ErrorCode::NotFound,
            ErrorCode::Forbidden,
            ErrorCode::Busy,
            ErrorCode::Internal,
        ] {
            let wire = encode_err(code, "some words\nand a newline");
            assert_eq!(wire.iter().filter(|&&b| b == b'\n').count(), 1);
            match parse_status(&wire[..wire.len() - 1]) {
                Err(ProtoError::Remote { code: got, message }) => {
                    assert_eq!(got, code);
                    assert_eq!(message, "some words and a newline");
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn foreign_peers_are_named_as_such() {
        let err = parse_status(b"HTTP/1.1 400 Bad Request").unwrap_err();
        assert!(err.to_string().contains("not a tcpfetch server"), "{err}");
        let err = parse_status(b"TCPFETCH/2 OK").unwrap_err();
        assert!(err.to_string().contains("version 2"), "{err}");
        let err = parse_status(b"\x80\x03}q\x00").unwrap_err();
        assert!(err.to_string().contains("not a tcpfetch server"), "{err}");
        let err = parse_status(b"TCPFETCH/1 MAYBE").unwrap_err();
        assert!(err.to_string().contains("malformed"), "{err}");
        match parse_status(b"TCPFETCH/1 ERR teapot short and stout") {
            Err(ProtoError::Remote { code, message }) => {
                assert_eq!(code, ErrorCode::Unknown);
                assert_eq!(message, "teapot: short and stout");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn each_bound_and_refused_form_of_a_request_has_its_reason() {
        let refused = |line: &[u8]| Request::parse(line).unwrap_err();
        // At most 20 digits: leading zeros do not stretch an offset.
        let digits = |n: usize| format!("GET {}1 a", "0".repeat(n - 1));
        let offset = "offset must be a decimal number";
        assert_eq!(refused(digits(21).as_bytes()), offset);
        assert!(matches!(
            Request::parse(digits(20).as_bytes()),
            Ok(Request::Get { offset: 1, .. })
        ));
        // The longest name leaves room for "GET ", 20 digits and a space.
        let longest = "n".repeat(MAX_LINE - 25);
        assert_eq!(check_name(&longest), Ok(()));
        let too_long = format!("GET +mtime 0 {longest}n");
        assert_eq!(refused(too_long.as_bytes()), "name is too long");
        // An unknown command is quoted by its first word: 16 bytes at
        // most, control characters escaped.
        let expected = "; expected PING, LIST or GET <offset> <name>";
        assert_eq!(
            refused(b"FETCHFETCHFETCHFETCH a"),
            format!("unknown command 'FETCHFETCHFETCHF'{expected}")
        );
        assert_eq!(
            refused(b"\x1b[2J x"),
            format!("unknown command '\\u{{1b}}[2J'{expected}")
        );
        let option = "unknown GET option; the one known is +mtime";
        assert_eq!(refused(b"GET +mtimes 0 a"), option);
    }

    #[test]
    fn each_bound_and_refused_form_of_a_status_line_has_its_reason() {
        let garbage = [b'g'; 1000];
        for (line, want) in [
            // Another version is quoted by 10 characters at most.
            (
                &b"TCPFETCH/12345678901234 OK"[..],
                ProtoError::Version("1234567890".into()),
            ),
            (b"TCPFETCH/10 OK", ProtoError::Version("10".into())),
            // Our tag without its space is a broken v1 line, not version 1.
            (
                b"TCPFETCH/1",
                ProtoError::malformed(Message::StatusLine, "TCPFETCH/1"),
            ),
            (
                b"TCPFETCH/1\tOK",
                ProtoError::malformed(Message::StatusLine, "TCPFETCH/1\\tOK"),
            ),
            // A peer's garbage is quoted by its first 60 bytes.
            (
                &garbage,
                ProtoError::NotTcpfetch(format!("{}…", "g".repeat(60))),
            ),
        ] {
            assert_eq!(parse_status(line), Err(want));
        }
        // An ERR message we send is cut at 512 characters.
        let text = String::from_utf8(encode_err(ErrorCode::Internal, &"é".repeat(600)));
        assert_eq!(
            text.unwrap(),
            format!("TCPFETCH/1 ERR internal {}\n", "é".repeat(512))
        );
    }

    /// A small seeded PRNG (xorshift64*) so the fuzz loop is reproducible.
    pub(crate) struct Rng(u64);
    impl Rng {
        pub(crate) fn new(seed: u64) -> Rng {
            Rng(seed | 1)
        }
        pub(crate) fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        pub(crate) fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
    }

    #[test]
    fn random_and_mutated_input_never_panics() {
        let seeds: &[&[u8]] = &[
            b"PING\n",
            b"LIST\n",
            b"GET 0 a.txt\n",
            b"GET 18446744073709551615 dir/\xc3\xbc.txt\r\n",
            b"TCPFETCH/1 OK 12 a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447\n",
            b"TCPFETCH/1 ERR busy too many\n",
            b"12 - hello.txt\n",
        ];
        let mut rng = Rng::new(0x7cf_e7c4);
        for round in 0..120_000 {
            let mut input = seeds[round % seeds.len()].to_vec();
            for _ in 0..rng.below(6) {
                let at = rng.below(input.len() + 1);
                match rng.below(4) {
                    0 if at < input.len() => input[at] = rng.next() as u8,
                    1 => input.insert(at, rng.next() as u8),
                    2 if at < input.len() => {
                        input.remove(at);
                    }
                    _ => input.extend((0..rng.below(40)).map(|_| rng.next() as u8)),
                }
            }
            for line in lines(&input, 64).into_iter().flatten().flatten() {
                let _ = Request::parse(&line);
                if let Ok(details) = parse_status(&line) {
                    let _ = FileHeader::parse_with_mac(&details, false);
                    let _ = FileHeader::parse_with_mac(&details, true);
                    let _ = parse_list_count(&details);
                }
                let _ = ListEntry::parse(&line);
            }
        }
    }
}
