//! Just enough HTTP/1.1 for one page and a few JSON endpoints: a bounded
//! request parser on any `BufRead`, and a response writer. No sockets here,
//! so every bound is unit-tested on byte slices.
//!
//! One request per connection (`Connection: close`): the page is served to
//! one person, so keep-alive would save little and cost idle threads.

use std::io::{self, BufRead, Read, Write};

use crate::proto::{self, LineError};

/// The longest request line (method, target, version).
pub const MAX_REQUEST_LINE: usize = 8 * 1024;
/// All header lines together, and how many of them.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;
pub const MAX_HEADERS: usize = 100;
/// The largest request body; a larger `Content-Length` is answered 413.
pub const MAX_BODY: usize = 64 * 1024;

#[derive(Debug)]
pub struct Request {
    pub method: String,
    /// The path, without the query string.
    pub path: String,
    /// Header names are lowercased; values are trimmed.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The value of header `name` (lowercase), when it was sent once.
    pub fn header(&self, name: &str) -> Option<&str> {
        let mut found = self.headers.iter().filter(|(n, _)| n == name);
        match (found.next(), found.next()) {
            (Some((_, v)), None) => Some(v),
            _ => None,
        }
    }

    /// How many times header `name` was sent.
    pub fn header_count(&self, name: &str) -> usize {
        self.headers.iter().filter(|(n, _)| n == name).count()
    }
}

/// Why a request could not be read; each maps to the status that answers it.
#[derive(Debug)]
pub enum ParseError {
    /// The peer closed before sending a byte: nothing to answer.
    Closed,
    /// The peer went silent, or the socket failed: nothing to answer.
    Io,
    /// Malformed: 400 with the reason.
    Bad(&'static str),
    /// The request line is longer than [`MAX_REQUEST_LINE`]: 414.
    LineTooLong,
    /// Headers over [`MAX_HEADER_BYTES`] or [`MAX_HEADERS`]: 431.
    HeadersTooLarge,
    /// `Content-Length` over [`MAX_BODY`]: 413.
    BodyTooLarge,
    /// Not HTTP/1.0 or HTTP/1.1: 505.
    Version,
    /// A body sent with `Transfer-Encoding`: 501.
    Encoding,
}

impl ParseError {
    /// The status and the message that answer this error, when one can be sent.
    pub fn status(&self) -> Option<(u16, &'static str)> {
        match self {
            ParseError::Closed | ParseError::Io => None,
            ParseError::Bad(why) => Some((400, why)),
            ParseError::LineTooLong => Some((414, "the request line is too long")),
            ParseError::HeadersTooLarge => Some((431, "the request headers are too large")),
            ParseError::BodyTooLarge => Some((413, "the request body is too large")),
            ParseError::Version => Some((505, "only HTTP/1.1 is spoken here")),
            ParseError::Encoding => Some((501, "send the body with Content-Length")),
        }
    }
}

/// Read one request: request line, headers, and a body of `Content-Length`
/// bytes, each within its bound.
pub fn read_request(reader: &mut impl BufRead) -> Result<Request, ParseError> {
    let line = match proto::read_line(reader, MAX_REQUEST_LINE) {
        Ok(Some(line)) => line,
        Ok(None) => return Err(ParseError::Closed),
        Err(LineError::TooLong) => return Err(ParseError::LineTooLong),
        Err(LineError::Truncated) => return Err(ParseError::Bad("truncated request line")),
        Err(LineError::Io(_)) => return Err(ParseError::Io),
    };
    let line = std::str::from_utf8(&line).map_err(|_| ParseError::Bad("request line not UTF-8"))?;
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseError::Bad("malformed request line"));
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(ParseError::Bad("malformed method"));
    }
    if !target.starts_with('/') || target.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(ParseError::Bad("malformed request target"));
    }
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(if version.starts_with("HTTP/") {
            ParseError::Version
        } else {
            ParseError::Bad("malformed request line")
        });
    }
    let path = target.split(['?', '#']).next().unwrap_or("/").to_string();
    let headers = read_headers(reader)?;
    let mut request = Request {
        method: method.to_string(),
        path,
        headers,
        body: Vec::new(),
    };
    if request.header_count("transfer-encoding") > 0 {
        return Err(ParseError::Encoding);
    }
    let length = match request.header_count("content-length") {
        0 => 0,
        1 => content_length(request.header("content-length").unwrap_or(""))?,
        _ => return Err(ParseError::Bad("more than one Content-Length")),
    };
    if length > MAX_BODY as u64 {
        return Err(ParseError::BodyTooLarge);
    }
    let mut body = Vec::with_capacity(length as usize);
    reader
        .take(length)
        .read_to_end(&mut body)
        .map_err(|_| ParseError::Io)?;
    if body.len() as u64 != length {
        return Err(ParseError::Bad(
            "the body is shorter than its Content-Length",
        ));
    }
    request.body = body;
    Ok(request)
}

fn read_headers(reader: &mut impl BufRead) -> Result<Vec<(String, String)>, ParseError> {
    let mut headers = Vec::new();
    let mut used = 0;
    loop {
        let room = MAX_HEADER_BYTES.saturating_sub(used);
        let line = match proto::read_line(reader, room) {
            Ok(Some(line)) => line,
            Ok(None) | Err(LineError::Truncated) => {
                return Err(ParseError::Bad("truncated headers"))
            }
            Err(LineError::TooLong) => return Err(ParseError::HeadersTooLarge),
            Err(LineError::Io(_)) => return Err(ParseError::Io),
        };
        if line.is_empty() {
            return Ok(headers);
        }
        used += line.len() + 2;
        if headers.len() == MAX_HEADERS || used > MAX_HEADER_BYTES {
            return Err(ParseError::HeadersTooLarge);
        }
        let line = std::str::from_utf8(&line).map_err(|_| ParseError::Bad("header not UTF-8"))?;
        let (name, value) = line
            .split_once(':')
            .ok_or(ParseError::Bad("malformed header"))?;
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            // Also refuses obsolete line folding (a line starting with a space).
            return Err(ParseError::Bad("malformed header name"));
        }
        headers.push((
            name.to_ascii_lowercase(),
            value.trim_matches([' ', '\t']).to_string(),
        ));
    }
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn content_length(text: &str) -> Result<u64, ParseError> {
    if text.is_empty() || text.len() > 19 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::Bad("malformed Content-Length"));
    }
    text.parse()
        .map_err(|_| ParseError::Bad("malformed Content-Length"))
}

/// A response: status, content type, extra headers and body.
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            content_type,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    pub fn json(status: u16, body: impl Into<Vec<u8>>) -> Response {
        Response::new(status, "application/json", body)
    }

    /// `{"error": message}` with `status`.
    pub fn error(status: u16, message: &str) -> Response {
        Response::json(
            status,
            format!(
                "{{\"error\":{}}}\n",
                crate::util::format::json_string(message)
            ),
        )
    }

    pub fn with(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    /// The whole response on the wire, `Connection: close` included. The
    /// page and its data are never cached, never framed, never sniffed.
    pub fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        let mut head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nX-Frame-Options: DENY\r\nReferrer-Policy: no-referrer\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len()
        );
        for (name, value) in &self.headers {
            // Values are ours, but a stray line break must never split a header.
            let value: String = value.chars().filter(|c| !c.is_control()).collect();
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        out.write_all(head.as_bytes())?;
        out.write_all(&self.body)?;
        out.flush()
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Content Too Large",
        414 => "URI Too Long",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Error",
    }
}

/// The fields of an `application/x-www-form-urlencoded` body, in order.
pub fn form_fields(body: &[u8]) -> Option<Vec<(String, String)>> {
    let text = std::str::from_utf8(body).ok()?;
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Some((percent_decode(k)?, percent_decode(v)?))
        })
        .collect()
}

fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &[u8]) -> Result<Request, ParseError> {
        read_request(&mut io::BufReader::with_capacity(64, raw))
    }

    fn status_of(raw: &[u8]) -> u16 {
        match parse(raw) {
            Ok(_) => 200,
            Err(e) => e.status().map_or(0, |s| s.0),
        }
    }

    #[test]
    fn a_plain_request_parses() {
        let r = parse(b"POST /api/ping?x=1 HTTP/1.1\r\nHost: a:1\r\nX-Tcpfetch-Token:  t \r\nContent-Length: 5\r\n\r\nhelloextra").unwrap();
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/api/ping");
        assert_eq!(r.header("host"), Some("a:1"));
        assert_eq!(r.header("x-tcpfetch-token"), Some("t"));
        assert_eq!(r.body, b"hello");
        let r = parse(b"GET / HTTP/1.0\n\n").unwrap();
        assert_eq!((r.path.as_str(), r.body.len()), ("/", 0));
    }

    #[test]
    fn bad_requests_get_the_right_status() {
        let long_target = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_REQUEST_LINE));
        let big_header = format!(
            "GET / HTTP/1.1\r\nX: {}\r\n\r\n",
            "a".repeat(MAX_HEADER_BYTES)
        );
        let many_headers = format!(
            "GET / HTTP/1.1\r\n{}\r\n",
            "X: y\r\n".repeat(MAX_HEADERS + 1)
        );
        let big_body = format!(
            "POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY + 1
        );
        let cases: &[(&[u8], u16)] = &[
            (b"", 0),
            (long_target.as_bytes(), 414),
            (big_header.as_bytes(), 431),
            (many_headers.as_bytes(), 431),
            (big_body.as_bytes(), 413),
            (
                b"GET / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
                400,
            ),
            (b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\n", 400),
            (
                b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
                400,
            ),
            (b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nshort", 400),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                501,
            ),
            (b"GET / HTTP/2.0\r\n\r\n", 505),
            (b"GET / FTP/1.0\r\n\r\n", 400),
            (b"GET /\r\n\r\n", 400),
            (b"GET  / HTTP/1.1\r\n\r\n", 400),
            (b"get / HTTP/1.1\r\n\r\n", 400),
            (b"G\xc3\xa9T / HTTP/1.1\r\n\r\n", 400),
            (b"GET http://evil/ HTTP/1.1\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nno colon\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\n folded: x\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\n", 400),
            (b"GET / HTTP/1.1", 400),
        ];
        for (raw, want) in cases {
            let shown = String::from_utf8_lossy(&raw[..raw.len().min(60)]);
            assert_eq!(status_of(raw), *want, "{shown:?}");
        }
    }

    #[test]
    fn duplicate_headers_are_not_taken_as_one() {
        let r = parse(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n").unwrap();
        assert_eq!(r.header("host"), None);
        assert_eq!(r.header_count("host"), 2);
    }

    #[test]
    fn responses_carry_length_and_close() {
        let mut out = Vec::new();
        Response::error(404, "no such page")
            .with("Allow", "GET\r\nX: y")
            .write_to(&mut out)
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"), "{text}");
        assert!(text.contains("Content-Length: 25\r\n"), "{text}");
        assert!(text.contains("Connection: close\r\n"));
        assert!(text.contains("Allow: GETX: y\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n{\"error\":\"no such page\"}\n"));
    }

    #[test]
    fn form_bodies_decode() {
        assert_eq!(
            form_fields(b"server=127.0.0.1%3A1236&name=a+b%2Fc.txt&name=&x").unwrap(),
            [
                ("server".to_string(), "127.0.0.1:1236".to_string()),
                ("name".into(), "a b/c.txt".into()),
                ("name".into(), "".into()),
                ("x".into(), "".into()),
            ]
        );
        assert!(form_fields(b"a=%zz").is_none());
        assert!(form_fields(b"a=%4").is_none());
        assert!(form_fields(b"a=%ff").is_none());
    }
}
