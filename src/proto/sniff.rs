//! Telling the two protocols apart by their first bytes, so that a client
//! or server talking to the wrong one says so at once instead of waiting
//! for a timeout (`ping --legacy` against a v1 server, `ping` against the
//! old one).
//!
//! A v1 request starts with its upper-case verb and every v1 answer with
//! `TCPFETCH/1`; every old-protocol message starts with a 10-byte length
//! header, ASCII digits padded with spaces. Neither can be taken for the
//! other.

/// How every v1 answer starts.
pub const V1_ANSWER: &[u8] = b"TCPFETCH/";

/// Whether `bytes`, the first a peer sent, are an old-protocol message: a
/// 10-byte length header (digits, then at least one space) and the start
/// of a pickle (`PROTO`, 0x80, as every Python 3 pickles it).
pub fn is_legacy(bytes: &[u8]) -> bool {
    let Some(header) = bytes.get(..10) else {
        return false;
    };
    let digits = header.iter().take_while(|b| b.is_ascii_digit()).count();
    (1..10).contains(&digits)
        && header[digits..].iter().all(|&b| b == b' ')
        && bytes.get(10) == Some(&0x80)
}

/// Whether `bytes`, the first a server sent, are a v1 answer.
pub fn is_v1_answer(bytes: &[u8]) -> bool {
    bytes.starts_with(V1_ANSWER)
}

/// Whether `bytes`, the first a client sent, are a v1 request.
pub fn is_v1_request(bytes: &[u8]) -> bool {
    [&b"PING"[..], b"LIST", b"GET ", b"AUTH "]
        .iter()
        .any(|verb| bytes.starts_with(verb))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_protocol_is_known_by_its_first_bytes() {
        assert!(is_legacy(b"39        \x80\x04\x95"));
        assert!(!is_legacy(b"1234567890\x80"));
        assert!(!is_legacy(b"39        x"));
        assert!(!is_legacy(b"39      "));
        assert!(!is_legacy(b"TCPFETCH/1 OK tcpfetch 0.1.0\n"));
        assert!(!is_legacy(b" 39       x"));
        assert!(!is_legacy(b"39   x    "));
        assert!(is_v1_answer(b"TCPFETCH/1 ERR not-found x\n"));
        assert!(!is_v1_answer(b"39        \x80"));
        assert!(is_v1_request(b"PING\n"));
        assert!(is_v1_request(b"GET 0 a\n"));
        assert!(!is_v1_request(b"5         \x80"));
    }
}
