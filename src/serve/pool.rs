//! The connection threads of one listener: each waits in `accept` itself,
//! serves the connection it gets, and goes back to `accept`.
//!
//! Starting a thread for every connection (clone, a stack mapping and its
//! guard page, a signal stack, and undoing it all at exit: 15 system calls)
//! was the largest part of the server's CPU for a small file on a new
//! connection, so threads are kept. They were first kept waiting for one
//! accepting thread to hand them each connection: a wake-up of the
//! acceptor and one of the pooled thread per connection (2.4 context
//! switches per request). Waiting in `accept` themselves, the kernel wakes
//! exactly one of them per connection and nobody else: 2 system calls and
//! 0.4 context switches fewer per connection (server CPU 26.2 → 22.7 µs
//! for 1 KiB over loopback, though most of that moved to the client's
//! side rather than going: tests/README.md, #14).
//!
//! [`Crew`] counts the threads and how many of them are waiting, so that
//! one always is: a thread that accepts while it was the last one waiting
//! starts another before it serves; a thread whose `accept` waits
//! [`IDLE_EXIT`] in vain exits, unless it is the last one waiting, so an
//! idle server is back to its few threads.
//!
//! The kernel wakes waiting threads in turn, the longest waiting first
//! (tests/README.md, #14), not the last one back as the old pool did: under
//! a steady rate of R connections a second after a crowd, every thread
//! would get one before its wait ran out while R × [`IDLE_EXIT`] exceeds
//! the threads, and none would exit. So the crew also counts the fewest
//! threads waiting at once in each [`IDLE_EXIT`]: all but one of those were
//! never needed, and as many exit when they are back from their next
//! connection. That keeps what the old pool kept: as many threads as were
//! busy at once in the last [`IDLE_EXIT`], and one spare.

use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// How long a thread waits in `accept` before it exits (unless it is the
/// last one waiting).
pub const IDLE_EXIT: Duration = Duration::from_secs(2);

/// Stack of a connection thread. Measured: 12 KiB of it is touched while
/// serving GETs and keep-alive requests (/proc/PID/smaps, 50 busy
/// connections); the rest is address space only, left for LIST's walk of
/// deep trees and for unwinding a panic.
const STACK: usize = 256 * 1024;

/// The threads of one listener, counted. The one that calls
/// [`crate::serve::listener::Listener::run`] is one of them and never
/// exits.
pub struct Crew {
    /// Threads alive (`THREAD`s, the high half) and how many of them are
    /// in `accept` or on their way back to it (the low half). One word, so
    /// that a thread counted out of both by [`Crew::leave`] is out of both
    /// at once: with two counts, a thread that found `most` running could
    /// count one already gone from `accept` and about to exit, and serve
    /// trusting it to come back and accept (with every other place taken,
    /// nobody would, and clients would wait unanswered in the queue).
    counts: AtomicU64,
    /// The most threads at once.
    most: u64,
    /// When the crew began, the origin of `period`.
    born: Instant,
    /// When (milliseconds after `born`) the period began in which
    /// `fewest` counts.
    period: AtomicU64,
    /// The fewest threads waiting at once in this period.
    fewest: AtomicUsize,
    /// Threads the last period found waiting all along, less one spare:
    /// that many may exit when back from a connection.
    surplus: AtomicUsize,
}

impl Crew {
    /// A crew of one waiting thread (the caller's), of at most `most`.
    pub fn new(most: usize) -> Crew {
        Crew {
            counts: AtomicU64::new(THREAD + 1),
            most: u64::try_from(most)
                .unwrap_or(u64::MAX)
                .clamp(1, u64::from(u32::MAX)),
            born: Instant::now(),
            period: AtomicU64::new(0),
            fewest: AtomicUsize::new(1),
            surplus: AtomicUsize::new(0),
        }
    }

    /// A waiting thread has accepted a connection: whether it was the last
    /// one waiting (then it should [`Crew::start`] another).
    pub fn take(&self) -> bool {
        let left = waiting(self.counts.fetch_sub(1, Ordering::AcqRel)) - 1;
        self.fewest.fetch_min(left, Ordering::AcqRel);
        left == 0
    }

    /// A thread goes back to `accept` (through [`Crew::done`]).
    fn back(&self) {
        self.counts.fetch_add(1, Ordering::AcqRel);
    }

    /// A thread is done with a connection: back to `accept` (`false`), or,
    /// if it `may_leave` and the last period found a thread more than
    /// needed waiting all along, counted out to exit (`true`).
    pub fn done(&self, may_leave: bool) -> bool {
        self.back();
        self.review(self.born.elapsed());
        may_leave
            && self
                .surplus
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                .is_ok()
            && self.leave()
    }

    /// At `now` (since `born`), end the period if it has lasted
    /// [`IDLE_EXIT`]: its fewest waiting, less one, are surplus.
    fn review(&self, now: Duration) {
        let now = u64::try_from(now.as_millis()).unwrap_or(u64::MAX);
        let began = self.period.load(Ordering::Acquire);
        if now.saturating_sub(began) < IDLE_EXIT.as_millis() as u64 {
            return;
        }
        // One thread ends it; the others go on.
        let ended = self
            .period
            .compare_exchange(began, now, Ordering::AcqRel, Ordering::Acquire);
        if ended.is_err() {
            return;
        }
        let waiting = waiting(self.counts.load(Ordering::Acquire));
        let fewest = self.fewest.swap(waiting, Ordering::AcqRel);
        self.surplus
            .store(fewest.saturating_sub(1), Ordering::Release);
    }

    /// A waiting thread would exit: it may (and is counted out) unless it
    /// is the last one waiting.
    pub fn leave(&self) -> bool {
        self.counts
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (waiting(n) > 1).then(|| n - THREAD - 1)
            })
            .is_ok()
    }

    /// Start one more waiting thread, named `name`, running `work` (which
    /// returns once [`Crew::leave`] let it). `Ok(false)` when `most` are
    /// running already: then at least one of them holds no connection
    /// (the caller bounds connections below `most`) and is on its way
    /// back to `accept`.
    pub fn start<F>(&self, name: &str, work: F) -> io::Result<bool>
    where
        F: FnOnce() + Send + 'static,
    {
        // Counted as waiting before it runs, so that no other thread
        // starts one more for the same gap.
        let reserved = self
            .counts
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n / THREAD < self.most).then_some(n + THREAD + 1)
            });
        if reserved.is_err() {
            return Ok(false);
        }
        let spawned = thread::Builder::new()
            .name(name.into())
            .stack_size(STACK)
            .spawn(work);
        if let Err(e) = spawned {
            self.counts.fetch_sub(THREAD + 1, Ordering::AcqRel);
            return Err(e);
        }
        Ok(true)
    }

    #[cfg(test)]
    fn counts(&self) -> (usize, usize) {
        let n = self.counts.load(Ordering::Acquire);
        (waiting(n), (n / THREAD) as usize)
    }
}

/// One thread in [`Crew`]'s `counts`; a waiting one is 1. `most` is at
/// most `u32::MAX`, so neither half overflows into the other.
const THREAD: u64 = 1 << 32;

/// The waiting threads in [`Crew`]'s `counts`.
fn waiting(counts: u64) -> usize {
    (counts % THREAD) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn the_last_waiting_thread_never_leaves() {
        let crew = Crew::new(4);
        assert!(!crew.leave(), "the only thread stays");
        assert!(crew.take(), "it was the last one waiting");
        crew.back();
        let (tx, rx) = mpsc::channel();
        assert!(crew.start("test", move || tx.send(()).unwrap()).unwrap());
        rx.recv().unwrap();
        assert_eq!(crew.counts(), (2, 2));
        assert!(!crew.take(), "another one is waiting");
        assert!(!crew.leave(), "the other is the last one waiting now");
        crew.back();
        assert!(crew.leave());
        assert_eq!(crew.counts(), (1, 1));
    }

    #[test]
    fn no_more_than_most_threads_are_started() {
        let crew = Crew::new(3);
        let (tx, rx) = mpsc::channel();
        for _ in 0..2 {
            let tx = tx.clone();
            assert!(crew.start("test", move || tx.send(()).unwrap()).unwrap());
        }
        assert!(!crew.start("test", || ()).unwrap());
        rx.recv().unwrap();
        rx.recv().unwrap();
        assert_eq!(crew.counts(), (3, 3));
        // Two leave; the third stays, the last one waiting.
        assert!(crew.leave() && crew.leave() && !crew.leave());
        assert!(crew.start("test", || ()).unwrap(), "room again");
    }

    #[test]
    fn threads_waiting_all_through_a_period_leave_but_one() {
        let crew = Crew::new(16);
        for _ in 0..5 {
            assert!(crew.start("test", || ()).unwrap());
        }
        // A period begins with six waiting; one is busy at a time all
        // through it, so five waited all along, and four are surplus.
        crew.review(IDLE_EXIT);
        assert!(!crew.take());
        assert!(!crew.done(true), "the period has not ended");
        crew.review(IDLE_EXIT * 2);
        assert_eq!(crew.counts(), (6, 6));
        let left: usize = (0..6)
            .map(|_| {
                assert!(!crew.take());
                usize::from(crew.done(true))
            })
            .sum();
        assert_eq!(left, 4);
        assert_eq!(crew.counts(), (2, 2));
        // The next period saw one waiting at its fewest: nothing surplus.
        crew.review(IDLE_EXIT * 3);
        assert!(!crew.take());
        assert!(!crew.done(true));
        assert_eq!(crew.counts(), (2, 2));
    }

    #[test]
    fn a_thread_counted_out_is_not_counted_by_one_that_finds_no_room() {
        // Both of two threads wait; one times out and leaves just as the
        // other accepts. Either the leaver goes first, and the taker, now
        // the last one waiting, finds room to start another; or the taker
        // does, and the leaver stays, the last one waiting. A taker that
        // found no room although the other left would serve with nobody
        // coming back to accept (in the server, every other place taken).
        for _ in 0..2000 {
            let crew = Crew::new(2);
            assert!(crew.start("test", || ()).unwrap());
            let (left, room) = thread::scope(|s| {
                let leaver = s.spawn(|| crew.leave());
                let room = !crew.take() || crew.start("test", || ()).unwrap();
                (leaver.join().unwrap(), room)
            });
            assert!(room || !left, "no room, though the other thread left");
        }
    }

    #[test]
    fn takers_at_once_see_one_last_place() {
        let crew = std::sync::Arc::new(Crew::new(64));
        for _ in 0..7 {
            crew.back();
        }
        let lasts: usize = (0..8)
            .map(|_| {
                let crew = std::sync::Arc::clone(&crew);
                thread::spawn(move || crew.take())
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| usize::from(t.join().unwrap()))
            .sum();
        assert_eq!(lasts, 1);
        assert_eq!(crew.counts().0, 0);
    }
}
