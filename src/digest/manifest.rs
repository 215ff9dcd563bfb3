//! `SHA256SUMS` manifests, line by line, in the format of coreutils
//! `sha256sum` (9.1, as checked on the build machine).
//!
//! A line is `HEX  NAME` (text mode), `HEX *NAME` (binary mode) or
//! `SHA256 (NAME) = HEX` (`--tag`). A name holding a backslash, a newline
//! or a carriage return is written escaped (`\\`, `\n`, `\r`) and the whole
//! line then starts with a backslash, so every entry stays on one line.
//! Lines may end with NUL instead (`sha256sum -z`); their names are never
//! escaped, and a reader of such lines keeps a CR before the end. When
//! reading, we also accept what
//! `sha256sum -c` accepts: the BSD tag form `SHA256 (NAME) = HEX`, leading
//! blanks, upper-case hex, CRLF line ends, `#` comments and blank lines, and
//! the "reversed BSD" form `HEX NAME` (one blank) — which, like coreutils,
//! we only take when the manifest's first entry used it, so that a name
//! with a leading space is never read two ways.
//!
//! Names are bytes: a manifest may name files that are not UTF-8.

use std::io::{self, BufRead, Read};

use crate::util::hex::{self, Digest};

/// Longest line we read; a longer one is counted as malformed. Real lines
/// are at most 66 bytes plus a path (PATH_MAX is 4096, escaped at most
/// twice that), so this only guards against reading a huge non-manifest
/// into memory.
pub const MAX_LINE: usize = 64 * 1024;

/// One entry of a manifest: the digest, the file name (unescaped), and
/// whether it was listed in binary mode (`*`), which on POSIX changes
/// nothing but the marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub digest: Digest,
    pub name: Vec<u8>,
    pub binary: bool,
}

/// What one line of a manifest holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// Empty, or a `#` comment.
    Blank,
    Entry(Entry),
    /// Not a checksum line; counted and reported, never fatal.
    Malformed,
}

/// Whether `name` must be escaped to fit on one manifest line.
pub fn needs_escape(name: &[u8]) -> bool {
    name.iter().any(|&b| matches!(b, b'\\' | b'\n' | b'\r'))
}

/// `name` with `\`, newline and carriage return escaped as `\\`, `\n` and
/// `\r`; every other byte as is.
pub fn escape(name: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + 2);
    for &b in name {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
    out
}

/// The inverse of [`escape`]; `None` for any other escape, a trailing lone
/// backslash, or a NUL byte.
pub fn unescape(text: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.iter();
    while let Some(&b) = bytes.next() {
        match b {
            b'\\' => out.push(match bytes.next()? {
                b'\\' => b'\\',
                b'n' => b'\n',
                b'r' => b'\r',
                _ => return None,
            }),
            0 => return None,
            _ => out.push(b),
        }
    }
    Some(out)
}

/// How [`format_entry`] writes a line: the forms `sha256sum` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// `HEX  NAME`
    Text,
    /// `HEX *NAME`
    Binary,
    /// `SHA256 (NAME) = HEX` (`sha256sum --tag`)
    Tag,
}

/// One manifest line, newline included, exactly as `sha256sum` prints it.
pub fn format_line(digest: &Digest, name: &[u8], binary: bool) -> Vec<u8> {
    let form = if binary { Form::Binary } else { Form::Text };
    format_entry(digest, name, form, b'\n')
}

/// One manifest line in `form`, ended by `end`, exactly as `sha256sum`
/// (`--tag`, `-z`) prints it. A line ended by NUL (`-z`) holds the name
/// as it is: only a newline-ended line needs the escapes to stay one line.
pub fn format_entry(digest: &Digest, name: &[u8], form: Form, end: u8) -> Vec<u8> {
    let escaped = end == b'\n' && needs_escape(name);
    let name = if escaped { escape(name) } else { name.to_vec() };
    let hex = hex::encode(digest);
    let mut line = Vec::with_capacity(name.len() + 80);
    if escaped {
        line.push(b'\\');
    }
    match form {
        Form::Tag => {
            line.extend_from_slice(TAG);
            line.extend_from_slice(b" (");
            line.extend_from_slice(&name);
            line.extend_from_slice(b") = ");
            line.extend_from_slice(hex.as_bytes());
        }
        Form::Text | Form::Binary => {
            line.extend_from_slice(hex.as_bytes());
            line.extend_from_slice(if form == Form::Binary { b" *" } else { b"  " });
            line.extend_from_slice(&name);
        }
    }
    line.push(end);
    line
}

/// Parses lines one after the other. It has state: whether the manifest
/// uses the reversed BSD form is decided by its first entry.
#[derive(Debug, Default)]
pub struct Parser {
    /// `None` until the first entry; then whether it was `HEX NAME`.
    reversed: Option<bool>,
    /// Lines end with NUL (`-z`): a carriage return before the end is the
    /// name's last byte, not half of a CRLF.
    keep_cr: bool,
}

const HEX_LEN: usize = 64;
const TAG: &[u8] = b"SHA256";

impl Parser {
    /// Parse one line, without its end (a `\r` before a `\n` end is
    /// dropped here).
    pub fn parse(&mut self, line: &[u8]) -> Line {
        if line.first() == Some(&b'#') {
            return Line::Blank;
        }
        let line = match line.strip_suffix(b"\r") {
            Some(cut) if !self.keep_cr => cut,
            _ => line,
        };
        if line.is_empty() {
            return Line::Blank;
        }
        match self.entry(line) {
            Some(entry) => Line::Entry(entry),
            None => Line::Malformed,
        }
    }

    fn entry(&mut self, line: &[u8]) -> Option<Entry> {
        let mut rest = trim_start(line);
        let escaped = match rest.strip_prefix(b"\\") {
            Some(r) => {
                rest = r;
                true
            }
            None => false,
        };
        if let Some(tagged) = rest.strip_prefix(TAG) {
            return tagged_entry(tagged, escaped);
        }
        if rest.len() < HEX_LEN + 2 {
            return None;
        }
        let (hex_part, after) = rest.split_at(HEX_LEN);
        if !after.first().is_some_and(|&b| is_space(b)) {
            return None;
        }
        let digest = decode_hex(hex_part)?;
        let after = &after[1..];
        let (name, binary) = match after.first() {
            Some(&mark @ (b' ' | b'*')) if after.len() > 1 && self.reversed != Some(true) => {
                self.reversed = Some(false);
                (&after[1..], mark == b'*')
            }
            _ if self.reversed == Some(false) => return None,
            _ => {
                self.reversed = Some(true);
                (after, false)
            }
        };
        Some(Entry {
            digest,
            name: entry_name(name, escaped)?,
            binary,
        })
    }
}

/// `SHA256 (NAME) = HEX` after the `SHA256`: the name runs to the last `)`.
fn tagged_entry(rest: &[u8], escaped: bool) -> Option<Entry> {
    let rest = rest.strip_prefix(b" ").unwrap_or(rest);
    let rest = rest.strip_prefix(b"(")?;
    let close = rest.iter().rposition(|&b| b == b')')?;
    let (name, after) = (&rest[..close], &rest[close + 1..]);
    let after = trim_blanks(after).strip_prefix(b"=")?;
    let digest = decode_hex(trim_blanks(after))?;
    Some(Entry {
        digest,
        name: entry_name(name, escaped)?,
        binary: false,
    })
}

/// A name as a manifest line holds it: unescaped when the line began with
/// `\`; a NUL (which coreutils would cut the name at) makes it malformed.
fn entry_name(name: &[u8], escaped: bool) -> Option<Vec<u8>> {
    if escaped {
        unescape(name)
    } else if name.contains(&0) {
        None
    } else {
        Some(name.to_vec())
    }
}

/// Exactly 64 hex digits, either case.
fn decode_hex(text: &[u8]) -> Option<Digest> {
    hex::decode_digest(std::str::from_utf8(text).ok()?)
}

/// C `isspace` in the C locale.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn trim_start(mut s: &[u8]) -> &[u8] {
    while let Some((&b, rest)) = s.split_first() {
        if !is_space(b) {
            break;
        }
        s = rest;
    }
    s
}

/// Skip spaces and tabs (the tag form allows only those around `=`).
fn trim_blanks(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
    &s[n..]
}

/// Reads a manifest line by line, each bounded by [`MAX_LINE`].
pub struct Reader<R> {
    inner: R,
    parser: Parser,
    /// What ends a line: `\n`, or NUL for what `sha256sum -z` writes.
    end: u8,
    number: u64,
    buf: Vec<u8>,
    /// Some line ended with `end`.
    ended: bool,
    /// Some line held the other ending (NUL in a newline manifest, a
    /// newline in a NUL one).
    held_other: bool,
}

impl<R: BufRead> Reader<R> {
    pub fn new(inner: R) -> Reader<R> {
        Reader::with_end(inner, b'\n')
    }

    /// A reader of lines ended by `end` (NUL: a manifest written by
    /// `sum -z`, whose names are not escaped).
    pub fn with_end(inner: R, end: u8) -> Reader<R> {
        Reader {
            inner,
            parser: Parser {
                reversed: None,
                keep_cr: end != b'\n',
            },
            end,
            number: 0,
            buf: Vec::new(),
            ended: false,
            held_other: false,
        }
    }

    /// What was read so far looks written with the other ending: no line
    /// ended with this reader's, yet the other one appeared (a `sum -z`
    /// manifest read without `-z`, or a newline one read with it).
    pub fn other_ending(&self) -> bool {
        self.held_other && !self.ended
    }

    /// The next line's number (from 1) and what it holds; `None` at the end.
    pub fn next_line(&mut self) -> io::Result<Option<(u64, Line)>> {
        self.buf.clear();
        let limit = MAX_LINE as u64 + 1;
        let n = (&mut self.inner)
            .take(limit)
            .read_until(self.end, &mut self.buf)?;
        if n == 0 {
            return Ok(None);
        }
        self.number += 1;
        // Once a line has ended the right way the answer is no, whatever
        // follows: every later line is not searched again.
        if !self.ended {
            let other = if self.end == b'\n' { b'\0' } else { b'\n' };
            self.held_other |= self.buf.contains(&other);
        }
        if self.buf.last() == Some(&self.end) {
            self.ended = true;
            self.buf.pop();
        } else if n as u64 == limit {
            self.skip_rest_of_line()?;
            return Ok(Some((self.number, Line::Malformed)));
        }
        Ok(Some((self.number, self.parser.parse(&self.buf))))
    }

    fn skip_rest_of_line(&mut self) -> io::Result<()> {
        loop {
            let chunk = self.inner.fill_buf()?;
            if chunk.is_empty() {
                return Ok(());
            }
            match chunk.iter().position(|&b| b == self.end) {
                Some(i) => {
                    self.inner.consume(i + 1);
                    return Ok(());
                }
                None => {
                    let len = chunk.len();
                    self.inner.consume(len);
                }
            }
        }
    }
}

/// Every entry of a manifest and how many lines were malformed.
#[allow(dead_code)] // for `list --sha256sums` and `get --all --manifest`
pub fn read_all(reader: impl BufRead) -> io::Result<(Vec<Entry>, u64)> {
    let mut reader = Reader::new(reader);
    let mut entries = Vec::new();
    let mut malformed = 0;
    while let Some((_, line)) = reader.next_line()? {
        match line {
            Line::Entry(e) => entries.push(e),
            Line::Malformed => malformed += 1,
            Line::Blank => {}
        }
    }
    Ok((entries, malformed))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    fn abc() -> Digest {
        hex::decode_digest(ABC).unwrap()
    }

    fn entry(name: &[u8], binary: bool) -> Line {
        Line::Entry(Entry {
            digest: abc(),
            name: name.to_vec(),
            binary,
        })
    }

    fn parse_one(line: &str) -> Line {
        Parser::default().parse(line.as_bytes())
    }

    #[test]
    fn formats_like_sha256sum() {
        let rows: &[(&[u8], bool, &str)] = &[
            (b"plain", false, "  plain"),
            (b"sp ace", false, "  sp ace"),
            (b"bin", true, " *bin"),
            (b"back\\slash", false, "  back\\\\slash"),
            (b"new\nline", false, "  new\\nline"),
            (b"cr\rret", false, "  cr\\rret"),
        ];
        for &(name, binary, tail) in rows {
            let escaped = needs_escape(name);
            let want = format!("{}{ABC}{tail}\n", if escaped { "\\" } else { "" });
            assert_eq!(
                String::from_utf8(format_line(&abc(), name, binary)).unwrap(),
                want,
                "{name:?}"
            );
        }
    }

    #[test]
    fn formats_tagged_and_nul_ended_lines_like_sha256sum() {
        let rows: &[(&[u8], Form, u8, String)] = &[
            (b"a b", Form::Tag, b'\n', format!("SHA256 (a b) = {ABC}\n")),
            (b"(x)", Form::Tag, b'\n', format!("SHA256 ((x)) = {ABC}\n")),
            (
                b"n\nl",
                Form::Tag,
                b'\n',
                format!("\\SHA256 (n\\nl) = {ABC}\n"),
            ),
            (
                b"b\\s",
                Form::Tag,
                b'\n',
                format!("\\SHA256 (b\\\\s) = {ABC}\n"),
            ),
            (b"n\nl", Form::Tag, 0, format!("SHA256 (n\nl) = {ABC}\0")),
            (b"b\\s\r", Form::Text, 0, format!("{ABC}  b\\s\r\0")),
            (b"bin", Form::Binary, 0, format!("{ABC} *bin\0")),
        ];
        for (name, form, end, want) in rows {
            let line = format_entry(&abc(), name, *form, *end);
            assert_eq!(String::from_utf8(line).unwrap(), *want, "{name:?} {form:?}");
        }
    }

    #[test]
    fn escape_round_trips() {
        for name in [&b"a\\b\nc\rd"[..], b"", b"\\\\", b"plain \xff"] {
            assert_eq!(unescape(&escape(name)).as_deref(), Some(name));
        }
    }

    #[test]
    fn unescape_rejects_unknown_escapes_trailing_backslash_and_nul() {
        for bad in [&b"a\\x"[..], b"a\\", b"a\\t", b"a\0b"] {
            assert_eq!(unescape(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn parses_text_binary_escaped_and_tagged_lines() {
        let rows: &[(String, Line)] = &[
            (format!("{ABC}  plain"), entry(b"plain", false)),
            (format!("{ABC} *bin"), entry(b"bin", true)),
            (format!("{ABC}  sp ace "), entry(b"sp ace ", false)),
            (format!("{ABC}   lead"), entry(b" lead", false)),
            (format!("{ABC}  crlf\r"), entry(b"crlf", false)),
            (format!("  {ABC}  indented"), entry(b"indented", false)),
            (
                format!("{}  upper", ABC.to_uppercase()),
                entry(b"upper", false),
            ),
            (
                format!("\\{ABC}  a\\\\b\\nc\\rd"),
                entry(b"a\\b\nc\rd", false),
            ),
            (
                format!("{ABC}  not\\nescaped"),
                entry(b"not\\nescaped", false),
            ),
            (
                format!("SHA256 (tag (x)) = {ABC}"),
                entry(b"tag (x)", false),
            ),
            (format!("SHA256 (t)= {ABC}"), entry(b"t", false)),
            (format!("\\SHA256 (a\\nb) = {ABC}"), entry(b"a\nb", false)),
            (String::new(), Line::Blank),
            ("\r".into(), Line::Blank),
            (format!("# {ABC}  x"), Line::Blank),
        ];
        for (line, want) in rows {
            assert_eq!(&parse_one(line), want, "{line:?}");
        }
    }

    #[test]
    fn malformed_lines_are_reported_as_such() {
        let rows = [
            "garbage".to_string(),
            ABC.to_string(),
            format!("{ABC} "),
            format!("{ABC}x  name"),
            format!("{}  name", &ABC[1..]),
            format!("{}g  name", &ABC[1..]),
            format!("\\{ABC}  bad\\x"),
            format!("\\{ABC}  trail\\"),
            format!("{ABC}  nul\0byte"),
            format!("SHA256 (x) = {}", &ABC[1..]),
            format!("SHA256 (x) {ABC}"),
            format!("SHA1 (x) = {ABC}"),
            format!("MD5 (x) = {ABC}"),
        ];
        for line in rows {
            assert_eq!(parse_one(&line), Line::Malformed, "{line:?}");
        }
    }

    #[test]
    fn reversed_form_is_decided_by_the_first_entry() {
        let mut p = Parser::default();
        assert_eq!(p.parse(format!("{ABC}  a").as_bytes()), entry(b"a", false));
        assert_eq!(p.parse(format!("{ABC} b").as_bytes()), Line::Malformed);

        let mut p = Parser::default();
        assert_eq!(p.parse(format!("{ABC} a").as_bytes()), entry(b"a", false));
        assert_eq!(p.parse(format!("{ABC}  b").as_bytes()), entry(b" b", false));
        assert_eq!(p.parse(format!("{ABC} *c").as_bytes()), entry(b"*c", false));
    }

    fn every_line(mut r: Reader<&[u8]>) -> Vec<(u64, Line)> {
        let mut seen = Vec::new();
        while let Some(line) = r.next_line().unwrap() {
            seen.push(line);
        }
        seen
    }

    #[test]
    fn reader_numbers_lines_and_bounds_their_length() {
        let long = "x".repeat(MAX_LINE + 10);
        let text = format!("{ABC}  a\n\n{long}\n{ABC} *b\nbad");
        assert_eq!(
            every_line(Reader::new(text.as_bytes())),
            vec![
                (1, entry(b"a", false)),
                (2, Line::Blank),
                (3, Line::Malformed),
                (4, entry(b"b", true)),
                (5, Line::Malformed),
            ]
        );
    }

    #[test]
    fn nul_ended_lines_keep_newlines_and_carriage_returns_in_names() {
        let text = format!("{ABC}  a\nb\r\0\0bad\0{ABC} *c");
        assert_eq!(
            every_line(Reader::with_end(text.as_bytes(), 0)),
            vec![
                (1, entry(b"a\nb\r", false)),
                (2, Line::Blank),
                (3, Line::Malformed),
                (4, entry(b"c", true)),
            ]
        );
    }

    #[test]
    fn a_manifest_ended_the_other_way_is_noticed() {
        let read = |text: &[u8], end: u8| {
            let mut r = Reader::with_end(text, end);
            while r.next_line().unwrap().is_some() {}
            r.other_ending()
        };
        let line = format!("{ABC}  a");
        let (nl, nul) = (format!("{line}\n{line}\n"), format!("{line}\0{line}\0"));
        assert!(read(nul.as_bytes(), b'\n'));
        assert!(read(nl.as_bytes(), 0));
        assert!(!read(nl.as_bytes(), b'\n'));
        assert!(!read(nul.as_bytes(), 0));
        // A name with the other ending, among lines ended the right way.
        assert!(!read(format!("{line}\n{ABC}  b\0c\n").as_bytes(), b'\n'));
    }

    #[test]
    fn read_all_collects_entries_and_counts_malformed() {
        let text = format!("{ABC}  a\nnope\n{ABC} *b\n");
        let (entries, malformed) = read_all(text.as_bytes()).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].name, b"b");
        assert_eq!(malformed, 1);
    }
}
