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
//! exactly one of them per connection and nobody else (30.4 → 24.5 µs of
//! server CPU per connection, tests/README.md, #14).
//!
//! [`Crew`] counts the threads and how many of them are waiting, so that
//! one always is: a thread that accepts while it was the last one waiting
//! starts another before it serves; a thread whose `accept` waits
//! [`IDLE_EXIT`] in vain exits, unless it is the last one waiting, so an
//! idle server is back to its few threads.
//!
//! The kernel wakes waiting threads in turn, the longest waiting first
//! (tests/README.md, #14), not the last one back as the old pool did: under
//! a steady rate of R connections a second after a crowd, about
//! R × [`IDLE_EXIT`] threads keep getting one before their wait runs out,
//! where the old pool kept about as many as were busy at once. Both stay
//! within `--max-clients`.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::Duration;

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
    /// Threads in `accept`, or on their way back to it.
    waiting: AtomicUsize,
    /// Threads alive.
    threads: AtomicUsize,
    /// The most threads at once.
    most: usize,
}

impl Crew {
    /// A crew of one waiting thread (the caller's), of at most `most`.
    pub fn new(most: usize) -> Crew {
        Crew {
            waiting: AtomicUsize::new(1),
            threads: AtomicUsize::new(1),
            most: most.max(1),
        }
    }

    /// A waiting thread has accepted a connection: whether it was the last
    /// one waiting (then it should [`Crew::start`] another).
    pub fn take(&self) -> bool {
        self.waiting.fetch_sub(1, Ordering::AcqRel) == 1
    }

    /// A thread goes back to `accept`.
    pub fn back(&self) {
        self.waiting.fetch_add(1, Ordering::AcqRel);
    }

    /// A waiting thread would exit: it may (and is counted out) unless it
    /// is the last one waiting.
    pub fn leave(&self) -> bool {
        let left = self
            .waiting
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n > 1).then(|| n - 1)
            });
        if left.is_ok() {
            self.threads.fetch_sub(1, Ordering::AcqRel);
        }
        left.is_ok()
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
        let reserved = self
            .threads
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.most).then_some(n + 1)
            });
        if reserved.is_err() {
            return Ok(false);
        }
        // Counted as waiting before it runs, so that no other thread
        // starts one more for the same gap.
        self.back();
        let spawned = thread::Builder::new()
            .name(name.into())
            .stack_size(STACK)
            .spawn(work);
        if let Err(e) = spawned {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            self.threads.fetch_sub(1, Ordering::AcqRel);
            return Err(e);
        }
        Ok(true)
    }

    #[cfg(test)]
    fn counts(&self) -> (usize, usize) {
        (
            self.waiting.load(Ordering::Acquire),
            self.threads.load(Ordering::Acquire),
        )
    }
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
