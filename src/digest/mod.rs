//! SHA-256 of files and streams: the plain loop, a file named as on a
//! command line (`-` is stdin), a hasher on its own thread for downloads
//! and big files, and the server's per-file digest cache. `parallel` runs
//! many such hashes at once with the results kept in order.

mod bigfile;
pub mod coreutils;
pub mod manifest;
pub mod parallel;

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread;

use sha2::{Digest as _, Sha256};

use crate::sys;
use crate::util::hex::Digest;
use crate::util::io::fill;
use crate::util::lock;

/// Read size for hashing and for receiving. On these machines 64–128 KiB
/// reads hash about 40 % faster than 1 MiB ones (the data stays in L2).
pub const CHUNK: usize = 128 * 1024;

/// SHA-256 of everything `reader` yields, and how many bytes that was.
pub fn hash_reader(reader: impl Read) -> io::Result<(Digest, u64)> {
    let mut hasher = Sha256::new();
    let total = feed(&mut hasher, reader)?;
    Ok((hasher.finalize().into(), total))
}

/// How a file is read while it is hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// Read and hash in turn on the calling thread: when every core
    /// already has a file of its own.
    Plain,
    /// Read on one thread while another hashes: one file at a time with a
    /// core to spare. A regular file is read by position by two threads
    /// that take turns hashing what they read ([`bigfile`]); a stream is
    /// read on the calling thread and hashed on another ([`hash_pipelined`]).
    Pipelined,
}

/// SHA-256 of the file `name`, or of standard input when it is `-`.
pub fn hash_named(name: &[u8], reading: Reading) -> io::Result<Digest> {
    let result = match (name, reading) {
        (b"-", Reading::Plain) => hash_reader(io::stdin().lock()),
        (b"-", Reading::Pipelined) => hash_pipelined(io::stdin().lock()),
        (name, reading) => {
            let file = File::open(std::ffi::OsStr::from_bytes(name))?;
            match reading {
                Reading::Plain => hash_reader(file),
                // A FIFO or a device is read as a stream.
                Reading::Pipelined if file.metadata()?.is_file() => bigfile::hash_file(&file),
                Reading::Pipelined => hash_pipelined(file),
            }
        }
    };
    result.map(|(digest, _)| digest)
}

/// The buffers of [`hash_pipelined`] and of [`bigfile`]'s chunks: each
/// hand-over between the threads can cost a wake-up, and larger buffers
/// make fewer of them (1 GiB from the page cache: 0.72 s with 128 KiB,
/// 0.65-0.68 s with 256 KiB-1 MiB). [`hash_pipelined`]'s 6 are 3 MiB in
/// all, [`bigfile`]'s 2 are 1 MiB (1 MiB chunks measured the same).
const PIPELINE_BUFFER: usize = 512 * 1024;

/// SHA-256 of everything `reader` yields, read on this thread while a
/// [`PipelinedHasher`] hashes on another: the copy out of the page cache
/// (or the wait for the disk) no longer takes turns with the hashing, so
/// one big file hashes at nearly the in-memory rate.
pub fn hash_pipelined(mut reader: impl Read) -> io::Result<(Digest, u64)> {
    let mut hasher = PipelinedHasher::with_buffers(Sha256::new(), PIPELINE_BUFFER)?;
    let mut total = 0u64;
    loop {
        let mut buf = hasher.buffer();
        // Full buffers keep the hand-overs to the hasher few and its blocks
        // whole. What came before an error is of no use to a hash.
        let (n, result) = fill(&mut reader, &mut buf);
        result?;
        if n == 0 {
            break;
        }
        buf.truncate(n);
        total += n as u64;
        hasher.update(buf);
        if n < PIPELINE_BUFFER {
            break; // `fill` stops short only at the end
        }
    }
    Ok((hasher.finish()?, total))
}

/// Feed everything `reader` yields into `hasher`; the byte count.
fn feed(hasher: &mut Sha256, mut reader: impl Read) -> io::Result<u64> {
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        total += n as u64;
    }
}

/// SHA-256 of a file on disk.
pub fn hash_path(path: &Path) -> io::Result<(Digest, u64)> {
    hash_reader(File::open(path)?)
}

/// `Read` over `pread`: reads a shared descriptor without moving it.
struct PositionalReader<'a> {
    file: &'a File,
    pos: u64,
}

impl Read for PositionalReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// A SHA-256 running on its own thread, so that a download can receive and
/// write on one core while the other hashes. Filled buffers go over a small
/// bounded channel and come back empty to be reused: memory stays at
/// `DEPTH + 2` buffers whatever the file size.
pub struct PipelinedHasher {
    /// The size of each buffer.
    size: usize,
    full: Option<SyncSender<Vec<u8>>>,
    empty: Receiver<Vec<u8>>,
    worker: Option<thread::JoinHandle<Sha256>>,
}

const DEPTH: usize = 4;

impl PipelinedHasher {
    /// Start hashing on a new thread, continuing from `state`, with
    /// buffers of `CHUNK` bytes.
    pub fn start(state: Sha256) -> io::Result<PipelinedHasher> {
        PipelinedHasher::with_buffers(state, CHUNK)
    }

    /// Start hashing on a new thread with buffers of `size` bytes.
    pub fn with_buffers(state: Sha256, size: usize) -> io::Result<PipelinedHasher> {
        let (full_tx, full_rx) = mpsc::sync_channel::<Vec<u8>>(DEPTH);
        let (empty_tx, empty_rx) = mpsc::sync_channel::<Vec<u8>>(DEPTH + 2);
        for _ in 0..DEPTH + 2 {
            let _ = empty_tx.send(vec![0u8; size]);
        }
        let worker = thread::Builder::new()
            .name("hasher".into())
            .spawn(move || {
                let mut hasher = state;
                for buf in full_rx {
                    update_prefetched(&mut hasher, &buf);
                    // The receiver may be gone when the download failed.
                    let _ = empty_tx.send(buf);
                }
                hasher
            })?;
        Ok(PipelinedHasher {
            size,
            full: Some(full_tx),
            empty: empty_rx,
            worker: Some(worker),
        })
    }

    /// An empty buffer to fill: `CHUNK` bytes, or the size given to
    /// [`PipelinedHasher::with_buffers`].
    pub fn buffer(&mut self) -> Vec<u8> {
        match self.empty.recv() {
            Ok(mut buf) => {
                buf.resize(self.size, 0);
                buf
            }
            Err(_) => vec![0u8; self.size],
        }
    }

    /// Hand over `buf`, whose contents (all of it) are the next bytes.
    pub fn update(&mut self, buf: Vec<u8>) {
        if let Some(tx) = &self.full {
            let _ = tx.send(buf);
        }
    }

    /// Wait for the hasher to catch up and return the digest.
    pub fn finish(mut self) -> io::Result<Digest> {
        drop(self.full.take());
        let worker = self
            .worker
            .take()
            .ok_or_else(|| io::Error::other("hasher already finished"))?;
        worker
            .join()
            .map(|h| h.finalize().into())
            .map_err(|_| io::Error::other("hasher thread panicked"))
    }
}

/// How far ahead of what it hashes the hasher thread asks for lines.
const PREFETCH: usize = 4096;

/// How much it hashes between two requests: spread over 1 KiB pieces, the
/// requests go out a few at a time as the hash goes, not 64 at once.
const PREFETCH_PIECE: usize = 1024;

/// Hash `buf`, asking for each cache line 4 KiB before it is hashed. The
/// buffer was filled on another core, so its lines are in that core's
/// cache; SHA-256 reads them one 64-byte block at a time and stalls on each
/// miss, while these requests are in flight together and arrive while the
/// SHA instructions run. Measured on 1 GiB from the page cache, 2-core
/// KVM, real-time priority (tests/README.md): 0.76 s -> 0.68 s with
/// 128 KiB buffers when one byte of each line was loaded ahead (a load
/// holds up the hash after it until its line arrives); a prefetch, which
/// holds up nothing, took the hasher's own CPU time from 0.74 to 0.67 s
/// per GiB; asking for 1 KiB at each 1 KiB instead of 4 KiB at each 4 KiB,
/// `sum` went from 0.69 to 0.64 s and from 0.66 to 0.63 s (9 interleaved
/// rounds each).
fn update_prefetched(hasher: &mut Sha256, buf: &[u8]) {
    sys::prefetch(&buf[..PREFETCH.min(buf.len())]);
    for (i, piece) in buf.chunks(PREFETCH_PIECE).enumerate() {
        let ahead = (i * PREFETCH_PIECE + PREFETCH).min(buf.len());
        sys::prefetch(&buf[ahead..(ahead + PREFETCH_PIECE).min(buf.len())]);
        hasher.update(piece);
    }
}

/// A SHA-256 state fed with the contents of `path` (a `.part` to resume),
/// and its length.
pub fn state_of_prefix(path: &Path) -> io::Result<(Sha256, u64)> {
    let mut hasher = Sha256::new();
    let total = feed(&mut hasher, File::open(path)?)?;
    Ok((hasher, total))
}

/// What identifies one version of a file for the digest cache: if none of
/// these changed, the bytes are taken to be the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileKey {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
}

impl FileKey {
    pub fn of(meta: &Metadata) -> FileKey {
        FileKey {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
        }
    }

    /// Whether this is the same file as `before`, only longer: what an
    /// append does. Its first `before.size` bytes are then taken to be
    /// unchanged (a rewrite that also grows the file is not told apart;
    /// the client's check of the digest against the body catches that).
    pub fn grew_from(&self, before: &FileKey) -> bool {
        self.dev == before.dev && self.ino == before.ino && self.size > before.size
    }
}

/// The server's digests, one per file path, valid while the file's
/// [`FileKey`] is unchanged. Each path has its own slot lock: two clients
/// asking for the same unhashed file wait for one hash instead of doing two,
/// while requests for other files go on.
#[derive(Default)]
pub struct DigestCache {
    slots: Mutex<HashMap<PathBuf, Arc<Slot>>>,
}

/// One file's cached digest and the version it belongs to; its lock is held
/// while the file is hashed.
type Slot = Mutex<Option<(FileKey, Digest)>>;

/// How many times a file rewritten under the hasher is re-read.
const HASH_ATTEMPTS: usize = 3;

/// The error of [`DigestCache::get`] for a file rewritten (not only
/// appended to) every time it was hashed: it has no digest to give. Not
/// an internal failure; the client may try again later.
#[derive(Debug)]
pub struct Rewritten;

impl std::fmt::Display for Rewritten {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the file is being rewritten while it is read; try again later")
    }
}

impl std::error::Error for Rewritten {}

impl DigestCache {
    /// The cached digest if `key` still matches; never hashes, never waits
    /// for a hash in progress (for `LIST`).
    pub fn peek(&self, path: &Path, key: &FileKey) -> Option<Digest> {
        let slot = lock(&self.slots).get(path)?.clone();
        let state = slot.try_lock().ok()?;
        match *state {
            Some((k, d)) if k == *key => Some(d),
            _ => None,
        }
    }

    /// The digest of the first `key.size` bytes of the open `file` (whose
    /// metadata gave `key`), hashing them at most once per version.
    ///
    /// A file that grows while it is hashed (a live log) is served as the
    /// snapshot `key` describes: its first `key.size` bytes, which an
    /// append leaves alone, so the digest holds for the bytes the caller
    /// sends (exactly `key.size`). A file rewritten meanwhile (same size
    /// and a new mtime, or shorter) has no single digest: it is hashed
    /// again, and after [`HASH_ATTEMPTS`] the error is [`Rewritten`].
    pub fn get(&self, path: &Path, file: &File, key: &FileKey) -> io::Result<Digest> {
        let slot = lock(&self.slots)
            .entry(path.to_path_buf())
            .or_default()
            .clone();
        let mut state = lock(&slot);
        if let Some((k, d)) = *state {
            if k == *key {
                return Ok(d);
            }
        }
        for _ in 0..HASH_ATTEMPTS {
            let (digest, n) = hash_reader(PositionalReader { file, pos: 0 }.take(key.size))?;
            let now = FileKey::of(&file.metadata()?);
            if n == key.size && (now == *key || now.grew_from(key)) {
                *state = Some((*key, digest));
                return Ok(digest);
            }
        }
        Err(io::Error::other(Rewritten))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::util::hex;

    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn hashes_known_vectors() {
        let (d, n) = hash_reader(&b"abc"[..]).unwrap();
        assert_eq!(hex::encode(&d), ABC);
        assert_eq!(n, 3);
        let (d, _) = hash_reader(&b""[..]).unwrap();
        assert_eq!(
            hex::encode(&d),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn pipelined_hasher_equals_plain_hash() {
        let data: Vec<u8> = (0..CHUNK * 3 + 17).map(|i| (i * 7 % 251) as u8).collect();
        let mut p = PipelinedHasher::start(Sha256::new()).unwrap();
        for piece in data.chunks(CHUNK / 3 + 5) {
            let mut buf = p.buffer();
            buf.truncate(piece.len());
            buf.copy_from_slice(piece);
            p.update(buf);
        }
        let (want, _) = hash_reader(&data[..]).unwrap();
        assert_eq!(p.finish().unwrap(), want);
    }

    /// A reader that hands out at most 1000 bytes a call, like a pipe.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.0.len()).min(1000);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn pipelined_reading_equals_plain_hash_at_every_boundary() {
        let big = PIPELINE_BUFFER;
        for len in [
            0,
            1,
            PREFETCH - 1,
            PREFETCH + 1,
            big - 1,
            big,
            big + 1,
            3 * big + 17,
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i * 13 % 251) as u8).collect();
            let want = hash_reader(&data[..]).unwrap();
            assert_eq!(hash_pipelined(&data[..]).unwrap(), want, "{len}");
            assert_eq!(hash_pipelined(Trickle(&data)).unwrap(), want, "{len}");
        }
    }

    /// A named file that is not a regular one (a FIFO) is hashed as a
    /// stream with a core to spare: it cannot be read by position (`pread`
    /// fails with ESPIPE), as a regular file is.
    #[test]
    fn a_named_fifo_is_hashed_as_a_stream() {
        let dir = crate::util::scratch_dir("digest-fifo");
        let path = dir.join("f");
        let data: Vec<u8> = (0..3 * PIPELINE_BUFFER + 5)
            .map(|i| (i % 251) as u8)
            .collect();
        let (want, _) = hash_reader(&data[..]).unwrap();
        std::fs::write(&path, &data).unwrap();
        let name = path.as_os_str().as_bytes();
        assert_eq!(hash_named(name, Reading::Pipelined).unwrap(), want);
        std::fs::remove_file(&path).unwrap();
        let made = std::process::Command::new("mkfifo").arg(&path).status();
        assert!(made.unwrap().success(), "mkfifo failed");
        for reading in [Reading::Pipelined, Reading::Plain] {
            // Opening a FIFO waits for the other end: write from a thread.
            let writer = std::thread::spawn({
                let (path, data) = (path.clone(), data.clone());
                // A failed hash closes the FIFO early: the write then fails.
                move || std::fs::write(path, data).is_ok()
            });
            assert_eq!(hash_named(name, reading).unwrap(), want, "{reading:?}");
            assert!(writer.join().unwrap());
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn cache_hashes_once_and_notices_changes() {
        let dir = crate::util::scratch_dir("digest");
        let path = dir.join("f");
        std::fs::write(&path, b"abc").unwrap();
        let cache = DigestCache::default();
        let file = File::open(&path).unwrap();
        let key = FileKey::of(&file.metadata().unwrap());
        assert_eq!(cache.peek(&path, &key), None);
        assert_eq!(hex::encode(&cache.get(&path, &file, &key).unwrap()), ABC);
        assert_eq!(hex::encode(&cache.peek(&path, &key).unwrap()), ABC);
        std::fs::write(&path, b"abcd").unwrap();
        let file = File::open(&path).unwrap();
        let key2 = FileKey::of(&file.metadata().unwrap());
        assert_eq!(cache.peek(&path, &key2), None);
        assert_ne!(hex::encode(&cache.get(&path, &file, &key2).unwrap()), ABC);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
