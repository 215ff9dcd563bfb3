//! The connection threads of one listener, kept for reuse.
//!
//! Starting a thread for every connection (clone, a stack mapping and its
//! guard page, a signal stack, and undoing it all at exit: 15 system calls)
//! was the largest part of the server's CPU for a small file on a new
//! connection. A thread that has served its connection waits here for the
//! next one instead, for [`IDLE_EXIT`]; then it exits, so an idle server
//! is back to its few threads. The pool needs no bound of its own: a thread is busy only while it
//! holds one of the listener's `--max-clients` slots.

use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

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
#[derive(Default)]
pub struct Pool {
    idle: Mutex<Vec<Waiting>>,
    next_id: std::sync::atomic::AtomicU64,
}

/// A waiting thread: where to send it a job.
struct Waiting {
    id: u64,
    jobs: SyncSender<Job>,
}

impl Pool {
    /// Run `job` on a waiting thread, or on a new one named `name`.
    pub fn run(self: &Arc<Pool>, name: &str, job: Job) -> std::io::Result<()> {
        let mut job = job;
        while let Some(waiting) = self.lock().pop() {
            match waiting.jobs.send(job) {
                Ok(()) => return Ok(()),
                // It exited (a panic between jobs): try the next one.
                Err(mpsc::SendError(back)) => job = back,
            }
        }
        let pool = Arc::clone(self);
        thread::Builder::new()
            .name(name.into())
            .stack_size(STACK)
            .spawn(move || pool.work(job))
            .map(drop)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Waiting>> {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A pooled thread: its first job, then whatever it is sent.
    fn work(&self, first: Job) {
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = mpsc::sync_channel::<Job>(1);
        let mut job = first;
        loop {
            job();
            self.lock().push(Waiting {
                id,
                jobs: tx.clone(),
            });
            job = match self.next(id, &rx) {
                Some(job) => job,
                None => return,
            };
        }
    }

    /// Wait for the next job; `None` when this thread should exit.
    fn next(&self, id: u64, rx: &Receiver<Job>) -> Option<Job> {
        if let Ok(job) = rx.recv_timeout(IDLE_EXIT) {
            return Some(job);
        }
        let mut idle = self.lock();
        match idle.iter().position(|w| w.id == id) {
            // Still listed, so nobody is sending: leave.
            Some(i) => {
                idle.remove(i);
                None
            }
            // Taken off the list by `run`: its job is on the way.
            None => {
                drop(idle);
                rx.recv().ok()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

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
            while pool.lock().is_empty() {
                thread::yield_now();
            }
        }
        threads.dedup();
        assert_eq!(threads.len(), 1, "one thread served all five");
        assert_eq!(pool.lock().len(), 1);
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
}
