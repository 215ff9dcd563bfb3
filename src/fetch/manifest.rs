//! `--manifest FILE`: the digests a user carried by hand, loaded once for
//! `get NAME` and `get --all` alike.
//!
//! Malformed lines are reported and skipped, as `verify -c` does, and a
//! manifest without a single checksum line is refused: it would check
//! nothing (or, for one NAME, fail as "not in the manifest" for a reason
//! that is not the file's). Both rules used to apply to `get --all` only.
//! Names are the server's: a leading `./` (as `find . | xargs sha256sum`
//! writes them) is dropped, and a name listed with two digests is refused.

use std::collections::HashMap;
use std::fs;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use crate::digest::manifest;
use crate::error::{Error, Result};
use crate::util::format::visible;
use crate::util::hex::Digest;

pub struct Manifest {
    path: PathBuf,
    digests: HashMap<Vec<u8>, Digest>,
}

impl Manifest {
    pub fn load(path: &Path) -> Result<Manifest> {
        let shown = path.display();
        let file = fs::File::open(path)
            .map_err(|e| Error::local(format!("cannot open manifest '{shown}'"), e))?;
        let (entries, malformed) = manifest::read_all(BufReader::new(file))
            .map_err(|e| Error::local(format!("cannot read manifest '{shown}'"), e))?;
        if malformed > 0 {
            eprintln!("tcpfetch: {shown}: {malformed} improperly formatted line(s) ignored");
        }
        if entries.is_empty() {
            return Err(Error::Other(format!(
                "manifest '{shown}' has no checksum lines"
            )));
        }
        let mut digests = HashMap::with_capacity(entries.len());
        for entry in entries {
            // `find . -type f | xargs sha256sum` writes `./NAME`; a served
            // name never starts so (no `.` components), so it is NAME.
            let mut name = entry.name.as_slice();
            while let Some(rest) = name.strip_prefix(b"./") {
                name = rest;
            }
            // Two digests for one name: checking against either would be
            // a guess (the last one used to win, silently).
            if digests
                .insert(name.to_vec(), entry.digest)
                .is_some_and(|d| d != entry.digest)
            {
                return Err(Error::Other(format!(
                    "manifest '{shown}' lists '{}' twice, with different digests",
                    visible(&String::from_utf8_lossy(name))
                )));
            }
        }
        Ok(Manifest {
            path: path.to_path_buf(),
            digests,
        })
    }

    /// The file it was read from, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn get(&self, name: &[u8]) -> Option<Digest> {
        self.digests.get(name).copied()
    }

    pub fn names(&self) -> impl Iterator<Item = &[u8]> {
        self.digests.keys().map(Vec::as_slice)
    }

    /// The digest for one NAME, which must be listed, and must agree with
    /// `--sha256` when both are given.
    pub fn digest_for(&self, name: &str, given: Option<Digest>) -> Result<Digest> {
        let found = self.get(name.as_bytes()).ok_or_else(|| {
            Error::Integrity(format!(
                "'{name}' is not in the manifest '{}'",
                self.path.display()
            ))
        })?;
        match given {
            Some(d) if d != found => Err(Error::usage(
                "--sha256 and --manifest disagree about this file",
            )),
            _ => Ok(found),
        }
    }
}
