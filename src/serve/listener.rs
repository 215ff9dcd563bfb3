//! The one accept loop every protocol runs under: protocol v1 (`serve`),
//! the old protocol (`serve --legacy-listen`) and the `ui` page.
//!
//! The loop owns what is the same for all of them: `--allow`, a bounded
//! number of connections (each holding a [`Slot`]), a thread per
//! connection (kept, each accepting its next one itself: [`Crew`]),
//! turning away the rest without a thread each, and surviving accept
//! errors. What differs is the [`Handler`]: how a connection is served,
//! and what the protocol says to one it turns away.
//!
//! A panic serving a connection ends that connection only: it unwinds (the
//! release profile keeps `panic = "unwind"` for this) to the loop, its
//! slot is freed by the guard's `Drop`, and the thread accepts again.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crate::serve::access::AllowList;
use crate::serve::log::Log;
use crate::serve::pool::{Crew, IDLE_EXIT};

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
    /// Accept connections forever, each served by `handler`. The calling
    /// thread is the first of the listener's connection threads ([`Crew`]):
    /// each waits in `accept`, serves what it accepts and accepts again,
    /// and one more than `max_clients` of them may run, so that with every
    /// slot taken one is still accepting, to answer `busy`.
    pub fn run<H: Handler>(self, handler: &Arc<H>) {
        // Accepted sockets inherit this as their read timeout, which no
        // handler relies on: each reads through a [`DeadlineReader`] (or
        // sets its own) before its first read. Without it (not Linux) idle
        // threads would stay until the server ends, still within
        // `--max-clients`.
        let _ = crate::sys::set_accept_timeout(&self.socket, IDLE_EXIT);
        let accepting = Arc::new(Accepting {
            rejecter: Rejecter::start(self.max_lingering),
            active: Arc::new(AtomicUsize::new(0)),
            crew: Crew::new(self.max_clients.saturating_add(1)),
            failures: Mutex::new(Failures::default()),
            handler: Arc::clone(handler),
            listener: self,
        });
        accepting.work(true);
    }
}

/// What the connection threads of one listener share.
struct Accepting<H> {
    listener: Listener,
    handler: Arc<H>,
    rejecter: Rejecter,
    /// Connections being served: `Slot`s taken.
    active: Arc<AtomicUsize>,
    crew: Crew,
    failures: Mutex<Failures>,
}

/// `accept` failures logged at most once a second: out of descriptors
/// (EMFILE), every waiting thread fails at once, and again after its pause.
#[derive(Default)]
struct Failures {
    logged: Option<Instant>,
    unlogged: u64,
}

/// How long a thread pauses after `accept` failed (out of descriptors or
/// memory), so that it waits for connections to end instead of spinning.
const FAILED_PAUSE: Duration = Duration::from_millis(50);

impl<H: Handler> Accepting<H> {
    /// One connection thread: accept, serve, again; a thread that is not
    /// `permanent` returns once it has waited [`IDLE_EXIT`] in vain, or
    /// the crew found it surplus, and another is waiting.
    fn work(self: &Arc<Self>, permanent: bool) {
        loop {
            match self.listener.socket.accept() {
                Ok((stream, peer)) => {
                    let last = self.crew.take();
                    // A panic serving one connection ends that connection
                    // only: it unwinds to here (the release profile keeps
                    // `panic = "unwind"`), the slot's guard frees its slot,
                    // and the thread accepts again.
                    let answer = || self.answer(stream, peer, last);
                    let _ = panic::catch_unwind(AssertUnwindSafe(answer));
                    if self.crew.done(!permanent) {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if !permanent && self.crew.leave() {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.failed(&e);
                    // Fewer threads to fail: the rest wait their pause.
                    if !permanent && self.crew.leave() {
                        return;
                    }
                    thread::sleep(FAILED_PAUSE);
                }
            }
        }
    }

    /// Serve, or turn away, one accepted connection. `last`: this thread
    /// was the last one waiting in `accept`, so it starts another first.
    ///
    /// A slot is freed when its connection's handler returns, before its
    /// thread is back in `accept`: with every slot taken, a client that
    /// connects just as a served one ends may still be told `busy` (a
    /// client retrying gets in); it never waits unanswered, as a thread
    /// without a slot is always on its way back to `accept`.
    fn answer(self: &Arc<Self>, stream: TcpStream, peer: SocketAddr, last: bool) {
        let listener = &self.listener;
        if !listener.allow.permits(peer.ip()) {
            listener.log.peer(peer, "- forbidden (not in --allow)");
            let refusal = self.handler.refusal(Refusal::Forbidden);
            self.rejecter.reject(stream, &refusal);
            return;
        }
        let Some(slot) = Slot::claim(&self.active, listener.max_clients) else {
            listener.log.peer(peer, "- busy (at --max-clients)");
            let refusal = self.handler.refusal(Refusal::Busy);
            self.rejecter.reject(stream, &refusal);
            return;
        };
        if last {
            let next = Arc::clone(self);
            if let Err(e) = self.crew.start(listener.name, move || next.work(false)) {
                // Serving it would leave nobody accepting.
                listener
                    .log
                    .peer(peer, &format!("- cannot start a thread: {e}"));
                drop(slot);
                self.rejecter
                    .reject(stream, &self.handler.refusal(Refusal::Busy));
                return;
            }
        }
        let _ = stream.set_nodelay(true);
        let _ = stream.set_write_timeout(Some(listener.write_timeout));
        let _slot = slot;
        self.handler.handle(stream, peer);
    }

    /// Log a failed `accept` (at most once a second, with how many were
    /// not logged since).
    fn failed(&self, e: &io::Error) {
        let mut failures = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let due = failures
            .logged
            .is_none_or(|at| now.duration_since(at) >= Duration::from_secs(1));
        if !due {
            failures.unlogged += 1;
            return;
        }
        let log = &self.listener.log;
        let why = crate::error::describe_io(e);
        let more = match std::mem::take(&mut failures.unlogged) {
            0 => String::new(),
            n => format!(" ({n} more since the last line)"),
        };
        log.line(&format!("- {}accept failed: {why}{more}", log.tag()));
        failures.logged = Some(now);
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

    fn work(queue: &Receiver<TcpStream>, max_lingering: usize) {
        let mut lingering: Vec<Lingering> = Vec::new();
        let mut scratch = [0u8; 16 * 1024];
        let linger = |stream| Lingering {
            stream,
            until: Instant::now() + REJECT_LINGER,
            left: DRAIN_BYTES,
        };
        loop {
            // Nothing to drain: sleep until a refusal comes (polling here
            // woke the thread 50 times a second on an idle server).
            if lingering.is_empty() {
                match queue.recv() {
                    Ok(stream) if max_lingering > 0 => lingering.push(linger(stream)),
                    Ok(_) => continue,
                    Err(_) => return,
                }
            }
            loop {
                match queue.try_recv() {
                    Ok(stream) if lingering.len() < max_lingering => lingering.push(linger(stream)),
                    Ok(_) => {}
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return,
                }
            }
            let now = Instant::now();
            lingering.retain_mut(|l| now < l.until && l.drain(&mut scratch));
            thread::sleep(Duration::from_millis(5));
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

    /// Panics serving its first connection; greets the others and holds
    /// them until the peer closes.
    struct PanicsFirst(AtomicUsize);

    impl Handler for PanicsFirst {
        fn handle(&self, stream: TcpStream, _peer: SocketAddr) {
            if self.0.fetch_add(1, Ordering::AcqRel) == 0 {
                panic!("the first connection panics (a test)");
            }
            let _ = (&stream).write_all(b"hello\n");
            let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
            let _ = io::copy(&mut &stream, &mut io::sink());
        }

        fn refusal(&self, _: Refusal) -> Vec<u8> {
            b"busy\n".to_vec()
        }
    }

    /// Connect and read the first line (empty if closed unanswered; the
    /// timeout only stops a hang).
    fn first_line(addr: SocketAddr) -> (TcpStream, String) {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let mut line = String::new();
        let _ = io::BufRead::read_line(&mut io::BufReader::new(&stream), &mut line);
        (stream, line)
    }

    #[test]
    fn a_panic_serving_one_connection_leaves_a_thread_accepting() {
        let socket = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap();
        let listener = Listener {
            socket,
            name: "panic-test",
            log: Log::off(),
            max_clients: 1,
            max_lingering: 16,
            write_timeout: Duration::from_secs(60),
            allow: AllowList::default(),
        };
        let handler = Arc::new(PanicsFirst(AtomicUsize::new(0)));
        thread::spawn(move || listener.run(&handler));
        assert_eq!(first_line(addr).1, "", "the first one ends in the panic");
        // The place is free again once the panic has unwound (a client
        // may be told busy just before); then, with it taken, the next
        // client is told busy: a thread still accepts, though the one
        // that called run served the panicking connection.
        let held = loop {
            match first_line(addr) {
                (_, busy) if busy == "busy\n" => thread::sleep(Duration::from_millis(10)),
                (held, hello) => {
                    assert_eq!(hello, "hello\n");
                    break held;
                }
            }
        };
        assert_eq!(first_line(addr).1, "busy\n");
        drop(held);
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
