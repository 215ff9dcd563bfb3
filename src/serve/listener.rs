//! The one accept loop every protocol runs under: protocol v1 (`serve`),
//! the old protocol (`serve --legacy-listen`) and the `ui` page.
//!
//! The loop owns what is the same for all of them: `--allow`, a bounded
//! number of connections (each holding a [`Slot`]), a thread per
//! connection (reused: [`Pool`]), turning away the rest without a thread
//! each, and surviving accept errors. What differs is the [`Handler`]: how
//! a connection is served, and what the protocol says to one it turns away.
//!
//! A panic in a connection thread ends that thread only: it unwinds (the
//! release profile keeps `panic = "unwind"` for this), its slot is freed by
//! the guard's `Drop`, and the loop keeps accepting.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::serve::access::AllowList;
use crate::serve::log::Log;
use crate::serve::pool::Pool;

/// Why the listener turned a connection away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The peer's address is not in `--allow`.
    Forbidden,
    /// Every slot is taken.
    Busy,
}

/// One protocol's side of a listener.
pub trait Handler: Send + Sync + 'static {
    /// Serve one accepted connection, on a thread of its own.
    fn handle(&self, stream: TcpStream, peer: SocketAddr);

    /// What to answer a connection that is turned away (written once,
    /// without waiting); empty for a protocol that cannot say why.
    fn refusal(&self, why: Refusal) -> Vec<u8>;
}

/// A bound socket and the rules it accepts by.
pub struct Listener {
    pub socket: TcpListener,
    /// Names the connection threads (a pooled thread serves many peers).
    pub name: &'static str,
    pub log: Log,
    /// Connections served at once (`--max-clients`).
    pub max_clients: usize,
    /// Refused connections drained at once; more are closed at once.
    pub max_lingering: usize,
    /// Every accepted socket gets this write timeout; reads are bounded by
    /// the handler, with a [`DeadlineReader`].
    pub write_timeout: Duration,
    pub allow: AllowList,
}

impl Listener {
    /// Accept connections forever, each served by `handler` on its own
    /// thread.
    pub fn run<H: Handler>(&self, handler: &Arc<H>) {
        let rejecter = Rejecter::start(self.max_lingering);
        let active = Arc::new(AtomicUsize::new(0));
        let pool = Arc::new(Pool::default());
        let mut failures = AcceptFailures::default();
        loop {
            let (stream, peer) = match self.socket.accept() {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of descriptors or memory: wait for connections to
                    // end instead of spinning, and say so once a second.
                    if let Some(more) = failures.note(Instant::now()) {
                        let why = crate::error::describe_io(&e);
                        let tag = self.log.tag();
                        self.log.line(&format!("- {tag}accept failed: {why}{more}"));
                    }
                    thread::sleep(Duration::from_millis(50));
                    continue;
                }
            };
            if !self.allow.permits(peer.ip()) {
                self.log.peer(peer, "- forbidden (not in --allow)");
                rejecter.reject(stream, &handler.refusal(Refusal::Forbidden));
                continue;
            }
            let Some(slot) = Slot::claim(&active, self.max_clients) else {
                self.log.peer(peer, "- busy (at --max-clients)");
                rejecter.reject(stream, &handler.refusal(Refusal::Busy));
                continue;
            };
            self.spawn(&pool, stream, peer, slot, handler);
        }
    }

    fn spawn<H: Handler>(
        &self,
        pool: &Arc<Pool>,
        stream: TcpStream,
        peer: SocketAddr,
        slot: Slot,
        handler: &Arc<H>,
    ) {
        let _ = stream.set_nodelay(true);
        let _ = stream.set_write_timeout(Some(self.write_timeout));
        let handler = Arc::clone(handler);
        let job = Box::new(move || {
            let _slot = slot;
            handler.handle(stream, peer);
        });
        if let Err(e) = pool.run(self.name, job) {
            self.log
                .peer(peer, &format!("- cannot start a thread: {e}"));
        }
    }
}

/// Accept failures last as long as descriptors or memory are short, one
/// every 50 ms: the log gets the first and then one line a second, with
/// the count of those it did not get (20 lines a second before).
#[derive(Default)]
struct AcceptFailures {
    logged: Option<Instant>,
    unlogged: u64,
}

impl AcceptFailures {
    /// A failure at `now`: `None` when it goes unlogged, else what to add
    /// to its log line about the ones since the last line.
    fn note(&mut self, now: Instant) -> Option<String> {
        let due = self
            .logged
            .is_none_or(|at| now.duration_since(at) >= Duration::from_secs(1));
        if !due {
            self.unlogged += 1;
            return None;
        }
        self.logged = Some(now);
        Some(match std::mem::take(&mut self.unlogged) {
            0 => String::new(),
            n => format!(" ({n} more since the last line)"),
        })
    }
}

/// One of the `--max-clients` places; dropping it frees the place, so an
/// early return or a panicking connection thread can never leak one.
pub struct Slot {
    active: Arc<AtomicUsize>,
}

impl Slot {
    /// A place if fewer than `max` are taken.
    pub fn claim(active: &Arc<AtomicUsize>, max: usize) -> Option<Slot> {
        active
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        Some(Slot {
            active: Arc::clone(active),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A socket reader with a total deadline, so a peer trickling one byte at a
/// time cannot hold a thread past it; optionally each read also gives up
/// after a shorter silence.
pub struct DeadlineReader<'a> {
    pub stream: &'a TcpStream,
    pub deadline: Instant,
    /// The longest one read may wait, deadline or not.
    pub silence: Duration,
    /// The read timeout last set on the socket.
    armed: Option<Duration>,
}

/// The read buffer of a connection's requests. A request line is short
/// (`GET +mtime 0 name`, an `AUTH` line of 70 bytes), and a longer one
/// (up to the protocol's 4096) is read in several pieces: nothing is lost
/// by a small buffer. A large one is paid for every waiting connection:
/// `BufReader` zeroes its whole buffer on its first read (the reader below
/// it has no `read_buf`), so the 8 KiB it was were 8 KiB of touched heap
/// per connection, more than its thread's stack (measured, 5000 idle
/// connections: 19.0 KB each with 8 KiB, 11.3 KB with 512 bytes).
pub const REQUEST_BUFFER: usize = 512;

/// How far the socket's read timeout may be off what a read should wait
/// before it is set again. A keep-alive connection waits for each request
/// with the same idle timeout, so without this slack every request paid a
/// setsockopt for a value a few microseconds from the one already set.
const TIMEOUT_SLACK: Duration = Duration::from_millis(20);

impl<'a> DeadlineReader<'a> {
    /// Reads that must all be done within `total` from now.
    pub fn new(stream: &'a TcpStream, total: Duration) -> DeadlineReader<'a> {
        DeadlineReader {
            stream,
            deadline: Instant::now() + total,
            silence: Duration::MAX,
            armed: None,
        }
    }

    /// Start the deadline again: `total` from now.
    pub fn renew(&mut self, total: Duration) {
        self.deadline = Instant::now() + total;
    }
}

impl Read for DeadlineReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        let wait = left.min(self.silence);
        let close = |armed: Duration| armed.abs_diff(wait) <= TIMEOUT_SLACK;
        if !self.armed.is_some_and(close) {
            self.stream.set_read_timeout(Some(wait))?;
            self.armed = Some(wait);
        }
        self.stream.read(buf)
    }
}

/// How long, and for how many bytes, a closing connection is drained.
const DRAIN_TIME: Duration = Duration::from_secs(1);
const DRAIN_BYTES: u64 = 1 << 20;

/// Close after an answer that ends the connection, without destroying it.
///
/// Closing a socket with unread input makes the kernel send a reset, and a
/// reset can discard answers the peer has not read yet (an error line, a
/// 413) and fails a peer still sending its request. So: shut down our
/// side, then read and drop what the peer still sends, for at most a
/// second and a megabyte. [`Rejecter`] does the same without a thread.
pub fn close_gently(stream: &TcpStream) {
    let _ = stream.shutdown(Shutdown::Write);
    let mut drain = DeadlineReader::new(stream, DRAIN_TIME);
    let _ = io::copy(&mut (&mut drain).take(DRAIN_BYTES), &mut io::sink());
}

/// Turns away connections (past `--max-clients`, or not in `--allow`)
/// without a thread each: writes the refusal, shuts down our side, and
/// drains what the peer sends until it closes or a short deadline passes
/// (see [`close_gently`] for why) — all on one thread, polling non-blocking
/// sockets.
struct Rejecter {
    queue: SyncSender<TcpStream>,
}

const REJECT_LINGER: Duration = Duration::from_secs(2);
/// The pause between two sweeps of the refused sockets, per
/// [`SWEEP_GROUP`] of them: a sweep reads each socket once, and at a fixed
/// 5 ms the 4096 sockets a flood keeps lingering cost 800 000 reads a
/// second (1000 silent ones, measured: 186 sweeps and 4-5 % of a core a
/// second; 26 sweeps and 1-2 % with the pause grown to 40 ms).
const SWEEP_PAUSE: Duration = Duration::from_millis(5);
const SWEEP_GROUP: usize = 128;
/// The most refused connections one listener drains at once (each holds
/// a descriptor): the rest are closed right after their refusal.
pub const MAX_LINGERING: usize = 4096;

/// A refused connection being drained: the deadline and the bytes left.
struct Lingering {
    stream: TcpStream,
    until: Instant,
    left: u64,
}

impl Rejecter {
    /// A rejecter holding at most `max_lingering` refused sockets, queued
    /// or being drained: each is an open descriptor.
    fn start(max_lingering: usize) -> Rejecter {
        let queued = (max_lingering / 4).clamp(1, 256);
        let draining = max_lingering.min(MAX_LINGERING).saturating_sub(queued);
        let (tx, rx) = mpsc::sync_channel(queued);
        let spawned = thread::Builder::new()
            .name("rejecter".into())
            .stack_size(128 * 1024)
            .spawn(move || Rejecter::work(&rx, draining));
        // Without the helper thread the queue has no receiver and refused
        // sockets are closed at once: worse manners, same protection.
        drop(spawned);
        Rejecter { queue: tx }
    }

    fn reject(&self, stream: TcpStream, answer: &[u8]) {
        let _ = stream.set_nonblocking(true);
        if !answer.is_empty() {
            let _ = (&stream).write(answer);
        }
        let _ = stream.shutdown(Shutdown::Write);
        // A full queue means a flood: those sockets are simply closed.
        let _ = self.queue.try_send(stream);
    }

    /// Take refusals as they come; sweep the sockets being drained once
    /// per pause, a pause that grows with their number (5 ms up to 128,
    /// 160 ms at 4096) so that a flood costs a bounded number of reads a
    /// second, not a read per socket every 5 ms.
    fn work(queue: &Receiver<TcpStream>, max_lingering: usize) {
        let mut lingering: Vec<Lingering> = Vec::new();
        let mut scratch = [0u8; 16 * 1024];
        let mut sweep_at = Instant::now();
        loop {
            // Nothing to drain: sleep until a refusal comes (polling here
            // woke the thread 50 times a second on an idle server).
            let next = if lingering.is_empty() {
                queue.recv().map_err(|_| RecvTimeoutError::Disconnected)
            } else {
                queue.recv_timeout(sweep_at.saturating_duration_since(Instant::now()))
            };
            match next {
                Ok(stream) if lingering.len() < max_lingering => lingering.push(Lingering {
                    stream,
                    until: Instant::now() + REJECT_LINGER,
                    left: DRAIN_BYTES,
                }),
                Ok(_) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            let now = Instant::now();
            if now >= sweep_at {
                lingering.retain_mut(|l| now < l.until && l.drain(&mut scratch));
                let groups =
                    u32::try_from(lingering.len().div_ceil(SWEEP_GROUP)).unwrap_or(u32::MAX);
                sweep_at = now + SWEEP_PAUSE * groups.max(1);
            }
        }
    }
}

impl Lingering {
    /// Read what has arrived; whether to keep waiting for more.
    fn drain(&mut self, scratch: &mut [u8]) -> bool {
        loop {
            match (&self.stream).read(scratch) {
                Ok(0) => return false,
                Ok(n) => match self.left.checked_sub(n as u64) {
                    Some(left) if left > 0 => self.left = left,
                    _ => return false,
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_and_freed_on_drop() {
        let active = Arc::new(AtomicUsize::new(0));
        let a = Slot::claim(&active, 2).unwrap();
        let b = Slot::claim(&active, 2).unwrap();
        assert!(Slot::claim(&active, 2).is_none());
        drop(a);
        let c = Slot::claim(&active, 2);
        assert!(c.is_some());
        drop((b, c));
        assert_eq!(active.load(Ordering::Acquire), 0);
    }

    #[test]
    fn accept_failures_are_logged_once_a_second_with_the_count_of_the_rest() {
        let mut failures = AcceptFailures::default();
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        assert_eq!(failures.note(at(0)).as_deref(), Some(""));
        let unlogged = (1..20).filter(|i| failures.note(at(i * 50)).is_none());
        assert_eq!(unlogged.count(), 19);
        let line = failures.note(at(1000));
        assert_eq!(line.as_deref(), Some(" (19 more since the last line)"));
        assert_eq!(failures.note(at(1050)), None);
        assert_eq!(
            failures.note(at(5000)).as_deref(),
            Some(" (1 more since the last line)")
        );
    }

    #[test]
    fn a_deadline_bounds_all_reads_together() {
        let (mut client, server) = crate::sys::tcp_pair();
        let mut reader = DeadlineReader::new(&server, Duration::from_millis(300));
        let started = Instant::now();
        let mut buf = [0u8; 8];
        client.write_all(b"a").unwrap();
        assert_eq!(reader.read(&mut buf).unwrap(), 1);
        let err = reader.read(&mut buf).unwrap_err();
        assert!(matches!(
            err.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ));
        assert!(started.elapsed() < Duration::from_secs(2));
        reader.deadline = Instant::now();
        assert_eq!(
            reader.read(&mut buf).unwrap_err().kind(),
            io::ErrorKind::TimedOut
        );
    }

    #[test]
    fn silence_cuts_one_read_short_of_the_deadline() {
        let (_client, server) = crate::sys::tcp_pair();
        let mut reader = DeadlineReader::new(&server, Duration::from_secs(30));
        reader.silence = Duration::from_millis(100);
        let started = Instant::now();
        assert!(reader.read(&mut [0u8; 8]).is_err());
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
