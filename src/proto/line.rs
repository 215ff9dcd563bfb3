//! Reading one bounded line from a peer: the framing both protocol v1 sides
//! (and the `ui` HTTP parser) share.

use std::io::{self, BufRead};

/// Why a line could not be read.
#[derive(Debug)]
pub enum LineError {
    /// More than the limit arrived without a line feed.
    TooLong,
    /// The peer closed the connection in the middle of a line.
    Truncated,
    Io(io::Error),
}

/// Read one LF-terminated line of at most `limit` bytes (terminator and an
/// optional CR before it excluded). `Ok(None)` is a clean end of stream
/// before any byte of a new line. Never buffers more than `limit + 2` bytes.
pub fn read_line<R: BufRead + ?Sized>(
    reader: &mut R,
    limit: usize,
) -> std::result::Result<Option<Vec<u8>>, LineError> {
    let mut line = Vec::new();
    loop {
        let available = match reader.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(LineError::Io(e)),
        };
        if available.is_empty() {
            return if line.is_empty() {
                Ok(None)
            } else {
                Err(LineError::Truncated)
            };
        }
        let (chunk, found) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..i], Some(i)),
            None => (available, None),
        };
        // One extra byte of room for a CR that turns out to precede the LF.
        if line.len() + chunk.len() > limit + 1 {
            return Err(LineError::TooLong);
        }
        line.extend_from_slice(chunk);
        let used = found.map_or(chunk.len(), |i| i + 1);
        reader.consume(used);
        if found.is_some() {
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if line.len() > limit {
                return Err(LineError::TooLong);
            }
            return Ok(Some(line));
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::proto::MAX_LINE;
    use std::io::Cursor;

    /// Every line of `input` (read through a tiny buffer, so lines span
    /// refills), then the end or the first error.
    pub(crate) fn lines(
        input: &[u8],
        limit: usize,
    ) -> Vec<std::result::Result<Option<Vec<u8>>, String>> {
        let mut reader = io::BufReader::with_capacity(7, Cursor::new(input.to_vec()));
        let mut out = Vec::new();
        loop {
            match read_line(&mut reader, limit) {
                Ok(None) => {
                    out.push(Ok(None));
                    return out;
                }
                Ok(Some(l)) => out.push(Ok(Some(l))),
                Err(e) => {
                    out.push(Err(format!("{e:?}")));
                    return out;
                }
            }
        }
    }

    #[test]
    fn lines_end_at_lf_and_tolerate_cr() {
        let got = lines(b"PING\r\nLIST\nGET 0 a\r\n", 4096);
        assert_eq!(
            got,
            vec![
                Ok(Some(b"PING".to_vec())),
                Ok(Some(b"LIST".to_vec())),
                Ok(Some(b"GET 0 a".to_vec())),
                Ok(None)
            ]
        );
    }

    #[test]
    fn line_limit_holds_at_its_edges() {
        let limit = MAX_LINE;
        for (len, cr, ok) in [
            (limit, false, true),
            (limit, true, true),
            (limit + 1, false, false),
            (limit + 1, true, false),
            (limit - 1, true, true),
        ] {
            let mut input = vec![b'x'; len];
            if cr {
                input.push(b'\r');
            }
            input.push(b'\n');
            let got = lines(&input, limit);
            if ok {
                assert_eq!(got[0], Ok(Some(vec![b'x'; len])), "len {len} cr {cr}");
            } else {
                assert_eq!(got[0], Err("TooLong".into()), "len {len} cr {cr}");
            }
        }
        // A flood without any LF stops at the limit.
        let got = lines(&vec![b'y'; 100_000], limit);
        assert_eq!(got[0], Err("TooLong".into()));
    }

    #[test]
    fn truncated_lines_are_errors_but_clean_eof_is_not() {
        assert_eq!(lines(b"PIN", 10)[0], Err("Truncated".into()));
        assert_eq!(lines(b"", 10)[0], Ok(None));
    }
}
