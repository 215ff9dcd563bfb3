//! The only place tcpfetch calls the C library or writes `unsafe`: what the
//! standard library cannot do. Each call is wrapped in a small safe
//! function with a unit test; the crate root denies `unsafe_code`
//! everywhere else.
//!
//! Add a wrapper here only for a measured reason, and say it in its doc.

#![allow(unsafe_code)]

use std::io;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_size_signal_can_be_ignored() {
        ignore_file_size_signal().unwrap();
        // Idempotent: asking again sees our own disposition.
        ignore_file_size_signal().unwrap();
    }
}
