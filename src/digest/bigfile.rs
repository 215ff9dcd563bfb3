//! One regular file hashed by two threads that take turns: `sum FILE` and
//! `verify` of a single file when a core is free.
//!
//! The file is cut into numbered chunks. Each thread claims the next one,
//! reads it by position (`pread`), waits for its turn, feeds it to the one
//! SHA-256 state and passes the turn on. While one thread hashes, the other
//! reads, and every chunk is hashed on the core that has just copied it out
//! of the page cache, from that core's own cache. The design before this
//! one handed the chunks a reader thread filled to a hasher on the other
//! core, and hashing bytes that another core has just written ran slower
//! (tests/README.md, "Verify and sum speed").

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

use super::{PositionalReader, PIPELINE_BUFFER};
use crate::util::hex::Digest;
use crate::util::io::fill;
use crate::util::lock;

/// SHA-256 of the regular file `file` from its start, and its length:
/// what [`super::hash_reader`] gives, at nearly the rate of the hash alone.
pub fn hash_file(file: &File) -> io::Result<(Digest, u64)> {
    hash_in_chunks(file, PIPELINE_BUFFER, SPIN)
}

/// [`hash_file`] with chunks of `chunk` bytes (one buffer per thread) and
/// turns waited for `spin` before sleeping.
fn hash_in_chunks(file: &File, chunk: usize, spin: Duration) -> io::Result<(Digest, u64)> {
    let relay = Relay::new(file, chunk, spin);
    thread::scope(|scope| {
        // With no second thread to be had, this one alone reads and hashes
        // every chunk in turn, never waiting.
        let _ = thread::Builder::new()
            .name("relay".into())
            .spawn_scoped(scope, || relay.run());
        relay.run();
    });
    relay.result()
}

/// The turn once the end is found or a read failed: nothing more is
/// hashed, and a thread waiting for a later chunk stops.
const DONE: u64 = u64::MAX;

/// How long a thread that has read its chunk checks for its turn, giving
/// its core away at each check, before it sleeps. A 512 KiB chunk hashes
/// in about 0.3 ms here; waking a thread asleep on an idle core of a VM
/// on every turn cost 3-8 % of the rate (tests/README.md).
const SPIN: Duration = Duration::from_millis(2);

/// A thread whose turn is more than `NAP_MIN` away naps until
/// `WAKE_EARLY` before it, going by how long the last chunk took to hash:
/// checking the turn all the while instead took a third more CPU time
/// (sched_yield) for the same speed. The margin covers the timer slack
/// (50 us) and the wake-up.
const NAP_MIN: Duration = Duration::from_micros(150);
const WAKE_EARLY: Duration = Duration::from_micros(100);

/// The chunks, the turn and the hash the threads share.
struct Relay<'f> {
    file: &'f File,
    size: usize,
    /// [`SPIN`], but for tests.
    spin: Duration,
    /// The next chunk nobody has claimed.
    claimed: AtomicU64,
    /// The chunk to be hashed next, or [`DONE`].
    turn: AtomicU64,
    /// Taken only by the thread whose turn it is.
    hash: Mutex<Hashed>,
    /// When the hash of the current turn began, in nanoseconds from
    /// `epoch`, and how long the one before took: when to wake from a nap.
    epoch: Instant,
    began: AtomicU64,
    took: AtomicU64,
    /// Where a thread that waited longer than `spin` sleeps.
    sleep: Mutex<()>,
    passed: Condvar,
}

/// The hash so far, and how it ended.
struct Hashed {
    state: Sha256,
    total: u64,
    error: Option<io::Error>,
}

impl<'f> Relay<'f> {
    fn new(file: &'f File, size: usize, spin: Duration) -> Self {
        Relay {
            file,
            size,
            spin,
            claimed: AtomicU64::new(0),
            turn: AtomicU64::new(0),
            hash: Mutex::new(Hashed {
                state: Sha256::new(),
                total: 0,
                error: None,
            }),
            epoch: Instant::now(),
            began: AtomicU64::new(0),
            took: AtomicU64::new(0),
            sleep: Mutex::new(()),
            passed: Condvar::new(),
        }
    }

    /// One thread's part: claim, read, wait for the turn, hash, pass it on,
    /// until the turn is [`DONE`].
    fn run(&self) {
        let _end = EndOnPanic(self);
        let mut buf = vec![0u8; self.size];
        loop {
            let index = self.claimed.fetch_add(1, Ordering::Relaxed);
            let read = self.read(index, &mut buf);
            if !self.wait_for(index) {
                return;
            }
            let next = self.hash(index, read, &buf);
            self.pass(next);
            if next == DONE {
                return;
            }
        }
    }

    /// Read chunk `index` into `buf`: how many bytes it holds, fewer than
    /// the chunk size only at the end of the file.
    fn read(&self, index: u64, buf: &mut [u8]) -> io::Result<usize> {
        let Some(pos) = index.checked_mul(self.size as u64) else {
            return Err(io::ErrorKind::FileTooLarge.into());
        };
        let (n, result) = fill(
            &mut PositionalReader {
                file: self.file,
                pos,
            },
            buf,
        );
        result.map(|()| n)
    }

    /// Wait until it is chunk `index`'s turn: false if the hash ended
    /// before it (a chunk before it was the last, or failed).
    fn wait_for(&self, index: u64) -> bool {
        let mut start = Instant::now();
        while start.elapsed() < self.spin {
            match self.turn.load(Ordering::Acquire) {
                turn if turn == index => return true,
                DONE => return false,
                _ => match self.nap() {
                    Some(nap) => {
                        thread::sleep(nap);
                        start = Instant::now();
                    }
                    None => thread::yield_now(),
                },
            }
        }
        let mut asleep = lock(&self.sleep);
        loop {
            match self.turn.load(Ordering::Acquire) {
                turn if turn == index => return true,
                DONE => return false,
                _ => {
                    asleep = self
                        .passed
                        .wait(asleep)
                        .unwrap_or_else(PoisonError::into_inner)
                }
            }
        }
    }

    /// How long to nap before the hash now running is due to end: `None`
    /// when that is near, past, or not known yet.
    fn nap(&self) -> Option<Duration> {
        let due = self.began.load(Ordering::Relaxed) + self.took.load(Ordering::Relaxed);
        let left = Duration::from_nanos(due.checked_sub(self.clock())?);
        (left > NAP_MIN).then(|| left - WAKE_EARLY)
    }

    fn clock(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Feed chunk `index`, read as `read` into `buf`, to the hash: the
    /// next turn.
    fn hash(&self, index: u64, read: io::Result<usize>, buf: &[u8]) -> u64 {
        let mut hashed = lock(&self.hash);
        match read {
            Ok(n) => {
                let began = self.clock();
                self.began.store(began, Ordering::Relaxed);
                hashed.state.update(&buf[..n]);
                self.took.store(self.clock() - began, Ordering::Relaxed);
                hashed.total += n as u64;
                if n < self.size {
                    DONE
                } else {
                    index + 1
                }
            }
            Err(e) => {
                hashed.error = Some(e);
                DONE
            }
        }
    }

    fn pass(&self, next: u64) {
        // Turns only go up, so a DONE passed by a panicking thread stays.
        self.turn.fetch_max(next, Ordering::Release);
        // A thread going to sleep checks the turn while it holds this lock
        // and lets go of it only inside `wait`: once we have had the lock,
        // it is either waiting, and woken below, or has not checked yet.
        drop(lock(&self.sleep));
        self.passed.notify_all();
    }

    /// The digest and length, or the error that ended the hash.
    fn result(self) -> io::Result<(Digest, u64)> {
        let hashed = self
            .hash
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        match hashed.error {
            Some(e) => Err(e),
            None => Ok((hashed.state.finalize().into(), hashed.total)),
        }
    }
}

/// Should a thread panic, it ends the hash on its way out ([`DONE`]):
/// the other thread, which may be waiting for a turn only the panicking
/// one could pass, then stops, and the scope re-raises the panic.
struct EndOnPanic<'a, 'f>(&'a Relay<'f>);

impl Drop for EndOnPanic<'_, '_> {
    fn drop(&mut self) {
        if thread::panicking() {
            self.0.pass(DONE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::hash_reader;
    use crate::util::scratch_dir;
    use std::fs::OpenOptions;
    use std::io::Write as _;
    use std::ops::RangeInclusive;
    use std::path::Path;
    use std::sync::Barrier;

    /// Every length around the chunk size, with chunks small enough that
    /// both threads claim many: the digest is the plain one whoever read
    /// which chunk, whether the threads wait for their turns awake or
    /// asleep.
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
                assert_eq!(
                    hash_in_chunks(&file, chunk, SPIN).unwrap(),
                    want,
                    "{chunk} {len}"
                );
                // Every wait asleep on the condvar: no turn is lost.
                let asleep = hash_in_chunks(&file, chunk, Duration::ZERO).unwrap();
                assert_eq!(asleep, want, "{chunk} {len}, no spin");
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

    /// [`hash_in_chunks`] from chunk `first` on, as if the ones before it
    /// had been hashed: how a test reads near the largest offset a file
    /// can have, where reads fail.
    fn hash_from(
        file: &File,
        chunk: usize,
        spin: Duration,
        first: u64,
    ) -> io::Result<(Digest, u64)> {
        let relay = Relay::new(file, chunk, spin);
        relay.claimed.store(first, Ordering::Relaxed);
        relay.turn.store(first, Ordering::Relaxed);
        thread::scope(|scope| {
            scope.spawn(|| relay.run());
            relay.run();
        });
        relay.result()
    }

    /// A read that fails after full chunks (no disk fails on cue, but a
    /// read that would cross 2^63 bytes does, with EINVAL, and tmpfs lets
    /// a sparse file reach that far): the hash ends with that error, never
    /// hangs, whichever thread met it. A failure in a chunk after the
    /// first short one is never seen: the file ended before it.
    #[test]
    fn a_read_failing_in_the_middle_is_returned_unless_past_the_end() {
        let path = Path::new("/dev/shm").join(format!("tcpfetch-bigfile-{}", std::process::id()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .unwrap();
        let chunk = 4096;
        // The chunk that ends at byte 2^63: reading it fails.
        let crossing = (1 << 63) / chunk as u64 - 1;
        for round in 0..40 {
            let spin = [Duration::ZERO, SPIN][round % 2];
            let first = crossing - 1 - round as u64 % 4;
            file.set_len(i64::MAX as u64).unwrap();
            let failed = hash_from(&file, chunk, spin, first).unwrap_err();
            assert_eq!(failed.kind(), io::ErrorKind::InvalidInput, "{round}");
            file.set_len(crossing * chunk as u64 - 100).unwrap();
            let before = (crossing - first) as usize * chunk - 100;
            let got = hash_from(&file, chunk, spin, first).unwrap();
            assert_eq!(got, hash_reader(&vec![0; before][..]).unwrap(), "{round}");
        }
        // Past 2^64 bytes, no offset: the old error kind.
        let first = u64::MAX / chunk as u64 + 1;
        let too_far = hash_from(&file, chunk, SPIN, first).unwrap_err();
        assert_eq!(too_far.kind(), io::ErrorKind::FileTooLarge);
        std::fs::remove_file(path).unwrap();
    }

    /// With no second thread (its spawn failed), the caller alone reads
    /// and hashes every chunk, each one its turn when it comes to wait.
    #[test]
    fn one_thread_alone_hashes_it_all() {
        let dir = scratch_dir("bigfile-alone");
        let path = dir.join("f");
        for len in [0, 63, 64, 65, 64 * 50 + 7] {
            let data = pattern(len);
            std::fs::write(&path, &data).unwrap();
            let file = File::open(&path).unwrap();
            let relay = Relay::new(&file, 64, Duration::ZERO);
            relay.run();
            assert_eq!(relay.result().unwrap(), hash_reader(&data[..]).unwrap());
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// Bytes where every prefix has its own digest and no chunk looks like
    /// the one before it: what a file that changes under the hash holds.
    fn pattern(len: usize) -> Vec<u8> {
        (0..len as u32)
            .map(|i| i.wrapping_mul(2_654_435_761).to_be_bytes()[0])
            .collect()
    }

    /// `got` is the digest of the first `n` bytes of `data` and `n` (what it
    /// says it hashed) is in `lens`: the chunks up to the first short one,
    /// none after it, and no gap.
    fn assert_a_prefix(got: (Digest, u64), data: &[u8], lens: RangeInclusive<usize>, what: &str) {
        let n = usize::try_from(got.1).unwrap();
        assert!(lens.contains(&n), "{what}: {n} bytes, not in {lens:?}");
        assert_eq!(got, hash_reader(&data[..n]).unwrap(), "{what}: {n} bytes");
    }

    /// The rounds of the growing and shrinking tests: tiny chunks, so that
    /// a hash takes hundreds of turns, asleep on the condvar or spinning.
    fn rounds() -> impl Iterator<Item = (usize, Duration, String)> {
        (0..48).map(|round| {
            let chunk = [64, 100, 4096][round % 3];
            let spin = [Duration::ZERO, SPIN][round / 3 % 2];
            (
                chunk,
                spin,
                format!("round {round}, chunks of {chunk}, spin {spin:?}"),
            )
        })
    }

    /// A file appended to while it is hashed (a live log): the hash ends,
    /// at the first chunk that came back short, with the digest of what was
    /// there by then. It starts once the appends are under way, so that it
    /// catches up with them, or not, in the middle of the file.
    #[test]
    fn a_file_growing_while_hashed_gives_a_prefix() {
        let dir = scratch_dir("bigfile-grow");
        let path = dir.join("f");
        let (data, start) = (pattern(96 * 1024), 16 * 1024);
        for (round, (chunk, spin, what)) in rounds().enumerate() {
            std::fs::write(&path, b"").unwrap();
            let file = File::open(&path).unwrap();
            let mut log = OpenOptions::new().append(true).open(&path).unwrap();
            let got = thread::scope(|scope| {
                scope.spawn(|| {
                    for piece in data.chunks(61 + round) {
                        log.write_all(piece).unwrap();
                        thread::yield_now();
                    }
                });
                while file.metadata().unwrap().len() < start as u64 {
                    thread::yield_now();
                }
                hash_in_chunks(&file, chunk, spin).unwrap()
            });
            assert_a_prefix(got, &data, start..=data.len(), &what);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A file cut shorter, step by step, while it is hashed: the digest of
    /// a prefix of the bytes, no longer than the file was and no shorter
    /// than it became; cut to nothing, the hash still ends. The cuts fall
    /// on 64 KiB, a multiple of any page size: a cut inside a page zeroes
    /// the rest of it, and a read copying that page meanwhile returns the
    /// zeros (Linux; a plain sequential reader sees them too).
    #[test]
    fn a_file_shrinking_while_hashed_gives_a_prefix() {
        let dir = scratch_dir("bigfile-shrink");
        let path = dir.join("f");
        let (data, page) = (pattern(512 * 1024), 64 * 1024);
        for (round, (chunk, spin, what)) in rounds().enumerate() {
            std::fs::write(&path, &data).unwrap();
            let file = File::open(&path).unwrap();
            let cut = OpenOptions::new().write(true).open(&path).unwrap();
            let least = [0, 3 * page][round % 2];
            let go = Barrier::new(2);
            let got = thread::scope(|scope| {
                scope.spawn(|| {
                    go.wait();
                    for len in (least..data.len()).step_by(page).rev().chain([least]) {
                        cut.set_len(len as u64).unwrap();
                    }
                });
                go.wait();
                hash_in_chunks(&file, chunk, spin).unwrap()
            });
            assert_a_prefix(got, &data, least..=data.len(), &what);
        }
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A thread that panics holding a turn the other waits for ends the
    /// hash instead of leaving the other waiting forever: the panic comes
    /// back out of the scope (without the guard this test hangs).
    #[test]
    fn a_panicking_thread_ends_the_hash() {
        let dir = scratch_dir("bigfile-panic");
        let path = dir.join("f");
        std::fs::write(&path, vec![7u8; 4096]).unwrap();
        let file = File::open(&path).unwrap();
        let relay = Relay::new(&file, 64, Duration::ZERO);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            thread::scope(|scope| {
                scope.spawn(|| {
                    let _end = EndOnPanic(&relay);
                    // Chunk 0, whose turn comes first, is claimed, never hashed.
                    relay.claimed.fetch_add(1, Ordering::Relaxed);
                    panic!("injected");
                });
                while relay.claimed.load(Ordering::Relaxed) == 0 {
                    thread::yield_now();
                }
                relay.run();
            })
        }));
        assert!(outcome.is_err());
        assert_eq!(relay.turn.load(Ordering::Relaxed), DONE);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
