//! How coreutils' `sha256sum` names a file and an error in a diagnostic,
//! so that `sum` and `verify` print what it prints, byte for byte.

use std::io;

/// `tcpfetch: NAME: Reason` on stderr, worded as coreutils words it.
pub fn report_file_error(name: &[u8], e: &io::Error) {
    eprintln!("tcpfetch: {}: {}", quote(name), strerror(e));
}

/// The C library's text for an I/O error ("No such file or directory"),
/// which is what coreutils prints; `io::Error` adds " (os error N)".
pub fn strerror(e: &io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// A file name as coreutils names it in a diagnostic (gnulib's
/// `shell-escape` quoting with `:` also quoted, in a UTF-8 locale): as is
/// when the shell would read it back unchanged, otherwise in single quotes
/// with `'\''` for a quote and `$'\n'` for a control character, or in
/// double quotes when a single quote is the only thing that needed care.
pub fn quote(name: &[u8]) -> String {
    if !name.is_empty() && !needs_quotes(name) {
        // No special byte means every byte was printable UTF-8.
        return String::from_utf8_lossy(name).into_owned();
    }
    let first = single_quoted(name, false);
    if first.has_quote && first.all_plain {
        return format!("\"{}\"", String::from_utf8_lossy(name));
    }
    if first.has_quote && first.ends_in_dollar {
        // gnulib writes such a name a second time without resetting its
        // "inside $'...'" state, which adds `''` after the opening quote.
        // Harmless to a shell; copied so the bytes match.
        return single_quoted(name, true).text;
    }
    first.text
}

/// `name` between single quotes, and what was seen on the way.
struct Quoted {
    text: String,
    has_quote: bool,
    /// Every character would be fine between double quotes as well.
    all_plain: bool,
    ends_in_dollar: bool,
}

fn single_quoted(name: &[u8], start_in_dollar: bool) -> Quoted {
    let mut out = String::from("'");
    let mut in_dollar = start_in_dollar; // inside a `$'...'` run of escapes
    let mut has_quote = false;
    let mut all_plain = true;
    let mut i = 0;
    while i < name.len() {
        let rest = &name[i..];
        match classify(rest, i, name.len()) {
            Char::Escape(esc) => {
                if !in_dollar {
                    out.push_str("'$'");
                    in_dollar = true;
                }
                out.push_str(&esc);
                all_plain = false;
                i += 1;
            }
            Char::Quote => {
                has_quote = true;
                out.push_str("'\\''");
                in_dollar = false;
                i += 1;
            }
            Char::Text(len, plain) => {
                if in_dollar {
                    out.push_str("''");
                    in_dollar = false;
                }
                out.push_str(&String::from_utf8_lossy(&rest[..len]));
                all_plain &= plain;
                i += len;
            }
        }
    }
    out.push('\'');
    Quoted {
        text: out,
        has_quote,
        all_plain,
        ends_in_dollar: in_dollar,
    }
}

/// How one character of a name is written inside single quotes.
enum Char {
    /// A control or unprintable byte, as `\n` or `\ooo` inside `$'...'`.
    Escape(String),
    /// `'`, which needs `'\''`.
    Quote,
    /// `len` bytes written as they are; `plain` when they would also be
    /// safe between double quotes.
    Text(usize, bool),
}

fn classify(rest: &[u8], pos: usize, total: usize) -> Char {
    let b = rest[0];
    let escape = |s: &str| Char::Escape(s.to_string());
    match b {
        b'\x07' => escape("\\a"),
        b'\x08' => escape("\\b"),
        b'\x0c' => escape("\\f"),
        b'\n' => escape("\\n"),
        b'\r' => escape("\\r"),
        b'\t' => escape("\\t"),
        b'\x0b' => escape("\\v"),
        b'\'' => Char::Quote,
        b' ' => Char::Text(1, true),
        b'#' | b'~' => Char::Text(1, pos == 0),
        b'{' | b'}' => Char::Text(1, total == 1),
        b'%'
        | b'+'
        | b','
        | b'-'
        | b'.'
        | b'/'
        | b'0'..=b'9'
        | b':'
        | b'A'..=b'Z'
        | b']'
        | b'_'
        | b'a'..=b'z' => Char::Text(1, true),
        b'!' | b'"' | b'$' | b'&' | b'(' | b')' | b'*' | b';' | b'<' | b'=' | b'>' | b'['
        | b'^' | b'`' | b'|' | b'?' | b'\\' => Char::Text(1, false),
        _ => match printable_char(rest) {
            Some(len) => Char::Text(len, true),
            None => Char::Escape(format!("\\{:03o}", b)),
        },
    }
}

/// Whether `name` cannot be shown bare.
fn needs_quotes(name: &[u8]) -> bool {
    let mut i = 0;
    while i < name.len() {
        let b = name[i];
        let special = match b {
            b' ' | b'!' | b'"' | b'$' | b'&' | b'(' | b')' | b'*' | b';' | b'<' | b'=' | b'>'
            | b'[' | b'^' | b'`' | b'|' | b'?' | b'\\' | b'\'' | b':' => true,
            b'#' | b'~' => i == 0,
            b'{' | b'}' => name.len() == 1,
            0x21..=0x7e => false,
            _ => match printable_char(&name[i..]) {
                Some(len) => {
                    i += len;
                    continue;
                }
                None => true,
            },
        };
        if special {
            return true;
        }
        i += 1;
    }
    false
}

/// The length of the printable character `bytes` starts with: any ASCII
/// graphic character, or a valid UTF-8 sequence that is not a control, a
/// line/paragraph separator, a noncharacter or in the unassigned planes
/// 4–13. `None` for everything else. (glibc also calls the unassigned code
/// points inside other planes unprintable; without Unicode tables we
/// cannot, so such a name is shown bare where coreutils escapes it.)
fn printable_char(bytes: &[u8]) -> Option<usize> {
    let b = *bytes.first()?;
    if b.is_ascii() {
        return (b.is_ascii_graphic() || b == b' ').then_some(1);
    }
    let len = match b {
        0xc2..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf4 => 4,
        _ => return None,
    };
    let c = std::str::from_utf8(bytes.get(..len)?)
        .ok()?
        .chars()
        .next()?;
    let code = u32::from(c);
    let unprintable = c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{fdd0}'..='\u{fdef}')
        || code & 0xfffe == 0xfffe
        || (0x40000..0xe0000).contains(&code);
    (!unprintable).then_some(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each row was checked against `sha256sum NAME` (coreutils 9.1,
    /// C.UTF-8) on a missing file.
    #[test]
    fn quotes_names_like_coreutils() {
        let rows: &[(&[u8], &str)] = &[
            (b"plain.txt", "plain.txt"),
            (b"a b", "'a b'"),
            (b"back\\slash", "'back\\slash'"),
            (b"nl\nx", "'nl'$'\\n''x'"),
            (b"cr\rx", "'cr'$'\\r''x'"),
            (b"tab\tx", "'tab'$'\\t''x'"),
            (b"it's", "\"it's\""),
            (b"q\"d", "'q\"d'"),
            (b"it's \"x\"", "'it'\\''s \"x\"'"),
            (b"'", "\"'\""),
            (b"~home", "'~home'"),
            (b"x~y", "x~y"),
            (b"#h", "'#h'"),
            (b"x#y", "x#y"),
            (b"a=b", "'a=b'"),
            (b"dollar$", "'dollar$'"),
            (b"star*", "'star*'"),
            (b"a:b", "'a:b'"),
            (b"a%b+c,d", "a%b+c,d"),
            (b"{", "'{'"),
            (b"{a}", "{a}"),
            (b"a@b]", "a@b]"),
            (b"a?b", "'a?b'"),
            (b"-", "-"),
            (b"\x01", "''$'\\001'"),
            (b"x/\xff", "'x/'$'\\377'"),
            (b"\xc3\xa9t\xc3\xa9", "\u{e9}t\u{e9}"),
            (b"a\n\nb", "'a'$'\\n\\n''b'"),
            (b"", "''"),
            (b"it's\x01", "'''it'\\''s'$'\\001'"),
            (b"\x01'", "''$'\\001'\\'''"),
            (b"it's@", "\"it's@\""),
            (b"it's#", "'it'\\''s#'"),
            (
                "\u{10ffff}\u{fdd0}\u{40000}".as_bytes(),
                "''$'\\364\\217\\277\\277\\357\\267\\220\\361\\200\\200\\200'",
            ),
            ("\u{200b}\u{e000}".as_bytes(), "\u{200b}\u{e000}"),
        ];
        for &(name, want) in rows {
            assert_eq!(quote(name), want, "{name:?}");
        }
    }

    #[test]
    fn strerror_drops_the_os_error_number() {
        let e = io::Error::from_raw_os_error(2);
        assert_eq!(strerror(&e), "No such file or directory");
    }
}
