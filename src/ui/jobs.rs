//! The page's background jobs: downloads and load tests run on threads of
//! their own, and the page polls their state (`GET /api/jobs/<id>`).
//!
//! A job is cancelled (`POST /api/jobs/<id>/cancel`) by a flag its work
//! checks as bytes arrive: a download stops and keeps its `.part` to resume
//! from, a load test stops its clients and reports what finished. A job
//! that was told to stop but is still winding down is `cancelling`; one
//! that stopped is `cancelled`, one that finished first stays `ok`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use super::http::Response;
use crate::bench;
use crate::error::{Error, Result};
use crate::util::format::json_string;
use crate::util::lock;

/// Finished jobs kept for the page to read; the oldest go first.
const MAX_JOBS: usize = 64;
/// Jobs running at once (downloads and load tests together).
const MAX_RUNNING: usize = 8;
/// The per-request log kept in memory for one load test, and the rows of
/// it the job's status carries for the page's table.
const MAX_LOG_BYTES: usize = 16 * 1024 * 1024;
const LOG_ROWS: usize = 200;
/// Load tests whose log is kept: a new one frees the logs of the finished
/// ones older than the last few, so a long session holds at most 64 MiB of
/// logs, not up to 1 GiB (one per kept job).
const KEPT_LOGS: usize = 4;

/// The jobs the page started, newest last.
pub struct Jobs(Mutex<JobList>);

struct JobList {
    next: u64,
    list: VecDeque<Arc<Job>>,
}

pub struct Job {
    id: u64,
    kind: &'static str,
    /// What the job works on: the download's local path, the test's files.
    subject: String,
    started: Instant,
    /// Set by the page's Cancel; the work checks it.
    pub cancel: Arc<AtomicBool>,
    pub state: Mutex<JobState>,
}

#[derive(Default)]
pub struct JobState {
    finished: Option<Duration>,
    pub done: u64,
    pub total: Option<u64>,
    pub failed: u64,
    /// A download's first byte count: where a resumed transfer started.
    pub from: Option<u64>,
    /// The work stopped because it was cancelled (what it did so far is
    /// in `result`).
    pub cancelled: bool,
    /// The failure that ended the job; the page shows its message and hint
    /// as `get` prints them.
    error: Option<Error>,
    /// The finished job's result, as a JSON value.
    result: Option<String>,
    /// A load test's per-request log (JSON lines), up to `MAX_LOG_BYTES`.
    log: Vec<u8>,
    log_lines: u64,
    log_dropped: u64,
}

/// A failure as the page shows it: its message, kind and hint (what
/// `tcpfetch` prints after the message) as JSON members under the names in
/// `keys`, such as `"error":"…","kind":"network","hint":null`; no failure
/// is three nulls. A failed action and a failed job name them differently,
/// and the page reads both.
pub fn error_members(e: Option<&Error>, keys: [&str; 3]) -> String {
    let [message, kind, hint] = keys;
    let null = || "null".to_string();
    let (m, k, h) = match e {
        Some(e) => (
            json_string(&e.to_string()),
            json_string(e.kind()),
            e.hint().map_or_else(null, |h| json_string(&h)),
        ),
        None => (null(), null(), null()),
    };
    format!("\"{message}\":{m},\"{kind}\":{k},\"{hint}\":{h}")
}

impl Job {
    /// Whether the page asked this job to stop.
    pub fn cancel_requested(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    /// The error that stops the work once the job is cancelled.
    pub fn go_on(&self) -> Result<()> {
        if self.cancel_requested() {
            return Err(Error::Other("cancelled".into()));
        }
        Ok(())
    }

    fn running(&self) -> bool {
        lock(&self.state).finished.is_none()
    }

    fn finish(&self, outcome: Result<String>) {
        let mut state = lock(&self.state);
        state.finished = Some(self.started.elapsed());
        match outcome {
            Ok(result) => state.result = Some(result),
            Err(e) => state.error = Some(e),
        }
    }

    fn json(&self) -> String {
        let s = lock(&self.state);
        let elapsed = s.finished.unwrap_or_else(|| self.started.elapsed());
        let status = match (&s.finished, &s.error) {
            (None, _) if self.cancel_requested() => "cancelling",
            (None, _) => "running",
            (Some(_), _) if s.cancelled => "cancelled",
            (Some(_), None) => "ok",
            (Some(_), Some(_)) => "failed",
        };
        let error = error_members(s.error.as_ref(), ["error", "error_kind", "error_hint"]);
        let mut out = format!(
            "{{\"id\":{},\"kind\":\"{}\",\"subject\":{},\"state\":\"{status}\",\"elapsed_s\":{:.3},\"done\":{},\"total\":{},\"from\":{},\"failed\":{},{error},\"result\":{}",
            self.id,
            self.kind,
            json_string(&self.subject),
            elapsed.as_secs_f64(),
            s.done,
            s.total.map_or_else(|| "null".to_string(), |t| t.to_string()),
            s.from.map_or_else(|| "null".to_string(), |t| t.to_string()),
            s.failed,
            s.result.as_deref().unwrap_or("null"),
        );
        if self.kind == "bench" && s.finished.is_some() {
            let text = String::from_utf8_lossy(&s.log);
            let rows: Vec<&str> = text.lines().take(LOG_ROWS).collect();
            out.push_str(&format!(
                ",\"log\":[{}],\"log_lines\":{},\"log_dropped\":{}",
                rows.join(","),
                s.log_lines,
                s.log_dropped
            ));
        }
        out.push_str("}\n");
        out
    }
}

/// Which running jobs a new one may not run beside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alone {
    /// One of its kind for the same subject (a download to one path).
    PerSubject,
    /// One of its kind at all (a load test).
    PerKind,
}

/// Why [`Jobs::add`] registered no job.
pub enum NotAdded {
    /// One it may not run beside runs: the caller says which.
    AlreadyRunning,
    /// Too many run: the answer to send.
    Refused(Response),
}

impl Jobs {
    pub fn new() -> Jobs {
        Jobs(Mutex::new(JobList {
            next: 1,
            list: VecDeque::new(),
        }))
    }

    /// Register a new job, unless one it may not run beside already runs
    /// or too many run; the oldest finished jobs make room. The check and
    /// the registration are one step, so two requests at once cannot both
    /// pass the check.
    pub fn add(
        &self,
        kind: &'static str,
        subject: String,
        alone: Alone,
    ) -> Result<Arc<Job>, NotAdded> {
        let mut jobs = lock(&self.0);
        let clashes = |j: &Arc<Job>| {
            j.kind == kind && (alone == Alone::PerKind || j.subject == subject) && j.running()
        };
        if jobs.list.iter().any(clashes) {
            return Err(NotAdded::AlreadyRunning);
        }
        if jobs.list.iter().filter(|j| j.running()).count() >= MAX_RUNNING {
            return Err(NotAdded::Refused(Response::error(
                409,
                "too many downloads and tests are running; wait for one to finish",
            )));
        }
        while jobs.list.len() >= MAX_JOBS {
            match jobs.list.iter().position(|j| !j.running()) {
                Some(i) => drop(jobs.list.remove(i)),
                None => break,
            }
        }
        let job = Arc::new(Job {
            id: jobs.next,
            kind,
            subject,
            started: Instant::now(),
            cancel: Arc::new(AtomicBool::new(false)),
            state: Mutex::new(JobState::default()),
        });
        jobs.next += 1;
        if kind == "bench" {
            free_old_logs(&jobs.list);
        }
        jobs.list.push_back(Arc::clone(&job));
        Ok(job)
    }

    fn find(&self, id: u64) -> Option<Arc<Job>> {
        lock(&self.0).list.iter().find(|j| j.id == id).cloned()
    }

    /// `POST /api/jobs/<id>/cancel`: tell a running job to stop. It stops
    /// within a moment (at the next chunk of data, or when a stalled read
    /// times out); the answer is its state now, `cancelling`.
    pub fn cancel(&self, rest: &str) -> Response {
        let Some(job) = job_id(rest).and_then(|id| self.find(id)) else {
            return Response::error(404, "no such job");
        };
        if !job.running() {
            return Response::error(409, "the job has already finished");
        }
        job.cancel.store(true, Ordering::Relaxed);
        Response::json(202, job.json())
    }
}

/// Free the logs of the finished load tests in `list` but the newest
/// `KEPT_LOGS - 1` (the one being added makes `KEPT_LOGS`). The page then
/// says the log kept none of the requests, and the download is empty.
fn free_old_logs(list: &VecDeque<Arc<Job>>) {
    let tests = list.iter().rev().filter(|j| j.kind == "bench");
    for job in tests.skip(KEPT_LOGS - 1) {
        let mut s = lock(&job.state);
        if s.finished.is_some() {
            s.log = Vec::new();
            s.log_dropped = s.log_lines;
        }
    }
}

/// Run `work` for `job` on its own thread; 202 with the job's id.
pub fn spawn(
    job: Arc<Job>,
    work: impl FnOnce(&Job) -> Result<String> + Send + 'static,
) -> Response {
    let id = job.id;
    let worker = Arc::clone(&job);
    let spawned = thread::Builder::new()
        .name(format!("ui job {id}"))
        .spawn(move || {
            let outcome = work(&worker);
            worker.finish(outcome);
        });
    match spawned {
        Ok(_) => Response::json(202, format!("{{\"job\":{id}}}\n")),
        Err(e) => {
            job.finish(Err(Error::local("cannot start the job", e)));
            Response::error(503, "cannot start the job; try again")
        }
    }
}

/// A load test's observer: progress and log lines into the job.
pub struct Watch<'a>(pub &'a Job);

impl bench::Observer for Watch<'_> {
    fn progress(&self, done: u64, _total: Option<u64>, failed: u64, _elapsed: Duration) {
        let mut s = lock(&self.0.state);
        s.done = done;
        s.failed = failed;
    }

    fn go_on(&self) -> Result<()> {
        self.0.go_on()
    }

    fn request(&self, line: &str) {
        let mut s = lock(&self.0.state);
        s.log_lines += 1;
        if s.log.len() + line.len() <= MAX_LOG_BYTES {
            s.log.extend_from_slice(line.as_bytes());
        } else {
            s.log_dropped += 1;
        }
    }
}

/// `GET /api/jobs/<id>` and `GET /api/jobs/<id>/log.jsonl`.
pub fn resource(jobs: &Jobs, rest: &str) -> Response {
    let (id, log) = match rest.strip_suffix("/log.jsonl") {
        Some(id) => (id, true),
        None => (rest, false),
    };
    let Some(job) = job_id(id).and_then(|id| jobs.find(id)) else {
        return Response::error(404, "no such job");
    };
    if !log {
        return Response::json(200, job.json());
    }
    if job.kind != "bench" {
        return Response::error(404, "only load tests have a log");
    }
    let body = lock(&job.state).log.clone();
    Response::new(200, "application/x-ndjson", body).with(
        "Content-Disposition",
        format!("attachment; filename=\"tcpfetch-bench-{}.jsonl\"", job.id),
    )
}

/// A job id as the page writes it: digits only.
fn job_id(text: &str) -> Option<u64> {
    text.parse::<u64>()
        .ok()
        .filter(|_| text.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_reads_the_same_under_either_set_of_keys() {
        let e = Error::Usage("bad \"port\"".into());
        assert_eq!(
            error_members(Some(&e), ["error", "kind", "hint"]),
            r#""error":"bad \"port\"","kind":"usage","hint":"see 'tcpfetch --help'""#
        );
        let e = Error::Integrity("digest differs".into());
        assert_eq!(
            error_members(Some(&e), ["error", "error_kind", "error_hint"]),
            r#""error":"integrity failure: digest differs","error_kind":"corrupt","error_hint":null"#
        );
        assert_eq!(
            error_members(None, ["error", "error_kind", "error_hint"]),
            r#""error":null,"error_kind":null,"error_hint":null"#
        );
    }

    /// A second download to the same path, or a second load test, is
    /// refused while the first runs, and allowed once it has finished.
    #[test]
    fn what_may_not_run_twice_is_refused_while_it_runs() {
        let jobs = Jobs::new();
        let first = jobs
            .add("download", "d/a".into(), Alone::PerSubject)
            .ok()
            .unwrap();
        let again = jobs.add("download", "d/a".into(), Alone::PerSubject);
        assert!(matches!(again, Err(NotAdded::AlreadyRunning)));
        assert!(jobs
            .add("download", "d/b".into(), Alone::PerSubject)
            .is_ok());
        assert!(jobs.add("bench", "x".into(), Alone::PerKind).is_ok());
        let other = jobs.add("bench", "y".into(), Alone::PerKind);
        assert!(matches!(other, Err(NotAdded::AlreadyRunning)));
        first.finish(Ok(String::new()));
        assert!(jobs
            .add("download", "d/a".into(), Alone::PerSubject)
            .is_ok());
    }

    /// Requests that arrive together: exactly one of them gets the job
    /// (checking, then adding under a second lock, let several through).
    #[test]
    fn of_simultaneous_adds_exactly_one_wins() {
        for _ in 0..50 {
            let jobs = Jobs::new();
            let start = std::sync::Barrier::new(8);
            let won = std::sync::atomic::AtomicUsize::new(0);
            thread::scope(|scope| {
                for _ in 0..8 {
                    scope.spawn(|| {
                        start.wait();
                        if jobs.add("bench", "x".into(), Alone::PerKind).is_ok() {
                            won.fetch_add(1, Ordering::Relaxed);
                        }
                    });
                }
            });
            assert_eq!(won.into_inner(), 1);
        }
    }

    /// A session of many load tests keeps the logs of the last KEPT_LOGS
    /// only; the older ones say that their log kept none of the requests.
    #[test]
    fn only_the_last_load_tests_keep_their_logs() {
        let jobs = Jobs::new();
        let tests: Vec<Arc<Job>> = (0..KEPT_LOGS + 2)
            .map(|i| {
                let job = jobs
                    .add("bench", format!("t{i}"), Alone::PerKind)
                    .ok()
                    .unwrap();
                bench::Observer::request(&Watch(&job), "{\"ok\":true}\n");
                job.finish(Ok(String::new()));
                job
            })
            .collect();
        for (i, job) in tests.iter().enumerate() {
            let s = lock(&job.state);
            let kept = i >= tests.len() - KEPT_LOGS;
            assert_eq!(s.log.is_empty(), !kept, "test {i}");
            assert_eq!(s.log_dropped, u64::from(!kept), "test {i}");
            assert_eq!(s.log_lines, 1, "test {i}");
        }
    }
}
