//! The answers to `GET` and `LIST` past their status line: the file header
//! (size, digest, and the MAC with a key) and the list entries.

use super::error::{Message, ProtoError};
use super::{check_name, encode_ok, parse_decimal, printable, MAX_LIST_ENTRIES};
use crate::util::hex::{self, Digest};

/// The details of `GET`'s `OK`: the whole file's size and digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHeader {
    pub size: u64,
    pub digest: Digest,
}

impl FileHeader {
    /// With a shared key the line carries a third field, the answer's MAC
    /// (see `auth`); clients without a key ignore it.
    pub fn encode_with_mac(&self, mac: Option<&Digest>) -> Vec<u8> {
        let mut details = format!("{} {}", self.size, hex::encode(&self.digest));
        if let Some(mac) = mac {
            details.push(' ');
            details.push_str(&hex::encode(mac));
        }
        encode_ok(&details)
    }

    /// Parse `<size> <digest> [<mac>]`; the MAC, when present, is returned
    /// separately.
    pub fn parse_with_mac(details: &str) -> Result<(FileHeader, Option<Digest>), ProtoError> {
        let bad = || ProtoError::malformed(Message::GetAnswer, details);
        let mut fields = details.split(' ');
        let size = fields
            .next()
            .and_then(|s| parse_decimal(s.as_bytes()))
            .ok_or_else(bad)?;
        let digest = fields.next().and_then(hex::decode_digest).ok_or_else(bad)?;
        let mac = match fields.next() {
            Some(text) => Some(hex::decode_digest(text).ok_or_else(bad)?),
            None => None,
        };
        if fields.next().is_some() {
            return Err(bad());
        }
        Ok((FileHeader { size, digest }, mac))
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
    pub fn encode(&self) -> String {
        let digest = self
            .digest
            .map_or_else(|| "-".to_string(), |d| hex::encode(&d));
        format!("{} {} {}\n", self.size, digest, self.name)
    }

    pub fn parse(line: &[u8]) -> Result<ListEntry, ProtoError> {
        let bad = || ProtoError::malformed(Message::ListEntry, printable(line));
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
        };
        let wire = header.encode_with_mac(None);
        let details = parse_status(&wire[..wire.len() - 1]).unwrap();
        assert_eq!(FileHeader::parse_with_mac(&details).unwrap().0, header);
        for bad in [
            "",
            "12",
            "12 xyz",
            "x abab",
            &format!("-1 {}", "a".repeat(64)),
        ] {
            assert!(FileHeader::parse_with_mac(bad).is_err(), "{bad}");
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
        assert!(parse_list_count("3").is_ok());
        assert!(parse_list_count("99999999999").is_err());
        assert!(parse_list_count("").is_err());
    }
}
