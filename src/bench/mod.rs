//! `tcpfetch bench`: many concurrent clients against one server, every
//! transfer verified, latencies in fixed-memory histograms.
//!
//! Each client is a thread in a `std::thread::scope`; all of them wait at a
//! start gate and are released together (after their `--warmup` requests,
//! at a second gate). A finished request is counted into the run's
//! [`Results`] under one short lock (the one the `--log` line takes too):
//! totals, its second of the timeline and its file, in fixed-memory
//! histograms, never a vector of samples. The main thread draws the live
//! line meanwhile.

pub mod histogram;
pub mod html;
pub mod json;
pub mod load;
pub mod stats;

mod report;
mod worker;

use std::fs::{self, File};
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use report::text;
use stats::{Results, Shape};

use crate::client::{Peer, Protocol, Timeouts};
use crate::error::{Error, Result};
use crate::util::format;
use crate::util::lock;

/// The most clients one bench runs: each is a thread, about 20 KiB of
/// memory with a small file (see `worker`).
pub const MAX_CLIENTS: usize = 10_000;
/// A client thread's stack. A client touches 12 KiB of it (3 pages, with
/// glibc's thread control block and TLS at the top, measured in
/// /proc/PID/pagemap); 16 KiB ran every path (a name looked up through
/// NSS, refused, not found) but overflowed printing a panic's
/// `RUST_BACKTRACE=full`, which 32 KiB printed. Only touched pages cost
/// memory; the size is what 10 000 clients commit (640 MiB, not 2.5 GiB
/// at 256 KiB: `vm.overcommit_memory=2` and `ulimit -v` count it).
const CLIENT_STACK: usize = 64 * 1024;
/// The failure kinds every report lists, even at zero.
pub const KINDS: [&str; 5] = ["refused", "busy", "timeout", "protocol", "io"];

/// A load test: who to load, with what, how hard, for how long.
#[derive(Debug)]
pub struct Plan {
    /// The server, its timeouts and protocol (`--legacy` is one session
    /// per request).
    pub peer: Peer,
    /// The files; each client cycles through them.
    pub names: Vec<String>,
    pub clients: usize,
    pub requests: u64,
    /// Keep requesting for this long instead of `requests` times.
    pub duration: Option<Duration>,
    /// One connection per client for all its requests.
    pub keep_alive: bool,
    /// Open loop: requests per second in total.
    pub rate: Option<f64>,
    /// One JSON line per request to this file.
    pub log: Option<PathBuf>,
    /// Keep each file as `DIR/CLIENT-REQUEST-NAME`.
    pub save: Option<PathBuf>,
    /// Transient failures retried within the request.
    pub retries: u32,
    /// `--total`: this many requests shared by all clients, instead of
    /// `requests` each.
    pub total: Option<u64>,
    /// Requests each client makes before the measured run, not counted.
    pub warmup: u64,
    /// The run's id (`--test-id`), so runs on several hosts share one;
    /// made up from the clock when not given.
    pub test_id: Option<String>,
}

impl Default for Plan {
    fn default() -> Plan {
        Plan {
            peer: Peer::v1("", Timeouts::default()),
            names: Vec::new(),
            clients: 0,
            requests: 1,
            duration: None,
            keep_alive: false,
            rate: None,
            log: None,
            save: None,
            retries: 0,
            total: None,
            warmup: 0,
            test_id: None,
        }
    }
}

impl Plan {
    /// An empty [`Results`] for this plan, to count the requests into.
    fn results(&self, test_id: String) -> Results {
        let mut names: Vec<String> = Vec::new();
        for name in &self.names {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        Results {
            test_id,
            addr: self.peer.addr.clone(),
            files: names
                .iter()
                .map(|n| (n.clone(), Default::default()))
                .collect(),
            names: self.names.clone(),
            protocol: match self.peer.protocol {
                Protocol::V1 { .. } => "tcpfetch/1",
                Protocol::Legacy => "legacy",
            }
            .to_string(),
            clients: self.clients as u64,
            shape: Some(Shape {
                requests_each: (self.total.is_none() && self.duration.is_none())
                    .then_some(self.requests),
                total: self.total.filter(|_| self.duration.is_none()),
                duration: self.duration,
                keep_alive: self.keep_alive,
                rate: self.rate,
                warmup: self.warmup,
            }),
            runs: 1,
            stats: Default::default(),
            spans: Vec::new(),
            timeline: Default::default(),
            first_error: None,
        }
    }
}

/// Everything one finished request tells.
pub struct Outcome<'a> {
    pub client: usize,
    pub request: u64,
    pub name: &'a str,
    /// When the request started (its scheduled time under `--rate`).
    pub started: Instant,
    /// The connect of this request; `None` on a reused connection or when
    /// no connection was made.
    pub connect: Option<Duration>,
    /// From `started` to the status line.
    pub ttfb: Option<Duration>,
    /// From `started` to the end of the body or the failure.
    pub total: Duration,
    pub bytes: u64,
    pub attempts: u32,
    pub result: Result<()>,
}

/// The start line all clients wait at. Not a `std::sync::Barrier`: when a
/// thread cannot be spawned (a thread or memory limit), a barrier sized for
/// N would never fill and the started clients would hang; the gate is
/// opened (or cancelled) by the main thread once spawning is over. Not a
/// mutex and condvar either: woken together, the clients would take the
/// mutex one after another, a convoy of context switches on the cores
/// that the first ones released are being timed on. A `OnceLock` wakes
/// them all with nothing to take.
struct Gate(OnceLock<Option<(Instant, SystemTime)>>);

impl Gate {
    fn new() -> Gate {
        Gate(OnceLock::new())
    }

    /// Let the clients through: at `at` (the instant, and the wall clock
    /// at that instant).
    fn open(&self, at: (Instant, SystemTime)) {
        let _ = self.0.set(Some(at));
    }

    fn cancel(&self) {
        let _ = self.0.set(None);
    }

    /// Block until the gate opens: when it opened, or `None` when the run
    /// was cancelled.
    fn wait(&self) -> Option<(Instant, SystemTime)> {
        *self.0.wait()
    }
}

/// The `--log` file, shared by all clients. A line is formatted before the
/// lock is taken; the first write error is kept and reported at the end.
struct Log {
    out: BufWriter<File>,
    error: Option<io::Error>,
}

/// What the clients share.
struct Run<'a> {
    plan: &'a Plan,
    test_id: String,
    /// Where clients wait to start (their warm-up, when there is one).
    gate: Gate,
    /// Where warmed-up clients wait to start the measured run.
    measured: Gate,
    /// Where finished clients wait for the run's end.
    ended: Gate,
    warmed: AtomicUsize,
    log: Option<Mutex<Log>>,
    /// The next `--rate` schedule slot, or `--total` request.
    next_slot: AtomicU64,
    done: AtomicU64,
    failed: AtomicU64,
    finished: AtomicUsize,
    /// When the last client so far finished.
    last_finished: Mutex<Option<Instant>>,
    /// What the run measured so far.
    results: Mutex<Results>,
    /// Who else hears of progress and requests (`ui`), instead of the
    /// terminal's live line.
    observer: Option<&'a dyn Observer>,
}

/// A watcher of a run in progress (`ui` shows it in a page).
pub trait Observer: Sync {
    /// About five times a second: requests done (and in total, when known),
    /// failures so far, time since the start.
    fn progress(&self, done: u64, total: Option<u64>, failed: u64, elapsed: Duration);
    /// One finished request, as its `--log` line (newline included).
    fn request(&self, line: &str);
    /// An error to end the run early (`ui`'s Cancel), asked between
    /// requests and for every chunk: clients start no new request,
    /// requests in flight are cut and not counted, and what finished is
    /// measured as usual. The same question `get` asks its observer.
    fn go_on(&self) -> Result<()> {
        Ok(())
    }
}

/// A finished run, before anything is printed.
pub struct Measured {
    pub results: Results,
    /// The first failure to write the `--log` file.
    pub log_error: Option<io::Error>,
}

impl Measured {
    /// The summary alone, as the `ui` page shows it.
    pub fn summary_json(&self) -> String {
        json::summary(&self.results)
    }

    /// The latency histogram drawn at a phone's width and a desktop's
    /// (with the page's `id`), as the report draws it; `None` without a
    /// completed transfer.
    pub fn histogram_svgs(&self, id: &str) -> Option<(String, String)> {
        let r = &self.results;
        (r.stats.latency.count() > 0).then(|| {
            (
                html::histogram_chart(r, crate::util::svg::NARROW, Some(id)),
                html::histogram_chart(r, crate::util::svg::WIDE, Some(id)),
            )
        })
    }

    /// The latency histogram in `rows` equal slices from min to max, as
    /// (low, high, count) in microseconds.
    pub fn latency_bins(&self, rows: u64) -> Vec<(u64, u64, u64)> {
        report::bins(&self.results.stats.latency, rows)
    }
}

impl Run<'_> {
    /// How many requests the run makes, when that is known in advance.
    fn total(&self) -> Option<u64> {
        match self.plan.duration {
            Some(_) => None,
            None => Some(
                self.plan
                    .total
                    .unwrap_or_else(|| self.plan.requests.saturating_mul(self.plan.clients as u64)),
            ),
        }
    }

    /// When this client's next request starts, or `None` when it is done.
    /// Under `--rate` request k of the whole run is due at start + k/R;
    /// the client sleeps until then and the latency counts from then.
    /// Under `--total` the clients take the requests from one counter.
    fn next_start(&self, start: Instant, own: u64) -> Option<Instant> {
        self.go_on().ok()?;
        let now = Instant::now();
        let Some(rate) = self.plan.rate else {
            return match (self.plan.duration, self.plan.total) {
                (Some(d), _) => (now < start + d).then_some(now),
                (None, Some(total)) => {
                    (self.next_slot.fetch_add(1, Ordering::Relaxed) < total).then_some(now)
                }
                (None, None) => (own < self.plan.requests).then_some(now),
            };
        };
        let k = self.next_slot.fetch_add(1, Ordering::Relaxed);
        if self.total().is_some_and(|total| k >= total) {
            return None;
        }
        let offset = Duration::try_from_secs_f64(k as f64 / rate).ok()?;
        if self.plan.duration.is_some_and(|d| offset >= d) {
            return None;
        }
        let due = start.checked_add(offset)?;
        // In short naps, so that a cancel is heard at a slow rate too.
        while let Some(left) = due.checked_duration_since(Instant::now()) {
            self.go_on().ok()?;
            thread::sleep(left.min(Duration::from_millis(100)));
        }
        Some(due)
    }

    /// Whether the observer (when there is one) lets the run go on.
    fn go_on(&self) -> Result<()> {
        self.observer.map_or(Ok(()), |o| o.go_on())
    }

    fn record(&self, outcome: &Outcome, start: (Instant, SystemTime)) {
        self.done.fetch_add(1, Ordering::Relaxed);
        let since = outcome.started.saturating_duration_since(start.0);
        let started_at = start.1 + since;
        let second = micros(started_at + outcome.total) / 1_000_000;
        {
            let mut results = lock(&self.results);
            results.add(outcome, second);
            if let Err(e) = &outcome.result {
                self.failed.fetch_add(1, Ordering::Relaxed);
                results.first_error.get_or_insert_with(|| e.to_string());
            }
        }
        if self.observer.is_none() && self.log.is_none() {
            return;
        }
        // One line for both the observer and the `--log` file.
        let line = report::log_line(&self.test_id, outcome, started_at);
        if let Some(observer) = self.observer {
            observer.request(&line);
        }
        if let Some(log) = &self.log {
            let mut log = lock(log);
            if log.error.is_none() {
                if let Err(e) = log.out.write_all(line.as_bytes()) {
                    log.error = Some(e);
                }
            }
        }
    }
}

/// Microseconds since the Unix epoch.
fn micros(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, micros_of)
}

/// Marks a client finished when it returns (or panics), for the main
/// thread's wait, and when: the run ends with its last client, not at the
/// main thread's next look (every 20 ms).
struct Finished<'a>(&'a Run<'a>);

impl Drop for Finished<'_> {
    fn drop(&mut self) {
        let mut last = lock(&self.0.last_finished);
        *last = Some(Instant::now());
        self.0.finished.fetch_add(1, Ordering::Release);
    }
}

/// Run the load test `plan` describes and return what it measured,
/// printing nothing; `observer` (when given) hears of progress instead of
/// the terminal.
pub fn measure(plan: &Plan, observer: Option<&dyn Observer>) -> Result<Measured> {
    let log = match &plan.log {
        Some(path) => {
            let file = File::create(path)
                .map_err(|e| Error::local(format!("cannot write '{}'", path.display()), e))?;
            Some(Mutex::new(Log {
                out: BufWriter::with_capacity(64 * 1024, file),
                error: None,
            }))
        }
        None => None,
    };
    if let Some(dir) = &plan.save {
        fs::create_dir_all(dir)
            .map_err(|e| Error::local(format!("cannot create '{}'", dir.display()), e))?;
    }
    fit_descriptors(plan)?;
    let test_id = plan.test_id.clone().unwrap_or_else(test_id);
    let run = Run {
        plan,
        results: Mutex::new(plan.results(test_id.clone())),
        test_id,
        gate: Gate::new(),
        measured: Gate::new(),
        ended: Gate::new(),
        warmed: AtomicUsize::new(0),
        log,
        next_slot: AtomicU64::new(0),
        done: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        finished: AtomicUsize::new(0),
        last_finished: Mutex::new(None),
        observer,
    };
    let span = thread::scope(|scope| -> Result<(u64, u64)> {
        let mut clients = Vec::with_capacity(plan.clients);
        for id in 1..=plan.clients {
            let run = &run;
            let spawned = thread::Builder::new()
                .name(format!("client {id}"))
                .stack_size(CLIENT_STACK)
                .spawn_scoped(scope, move || worker::client(run, id));
            match spawned {
                Ok(handle) => clients.push(handle),
                Err(e) => {
                    run.gate.cancel();
                    run.measured.cancel();
                    run.ended.cancel();
                    return Err(Error::local(format!("cannot start client {id}"), e));
                }
            }
        }
        let (start, wall) = start(&run);
        watch(&run, start);
        let end = lock(&run.last_finished).unwrap_or_else(Instant::now);
        let took = end.saturating_duration_since(start);
        run.ended.open((Instant::now(), SystemTime::now()));
        for handle in clients {
            handle
                .join()
                .map_err(|_| Error::Other("a client thread panicked".into()))?;
        }
        let begun = micros(wall);
        Ok((begun, begun.saturating_add(micros_of(took))))
    })?;
    let log_error = match run.log {
        Some(log) => {
            let mut log = log.into_inner().unwrap_or_else(|p| p.into_inner());
            let flushed = log.out.flush();
            log.error.or(flushed.err())
        }
        None => None,
    };
    let mut results = run.results.into_inner().unwrap_or_else(|p| p.into_inner());
    results.spans.push(span);
    Ok(Measured { results, log_error })
}

/// Release the clients: into their warm-up and, once every one is done
/// with it, into the measured run; the measured run's start.
fn start(run: &Run) -> (Instant, SystemTime) {
    run.gate.open((Instant::now(), SystemTime::now()));
    if run.plan.warmup > 0 {
        let clients = run.plan.clients;
        while run.warmed.load(Ordering::Acquire) + run.finished.load(Ordering::Acquire) < clients {
            thread::sleep(Duration::from_millis(1));
        }
    }
    let start = (Instant::now(), SystemTime::now());
    run.measured.open(start);
    start
}

fn micros_of(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Raise the open-file limit to the hard one (as `serve` does) and fail
/// at once, with the numbers, if the clients still cannot fit: past it
/// they would fail one by one with "too many open files".
fn fit_descriptors(plan: &Plan) -> Result<()> {
    // A socket per client, a file per client with --save, and some spare.
    let per_client = 1 + u64::from(plan.save.is_some());
    let needed = plan.clients as u64 * per_client + 16;
    match crate::sys::raise_open_files_limit() {
        Ok(limit) if limit.soft < needed => Err(Error::Other(format!(
            "{} clients need about {needed} open files, but the limit is {} (hard limit {}): \
             raise it (ulimit -Hn as root) or use fewer --clients",
            plan.clients, limit.soft, limit.hard
        ))),
        _ => Ok(()),
    }
}

/// One id per run, from the clock and the process id, as hex.
fn test_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mixed = nanos ^ u64::from(std::process::id()).rotate_left(40);
    format!("{mixed:016x}")
}

/// The main thread while the clients run: wait for all of them, drawing
/// the live line about five times a second when stderr is a terminal.
fn watch(run: &Run, start: Instant) {
    const TICK: Duration = Duration::from_millis(200);
    let live = run.observer.is_none() && std::io::stderr().is_terminal();
    let mut last = (start, 0u64);
    let mut drawn = false;
    while run.finished.load(Ordering::Acquire) < run.plan.clients {
        thread::sleep(Duration::from_millis(20));
        let now = Instant::now();
        if now.duration_since(last.0) < TICK {
            continue;
        }
        let done = run.done.load(Ordering::Relaxed);
        if let Some(observer) = run.observer {
            let failed = run.failed.load(Ordering::Relaxed);
            observer.progress(done, run.total(), failed, now.duration_since(start));
            last = (now, done);
            continue;
        }
        if !live {
            continue;
        }
        let rate = (done - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
        last = (now, done);
        let line = report::live_line(
            done,
            run.total(),
            now.duration_since(start),
            run.plan.duration,
            rate,
            run.failed.load(Ordering::Relaxed),
        );
        let mut err = io::stderr().lock();
        let _ = write!(err, "\r{line}\x1b[K");
        let _ = err.flush();
        drawn = true;
    }
    if drawn {
        let mut err = io::stderr().lock();
        let _ = write!(err, "\r\x1b[K");
        let _ = err.flush();
    }
}

/// Milliseconds with microsecond precision, for reports and logs.
pub fn millis(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

/// A human byte count with the exact figure, for the report.
pub fn bytes_text(n: u64) -> String {
    format!("{n} ({})", format::bytes(n))
}
