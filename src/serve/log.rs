//! The access log: one line per event on stderr, stamped with the time.
//!
//! Each listener logs under its own tag, so the lines of the two protocols
//! read alike (`1.2.3.4:5 - busy …`, `1.2.3.4:5 legacy - busy …`).
//!
//! Logging never stops serving. Lines go over a bounded queue to one writer
//! thread, so a connection (or the accept loop) only ever formats a line
//! and hands it over: a log reader that stops reading (`serve 2>&1 |
//! shipper` with the shipper stuck) fills the queue, and further lines are
//! dropped and counted instead of blocking everyone on a full pipe. The
//! queue is bounded in bytes as well as in lines: requests are logged
//! whole and escaped, so one line can be 24 KiB. The
//! writer reports the count (`- N log lines dropped …`) once it can write
//! again. A reader that went away (EPIPE) is ignored the same way: a log
//! write failing is never a reason to end a connection, let alone `serve`.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::OnceLock;
use std::thread;
use std::time::{Instant, SystemTime};

/// Lines queued for the writer before new ones are dropped: about 1 MiB of
/// lines, several seconds of a busy server's log.
const QUEUE_LINES: usize = 8192;
/// Bytes queued for the writer before new lines are dropped. A request is
/// quoted whole and a control character is escaped in up to six bytes, so
/// a 4 KiB request line can log 24 KiB: 8192 of those were 200 MB held
/// for a stopped log reader.
const QUEUE_BYTES: usize = 1 << 20;

#[derive(Debug, Clone, Copy)]
pub struct Log {
    quiet: bool,
    /// Written after the peer's address: empty for protocol v1, `legacy `
    /// for the old protocol.
    tag: &'static str,
}

impl Log {
    pub fn new(quiet: bool, tag: &'static str) -> Log {
        Log { quiet, tag }
    }

    /// A log that writes nothing (`-q`, and `ui`, which keeps no log).
    pub fn off() -> Log {
        Log::new(true, "")
    }

    pub fn tag(&self) -> &'static str {
        self.tag
    }

    /// One line, stamped with the time.
    pub fn line(&self, text: &str) {
        if !self.quiet {
            let stamp = crate::util::format::rfc3339(SystemTime::now());
            queue(format!("{stamp} {text}"));
        }
    }

    /// A line about one peer: `<peer> <tag><text>`.
    pub fn peer(&self, peer: SocketAddr, text: &str) {
        if !self.quiet {
            self.line(&format!("{peer} {}{text}", self.tag));
        }
    }
}

/// The result of an answer with a file (or none: 0 of 0) in the access
/// log, alike for both protocols: `ok <sent>`, or `aborted <sent>/<due>`
/// for a file cut short (the client went away, or the file shrank), which
/// operators count.
pub fn transfer(sent: u64, due: u64) -> String {
    if sent < due {
        format!("aborted {sent}/{due}")
    } else {
        format!("ok {sent}")
    }
}

/// A request as the access log quotes it: whole (the protocol bounds a
/// line at 4096 bytes; a cut name cannot tell two long paths apart), `"`
/// and `\` escaped so a request cannot close the quotes and forge the
/// fields after them, and control or invisible characters shown as
/// `\u{..}` so it cannot drive the terminal of whoever reads the log.
///
/// Built in one pass into the one string the caller gets (the log line
/// [`request`] appends to): bytes that are not UTF-8 become U+FFFD as
/// `String::from_utf8_lossy` makes them, without a lossy copy, an escaped
/// copy and a visible copy of every request first.
pub fn quoted(request: &[u8]) -> String {
    // Room for the quotes and for the result `request` appends.
    let mut out = String::with_capacity(request.len() + 32);
    out.push('"');
    for chunk in request.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' || c == '"' {
                out.push('\\');
                out.push(c);
            } else {
                crate::util::format::push_visible(&mut out, c);
            }
        }
        if !chunk.invalid().is_empty() {
            out.push(char::REPLACEMENT_CHARACTER);
        }
    }
    out.push('"');
    out
}

/// One answered request's access-log text (after the peer): the request
/// [`quoted`], its result and the time it took, the same for v1 and for
/// the old protocol so one parser reads both.
pub fn request(request: &[u8], result: &str, started: Instant) -> String {
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let mut line = quoted(request);
    // Writing to a String cannot fail.
    let _ = write!(line, " {result} {ms:.1}ms");
    line
}

/// A line on stderr that is not part of the access log (progress of
/// `--precompute`, shown even with `-q`), through the same writer so it
/// can neither block nor interleave mid-line.
pub fn note(text: &str) {
    queue(text.to_string());
}

/// The queue to the writer thread, started on first use.
struct Writer {
    /// `None` when the thread could not be started: lines are dropped.
    queue: Option<SyncSender<String>>,
    /// Bytes held by the lines queued and not yet written.
    queued: AtomicUsize,
    dropped: AtomicU64,
}

fn writer() -> &'static Writer {
    static WRITER: OnceLock<Writer> = OnceLock::new();
    WRITER.get_or_init(|| {
        let (tx, rx) = mpsc::sync_channel(QUEUE_LINES);
        let started = thread::Builder::new()
            .name("log".into())
            .stack_size(64 * 1024)
            .spawn(move || write_lines(&rx, &mut io::stderr(), writer()));
        Writer {
            queue: started.ok().map(|_| tx),
            queued: AtomicUsize::new(0),
            dropped: AtomicU64::new(0),
        }
    })
}

fn queue(line: String) {
    writer().offer(line);
}

impl Writer {
    /// Queue `line` if the queue has room for it in lines and in bytes,
    /// else drop it and count it.
    fn offer(&self, line: String) {
        let Some(tx) = &self.queue else {
            return;
        };
        // Counted before it is sent, so the writer never takes off more
        // than was put on.
        let size = line.capacity();
        let fits = self.queued.fetch_add(size, Ordering::Relaxed) + size <= QUEUE_BYTES;
        if !fits || tx.try_send(line).is_err() {
            self.queued.fetch_sub(size, Ordering::Relaxed);
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The writer thread: every queued line, in order, with a note of how many
/// were dropped since the last one written. Write errors are ignored (the
/// reader may be gone for good; the lines keep being taken off the queue).
///
/// Each line goes out in one `write_all` with its newline (`writeln!` on
/// unbuffered stderr makes a write per piece), so a reader never sees
/// half a line.
fn write_lines(rx: &Receiver<String>, out: &mut impl Write, counts: &Writer) {
    for mut line in rx {
        let size = line.capacity();
        let dropped = counts.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            let stamp = crate::util::format::rfc3339(SystemTime::now());
            let note = format!(
                "{stamp} - {dropped} log lines dropped: the log reader was not keeping up\n"
            );
            let _ = out.write_all(note.as_bytes());
        }
        line.push('\n');
        let _ = out.write_all(line.as_bytes());
        drop(line);
        counts.queued.fetch_sub(size, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that always fails, as stderr does once its reader is gone.
    struct Closed;

    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }
        fn flush(&mut self) -> io::Result<()> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }
    }

    #[test]
    fn requests_are_quoted_with_tricky_bytes_escaped() {
        let rows: &[(&[u8], &str)] = &[
            (b"GET 0 a.txt", r#""GET 0 a.txt""#),
            (b"", r#""""#),
            // Quotes and backslashes cannot end the field early.
            (br#"GET 0 a" ok 5"#, r#""GET 0 a\" ok 5""#),
            (br"a\b\", r#""a\\b\\""#),
            (br#"\""#, r#""\\\"""#),
            // A backslash sent before `u{..}` stays told apart from an escape.
            (br"\u{1b}", r#""\\u{1b}""#),
            // Controls: C0, DEL, C1 (U+009B starts a terminal sequence).
            (
                b"\x1b[2J\x07\n\r\t\x00\x7f",
                r#""\u{1b}[2J\u{7}\n\r\t\u{0}\u{7f}""#,
            ),
            ("a\u{9b}b".as_bytes(), r#""a\u{9b}b""#),
            // Invisible and reordering characters.
            (
                "x\u{202e}y\u{feff}\u{200b}".as_bytes(),
                r#""x\u{202e}y\u{feff}\u{200b}""#,
            ),
            ("ü \u{2764}\u{fe0f}".as_bytes(), "\"ü \u{2764}\u{fe0f}\""),
            // Not UTF-8: a U+FFFD per bad sequence, as from_utf8_lossy has it.
            (b"a\xffb", "\"a\u{fffd}b\""),
            (b"\xe2\x80", "\"\u{fffd}\""),
            (b"\xe2\x80\"", "\"\u{fffd}\\\"\""),
            (
                b"\xc0\xaf\xed\xa0\x80",
                "\"\u{fffd}\u{fffd}\u{fffd}\u{fffd}\u{fffd}\"",
            ),
        ];
        for (request, want) in rows {
            assert_eq!(quoted(request), *want, "{request:?}");
            assert_eq!(quoted(request), three_passes(request), "{request:?}");
        }
        // Seeded random bytes, biased to the ones that need care.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let alphabet = b"\"\\\x1b\x7f\x9b\xc2\xe2\x80\xae\xef\xbb\xbf\xff\n az";
        for _ in 0..2000 {
            let mut request = Vec::new();
            for _ in 0..(x % 24) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let byte = if x.is_multiple_of(3) {
                    x as u8
                } else {
                    alphabet[(x >> 8) as usize % alphabet.len()]
                };
                request.push(byte);
            }
            assert_eq!(quoted(&request), three_passes(&request), "{request:?}");
        }
    }

    /// `quoted` as it was: a lossy copy, an escaped copy, a visible copy.
    fn three_passes(request: &[u8]) -> String {
        let text = String::from_utf8_lossy(request);
        let escaped = text.replace('\\', "\\\\").replace('"', "\\\"");
        format!("\"{}\"", crate::util::format::visible(&escaped))
    }

    /// A writer with a queue of `lines` and no thread.
    fn unwritten(lines: usize) -> (Writer, Receiver<String>) {
        let (tx, rx) = mpsc::sync_channel(lines);
        let writer = Writer {
            queue: Some(tx),
            queued: AtomicUsize::new(0),
            dropped: AtomicU64::new(0),
        };
        (writer, rx)
    }

    #[test]
    fn a_closed_log_is_drained_without_panicking() {
        let (mut writer, rx) = unwritten(4);
        for i in 0..4 {
            writer.offer(format!("line {i}"));
        }
        // Its one sender gone, the writer stops once the queue is empty.
        writer.queue = None;
        write_lines(&rx, &mut Closed, &writer);
        assert_eq!(writer.queued.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn the_queue_is_bounded_in_lines_and_in_bytes() {
        let (writer, _rx) = unwritten(3);
        for _ in 0..5 {
            writer.offer("short".to_string());
        }
        assert_eq!(writer.dropped.load(Ordering::Relaxed), 2, "past 3 lines");
        let (writer, rx) = unwritten(QUEUE_LINES);
        let long = || "\\u{1b}".repeat(4096);
        let fit = QUEUE_BYTES / long().capacity();
        for _ in 0..fit + 10 {
            writer.offer(long());
        }
        assert_eq!(rx.try_iter().count(), fit);
        assert_eq!(writer.dropped.load(Ordering::Relaxed), 10, "past 1 MiB");
    }
}
