//! A small, bounded JSON reader, for reading back what tcpfetch itself wrote
//! (`bench --merge` reads `bench --json` runs). Hand-written because the
//! crate has two runtime dependencies only; it never panics on any input:
//! nesting is capped at [`MAX_DEPTH`], every error names the line and
//! column, and the caller caps the size of the text it hands over.
//!
//! Numbers keep their text, so a count is read back as an exact `u64`
//! rather than through an `f64`.

use std::fmt;

/// The deepest nesting accepted; bench's runs nest four levels.
pub const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// The number's text, checked against the JSON grammar.
    Number(String),
    String(String),
    Array(Vec<Value>),
    /// Members in the order written; [`Value::get`] finds the first.
    Object(Vec<(String, Value)>),
}

/// Where the text stops being JSON, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub column: usize,
    pub what: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.what
        )
    }
}

impl Value {
    /// A member of an object; `None` for a missing key or a non-object.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// A whole number from 0 to `u64::MAX`, written without fraction or
    /// exponent.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Number(text) => text.parse().ok(),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(text) => text.parse().ok().filter(|f: &f64| f.is_finite()),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<&[(String, Value)]> {
        match self {
            Value::Object(members) => Some(members),
            _ => None,
        }
    }
}

/// Parse one JSON value; only whitespace may follow it.
pub fn parse(text: &str) -> Result<Value, ParseError> {
    let mut p = Parser {
        text: text.as_bytes(),
        at: 0,
    };
    let value = p.value(0)?;
    p.skip_space();
    if p.at < p.text.len() {
        return Err(p.error("text after the end of the value"));
    }
    Ok(value)
}

struct Parser<'a> {
    text: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn error(&self, what: &str) -> ParseError {
        let before = &self.text[..self.at.min(self.text.len())];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        // Columns count characters, not bytes.
        let column = String::from_utf8_lossy(&before[line_start..])
            .chars()
            .count()
            + 1;
        ParseError {
            line,
            column,
            what: what.to_string(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn skip_space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Result<(), ParseError> {
        self.skip_space();
        if self.peek() == Some(byte) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.error(&format!("expected '{}'", byte as char)))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, ParseError> {
        if depth > MAX_DEPTH {
            return Err(self.error(&format!("nested deeper than {MAX_DEPTH} levels")));
        }
        self.skip_space();
        match self.peek() {
            None => Err(self.error("unexpected end of the text")),
            Some(b'{') => self.object(depth),
            Some(b'[') => self.array(depth),
            Some(b'"') => self.string().map(Value::String),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => {
                for (word, value) in [
                    ("null", Value::Null),
                    ("true", Value::Bool(true)),
                    ("false", Value::Bool(false)),
                ] {
                    if self.text[self.at..].starts_with(word.as_bytes()) {
                        self.at += word.len();
                        return Ok(value);
                    }
                }
                Err(self.error("expected a value"))
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, ParseError> {
        let members = self.items(b'}', |p| {
            p.skip_space();
            if p.peek() != Some(b'"') {
                return Err(p.error("expected a key in quotes"));
            }
            let key = p.string()?;
            p.expect(b':')?;
            Ok((key, p.value(depth + 1)?))
        })?;
        Ok(Value::Object(members))
    }

    fn array(&mut self, depth: usize) -> Result<Value, ParseError> {
        Ok(Value::Array(self.items(b']', |p| p.value(depth + 1))?))
    }

    /// The comma-separated items of an object or array, from its opening
    /// byte through `close`, each read by `item`.
    fn items<T>(
        &mut self,
        close: u8,
        mut item: impl FnMut(&mut Self) -> Result<T, ParseError>,
    ) -> Result<Vec<T>, ParseError> {
        self.at += 1;
        let mut items = Vec::new();
        self.skip_space();
        if self.peek() == Some(close) {
            self.at += 1;
            return Ok(items);
        }
        loop {
            items.push(item(self)?);
            self.skip_space();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b) if b == close => {
                    self.at += 1;
                    return Ok(items);
                }
                _ => return Err(self.error(&format!("expected ',' or '{}'", close as char))),
            }
        }
    }

    fn number(&mut self) -> Result<Value, ParseError> {
        let start = self.at;
        let digits = |p: &mut Parser| {
            let from = p.at;
            while matches!(p.peek(), Some(b'0'..=b'9')) {
                p.at += 1;
            }
            p.at > from
        };
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        // The integer part is one 0, or digits that do not start with 0.
        if self.peek() == Some(b'0') {
            self.at += 1;
            if matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.error("malformed number"));
            }
        } else if !digits(self) {
            return Err(self.error("malformed number"));
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            if !digits(self) {
                return Err(self.error("malformed number"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if !digits(self) {
                return Err(self.error("malformed number"));
            }
        }
        // Only ASCII digits and signs were consumed: valid UTF-8.
        let text = String::from_utf8_lossy(&self.text[start..self.at]).into_owned();
        Ok(Value::Number(text))
    }

    fn string(&mut self) -> Result<String, ParseError> {
        self.at += 1; // the opening quote
        let mut out = Vec::new();
        loop {
            let Some(byte) = self.peek() else {
                return Err(self.error("unterminated string"));
            };
            match byte {
                b'"' => {
                    self.at += 1;
                    return String::from_utf8(out)
                        .map_err(|_| self.error("a string that is not UTF-8"));
                }
                b'\\' => {
                    self.at += 1;
                    let c = self.escape()?;
                    out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                }
                0..=0x1f => return Err(self.error("a control character inside a string")),
                _ => {
                    out.push(byte);
                    self.at += 1;
                }
            }
        }
    }

    /// The character after a backslash (the backslash already consumed).
    fn escape(&mut self) -> Result<char, ParseError> {
        let Some(byte) = self.peek() else {
            return Err(self.error("unterminated string"));
        };
        self.at += 1;
        Ok(match byte {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let high = self.hex4()?;
                if !(0xd800..0xdc00).contains(&high) {
                    return char::from_u32(high).ok_or_else(|| self.error("a lone low surrogate"));
                }
                if !self.text[self.at..].starts_with(b"\\u") {
                    return Err(self.error("a high surrogate without its low half"));
                }
                self.at += 2;
                let low = self.hex4()?;
                if !(0xdc00..0xe000).contains(&low) {
                    return Err(self.error("a high surrogate without its low half"));
                }
                let c = 0x10000 + ((high - 0xd800) << 10) + (low - 0xdc00);
                char::from_u32(c).ok_or_else(|| self.error("a bad surrogate pair"))?
            }
            _ => return Err(self.error("an unknown escape")),
        })
    }

    fn hex4(&mut self) -> Result<u32, ParseError> {
        let digits = self
            .text
            .get(self.at..self.at + 4)
            .ok_or_else(|| self.error("a short \\u escape"))?;
        let text = std::str::from_utf8(digits).map_err(|_| self.error("a bad \\u escape"))?;
        if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(self.error("a bad \\u escape"));
        }
        let n = u32::from_str_radix(text, 16).map_err(|_| self.error("a bad \\u escape"))?;
        self.at += 4;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::format::json_string;

    #[test]
    fn values_parse_with_exact_numbers() {
        let v = parse(r#" {"a": [1, -2.5e3, true, false, null], "b": {"c": "x\ty\u00e9\ud83d\ude00"}, "n": 18446744073709551615} "#)
            .unwrap();
        let a = v.get("a").and_then(Value::as_array).unwrap();
        assert_eq!(a[0].as_u64(), Some(1));
        assert_eq!(a[1].as_f64(), Some(-2500.0));
        assert_eq!(a[1].as_u64(), None);
        assert_eq!(
            (a[2].as_bool(), a[3].as_bool(), &a[4]),
            (Some(true), Some(false), &Value::Null)
        );
        assert_eq!(
            v.get("b").and_then(|b| b.get("c")).and_then(Value::as_str),
            Some("x\tyé😀")
        );
        assert_eq!(v.get("n").and_then(Value::as_u64), Some(u64::MAX));
        assert_eq!(v.get("missing"), None);
    }

    #[test]
    fn what_json_string_writes_reads_back() {
        for text in [
            "plain",
            "quote \" back \\ slash",
            "ctl \u{1} \u{7f} nl \n",
            "\u{2028}ünï😀",
        ] {
            assert_eq!(
                parse(&json_string(text)).unwrap(),
                Value::String(text.into())
            );
        }
    }

    #[test]
    fn malformed_text_is_an_error_with_its_place_never_a_panic() {
        let cases: &[(&str, &str)] = &[
            ("", "line 1, column 1: unexpected end"),
            ("{", "line 1, column 2: expected a key"),
            ("{\"a\" 1}", "line 1, column 6: expected ':'"),
            ("{\"a\":1,}", "expected a key"),
            ("[1 2]", "expected ',' or ']'"),
            ("{\"a\":1 \"b\":2}", "line 1, column 8: expected ',' or '}'"),
            ("[1,]", "expected a value"),
            ("[1", "expected ',' or ']'"),
            ("{\"a\":1} x", "text after the end"),
            ("\"abc", "unterminated string"),
            ("\"a\nb\"", "control character"),
            ("\"\\q\"", "unknown escape"),
            ("\"\\u12\"", "short \\u escape"),
            ("\"\\u12x4\"", "bad \\u escape"),
            ("\"\\ud800\"", "without its low half"),
            ("\"\\udc00\"", "lone low surrogate"),
            ("01", "malformed number"),
            ("-", "malformed number"),
            ("1.", "malformed number"),
            ("1e+", "malformed number"),
            ("nul", "expected a value"),
            ("{\n  \"a\": tru\n}", "line 2, column 8: expected a value"),
            ("\"\\", "unterminated string"),
            ("\"\\u", "short \\u escape"),
        ];
        for (text, want) in cases {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let deep = "[".repeat(100_000);
        assert!(parse(&deep).unwrap_err().what.contains("nested deeper"));
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn every_prefix_of_a_document_fails_cleanly() {
        let doc = r#"{"k":[1,{"x":"\u00e9"},-0.5e-2,null],"s":"a\"b"}"#;
        assert!(parse(doc).is_ok());
        for end in 0..doc.len() {
            if doc.is_char_boundary(end) {
                assert!(parse(&doc[..end]).is_err(), "{:?}", &doc[..end]);
            }
        }
    }
}
