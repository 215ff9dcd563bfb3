//! What a download must match, and what its failures say: the digest the
//! user expects and where that expectation came from, the check of the
//! received bytes against the server's and the user's digests, and the
//! server's refusals turned into messages that say what to run next.

use std::net::SocketAddr;

use crate::error::{Error, Result};
use crate::fetch::manifest::Manifest;
use crate::proto::ErrorCode;
use crate::util::format;
use crate::util::hex::{self, Digest};

/// A digest the user expects, and where the expectation came from, for
/// the message when it is not met (`--sha256`, `the manifest FILE`).
#[derive(Debug, Clone)]
pub struct Expected {
    pub digest: Digest,
    pub from: String,
}

impl Expected {
    pub fn from_manifest(manifest: &Manifest, digest: Digest) -> Expected {
        Expected {
            digest,
            from: format!("the manifest {}", manifest.path().display()),
        }
    }
}

/// The received bytes must match what the server vouched for, and what
/// the user expects.
pub fn verify(vouched: &Digest, expected: Option<&Expected>, got: &Digest) -> Result<()> {
    if got != vouched {
        return Err(Error::Integrity(format!(
            "received bytes hash to {} but the server announced {}",
            hex::encode(got),
            hex::encode(vouched)
        )));
    }
    check_expected(expected, got, "the download's digest")
}

pub fn check_expected(expected: Option<&Expected>, got: &Digest, what: &str) -> Result<()> {
    match expected {
        Some(want) if want.digest != *got => Err(Error::Integrity(format!(
            "{what} is {} but {} expects {}",
            hex::encode(got),
            want.from,
            hex::encode(&want.digest)
        ))),
        _ => Ok(()),
    }
}

/// `tail` after an integrity failure's message: what became of the bytes.
pub fn suffix(e: Error, tail: &str) -> Error {
    match e {
        Error::Integrity(msg) => Error::Integrity(format!("{msg}{tail}")),
        other => other,
    }
}

/// A `not-found` or a directory refused names the file and the server,
/// and says what to run instead; other definite refusals name both too.
pub fn explain(e: Error, name: &str, server: SocketAddr) -> Error {
    let shown = format::visible(name);
    let transient = e.is_transient();
    match e {
        Error::Remote {
            code: ErrorCode::NotFound,
            ..
        } => Error::Other(format!(
            "no file '{shown}' on {server}; see 'tcpfetch list {server}'"
        )),
        Error::Remote {
            code: ErrorCode::Forbidden,
            message,
        } if message.starts_with("a directory") => Error::Other(format!(
            "'{shown}' is a directory on {server}; fetch the files under it with 'tcpfetch get {server} {}/ --all'",
            shown.trim_end_matches('/')
        )),
        // Any other definite refusal (a special file, a symlink out of the
        // root) names the file and the server too; `busy` and `internal`
        // are retried, and say so, as they are.
        Error::Remote { code, message } if !transient => {
            Error::Other(format!("{server} refused '{shown}': {code}: {message}"))
        }
        e => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verification_names_both_digests() {
        let err = verify(&[1; 32], None, &[2; 32]).unwrap_err();
        assert_eq!(err.exit_code(), 3);
        let text = err.to_string();
        assert!(text.contains(&hex::encode(&[1; 32])) && text.contains(&hex::encode(&[2; 32])));
        let want = |b| Expected {
            digest: [b; 32],
            from: "the manifest m.sums".into(),
        };
        let err = verify(&[1; 32], Some(&want(3)), &[1; 32]).unwrap_err();
        assert!(
            err.to_string()
                .contains("but the manifest m.sums expects 0303"),
            "{err}"
        );
        assert!(verify(&[1; 32], Some(&want(1)), &[1; 32]).is_ok());
    }
}
