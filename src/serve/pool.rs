//! The connection threads of one listener, kept for reuse.
//!
//! Starting a thread for every connection (clone, a stack mapping and its
//! guard page, a signal stack, and undoing it all at exit: 15 system calls)
//! was the largest part of the server's CPU for a small file on a new
//! connection. A thread that has served its connection waits here for the
//! next one instead, for [`IDLE_EXIT`]; then it exits, so an idle server
//! is back to its few threads. The pool needs no bound of its own: a thread is busy only while it
//! holds one of the listener's `--max-clients` slots.

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use crate::util::lock;

/// One connection's work, slot included.
pub type Job = Box<dyn FnOnce() + Send>;

/// How long a thread waits for another connection before it exits.
const IDLE_EXIT: Duration = Duration::from_secs(2);

/// Stack of a connection thread. Measured: 12 KiB of it is touched while
/// serving GETs and keep-alive requests (/proc/PID/smaps, 50 busy
/// connections); the rest is address space only, left for LIST's walk of
/// deep trees and for unwinding a panic.
const STACK: usize = 256 * 1024;

/// The waiting threads, newest last (the newest is reused first: its stack
/// is still in cache, and the oldest are the ones left to exit).
/// Each is listed by where to hand it a job.
#[derive(Default)]
pub struct Pool {
    idle: Mutex<Vec<Arc<Handoff>>>,
}

/// Where one thread waits for its next job: a mutex and a condition
/// variable, about 64 bytes for the thread's life. (It was a
/// `sync_channel(1)`: 640 bytes aligned to 128, about 800 bytes of heap
/// per connection thread, measured with valgrind's malloc trace.)
#[derive(Default)]
struct Handoff {
    job: Mutex<Option<Job>>,
    ready: Condvar,
}

impl Handoff {
    fn put(&self, job: Job) {
        *lock(&self.job) = Some(job);
        self.ready.notify_one();
    }

    /// The job handed over, waiting at most `wait` (`None`: for ever).
    fn take(&self, wait: Option<Duration>) -> Option<Job> {
        let job = lock(&self.job);
        let empty = |job: &mut Option<Job>| job.is_none();
        let mut job = match wait {
            None => self
                .ready
                .wait_while(job, empty)
                .unwrap_or_else(PoisonError::into_inner),
            Some(wait) => {
                let waited = self.ready.wait_timeout_while(job, wait, empty);
                waited.unwrap_or_else(PoisonError::into_inner).0
            }
        };
        job.take()
    }
}

impl Pool {
    /// Run `job` on a waiting thread, or on a new one named `name`.
    pub fn run(self: &Arc<Pool>, name: &str, job: Job) -> std::io::Result<()> {
        // Listed means alive: a thread leaves the list before it exits,
        // and a job that panics unwinds before its thread is listed again.
        let waiting = lock(&self.idle).pop();
        if let Some(handoff) = waiting {
            handoff.put(job);
            return Ok(());
        }
        let pool = Arc::clone(self);
        thread::Builder::new()
            .name(name.into())
            .stack_size(STACK)
            .spawn(move || pool.work(job))
            .map(drop)
    }

    /// A pooled thread: its first job, then whatever it is handed.
    fn work(&self, first: Job) {
        let handoff = Arc::new(Handoff::default());
        let mut job = first;
        loop {
            job();
            lock(&self.idle).push(Arc::clone(&handoff));
            job = match self.next(&handoff) {
                Some(job) => job,
                None => return,
            };
        }
    }

    /// Wait for the next job; `None` when this thread should exit.
    fn next(&self, handoff: &Arc<Handoff>) -> Option<Job> {
        if let Some(job) = handoff.take(Some(IDLE_EXIT)) {
            return Some(job);
        }
        let mut idle = lock(&self.idle);
        match idle.iter().position(|w| Arc::ptr_eq(w, handoff)) {
            // Still listed, so nobody is handing one over: leave.
            Some(i) => {
                idle.remove(i);
                None
            }
            // Taken off the list by `run`: its job is on the way.
            None => {
                drop(idle);
                handoff.take(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;

    #[test]
    fn a_finished_thread_takes_the_next_job() {
        let pool = Arc::new(Pool::default());
        let (tx, rx) = mpsc::channel();
        let mut threads = Vec::new();
        for _ in 0..5 {
            let tx = tx.clone();
            let job = Box::new(move || tx.send(thread::current().id()).unwrap());
            pool.run("test", job).unwrap();
            threads.push(rx.recv().unwrap());
            // Wait for the thread to be listed as waiting again.
            while lock(&pool.idle).is_empty() {
                thread::yield_now();
            }
        }
        threads.dedup();
        assert_eq!(threads.len(), 1, "one thread served all five");
        assert_eq!(lock(&pool.idle).len(), 1);
    }

    #[test]
    fn jobs_at_once_get_threads_of_their_own() {
        let pool = Arc::new(Pool::default());
        let running = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::channel();
        let gate = Arc::new(std::sync::Barrier::new(4));
        for _ in 0..4 {
            let (running, tx, gate) = (Arc::clone(&running), tx.clone(), Arc::clone(&gate));
            pool.run(
                "test",
                Box::new(move || {
                    running.fetch_add(1, Ordering::SeqCst);
                    gate.wait();
                    tx.send(()).unwrap();
                }),
            )
            .unwrap();
        }
        for _ in 0..4 {
            rx.recv().unwrap();
        }
        assert_eq!(running.load(Ordering::SeqCst), 4);
    }

    #[test]
    fn a_handoff_waits_for_its_job_or_times_out() {
        let handoff = Arc::new(Handoff::default());
        assert!(handoff.take(Some(Duration::from_millis(20))).is_none());
        let giver = Arc::clone(&handoff);
        let (tx, rx) = mpsc::channel();
        let sender = thread::spawn(move || {
            thread::sleep(Duration::from_millis(50));
            giver.put(Box::new(move || tx.send(7).unwrap()));
        });
        let job = handoff.take(None).expect("a job is handed over");
        job();
        assert_eq!(rx.recv().unwrap(), 7);
        sender.join().unwrap();
    }
}
