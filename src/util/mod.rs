//! Small hand-written pieces with no knowledge of the protocol: hex, text
//! formats, the progress line, bandwidth pacing, command-line values and
//! reading until a buffer is full, a lock that outlives a panic.

pub mod cli;
pub mod format;
pub mod hex;
pub mod io;
pub mod json;
pub mod pace;
pub mod progress;
pub mod svg;

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Lock a mutex whether or not a holder panicked. Every lock in tcpfetch
/// guards data that is changed whole (a slot, a snapshot, a cache entry, a
/// hash state between turns), so a panic elsewhere leaves nothing
/// half-written; the panic itself is reported where it happened.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A fresh, empty directory for one unit test: `tcpfetch-TAG-PID` under the
/// system's temporary directory, emptied first if an earlier run left it.
/// Unit tests share a process, so each passes a tag of its own.
#[cfg(test)]
pub fn scratch_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tcpfetch-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a scratch directory");
    dir
}
