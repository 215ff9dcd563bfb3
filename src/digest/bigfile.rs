//! One regular file hashed by two threads: `sum FILE` and `verify` of a
//! single file when a core is free.
//!
//! A reader thread copies the file out of the page cache into buffers and
//! the calling thread hashes them in order, as [`super::hash_pipelined`]
//! does for a stream. The difference is who reads: here the file is read
//! by position (`pread`), in numbered chunks that either thread can claim,
//! and the hasher claims the next one itself whenever it has nothing to
//! hash instead of waiting for the reader. On the 2-core VM these figures
//! come from, the copy out of the page cache costs more while the other
//! core is busy (0.4 s per GiB alone, 0.65-0.8 s beside the hasher), so
//! the reader, not the hash, set the pace and the hasher waited 0.1-0.3 s
//! per GiB; now it spends that time reading, into its own cache (tests/README.md,
//! "Verify and sum speed").

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::thread;

use sha2::{Digest as _, Sha256};

use super::{update_prefetched, PositionalReader, DEPTH, PIPELINE_BUFFER};
use crate::util::hex::Digest;
use crate::util::io::fill;

/// SHA-256 of the regular file `file` from its start, and its length:
/// what [`super::hash_reader`] gives, at nearly the rate of the hash alone.
pub fn hash_file(file: &File) -> io::Result<(Digest, u64)> {
    hash_in_chunks(file, PIPELINE_BUFFER)
}

/// [`hash_file`] with chunks of `chunk` bytes. The reader may be up to
/// `DEPTH` chunks ahead; with the ones being filled and the hasher's own,
/// `DEPTH + 3` buffers in all.
fn hash_in_chunks(file: &File, chunk: usize) -> io::Result<(Digest, u64)> {
    let chunks = &Chunks {
        file,
        size: chunk,
        next: AtomicU64::new(0),
        ended: AtomicBool::new(false),
    };
    let (full_tx, full_rx) = mpsc::sync_channel(DEPTH);
    let (empty_tx, empty_rx) = mpsc::sync_channel(DEPTH + 2);
    for _ in 0..DEPTH + 2 {
        // Never blocks or fails: the channel holds them all.
        let _ = empty_tx.send(Vec::with_capacity(chunk));
    }
    thread::scope(|scope| {
        let reader = thread::Builder::new()
            .name("reader".into())
            .spawn_scoped(scope, move || read_ahead(chunks, empty_rx, full_tx));
        match reader {
            Ok(_) => Hasher::new(chunks, full_rx, empty_tx).run(),
            // No thread to be had: read and hash in turn here.
            Err(_) => super::hash_reader(PositionalReader { file, pos: 0 }),
        }
    })
}

/// The file as numbered chunks, each read by whichever thread claims it.
struct Chunks<'a> {
    file: &'a File,
    size: usize,
    /// The next chunk nobody has claimed.
    next: AtomicU64,
    /// A chunk came back short: the end is found, claim no more.
    ended: AtomicBool,
}

/// A chunk read, numbered; shorter than the chunk size at the end.
type Filled = io::Result<(u64, Vec<u8>)>;

impl Chunks<'_> {
    /// Claim the next chunk and read it into `buf`; `None` once the end
    /// has been found. Claims go in order, so every chunk before one that
    /// came back short has been claimed by then, and is on its way.
    fn read_next(&self, mut buf: Vec<u8>) -> Option<Filled> {
        if self.ended.load(Ordering::Relaxed) {
            return None;
        }
        let index = self.next.fetch_add(1, Ordering::Relaxed);
        let Some(offset) = index.checked_mul(self.size as u64) else {
            return Some(Err(io::Error::from(io::ErrorKind::FileTooLarge)));
        };
        buf.resize(self.size, 0);
        let mut at = PositionalReader {
            file: self.file,
            pos: offset,
        };
        let (n, result) = fill(&mut at, &mut buf);
        if let Err(e) = result {
            return Some(Err(e));
        }
        if n < self.size {
            self.ended.store(true, Ordering::Relaxed);
        }
        buf.truncate(n);
        Some(Ok((index, buf)))
    }
}

/// The reader thread: fill empty buffers with the next chunks until the end
/// is found or the hasher is gone (it drops its ends of both channels when
/// it returns, done or failed).
fn read_ahead(chunks: &Chunks, empty: Receiver<Vec<u8>>, full: SyncSender<Filled>) {
    while let Ok(buf) = empty.recv() {
        let Some(filled) = chunks.read_next(buf) else {
            return;
        };
        let failed = filled.is_err();
        if full.send(filled).is_err() || failed {
            return;
        }
    }
}

/// The calling thread's side: hash the chunks in order, reading the next
/// one itself whenever none is ready.
struct Hasher<'a, 'f> {
    chunks: &'a Chunks<'f>,
    full: Receiver<Filled>,
    empty: SyncSender<Vec<u8>>,
    /// Chunks that arrived before the ones ahead of them, and whether the
    /// hasher read them itself.
    waiting: BTreeMap<u64, (Vec<u8>, bool)>,
    /// The hasher's own buffer, when it is not holding a chunk.
    spare: Option<Vec<u8>>,
}

impl<'a, 'f> Hasher<'a, 'f> {
    fn new(chunks: &'a Chunks<'f>, full: Receiver<Filled>, empty: SyncSender<Vec<u8>>) -> Self {
        let spare = Some(Vec::with_capacity(chunks.size));
        Hasher {
            chunks,
            full,
            empty,
            waiting: BTreeMap::new(),
            spare,
        }
    }

    fn run(mut self) -> io::Result<(Digest, u64)> {
        let mut hasher = Sha256::new();
        let (mut next, mut total) = (0u64, 0u64);
        loop {
            if let Some((buf, own)) = self.waiting.remove(&next) {
                update_prefetched(&mut hasher, &buf);
                total += buf.len() as u64;
                next += 1;
                let last = buf.len() < self.chunks.size;
                if own {
                    self.spare = Some(buf);
                } else {
                    // Never blocks: the channel holds every buffer. Fails
                    // only when the reader is gone, which is then fine.
                    let _ = self.empty.try_send(buf);
                }
                if last {
                    return Ok((hasher.finalize().into(), total));
                }
                continue;
            }
            let (index, buf, own) = self.take()?;
            self.waiting.insert(index, (buf, own));
        }
    }

    /// The next chunk to arrive: one the reader has finished, else one read
    /// here, else (the reader is mid-chunk and ours is still held) the
    /// reader's next, waited for.
    fn take(&mut self) -> io::Result<(u64, Vec<u8>, bool)> {
        match self.full.try_recv() {
            Ok(filled) => return filled.map(|(i, buf)| (i, buf, false)),
            Err(TryRecvError::Disconnected) => return Err(reader_gone()),
            Err(TryRecvError::Empty) => {}
        }
        // Once the end is found, what is missing is in the reader's hands
        // (and the spare is dropped: there is nothing more to read into it).
        if let Some(filled) = self.spare.take().and_then(|buf| self.chunks.read_next(buf)) {
            return filled.map(|(i, buf)| (i, buf, true));
        }
        match self.full.recv() {
            Ok(filled) => filled.map(|(i, buf)| (i, buf, false)),
            Err(_) => Err(reader_gone()),
        }
    }
}

/// The reader stopped without sending a chunk that was claimed: it can only
/// have panicked, which the scope re-raises; this error is never seen.
fn reader_gone() -> io::Error {
    io::Error::other("the reader thread stopped")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::hash_reader;
    use crate::util::scratch_dir;

    /// Every length around the chunk size, with chunks small enough that
    /// both threads claim many: the digest is the plain one whoever read
    /// which chunk.
    #[test]
    fn equals_the_plain_hash_at_every_boundary() {
        let dir = scratch_dir("bigfile");
        let path = dir.join("f");
        for chunk in [64, 4096, PIPELINE_BUFFER] {
            for len in [
                0,
                1,
                chunk - 1,
                chunk,
                chunk + 1,
                7 * chunk + 3,
                300 * chunk,
            ] {
                let len = len.min(8 << 20);
                let data: Vec<u8> = (0..len).map(|i| (i * 13 % 251) as u8).collect();
                std::fs::write(&path, &data).unwrap();
                let file = File::open(&path).unwrap();
                let want = hash_reader(&data[..]).unwrap();
                assert_eq!(hash_in_chunks(&file, chunk).unwrap(), want, "{chunk} {len}");
            }
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A read error (here: a directory, which `pread` refuses) comes back
    /// as the error, from whichever thread met it.
    #[test]
    fn a_read_error_is_returned() {
        let dir = scratch_dir("bigfile-err");
        let file = File::open(&dir).unwrap();
        let err = hash_file(&file).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::IsADirectory);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
