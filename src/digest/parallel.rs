//! Work on several threads, results in the original order: how `sum` and
//! `verify` hash many files at once and still print exactly what the
//! one-at-a-time loop prints.
//!
//! The calling thread both hands out the work and consumes the results, so
//! the item source (a manifest being read) and the sink (stdout) stay on
//! one thread and need no locks. At most `window` items are in flight, so
//! however long the input and however slow one item is compared with the
//! ones after it, memory holds `window` results at most. A result is passed
//! on as soon as it and all before it are done, checked between every two
//! items taken from the source; only while the source itself blocks (a
//! manifest piped in slowly) do results finished meanwhile wait for it.

use std::collections::VecDeque;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Mutex;
use std::thread;

use super::Reading;

/// One unit of input: work for a thread, or a result the source already
/// has (it still takes its place in the output order).
pub enum Job<T, R> {
    Run(T),
    Ready(R),
}

/// How many items may be handed out but not yet consumed, per thread:
/// enough that a thread finishing early always finds the next item queued.
const WINDOW_PER_THREAD: usize = 4;

/// The most `--jobs` accepted: far past any core count, well below where
/// thread stacks would exhaust memory.
pub const MAX_JOBS: usize = 1024;

/// The number of hashing threads when the user does not say: one per core.
pub fn default_jobs() -> NonZeroUsize {
    thread::available_parallelism().unwrap_or(NonZeroUsize::MIN)
}

/// How to read each of `files` files hashed `jobs` at a time: with a
/// reader thread when there is one file and a core to spare for it.
pub fn reading(jobs: NonZeroUsize, files: usize) -> Reading {
    if jobs.get() > 1 && files == 1 {
        Reading::Pipelined
    } else {
        Reading::Plain
    }
}

/// Apply `work` to every `Job::Run` of `items` on `jobs` threads and pass
/// every result to `sink` in the order of `items`, each as soon as it and
/// all before it are done. Stops early, returning the error, when `sink`
/// fails; items not yet started are then never started. With one job, the
/// work runs on the calling thread, one item after the other.
pub fn ordered<T, R, E>(
    jobs: NonZeroUsize,
    items: impl Iterator<Item = Job<T, R>>,
    work: impl Fn(T) -> R + Sync,
    mut sink: impl FnMut(R) -> Result<(), E>,
) -> Result<(), E>
where
    T: Send,
    R: Send,
{
    if jobs.get() == 1 {
        return sequential(items, work, sink);
    }
    let window = jobs.get() * WINDOW_PER_THREAD;
    let (todo_tx, todo_rx) = mpsc::sync_channel::<(usize, T)>(window);
    let (done_tx, done_rx) = mpsc::channel::<(usize, R)>();
    let todo_rx = Mutex::new(todo_rx);
    let stop = AtomicBool::new(false);
    thread::scope(|scope| {
        let mut spawned = 0;
        for _ in 0..jobs.get() {
            let done_tx = done_tx.clone();
            let (todo_rx, stop, work) = (&todo_rx, &stop, &work);
            let builder = thread::Builder::new().name("hash".into());
            // Out of threads (a huge --jobs, a low ulimit): go on with the
            // ones we have.
            if builder
                .spawn_scoped(scope, move || worker(todo_rx, done_tx, stop, work))
                .is_err()
            {
                break;
            }
            spawned += 1;
        }
        drop(done_tx);
        if spawned == 0 {
            return sequential(items, &work, &mut sink);
        }
        let queue = Queue {
            todo: todo_tx,
            done: done_rx,
            window,
        };
        let result = queue.drive(items, &mut sink);
        // On a sink error the workers drop what is queued and exit; the
        // scope then waits for the items they are in the middle of.
        stop.store(true, Ordering::Relaxed);
        result
    })
}

/// Every item on the calling thread, one after the other.
fn sequential<T, R, E>(
    items: impl Iterator<Item = Job<T, R>>,
    work: impl Fn(T) -> R,
    mut sink: impl FnMut(R) -> Result<(), E>,
) -> Result<(), E> {
    for item in items {
        sink(match item {
            Job::Run(t) => work(t),
            Job::Ready(r) => r,
        })?;
    }
    Ok(())
}

/// Take items until the queue closes (or `stop`), send back each result.
fn worker<T, R>(
    todo: &Mutex<mpsc::Receiver<(usize, T)>>,
    done: mpsc::Sender<(usize, R)>,
    stop: &AtomicBool,
    work: &(impl Fn(T) -> R + Sync),
) {
    loop {
        // The lock is held only while waiting for the next item, never
        // while working on it. A poisoned lock means another worker
        // panicked; the scope re-raises that panic, so just stop.
        let next = match todo.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok((index, item)) = next else { return };
        if stop.load(Ordering::Relaxed) {
            return;
        }
        if done.send((index, work(item))).is_err() {
            return;
        }
    }
}

/// The calling thread's side: hand out items, reorder results.
struct Queue<T, R> {
    todo: mpsc::SyncSender<(usize, T)>,
    done: mpsc::Receiver<(usize, R)>,
    window: usize,
}

impl<T, R> Queue<T, R> {
    fn drive<E>(
        self,
        mut items: impl Iterator<Item = Job<T, R>>,
        sink: &mut impl FnMut(R) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut order = Reorder {
            pending: VecDeque::new(),
            next: 0,
        };
        let mut todo = Some(self.todo);
        loop {
            // Print what has finished before anything that may wait: the
            // next manifest line can be slow to come (a pipe).
            while let Ok((index, r)) = self.done.try_recv() {
                order.arrived(index, r);
            }
            order.flush(sink)?;
            if let Some(tx) = &todo {
                if order.pending.len() < self.window {
                    match items.next() {
                        Some(Job::Ready(r)) => order.pending.push_back(Some(r)),
                        Some(Job::Run(t)) => {
                            // Never blocks: the channel holds `window` items
                            // and fewer than that are pending. Never fails
                            // either: the receiver lives as long as `ordered`.
                            let _ = tx.send((order.next + order.pending.len(), t));
                            order.pending.push_back(None);
                        }
                        None => todo = None, // closes the queue: workers exit
                    }
                    continue;
                }
            }
            if order.pending.is_empty() {
                return Ok(()); // the input has ended and all is printed
            }
            match self.done.recv() {
                Ok((index, r)) => order.arrived(index, r),
                // Every worker is gone with items still pending: one of
                // them panicked, which the scope re-raises.
                Err(_) => return Ok(()),
            }
        }
    }
}

/// Results waiting for the ones before them.
struct Reorder<R> {
    /// `pending[i]` is the result of item `next + i`, once it has one.
    pending: VecDeque<Option<R>>,
    /// The index of the first item not yet passed to the sink.
    next: usize,
}

impl<R> Reorder<R> {
    fn arrived(&mut self, index: usize, r: R) {
        let slot = index.checked_sub(self.next);
        if let Some(slot) = slot.and_then(|i| self.pending.get_mut(i)) {
            *slot = Some(r);
        }
    }

    /// Pass on every result whose predecessors have all been passed on.
    fn flush<E>(&mut self, sink: &mut impl FnMut(R) -> Result<(), E>) -> Result<(), E> {
        while let Some(Some(_)) = self.pending.front() {
            if let Some(Some(r)) = self.pending.pop_front() {
                self.next += 1;
                sink(r)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    fn jobs(n: usize) -> NonZeroUsize {
        NonZeroUsize::new(n).unwrap()
    }

    /// Later items finish first, `Ready` ones are interleaved: the sink
    /// still sees 0, 1, 2, ... for every job count.
    #[test]
    fn results_come_in_input_order() {
        for n in [1, 2, 3, 8] {
            let items = (0..60u64).map(|i| {
                if i % 7 == 0 {
                    Job::Ready(i)
                } else {
                    Job::Run(i)
                }
            });
            let work = |i: u64| {
                thread::sleep(Duration::from_micros((60 - i) * 50));
                i
            };
            let mut seen = Vec::new();
            let done: Result<(), ()> = ordered(jobs(n), items, work, |i| {
                seen.push(i);
                Ok(())
            });
            assert_eq!(done, Ok(()));
            assert_eq!(seen, (0..60).collect::<Vec<_>>(), "{n} jobs");
        }
    }

    /// Items are taken from the source only as results are consumed: never
    /// more than the window ahead, and nothing more after the sink fails.
    #[test]
    fn memory_is_bounded_and_a_failing_sink_stops_the_work() {
        let taken = AtomicUsize::new(0);
        let started = AtomicUsize::new(0);
        let items = (0..10_000).map(|i| {
            taken.fetch_add(1, Ordering::SeqCst);
            Job::<usize, usize>::Run(i)
        });
        let work = |i| {
            started.fetch_add(1, Ordering::SeqCst);
            i
        };
        let window = 2 * WINDOW_PER_THREAD;
        let mut consumed = 0;
        let done = ordered(jobs(2), items, work, |i| {
            assert!(taken.load(Ordering::SeqCst) <= consumed + window);
            consumed += 1;
            if i == 100 {
                return Err("closed");
            }
            Ok(())
        });
        assert_eq!(done, Err("closed"));
        assert_eq!(consumed, 101);
        assert!(taken.load(Ordering::SeqCst) <= 101 + window);
        assert!(started.load(Ordering::SeqCst) <= 101 + window);
    }

    #[test]
    fn one_file_with_a_core_to_spare_is_read_beside_its_hasher() {
        assert_eq!(reading(jobs(2), 1), Reading::Pipelined);
        assert_eq!(reading(jobs(1), 1), Reading::Plain);
        assert_eq!(reading(jobs(2), 5), Reading::Plain);
    }
}
