//! The staging file every download goes through: `PATH.part`.
//!
//! A [`Part`] is opened (created, or kept to resume) under an exclusive
//! lock, so two downloads to one PATH (two cron jobs, the page and the
//! command line, `get` and `get --legacy`) cannot interleave their bytes:
//! the second is refused. Next to it a one-line `PATH.part.sha256` records
//! which version of the server's file the bytes belong to, so a resume never
//! splices two versions; no record (or an empty one) means start over.
//! [`Part::commit`] gives the verified bytes the server's modification time
//! and renames them into place; [`Part::discard`] removes both files. The
//! lock lives as long as the `Part` and goes with the file when it is
//! renamed.
//!
//! The staging files sit in directories other users may write to, so
//! neither is ever opened through a symlink, and a `.part` that is not a
//! regular file of ours with one link is refused, never written.
//!
//! A durable `Part` (the default; `get --no-fsync` turns it off) starts
//! writeback every few MiB while the bytes arrive, flushes the `.part`
//! before the rename and the directory after it, so what is at PATH after a
//! power cut is the verified file or the old one, never a torn one.
//!
//! A name too long to take the suffixes is staged under a shortened one
//! ([`names`]); everything above holds for it as for `PATH.part`.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::Sha256;

use crate::error::{Error, Result};
use crate::fetch::receive::Sink;
use crate::sys;
use crate::util::hex::{self, Digest};

pub mod names;

use names::Names;

/// How many written bytes a durable `Part` lets pile up before it starts
/// their writeback: large enough for few system calls, small next to the
/// gigabytes the kernel would otherwise hold back for the final flush.
const WRITEBACK_EVERY: u64 = 8 << 20;

/// How often [`Part::open`] tries again when the `.part` it locked was
/// renamed away meanwhile (another download to PATH finished).
const OPEN_ATTEMPTS: usize = 3;

pub struct Part {
    /// Where the file goes once verified.
    path: PathBuf,
    /// `PATH.part` and the rest ([`names`]).
    names: Names,
    file: File,
    /// Flush before the rename, and start writeback as bytes arrive.
    durable: bool,
    /// The length of the `.part`: where the next byte goes.
    end: u64,
    /// Writeback was started for the bytes before this offset.
    kicked: u64,
}

impl Part {
    /// Open (or create) `PATH.part` for appending and lock it; `durable`
    /// as in the module doc.
    pub fn open(path: &Path, durable: bool) -> Result<Part> {
        if path.is_dir() {
            return Err(Error::Other(format!("'{}' is a directory", path.display())));
        }
        let names = Names::of(path);
        if let Some(e) = not_a_plain_file(&names.record) {
            return Err(e);
        }
        for _ in 0..OPEN_ATTEMPTS {
            let file = open_staging(&names.part)?;
            lock(&file, path, &names.part)?;
            // Between our open and our lock another download may have
            // renamed this very file to PATH and let go of it: the file
            // locked is then PATH, and appending would add a second copy.
            if still_at(&file, &names.part)? {
                check_ours(&file, &names.part)?;
                let end = file.metadata().map_or(0, |m| m.len());
                return Ok(Part {
                    path: path.to_path_buf(),
                    names,
                    file,
                    durable,
                    end,
                    kicked: end,
                });
            }
        }
        Err(Error::Other(format!(
            "'{}' keeps being replaced while it is opened: another download to '{}' is running",
            names.part.display(),
            path.display()
        )))
    }

    /// Where the file goes once verified.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The `.part` itself: `PATH.part`, or the shortened name.
    pub fn staged(&self) -> &Path {
        &self.names.part
    }

    /// How many bytes the `.part` holds.
    pub fn len(&self) -> u64 {
        self.end
    }

    /// The hash state of the bytes already there, and their count.
    pub fn prefix(&self) -> Result<(Sha256, u64)> {
        crate::digest::state_of_prefix(&self.names.part)
            .map_err(|e| Error::local(format!("cannot read '{}'", self.names.part.display()), e))
    }

    /// The server's digest of the version these bytes belong to, when one
    /// was recorded. A missing, empty or unreadable record is `None`: the
    /// bytes' version is unknown.
    pub fn recorded(&self) -> Option<Digest> {
        let mut text = String::new();
        OpenOptions::new()
            .read(true)
            .custom_flags(sys::O_NOFOLLOW | sys::O_NONBLOCK)
            .open(&self.names.record)
            .ok()?
            .take(128)
            .read_to_string(&mut text)
            .ok()?;
        hex::decode_digest(text.trim())
    }

    /// Remember that these bytes belong to the version with `digest`:
    /// written beside the record and renamed over it, so the record is the
    /// old one or the new one, never half of one (and a symlink planted in
    /// its place is replaced, not written through).
    pub fn record(&self, digest: &Digest) -> Result<()> {
        let (record, temp) = (&self.names.record, &self.names.temp);
        // Ours from an interrupted run: we hold the .part's lock.
        let _ = fs::remove_file(temp);
        let written = write_new(temp, digest, self.durable).and_then(|()| fs::rename(temp, record));
        if written.is_err() {
            // A full disk or a file-size limit fails the write after the
            // file was created: leave no stray temporary behind.
            let _ = fs::remove_file(temp);
        }
        written.map_err(|e| cannot_write(record, e))
    }

    /// Start over from byte 0 (another version, or a protocol that cannot
    /// resume). The record goes first: bytes without one are never resumed.
    pub fn restart(&mut self) -> Result<()> {
        let _ = fs::remove_file(&self.names.record);
        self.file.set_len(0).map_err(|e| {
            Error::local(
                format!("cannot truncate '{}'", self.names.part.display()),
                e,
            )
        })?;
        self.end = 0;
        self.kicked = 0;
        Ok(())
    }

    /// The bytes are verified: give them the server's modification time
    /// (`mtime`, when known) and rename them into place. Durable, the bytes
    /// reach the disk before the rename, and the rename after it.
    pub fn commit(self, mtime: Option<SystemTime>) -> Result<()> {
        if let Some(mtime) = mtime {
            // Set on the open file, before the rename: PATH never shows
            // the download's own time, and no path is looked up again. A
            // file system that keeps no such times loses only the time, as
            // `cp -p` there would: the verified bytes still go in place.
            let _ = self.file.set_modified(mtime);
        }
        if self.durable {
            // fdatasync need not flush the time just set, but the directory
            // flush after the rename commits the journal it went into
            // (ext4, xfs: the change to the inode is logged before the
            // rename's), so the time survives a power cut as the bytes do.
            self.file.sync_data().map_err(|e| {
                Error::local(
                    format!(
                        "cannot flush '{}' to disk (--no-fsync skips the flush)",
                        self.names.part.display()
                    ),
                    e,
                )
            })?;
        }
        fs::rename(&self.names.part, &self.path).map_err(|e| {
            Error::local(
                format!(
                    "cannot rename '{}' to '{}'",
                    self.names.part.display(),
                    self.path.display()
                ),
                e,
            )
        })?;
        if self.durable {
            sync_dir(parent(&self.path))?;
        }
        let _ = fs::remove_file(&self.names.record);
        Ok(())
    }

    /// Remove the `.part` and its record (a failed check).
    pub fn discard(self) {
        let _ = fs::remove_file(&self.names.part);
        let _ = fs::remove_file(&self.names.record);
    }

    /// After a failure: keep what arrived for a resume, but leave no empty
    /// `.part` behind.
    pub fn keep_or_discard(self) {
        if self.len() == 0 {
            self.discard();
        }
    }
}

impl Sink for Part {
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        if let Err(e) = self.file.write_all(bytes) {
            // write_all may have written part of `bytes` before it failed
            // (a file-size limit, a disk filling up): those are received
            // bytes too, and counting them keeps them for a resume.
            self.end = self.file.metadata().map_or(self.end, |m| m.len());
            let kept = if self.end > 0 {
                " (the partial download is kept; run again to resume)"
            } else {
                ""
            };
            return Err(Error::local(
                format!("cannot write '{}'{kept}", self.names.part.display()),
                e,
            ));
        }
        self.end += bytes.len() as u64;
        if self.durable && self.end - self.kicked >= WRITEBACK_EVERY {
            // A hint only: the flush in commit() is what guarantees.
            let _ = sys::start_writeback(&self.file, self.kicked, self.end - self.kicked);
            self.kicked = self.end;
        }
        Ok(())
    }
}

/// Create `temp` (never through a symlink) holding `digest`'s record line.
fn write_new(temp: &Path, digest: &Digest, durable: bool) -> std::io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(sys::O_NOFOLLOW)
        .open(temp)?;
    file.write_all(format!("{}\n", hex::encode(digest)).as_bytes())?;
    if durable {
        file.sync_data()?;
    }
    Ok(())
}

/// Flush a directory's entries (a rename into it, a directory made in it)
/// to disk. Some filesystems (network and FUSE ones) cannot flush a
/// directory and say so (EINVAL, ENOTSUP): the rename is then as durable as
/// they make it, and the download is not failed for it.
pub fn sync_dir(dir: &Path) -> Result<()> {
    match File::open(dir).and_then(|d| d.sync_all()) {
        Err(e)
            if !matches!(
                e.kind(),
                std::io::ErrorKind::InvalidInput | std::io::ErrorKind::Unsupported
            ) =>
        {
            Err(Error::local(
                format!("cannot flush directory '{}'", dir.display()),
                e,
            ))
        }
        _ => Ok(()),
    }
}

/// The directory `path` is in (`.` for a bare name).
pub fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// `PATH.part` for appending, created if missing, never through a symlink
/// and never blocking on a FIFO.
fn open_staging(part: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .custom_flags(sys::O_NOFOLLOW | sys::O_NONBLOCK)
        .open(part)
        .map_err(|e| not_a_plain_file(part).unwrap_or_else(|| cannot_write(part, e)))
}

/// A staging file could not be written. Its name is shortened to fit 255
/// bytes ([`names`]), but a PATH longer than that, or a file system with a
/// shorter limit, still refuses it: say so, and how to get the file anyway.
fn cannot_write(path: &Path, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::InvalidFilename {
        return Error::Other(format!(
            "cannot write '{}': file name too long (a download is staged beside PATH as \
             PATH.part, PATH.part.sha256 and PATH.part.sha256.tmp, or under a shortened \
             name when those pass 255 bytes, and this file system refuses it); save it \
             under a shorter name with -o PATH",
            path.display()
        ));
    }
    Error::local(format!("cannot write '{}'", path.display()), e)
}

fn lock(file: &File, path: &Path, part: &Path) -> Result<()> {
    match file.try_lock() {
        Ok(()) => Ok(()),
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

/// Whether `file` is still the one at `part` (same device and inode).
fn still_at(file: &File, part: &Path) -> Result<bool> {
    let ours = file
        .metadata()
        .map_err(|e| Error::local(format!("cannot inspect '{}'", part.display()), e))?;
    Ok(fs::symlink_metadata(part)
        .is_ok_and(|there| there.dev() == ours.dev() && there.ino() == ours.ino()))
}

/// The `.part` must be a regular file of ours with no other name: a hard
/// link would write the download into another file, and someone else's
/// file could be changed by them once it is renamed to PATH.
fn check_ours(file: &File, part: &Path) -> Result<()> {
    let meta = file
        .metadata()
        .map_err(|e| Error::local(format!("cannot inspect '{}'", part.display()), e))?;
    let why = if !meta.is_file() {
        "it is not a regular file"
    } else if meta.nlink() != 1 {
        "it has other hard links"
    } else if meta.uid() != sys::effective_uid() {
        "it belongs to another user"
    } else {
        return Ok(());
    };
    Err(refusal(part, why))
}

/// Why a staging path cannot be used, when something other than a regular
/// file (or nothing) is there.
fn not_a_plain_file(path: &Path) -> Option<Error> {
    let meta = fs::symlink_metadata(path).ok()?;
    let why = if meta.file_type().is_symlink() {
        "it is a symlink, which is never followed"
    } else if !meta.is_file() {
        "it is not a regular file"
    } else {
        return None;
    };
    Some(refusal(path, why))
}

fn refusal(path: &Path, why: &str) -> Error {
    Error::Other(format!(
        "refusing to use '{}': {why}; remove it and run again",
        path.display()
    ))
}

/// Where a download to `path` stages its bytes: `PATH.part`, or the
/// shortened name.
pub fn staging(path: &Path) -> PathBuf {
    Names::of(path).part
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_locked_part_refuses_a_second_download() {
        let dir = crate::util::scratch_dir("part-lock");
        let path = dir.join("f");
        let first = Part::open(&path, true).unwrap();
        let err = Part::open(&path, true).err().unwrap();
        assert!(err.to_string().contains("in progress"), "{err}");
        drop(first);
        Part::open(&path, true).unwrap().discard();
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn commit_renames_and_forgets_the_record() {
        let dir = crate::util::scratch_dir("part-commit");
        let path = dir.join("f");
        let mut part = Part::open(&path, true).unwrap();
        part.write(b"abc").unwrap();
        part.record(&[7; 32]).unwrap();
        assert_eq!(part.recorded(), Some([7; 32]));
        assert_eq!(part.len(), 3);
        part.commit(None).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"abc");
        assert!(!dir.join("f.part").exists() && !dir.join("f.part.sha256").exists());
        let mut again = Part::open(&path, true).unwrap();
        again.write(b"x").unwrap();
        again.restart().unwrap();
        assert_eq!(again.len(), 0);
        again.keep_or_discard();
        assert!(!dir.join("f.part").exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn commit_gives_the_file_the_time_it_is_told() {
        let dir = crate::util::scratch_dir("part-mtime");
        let path = dir.join("f");
        let when = std::time::UNIX_EPOCH + std::time::Duration::new(1_000_000_000, 123_456_789);
        for durable in [true, false] {
            let mut part = Part::open(&path, durable).unwrap();
            part.write(b"abc").unwrap();
            part.commit(Some(when)).unwrap();
            assert_eq!(fs::metadata(&path).unwrap().modified().unwrap(), when);
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_long_name_is_staged_shortened_and_committed_whole() {
        let dir = crate::util::scratch_dir("part-long");
        let path = dir.join("é".repeat(125));
        let mut part = Part::open(&path, true).unwrap();
        part.write(b"abc").unwrap();
        part.record(&[5; 32]).unwrap();
        assert_eq!(part.staged(), staging(&path));
        let staged = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name());
        let mut staged: Vec<_> = staged.map(|n| n.into_string().unwrap()).collect();
        staged.sort();
        assert!(
            staged.iter().all(|n| n.len() <= 255 && n.contains('~')),
            "{staged:?}"
        );
        assert!(staged[0].ends_with(".part") && staged[1].ends_with(".part.sha256"));
        drop(part);
        // Another run finds the same .part and its record.
        let again = Part::open(&path, true).unwrap();
        assert_eq!((again.len(), again.recorded()), (3, Some([5; 32])));
        again.commit(None).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"abc");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_part_renamed_away_before_the_lock_is_not_used() {
        // The race of two downloads to one PATH: the second opened the
        // .part just before the first renamed it to PATH.
        let dir = crate::util::scratch_dir("part-race");
        let (path, part) = (dir.join("f"), dir.join("f.part"));
        let early = open_staging(&part).unwrap();
        assert!(still_at(&early, &part).unwrap());
        fs::rename(&part, &path).unwrap();
        assert!(!still_at(&early, &part).unwrap());
        // A fresh .part in its place is another file still.
        let fresh = open_staging(&part).unwrap();
        assert!(!still_at(&early, &part).unwrap());
        assert!(still_at(&fresh, &part).unwrap());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_empty_or_unreadable_record_is_no_record() {
        let dir = crate::util::scratch_dir("part-record");
        let path = dir.join("f");
        let part = Part::open(&path, false).unwrap();
        assert_eq!(part.recorded(), None);
        fs::write(dir.join("f.part.sha256"), b"").unwrap();
        assert_eq!(part.recorded(), None);
        fs::write(dir.join("f.part.sha256"), b"zz\n").unwrap();
        assert_eq!(part.recorded(), None);
        part.record(&[9; 32]).unwrap();
        assert_eq!(part.recorded(), Some([9; 32]));
        assert!(!dir.join("f.part.sha256.tmp").exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn staging_paths_that_are_not_plain_files_are_refused() {
        let dir = crate::util::scratch_dir("part-plain");
        fs::write(dir.join("victim"), b"keep").unwrap();
        std::os::unix::fs::symlink(dir.join("victim"), dir.join("a.part")).unwrap();
        std::os::unix::fs::symlink(dir.join("victim"), dir.join("b.part.sha256")).unwrap();
        fs::hard_link(dir.join("victim"), dir.join("c.part")).unwrap();
        fs::create_dir(dir.join("d.part")).unwrap();
        for name in ["a", "b", "c", "d"] {
            let err = Part::open(&dir.join(name), true).err().unwrap();
            assert!(err.to_string().contains("refusing"), "{name}: {err}");
        }
        assert_eq!(fs::read(dir.join("victim")).unwrap(), b"keep");
        fs::remove_dir_all(&dir).unwrap();
    }
}
