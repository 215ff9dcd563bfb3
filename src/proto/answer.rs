//! The answers to `GET` and `LIST` past their status line: the file header
//! (size, digest, and the MAC with a key) and the list entries.

use super::error::{Message, ProtoError};
use super::{check_name, encode_ok, parse_decimal, MAX_LINE, MAX_LIST_ENTRIES};
use crate::util::hex::{self, Digest};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The details of `GET`'s `OK`: the whole file's size and digest, and its
/// modification time when the request asked for it (`GET +mtime`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHeader {
    pub size: u64,
    pub digest: Digest,
    pub mtime: Mtime,
}

/// What a `GET` answer says of the file's modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mtime {
    /// A plain `GET`: the answer has no such field (the old grammar).
    NotAsked,
    /// `GET +mtime`, and the server does not know it: `-`.
    Unknown,
    /// `GET +mtime`: `<seconds>.<nanoseconds>` since the Unix epoch.
    At(SystemTime),
}

impl Mtime {
    /// The field as it goes on the wire; `None` when there is no field.
    pub fn field(&self) -> Option<String> {
        match self {
            Mtime::NotAsked => None,
            Mtime::At(time) => match time.duration_since(UNIX_EPOCH) {
                Ok(since) => Some(format!("{}.{:09}", since.as_secs(), since.subsec_nanos())),
                // Before 1970 does not fit the grammar: say "unknown".
                Err(_) => Some("-".into()),
            },
            Mtime::Unknown => Some("-".into()),
        }
    }

    fn parse(text: &str) -> Option<Mtime> {
        if text == "-" {
            return Some(Mtime::Unknown);
        }
        let (secs, nanos) = text.split_once('.')?;
        // One spelling per time: the MAC covers the field as re-encoded.
        if secs.len() > 1 && secs.starts_with('0') {
            return None;
        }
        let secs = parse_decimal(secs.as_bytes())?;
        if nanos.len() != 9 {
            return None;
        }
        let nanos = u32::try_from(parse_decimal(nanos.as_bytes())?).ok()?;
        UNIX_EPOCH
            .checked_add(Duration::new(secs, nanos))
            .map(Mtime::At)
    }

    /// The time, when the server told one.
    pub fn known(&self) -> Option<SystemTime> {
        match self {
            Mtime::At(time) => Some(*time),
            Mtime::NotAsked | Mtime::Unknown => None,
        }
    }
}

impl FileHeader {
    /// `<size> <digest> [<mtime>] [<mac>]`: the mtime field only when the
    /// request asked for it, the MAC only with a shared key (see `auth`).
    pub fn encode_with_mac(&self, mac: Option<&Digest>) -> Vec<u8> {
        let mut details = format!("{} {}", self.size, hex::encode(&self.digest));
        if let Some(mtime) = self.mtime.field() {
            details.push(' ');
            details.push_str(&mtime);
        }
        if let Some(mac) = mac {
            details.push(' ');
            details.push_str(&hex::encode(mac));
        }
        encode_ok(&details)
    }

    /// Parse the answer to a plain `GET` (`<size> <digest> [<mac>]`) or,
    /// `with_mtime`, to `GET +mtime` (`<size> <digest> [<mtime>] [<mac>]`);
    /// the MAC, when present, is returned separately.
    pub fn parse_with_mac(
        details: &str,
        with_mtime: bool,
    ) -> Result<(FileHeader, Option<Digest>), ProtoError> {
        let bad = || ProtoError::malformed(Message::GetAnswer, details);
        let mut fields = details.split(' ');
        let size = fields
            .next()
            .and_then(|s| parse_decimal(s.as_bytes()))
            .ok_or_else(bad)?;
        let digest = fields.next().and_then(hex::decode_digest).ok_or_else(bad)?;
        let mut next = fields.next();
        // Asked for, the field may still be missing: a server that took the
        // option for nothing answers as to a plain GET (its MAC, too, is
        // then a plain GET's). A MAC is never taken for a time, nor `-`.
        let mut mtime = Mtime::NotAsked;
        if let Some(told) = next.filter(|_| with_mtime).and_then(Mtime::parse) {
            mtime = told;
            next = fields.next();
        }
        let mac = match next {
            Some(text) => Some(hex::decode_digest(text).ok_or_else(bad)?),
            None => None,
        };
        if fields.next().is_some() {
            return Err(bad());
        }
        Ok((
            FileHeader {
                size,
                digest,
                mtime,
            },
            mac,
        ))
    }
}

/// One line of a `LIST` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntry {
    pub size: u64,
    pub digest: Option<Digest>,
    pub name: String,
}

impl ListEntry {
    /// The entry's line. A digest that would make it longer than
    /// [`MAX_LINE`] is left out (`-`, as for a file not hashed yet): a name
    /// near the bound (which [`check_name`] allows up to 25 bytes short of
    /// it) leaves no room for 64 hex digits, and one line a client must
    /// refuse fails its whole listing. Without it the line always fits;
    /// `GET` still gives the digest.
    pub fn encode(&self) -> String {
        if let Some(digest) = self.digest {
            let line = format!("{} {} {}\n", self.size, hex::encode(&digest), self.name);
            if line.len() - 1 <= MAX_LINE {
                return line;
            }
        }
        format!("{} - {}\n", self.size, self.name)
    }

    pub fn parse(line: &[u8]) -> Result<ListEntry, ProtoError> {
        let bad = || ProtoError::malformed(Message::ListEntry, line);
        let text = std::str::from_utf8(line).map_err(|_| bad())?;
        let mut parts = text.splitn(3, ' ');
        let size = parts.next().and_then(|s| parse_decimal(s.as_bytes()));
        let digest = match parts.next() {
            Some("-") => None,
            Some(hex) => Some(hex::decode_digest(hex).ok_or_else(bad)?),
            None => return Err(bad()),
        };
        let name = parts.next().ok_or_else(bad)?;
        check_name(name).map_err(|_| bad())?;
        Ok(ListEntry {
            size: size.ok_or_else(bad)?,
            digest,
            name: name.to_string(),
        })
    }
}

/// `PING`'s answer, `TCPFETCH/1 OK tcpfetch <version>`: the one place the
/// line is built, beside [`parse_ping_answer`] that reads it.
pub fn encode_ping_answer(version: &str) -> Vec<u8> {
    encode_ok(&format!("tcpfetch {version}"))
}

/// `PING`'s `OK tcpfetch <version>`: the text after `OK`. Another answer
/// (a `LIST` count from a peer out of step, an empty `OK`) is not a
/// tcpfetch server answering the ping, and `ping` must not call it one.
pub fn parse_ping_answer(details: &str) -> Result<&str, ProtoError> {
    match details.strip_prefix("tcpfetch ") {
        Some(version) if !version.trim().is_empty() => Ok(details),
        _ => Err(ProtoError::malformed(Message::PingAnswer, details)),
    }
}

/// The count in `LIST`'s `OK <count>`, bounded.
pub fn parse_list_count(details: &str) -> Result<u64, ProtoError> {
    match parse_decimal(details.as_bytes()) {
        Some(n) if n <= MAX_LIST_ENTRIES => Ok(n),
        _ => Err(ProtoError::malformed(Message::ListAnswer, details)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::parse_status;

    #[test]
    fn file_header_round_trip_and_rejects() {
        let header = FileHeader {
            size: 1 << 40,
            digest: [0xab; 32],
            mtime: Mtime::NotAsked,
        };
        let wire = header.encode_with_mac(None);
        let details = parse_status(&wire[..wire.len() - 1]).unwrap();
        assert_eq!(
            FileHeader::parse_with_mac(&details, false).unwrap().0,
            header
        );
        for bad in [
            "",
            "12",
            "12 xyz",
            "x abab",
            &format!("-1 {}", "a".repeat(64)),
        ] {
            assert!(FileHeader::parse_with_mac(bad, false).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_mtime_field_round_trips_and_only_when_asked() {
        let at = UNIX_EPOCH + Duration::new(1_234_567_890, 5);
        let mac = [0xcd; 32];
        for mtime in [Mtime::At(at), Mtime::Unknown, Mtime::At(UNIX_EPOCH)] {
            let header = FileHeader {
                size: 7,
                digest: [0xab; 32],
                mtime,
            };
            for with_mac in [None, Some(&mac)] {
                let wire = header.encode_with_mac(with_mac);
                let details = parse_status(&wire[..wire.len() - 1]).unwrap();
                let parsed = FileHeader::parse_with_mac(&details, true).unwrap();
                assert_eq!(parsed, (header, with_mac.copied()));
                // An old client (no mtime asked) rejects the extra field:
                // why the server sends it only to `GET +mtime`.
                if with_mac.is_none() {
                    assert!(FileHeader::parse_with_mac(&details, false).is_err());
                }
            }
        }
        let digest = "ab".repeat(32);
        let wire = FileHeader {
            size: 7,
            digest: [0xab; 32],
            mtime: Mtime::At(at),
        }
        .encode_with_mac(None);
        assert_eq!(
            wire,
            format!("TCPFETCH/1 OK 7 {digest} 1234567890.000000005\n").into_bytes()
        );
        let before_1970 = UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(Mtime::At(before_1970).field().as_deref(), Some("-"));
        for bad in [
            "",
            "1",
            "1.5",
            "1.0000000001",
            "x.000000000",
            "1.00000000x",
            "-1.000000000",
            "01.000000000",
        ] {
            let details = format!("7 {digest} {bad}");
            assert!(FileHeader::parse_with_mac(&details, true).is_err(), "{bad}");
        }
        // A server that ignored the option: no time, and no error.
        for (details, mac) in [
            (format!("7 {digest}"), None),
            (format!("7 {digest} {}", "cd".repeat(32)), Some(mac)),
        ] {
            let (header, got) = FileHeader::parse_with_mac(&details, true).unwrap();
            assert_eq!((header.mtime, got), (Mtime::NotAsked, mac));
        }
    }

    #[test]
    fn list_entries_round_trip_and_reject() {
        for entry in [
            ListEntry {
                size: 0,
                digest: None,
                name: "a b/c".into(),
            },
            ListEntry {
                size: 99,
                digest: Some([1; 32]),
                name: "ä".into(),
            },
        ] {
            let wire = entry.encode();
            assert_eq!(
                ListEntry::parse(&wire.as_bytes()[..wire.len() - 1]).unwrap(),
                entry
            );
        }
        for bad in [&b"1 - "[..], b"1 -", b"x - a", b"1 zz a", b"1 - a\x01"] {
            assert!(ListEntry::parse(bad).is_err());
        }
        // The longest name a request can carry, and the largest size: its
        // digest would not fit on the line, so it is left out.
        let longest = ListEntry {
            size: u64::MAX,
            digest: Some([7; 32]),
            name: "n".repeat(MAX_LINE - 25),
        };
        let wire = longest.encode();
        assert!(wire.len() - 1 <= MAX_LINE, "{}", wire.len());
        let parsed = ListEntry::parse(&wire.as_bytes()[..wire.len() - 1]).unwrap();
        assert_eq!(parsed.digest, None);
        assert_eq!(parsed.name, longest.name);
        // One that just fits keeps it.
        let fits = ListEntry {
            size: 1,
            digest: Some([7; 32]),
            name: "n".repeat(MAX_LINE - 67),
        };
        assert_eq!(fits.encode().len() - 1, MAX_LINE);
        assert_eq!(
            fits.encode().split(' ').nth(1),
            Some("07".repeat(32).as_str())
        );
        assert!(parse_list_count("3").is_ok());
        assert!(parse_list_count("99999999999").is_err());
        assert!(parse_list_count("").is_err());
    }

    #[test]
    fn a_ping_answer_names_tcpfetch_and_a_version() {
        assert_eq!(parse_ping_answer("tcpfetch 0.1.0"), Ok("tcpfetch 0.1.0"));
        // What the server sends is what the client accepts.
        let wire = encode_ping_answer("0.1.0");
        let details = parse_status(&wire[..wire.len() - 1]).unwrap();
        assert_eq!(parse_ping_answer(&details), Ok("tcpfetch 0.1.0"));
        for bad in [
            "",
            "3",
            "tcpfetch",
            "tcpfetch ",
            "tcpfetch  ",
            "OK tcpfetch 0.1.0",
        ] {
            let err = parse_ping_answer(bad).unwrap_err();
            assert!(
                err.to_string().starts_with("malformed PING answer"),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn each_refused_form_of_an_answer_is_refused() {
        let (digest, mac) = ("ab".repeat(32), "cd".repeat(32));
        // A field after the MAC; a time past u64 seconds or past what a
        // SystemTime holds is not a time (and not a MAC either).
        for details in [
            format!("7 {digest} {mac} x"),
            format!("7 {digest} 1.000000000 {mac} x"),
            format!("7 {digest} 18446744073709551616.000000000"),
            format!("7 {digest} 18446744073709551615.000000000"),
        ] {
            assert!(
                FileHeader::parse_with_mac(&details, true).is_err(),
                "{details}"
            );
        }
        assert!(FileHeader::parse_with_mac(&format!("7 {digest} {mac} x"), false).is_err());
        // A list entry that is not UTF-8, has no digest field, or a name
        // too long for a request line.
        let long = format!("1 - {}", "n".repeat(crate::proto::MAX_LINE - 24));
        for bad in [&b"1 - \xff"[..], b"1", b"", long.as_bytes()] {
            let err = ListEntry::parse(bad).unwrap_err();
            assert!(err.to_string().starts_with("malformed LIST entry"), "{err}");
        }
        assert!(ListEntry::parse(&long.as_bytes()[..long.len() - 1]).is_ok());
        // The count's bound at its edge, and a count that is not a number.
        assert_eq!(parse_list_count("10000000"), Ok(MAX_LIST_ENTRIES));
        for bad in ["10000001", "x", " 3", "-1"] {
            assert!(parse_list_count(bad).is_err(), "{bad}");
        }
    }
}
