//! Lowercase hexadecimal, by hand: sha2 0.11's output has no `LowerHex`.

/// A SHA-256 digest.
pub type Digest = [u8; 32];

/// `bytes` as lowercase hex.
pub fn encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

/// A 64-digit hex string (either case) as a digest; `None` for anything else.
pub fn decode_digest(text: &str) -> Option<Digest> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut d = [0u8; 32];
        for (i, b) in d.iter_mut().enumerate() {
            *b = (i * 37) as u8;
        }
        let text = encode(&d);
        assert_eq!(text.len(), 64);
        assert_eq!(decode_digest(&text), Some(d));
        assert_eq!(decode_digest(&text.to_uppercase()), Some(d));
    }

    #[test]
    fn rejects_wrong_length_and_bad_digits() {
        assert_eq!(decode_digest(""), None);
        assert_eq!(decode_digest(&"a".repeat(63)), None);
        assert_eq!(decode_digest(&"a".repeat(65)), None);
        assert_eq!(decode_digest(&format!("{}g", "a".repeat(63))), None);
        assert_eq!(decode_digest(&"é".repeat(32)), None);
    }

    #[test]
    fn known_value() {
        assert_eq!(encode(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
    }
}
