//! The only place tcpfetch calls the C library or writes `unsafe`: what the
//! standard library cannot do. Each call is wrapped in a small safe
//! function with a unit test; the crate root denies `unsafe_code`
//! everywhere else.
//!
//! Add a wrapper here only for a measured reason, and say it in its doc.

#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// `open(2)` flag for `OpenOptionsExt::custom_flags`, which std has no
/// name for: fail (ELOOP) when the last component is a symlink, so a
/// staging file planted as a link to someone else's file is never opened.
pub const O_NOFOLLOW: i32 = libc::O_NOFOLLOW;

/// `open(2)` flag: opening a FIFO planted where a file was expected fails
/// (ENXIO) or returns at once instead of waiting for a peer; it changes
/// nothing for a regular file.
pub const O_NONBLOCK: i32 = libc::O_NONBLOCK;

/// Ignore `SIGXFSZ`. Under a file-size limit (`ulimit -f`, `RLIMIT_FSIZE`)
/// the kernel's default for a write past the limit is to kill the process
/// with no message; ignored, the write fails with `EFBIG` instead, and
/// `get` reports it like a full disk: a clear local-write error.
pub fn ignore_file_size_signal() -> io::Result<()> {
    // SAFETY: `signal` with `SIG_IGN` installs no handler code, so nothing
    // can run in signal context; SIGXFSZ is a valid signal number.
    let previous = unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    if previous == libc::SIG_ERR {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The effective user id, to refuse a staging file someone else owns: it
/// could be read or changed by them after it is renamed into place.
pub fn effective_uid() -> u32 {
    // SAFETY: `geteuid` takes no arguments, touches no memory of ours and
    // cannot fail.
    unsafe { libc::geteuid() }
}

/// Start writing `len` bytes of `file` from `offset` to disk, without
/// waiting for them (`sync_file_range(SYNC_FILE_RANGE_WRITE)`). A durable
/// download calls it every few MiB as the bytes arrive, so the flush before
/// the rename finds little left to write: without it the kernel holds back
/// up to its dirty limit (GiBs here) and the final `fdatasync` writes it
/// all while the download waits. Measured in tests/README.md. It is a
/// hint: it guarantees nothing, and the caller still flushes.
pub fn start_writeback(file: &File, offset: u64, len: u64) -> io::Result<()> {
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    };
    // SAFETY: the descriptor is open for as long as `file` is borrowed;
    // `sync_file_range` reads no memory of ours and only schedules I/O.
    let rc = unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE)
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::{self, OpenOptions};
    use std::io::Write;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("tcpfetch-sys-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn no_follow_refuses_a_symlink_and_opens_a_file() {
        let dir = scratch("nofollow");
        fs::write(dir.join("victim"), b"keep").unwrap();
        std::os::unix::fs::symlink(dir.join("victim"), dir.join("link")).unwrap();
        let open = |name: &str| {
            OpenOptions::new()
                .append(true)
                .create(true)
                .custom_flags(O_NOFOLLOW | O_NONBLOCK)
                .open(dir.join(name))
        };
        assert!(open("link").is_err());
        open("plain").unwrap().write_all(b"x").unwrap();
        assert_eq!(fs::read(dir.join("victim")).unwrap(), b"keep");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_effective_uid_owns_what_we_create() {
        let dir = scratch("uid");
        fs::write(dir.join("mine"), b"").unwrap();
        let owner = fs::metadata(dir.join("mine")).unwrap().uid();
        assert_eq!(effective_uid(), owner);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn writeback_can_be_started_on_a_written_range() {
        let dir = scratch("writeback");
        let mut file = File::create(dir.join("f")).unwrap();
        file.write_all(&[1; 8192]).unwrap();
        start_writeback(&file, 0, 8192).unwrap();
        assert!(start_writeback(&file, u64::MAX, 1).is_err());
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_file_size_signal_can_be_ignored() {
        ignore_file_size_signal().unwrap();
        // Idempotent: asking again sees our own disposition.
        ignore_file_size_signal().unwrap();
    }
}
