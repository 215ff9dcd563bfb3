//! Shared-key authentication and authenticated digests (`--key-file`).
//!
//! The header digest alone proves only that nothing broke by accident: an
//! attacker on the path can replace a file *and* its digest together. With a
//! shared key both sides prove they hold it, and every `GET` answer carries a
//! MAC that binds the digest to this session, this request and this file.
//!
//! # Handshake (an extension of protocol v1)
//!
//! ```text
//! C: AUTH <client-nonce-hex>
//! S: TCPFETCH/1 OK AUTH <server-nonce-hex> <server-proof-hex>
//! C: PROVE <client-proof-hex>
//! S: TCPFETCH/1 OK authenticated            (or, after a fixed delay,
//!                                            TCPFETCH/1 ERR forbidden ...)
//! ```
//!
//! Before `AUTH` a keyed server answers `PING` (and nothing else), so
//! load-balancer health checks work without the key; any other request
//! gets `ERR forbidden` and the connection is closed.
//!
//! Nonces are 32 bytes from `/dev/urandom`, fresh on both sides, so a
//! recorded session cannot be replayed. The proofs are
//! `HMAC-SHA256(key, label || client-nonce || server-nonce)` with the labels
//! `tcpfetch/1 server` and `tcpfetch/1 client`: the client checks the
//! server's proof first (a stand-in server without the key is caught), and
//! the labels keep one side's proof from ever serving as the other's.
//!
//! Once authenticated, a `GET` answer is `TCPFETCH/1 OK <size> <digest> <mac>`
//! with `mac = HMAC-SHA256(key, "tcpfetch/1 get" || client-nonce ||
//! server-nonce || request-number || offset || size || digest || name)`,
//! numbers as 8-byte big-endian, the request number counting requests on the
//! connection from 0 (every request line counts, a refused one too). The
//! client rejects an answer whose MAC is wrong.
//!
//! The answer to `GET +mtime` is `TCPFETCH/1 OK <size> <digest> <mtime>
//! <mac>`, and its MAC covers the mtime too: `HMAC-SHA256(key,
//! "tcpfetch/1 get+mtime" || client-nonce || server-nonce || request-number
//! || offset || size || digest || mtime || " " || name)`, `mtime` being the
//! field's text as sent (`<seconds>.<nanoseconds>` or `-`). The label keeps
//! the two forms' MACs apart.
//!
//! Confidentiality is out of scope: bytes travel in clear.

use sha2::{Digest as _, Sha256};

use super::answer::FileHeader;
use super::encode_ok;
use super::error::{Message, ProtoError};
use crate::util::hex::{self, Digest};

/// The shortest key accepted, in bytes.
pub const MIN_KEY_LEN: usize = 32;
/// The longest key accepted (a bound on what a key file makes us read).
pub const MAX_KEY_LEN: u64 = 4096;

const BLOCK: usize = 64;

/// HMAC-SHA256 (RFC 2104) over the concatenation of `parts`.
pub fn hmac(key: &[u8], parts: &[&[u8]]) -> Digest {
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| -> [u8; BLOCK] {
        let mut p = block;
        p.iter_mut().for_each(|b| *b ^= byte);
        p
    };
    let mut inner = Sha256::new();
    inner.update(pad(0x36));
    for part in parts {
        inner.update(part);
    }
    let mut outer = Sha256::new();
    outer.update(pad(0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// Compare two MACs in time that does not depend on where they differ.
pub fn same_mac(a: &Digest, b: &Digest) -> bool {
    same_bytes(a, b)
}

/// Compare two secrets without an early exit, so the time taken tells
/// nothing of where they differ (only whether their lengths do).
pub fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A shared key read from a key file.
#[derive(Clone)]
pub struct Key(Vec<u8>);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

impl Key {
    /// A key of acceptable length; the error says why not. (Reading a key
    /// file is `Key::load`, in `crate::secret`: this module does no I/O.)
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Key, String> {
        if bytes.len() < MIN_KEY_LEN {
            return Err(format!(
                "a key needs at least {MIN_KEY_LEN} bytes (make one with 'head -c 32 /dev/urandom > KEYFILE'), this has {}",
                bytes.len()
            ));
        }
        if bytes.len() as u64 > MAX_KEY_LEN {
            return Err(format!("a key file holds at most {MAX_KEY_LEN} bytes"));
        }
        Ok(Key(bytes))
    }

    fn mac(&self, parts: &[&[u8]]) -> Digest {
        hmac(&self.0, parts)
    }
}

/// Who proves: the labels keep the two proofs apart.
#[derive(Clone, Copy)]
pub enum Side {
    Server,
    Client,
}

/// An authenticated connection's state, the same on both ends.
pub struct Session {
    key: Key,
    client_nonce: Digest,
    server_nonce: Digest,
    requests: u64,
}

impl Session {
    pub fn new(key: Key, client_nonce: Digest, server_nonce: Digest) -> Session {
        Session {
            key,
            client_nonce,
            server_nonce,
            requests: 0,
        }
    }

    /// The proof that `side` holds the key, for this pair of nonces.
    pub fn proof(&self, side: Side) -> Digest {
        let label: &[u8] = match side {
            Side::Server => b"tcpfetch/1 server",
            Side::Client => b"tcpfetch/1 client",
        };
        self.key
            .mac(&[label, &self.client_nonce, &self.server_nonce])
    }

    /// Whether `claimed` is `side`'s proof (constant-time).
    pub fn check_proof(&self, side: Side, claimed: &Digest) -> bool {
        same_mac(&self.proof(side), claimed)
    }

    /// Number the next request on this connection. Both ends call this once
    /// per request line after the handshake, whatever the request.
    pub fn next_request(&mut self) -> u64 {
        let number = self.requests;
        self.requests += 1;
        number
    }

    /// The MAC of the answer `header` to `GET offset name`, request number
    /// `number`. The answer to `GET +mtime` has its own label and covers the
    /// mtime field too; a plain `GET`'s MAC is what it always was.
    pub fn get_mac(&self, number: u64, name: &str, offset: u64, header: &FileHeader) -> Digest {
        let mtime = header.mtime.field();
        let (label, mtime, separator): (&[u8], &[u8], &[u8]) = match &mtime {
            None => (b"tcpfetch/1 get", b"", b""),
            // The field never holds a space, so "field space name" reads
            // back one way only.
            Some(field) => (b"tcpfetch/1 get+mtime", field.as_bytes(), b" "),
        };
        self.key.mac(&[
            label,
            &self.client_nonce,
            &self.server_nonce,
            &number.to_be_bytes(),
            &offset.to_be_bytes(),
            &header.size.to_be_bytes(),
            &header.digest,
            mtime,
            separator,
            name.as_bytes(),
        ])
    }
}

/// The client's opening line: `AUTH <client-nonce>`.
pub fn encode_auth(client_nonce: &Digest) -> Vec<u8> {
    format!("AUTH {}\n", hex::encode(client_nonce)).into_bytes()
}

/// The client nonce of an `AUTH <hex>` line (without its terminator).
pub fn parse_auth(line: &[u8]) -> Result<Digest, ProtoError> {
    hex_argument(line, "AUTH").ok_or_else(|| ProtoError::malformed(Message::AuthRequest, line))
}

/// The server's answer to `AUTH`: its nonce and its proof.
pub fn encode_auth_answer(server_nonce: &Digest, proof: &Digest) -> Vec<u8> {
    encode_ok(&format!(
        "AUTH {} {}",
        hex::encode(server_nonce),
        hex::encode(proof)
    ))
}

/// `(server nonce, server proof)` from the details of that answer's `OK`
/// (`AUTH <nonce-hex> <proof-hex>`).
pub fn parse_auth_answer(details: &str) -> Result<(Digest, Digest), ProtoError> {
    let mut fields = details.split(' ');
    if let (Some("AUTH"), Some(nonce), Some(proof), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    {
        if let (Some(nonce), Some(proof)) = (hex::decode_digest(nonce), hex::decode_digest(proof)) {
            return Ok((nonce, proof));
        }
    }
    Err(ProtoError::malformed(Message::AuthAnswer, details))
}

/// The client's proof: `PROVE <client-proof>`.
pub fn encode_prove(proof: &Digest) -> Vec<u8> {
    format!("PROVE {}\n", hex::encode(proof)).into_bytes()
}

/// The proof of a `PROVE <hex>` line (without its terminator).
pub fn parse_prove(line: &[u8]) -> Result<Digest, ProtoError> {
    hex_argument(line, "PROVE").ok_or_else(|| ProtoError::malformed(Message::ProveRequest, line))
}

/// The server's last word of a handshake that succeeded.
pub fn encode_authenticated() -> Vec<u8> {
    encode_ok("authenticated")
}

/// The 64-digit hex that follows `keyword` and one space, and nothing else.
fn hex_argument(line: &[u8], keyword: &str) -> Option<Digest> {
    let text = std::str::from_utf8(line).ok()?;
    hex::decode_digest(text.strip_prefix(keyword)?.strip_prefix(' ')?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// RFC 4231 test cases 1–4, 6 and 7 (5 is a truncated MAC).
    #[test]
    fn hmac_matches_rfc_4231() {
        let cases: [(Vec<u8>, Vec<u8>, &str); 6] = [
            (
                vec![0x0b; 20],
                b"Hi There".to_vec(),
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            ),
            (
                b"Jefe".to_vec(),
                b"what do ya want for nothing?".to_vec(),
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                vec![0xaa; 20],
                vec![0xdd; 50],
                "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
            ),
            (
                unhex("0102030405060708090a0b0c0d0e0f10111213141516171819"),
                vec![0xcd; 50],
                "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
            ),
            (
                vec![0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First".to_vec(),
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            ),
            (
                vec![0xaa; 131],
                b"This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.".to_vec(),
                "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
            ),
        ];
        for (key, data, want) in cases {
            assert_eq!(hex::encode(&hmac(&key, &[&data])), want);
            // Split input gives the same MAC.
            let (a, b) = data.split_at(data.len() / 2);
            assert_eq!(hex::encode(&hmac(&key, &[a, b])), want);
        }
    }

    #[test]
    fn proofs_differ_by_side_and_by_nonce() {
        let key = Key::from_bytes(vec![7; 32]).unwrap();
        let s = Session::new(key.clone(), [1; 32], [2; 32]);
        let other = Session::new(key, [1; 32], [3; 32]);
        assert!(s.check_proof(Side::Server, &s.proof(Side::Server)));
        assert!(!s.check_proof(Side::Client, &s.proof(Side::Server)));
        assert!(!s.check_proof(Side::Server, &other.proof(Side::Server)));
    }

    #[test]
    fn get_macs_bind_every_field_and_the_request_number() {
        use crate::proto::Mtime;
        use std::time::{Duration, UNIX_EPOCH};
        let h = |size, digest, mtime| FileHeader {
            size,
            digest,
            mtime,
        };
        let plain = h(10, [5; 32], Mtime::NotAsked);
        let key = Key::from_bytes(vec![9; 40]).unwrap();
        let mut a = Session::new(key.clone(), [1; 32], [2; 32]);
        let mut b = Session::new(key.clone(), [1; 32], [2; 32]);
        let (na, nb) = (a.next_request(), b.next_request());
        let first = a.get_mac(na, "f", 0, &plain);
        assert_eq!(first, b.get_mac(nb, "f", 0, &plain));
        // A plain GET's MAC is the one older clients check: the fields in
        // the module doc, nothing more.
        let old = key.mac(&[
            b"tcpfetch/1 get",
            &[1; 32],
            &[2; 32],
            &0u64.to_be_bytes(),
            &0u64.to_be_bytes(),
            &10u64.to_be_bytes(),
            &[5; 32],
            b"f",
        ]);
        assert_eq!(first, old);
        // The same answer as request number 1 has another MAC: no replay.
        let n1 = a.next_request();
        assert_ne!(first, a.get_mac(n1, "f", 0, &plain));
        let other_session = Session::new(key, [1; 32], [3; 32]);
        let at = |secs| Mtime::At(UNIX_EPOCH + Duration::from_secs(secs));
        let with_mtime = a.get_mac(na, "f", 0, &h(10, [5; 32], at(1)));
        for variant in [
            a.get_mac(na, "g", 0, &plain),
            a.get_mac(na, "f", 1, &plain),
            a.get_mac(na, "f", 0, &h(11, [5; 32], Mtime::NotAsked)),
            a.get_mac(na, "f", 0, &h(10, [6; 32], Mtime::NotAsked)),
            other_session.get_mac(na, "f", 0, &plain),
            with_mtime,
            a.get_mac(na, "f", 0, &h(10, [5; 32], Mtime::Unknown)),
        ] {
            assert_ne!(variant, first);
        }
        // The mtime is covered: another time, another MAC.
        assert_ne!(with_mtime, a.get_mac(na, "f", 0, &h(10, [5; 32], at(2))));
        assert_ne!(
            with_mtime,
            a.get_mac(na, "f", 0, &h(10, [5; 32], Mtime::Unknown))
        );
    }

    #[test]
    fn keys_have_a_length_range() {
        assert!(Key::from_bytes(vec![0; 31]).is_err());
        assert!(Key::from_bytes(vec![0; 4097]).is_err());
        assert!(Key::from_bytes(vec![0; 4096]).is_ok());
    }

    #[test]
    fn secrets_compare_by_content_and_length() {
        assert!(same_bytes(b"abc", b"abc"));
        assert!(!same_bytes(b"abc", b"abd"));
        assert!(!same_bytes(b"abc", b"abcd"));
        assert!(same_mac(&[7; 32], &[7; 32]));
        assert!(!same_mac(&[7; 32], &[8; 32]));
    }

    #[test]
    fn handshake_lines_round_trip() {
        let (a, b) = ([0xab; 32], [0x01; 32]);
        let line = encode_auth(&a);
        assert_eq!(line, format!("AUTH {}\n", "ab".repeat(32)).into_bytes());
        assert_eq!(parse_auth(&line[..line.len() - 1]), Ok(a));
        let line = encode_prove(&b);
        assert_eq!(parse_prove(&line[..line.len() - 1]), Ok(b));
        let line = encode_auth_answer(&a, &b);
        let details = crate::proto::parse_status(&line[..line.len() - 1]).unwrap();
        assert_eq!(parse_auth_answer(&details), Ok((a, b)));
        assert_eq!(encode_authenticated(), b"TCPFETCH/1 OK authenticated\n");
    }

    #[test]
    fn malformed_handshake_lines_say_what_they_are() {
        let nonce = "ab".repeat(32);
        for bad in [
            "AUTH".to_string(),
            "AUTH abc".to_string(),
            format!("AUTH  {nonce}"),
            format!("AUTH {nonce} "),
            format!("auth {nonce}"),
            format!("PROVE {nonce}"),
        ] {
            let err = parse_auth(bad.as_bytes()).unwrap_err();
            assert!(
                err.to_string().starts_with("malformed AUTH request: '"),
                "{err}"
            );
        }
        let err = parse_prove(format!("AUTH {nonce}").as_bytes()).unwrap_err();
        assert!(
            err.to_string().starts_with("malformed PROVE request"),
            "{err}"
        );
        for bad in [
            String::new(),
            "AUTH".into(),
            format!("AUTH {nonce}"),
            format!("AUTH {nonce} {nonce} x"),
            format!("AUTH {nonce} zz"),
            format!("PROVE {nonce} {nonce}"),
        ] {
            let err = parse_auth_answer(&bad).unwrap_err();
            // Quoted as every peer's text is: printable, and cut at 60 bytes.
            let quoted = crate::proto::printable(bad.as_bytes());
            assert_eq!(
                err.to_string(),
                format!("malformed AUTH answer from server: '{quoted}'")
            );
        }
    }

    #[test]
    fn each_refused_form_of_a_handshake_line_is_refused() {
        let nonce = "ab".repeat(32);
        let not_hex = format!("{}g", "a".repeat(63));
        // Both requests take exactly their word, one space and 64 hex
        // digits; the bytes must be UTF-8.
        for (word, parse) in [
            (
                "AUTH",
                parse_auth as fn(&[u8]) -> Result<Digest, ProtoError>,
            ),
            ("PROVE", parse_prove),
        ] {
            assert!(parse(format!("{word} {nonce}").as_bytes()).is_ok());
            assert!(parse(format!("{word} {}", nonce.to_uppercase()).as_bytes()).is_ok());
            let mut not_utf8 = format!("{word} ").into_bytes();
            not_utf8.extend_from_slice(&[0xff; 64]);
            for bad in [
                word.as_bytes().to_vec(),
                format!("{word} ").into_bytes(),
                format!("{word} {}", &nonce[1..]).into_bytes(),
                format!("{word} {nonce}a").into_bytes(),
                format!("{word} {not_hex}").into_bytes(),
                format!("{word}  {nonce}").into_bytes(),
                format!("{word}\t{nonce}").into_bytes(),
                format!("{word} {nonce} ").into_bytes(),
                format!("{} {nonce}", word.to_lowercase()).into_bytes(),
                not_utf8,
            ] {
                let err = parse(&bad).unwrap_err();
                let want = format!("malformed {word} request: '");
                assert!(err.to_string().starts_with(&want), "{bad:?}: {err}");
            }
        }
        // The answer: a bad nonce is refused as a bad proof is.
        for bad in [
            format!("AUTH {not_hex} {nonce}"),
            format!("AUTH {nonce}  {nonce}"),
        ] {
            assert!(parse_auth_answer(&bad).is_err(), "{bad}");
        }
        // The shortest key is accepted.
        assert!(Key::from_bytes(vec![0; MIN_KEY_LEN]).is_ok());
    }
}
