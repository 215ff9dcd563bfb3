//! The staging file every download goes through: `PATH.part`.
//!
//! A [`Part`] is opened (created, or kept to resume) under an exclusive
//! lock, so two downloads to one PATH (two cron jobs, the page and the
//! command line, `get` and `get --legacy`) cannot interleave their bytes:
//! the second is refused. Next to it a one-line `PATH.part.sha256` records
//! which version of the server's file the bytes belong to, so a resume never
//! splices two versions. [`Part::commit`] renames the verified bytes into
//! place; [`Part::discard`] removes both files. The lock lives as long as
//! the `Part` and goes with the file when it is renamed.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::Sha256;

use crate::error::{Error, Result};
use crate::fetch::receive::Sink;
use crate::util::hex::{self, Digest};

pub struct Part {
    /// Where the file goes once verified.
    path: PathBuf,
    /// `PATH.part`.
    part: PathBuf,
    file: File,
}

impl Part {
    /// Open (or create) `PATH.part` for appending and lock it.
    pub fn open(path: &Path) -> Result<Part> {
        if path.is_dir() {
            return Err(Error::Other(format!("'{}' is a directory", path.display())));
        }
        let part = suffixed(path, ".part");
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&part)
            .map_err(|e| Error::local(format!("cannot write '{}'", part.display()), e))?;
        match file.try_lock() {
            Ok(()) => Ok(Part {
                path: path.to_path_buf(),
                part,
                file,
            }),
            Err(fs::TryLockError::WouldBlock) => Err(Error::Other(format!(
                "another download to '{}' is in progress (its '{}' is locked)",
                path.display(),
                part.display()
            ))),
            Err(fs::TryLockError::Error(e)) => {
                Err(Error::local(format!("cannot lock '{}'", part.display()), e))
            }
        }
    }

    /// Where the file goes once verified.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many bytes the `.part` holds.
    pub fn len(&self) -> u64 {
        self.file.metadata().map_or(0, |m| m.len())
    }

    /// The hash state of the bytes already there, and their count.
    pub fn prefix(&self) -> Result<(Sha256, u64)> {
        crate::digest::state_of_prefix(&self.part)
            .map_err(|e| Error::local(format!("cannot read '{}'", self.part.display()), e))
    }

    /// The server's digest of the version these bytes belong to, when one
    /// was recorded.
    pub fn recorded(&self) -> Option<Digest> {
        fs::read_to_string(self.record_path())
            .ok()
            .and_then(|t| hex::decode_digest(t.trim()))
    }

    /// Remember that these bytes belong to the version with `digest`.
    pub fn record(&self, digest: &Digest) -> Result<()> {
        let record = self.record_path();
        fs::write(&record, format!("{}\n", hex::encode(digest)))
            .map_err(|e| Error::local(format!("cannot write '{}'", record.display()), e))
    }

    /// Start over from byte 0 (another version, or a protocol that cannot
    /// resume).
    pub fn restart(&mut self) -> Result<()> {
        self.file
            .set_len(0)
            .map_err(|e| Error::local(format!("cannot truncate '{}'", self.part.display()), e))?;
        let _ = fs::remove_file(self.record_path());
        Ok(())
    }

    /// The bytes are verified: rename them into place.
    pub fn commit(self) -> Result<()> {
        fs::rename(&self.part, &self.path).map_err(|e| {
            Error::local(
                format!(
                    "cannot rename '{}' to '{}'",
                    self.part.display(),
                    self.path.display()
                ),
                e,
            )
        })?;
        let _ = fs::remove_file(self.record_path());
        Ok(())
    }

    /// Remove the `.part` and its record (a failed check).
    pub fn discard(self) {
        let _ = fs::remove_file(&self.part);
        let _ = fs::remove_file(self.record_path());
    }

    /// After a failure: keep what arrived for a resume, but leave no empty
    /// `.part` behind.
    pub fn keep_or_discard(self) {
        if self.len() == 0 {
            self.discard();
        }
    }

    fn record_path(&self) -> PathBuf {
        suffixed(&self.path, ".part.sha256")
    }
}

impl Sink for Part {
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.file.write_all(bytes).map_err(|e| {
            Error::local(
                format!(
                    "cannot write '{}' (the partial download is kept; run again to resume)",
                    self.part.display()
                ),
                e,
            )
        })
    }
}

fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tcpfetch-part-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_locked_part_refuses_a_second_download() {
        let dir = scratch("lock");
        let path = dir.join("f");
        let first = Part::open(&path).unwrap();
        let err = Part::open(&path).err().unwrap();
        assert!(err.to_string().contains("in progress"), "{err}");
        drop(first);
        Part::open(&path).unwrap().discard();
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn commit_renames_and_forgets_the_record() {
        let dir = scratch("commit");
        let path = dir.join("f");
        let mut part = Part::open(&path).unwrap();
        part.write(b"abc").unwrap();
        part.record(&[7; 32]).unwrap();
        assert_eq!(part.recorded(), Some([7; 32]));
        assert_eq!(part.len(), 3);
        part.commit().unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"abc");
        assert!(!dir.join("f.part").exists() && !dir.join("f.part.sha256").exists());
        let mut again = Part::open(&path).unwrap();
        again.write(b"x").unwrap();
        again.restart().unwrap();
        assert_eq!(again.len(), 0);
        again.keep_or_discard();
        assert!(!dir.join("f.part").exists());
        fs::remove_dir_all(&dir).unwrap();
    }
}
