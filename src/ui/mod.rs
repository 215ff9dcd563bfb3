//! `tcpfetch ui`: a page, served by the binary itself, to test a server,
//! pick and download a file, and run a load test, from any browser.
//!
//! The HTTP side is deliberately small (see `http`): one request per
//! connection, a thread per connection up to [`MAX_CONNECTIONS`], every
//! read and write timed out. Downloads and load tests run as background
//! jobs on their own threads; the page polls `GET /api/jobs/<id>`, so a long
//! load test never holds up anything else.
//!
//! The page can make this machine connect out and write files, so two checks
//! guard it. The `Host` header must name the address we listen on (a DNS
//! rebinding page carries its own host name), and every `POST` must carry the
//! per-process token embedded in the page (`X-Tcpfetch-Token`, which a
//! cross-site form cannot send and a cross-site script cannot read), with an
//! `Origin`, when present, of our own.

mod http;

use std::collections::VecDeque;
use std::io::BufReader;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use lexopt::prelude::*;

use crate::bench;
use crate::client::{self, Connection, Timeouts};
use crate::error::{Error, Result};
use crate::proto;
use crate::serve::access::AllowList;
use crate::serve::listener::{close_gently, DeadlineReader, Handler, Listener, Refusal};
use crate::serve::log::Log;
use crate::util::cli;
use crate::util::format::json_string;
use crate::util::hex;
use http::{Request, Response};

const USAGE: &str = "\
Usage: tcpfetch ui [--server ADDR] [--listen ADDR] [--dir DOWNLOADS]

Serve a page to test a tcpfetch server, pick and download its files
(verified, into DOWNLOADS) and run load tests, from any browser. The first
line printed is the page's address.

Options:
  --server ADDR      the tcpfetch server the page starts with
  --listen ADDR      where the page is served (default 127.0.0.1:8080; port 0
                     picks a free one). Anyone who can reach it can make this
                     machine download files: keep it on loopback
  --dir DOWNLOADS    where downloads are saved (default: the current
                     directory)
  -h, --help         show this help
";

const PAGE: &str = include_str!("page.html");

/// Connections served at once; one more is answered 503 and closed.
const MAX_CONNECTIONS: usize = 64;
/// Silence allowed on one read or write, and in all for reading a request.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_DEADLINE: Duration = Duration::from_secs(20);
/// Finished jobs kept for the page to read; the oldest go first.
const MAX_JOBS: usize = 64;
/// Jobs running at once (downloads and load tests together).
const MAX_RUNNING: usize = 8;
/// Load-test bounds from the page (the command line allows more).
const MAX_CLIENTS: usize = 1000;
const MAX_REQUESTS: u64 = 100_000;
const MAX_NAMES: usize = 16;
/// The per-request log kept in memory for one load test, and the rows of
/// it the job's status carries for the page's table.
const MAX_LOG_BYTES: usize = 16 * 1024 * 1024;
const LOG_ROWS: usize = 200;
/// Slices of the latency histogram the page draws.
const BINS: u64 = 20;
/// How long the page's own connections to a tcpfetch server may wait.
const CLIENT_TIMEOUTS: Timeouts = Timeouts {
    connect: Duration::from_secs(5),
    io: Duration::from_secs(15),
};

#[derive(Debug)]
pub struct Args {
    pub server: Option<String>,
    pub listen: String,
    pub dir: PathBuf,
}

pub fn parse(parser: &mut lexopt::Parser) -> Result<Option<Args>> {
    let mut args = Args {
        server: None,
        listen: "127.0.0.1:8080".to_string(),
        dir: PathBuf::from("."),
    };
    while let Some(arg) = parser.next()? {
        if let Some(done) = cli::common_flag(&arg, USAGE) {
            return done.map(|()| None);
        }
        match arg {
            Long("server") => args.server = Some(cli::string_value(parser)?),
            Long("listen") => args.listen = cli::string_value(parser)?,
            Long("dir") => args.dir = PathBuf::from(parser.value()?),
            _ => return Err(arg.unexpected().into()),
        }
    }
    if let Some(server) = &args.server {
        client::split_addr(server)?;
    }
    Ok(Some(args))
}

pub fn run(args: Args) -> Result<()> {
    let dir = std::fs::canonicalize(&args.dir)
        .ok()
        .filter(|d| d.is_dir())
        .ok_or_else(|| Error::usage(format!("--dir {}: no such directory", args.dir.display())))?;
    let target = *client::resolve(&args.listen)?
        .first()
        .ok_or_else(|| Error::usage(format!("bad address '{}'", args.listen)))?;
    let listener = TcpListener::bind(target)
        .map_err(|e| Error::local(format!("cannot listen on {target}"), e))?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::local("cannot read the listening address", e))?;
    let shared = Arc::new(Shared {
        token: hex::encode(&crate::secret::nonce()?),
        local,
        server: args.server.unwrap_or_default(),
        dir,
        jobs: Mutex::new(Jobs {
            next: 1,
            list: VecDeque::new(),
        }),
    });
    cli::print_text(&format!("ui on http://{local}/\n"))?;
    if !local.ip().is_loopback() {
        eprintln!(
            "tcpfetch: warning: the page is reachable beyond this machine at {local}; anyone who can open it can make this machine download files"
        );
    }
    let listener = Listener {
        socket: listener,
        name: "ui",
        log: Log::off(),
        max_clients: MAX_CONNECTIONS,
        write_timeout: IO_TIMEOUT,
        allow: AllowList::default(),
    };
    listener.run(&shared);
    Ok(())
}

impl Handler for Shared {
    fn handle(&self, stream: TcpStream, _peer: SocketAddr) {
        serve_connection(self, &stream);
    }

    fn refusal(&self, why: Refusal) -> Vec<u8> {
        let response = match why {
            Refusal::Busy => Response::error(503, "too many connections; try again"),
            Refusal::Forbidden => Response::error(403, "your address is not allowed here"),
        };
        let mut bytes = Vec::new();
        let _ = response.write_to(&mut bytes);
        bytes
    }
}

/// What every connection thread shares.
struct Shared {
    token: String,
    local: SocketAddr,
    /// `--server`, prefilled in the page.
    server: String,
    dir: PathBuf,
    jobs: Mutex<Jobs>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn serve_connection(shared: &Shared, stream: &TcpStream) {
    let mut deadline = DeadlineReader::new(stream, REQUEST_DEADLINE);
    deadline.silence = IO_TIMEOUT;
    let mut reader = BufReader::with_capacity(16 * 1024, deadline);
    let response = match http::read_request(&mut reader) {
        Ok(request) => respond(shared, &request),
        Err(e) => match e.status() {
            Some((status, message)) => Response::error(status, message),
            None => return,
        },
    };
    // A peer whose request we did not read to the end (a 413) would
    // otherwise get a reset instead of our answer.
    if response.write_to(&mut &*stream).is_ok() {
        close_gently(stream);
    }
}

/// The one place a request is checked and routed.
fn respond(shared: &Shared, request: &Request) -> Response {
    if let Err(refusal) = check_host(shared, request) {
        return refusal;
    }
    let path = request.path.as_str();
    let (allowed, is_action) = match path {
        "/" => ("GET", false),
        "/api/ping" | "/api/list" | "/api/download" | "/api/bench" => ("POST", true),
        p if p.starts_with("/api/jobs/") => ("GET", false),
        _ => return Response::error(404, "no such page"),
    };
    if request.method != allowed {
        return Response::error(405, &format!("use {allowed} here")).with("Allow", allowed);
    }
    if is_action {
        if let Err(refusal) = check_action(shared, request) {
            return refusal;
        }
        let Some(form) = http::form_fields(&request.body) else {
            return Response::error(400, "the body must be a URL-encoded form");
        };
        let form = Form(form);
        return match path {
            "/api/ping" => ping(&form),
            "/api/list" => list(&form),
            "/api/download" => start_download(shared, &form),
            _ => start_bench(shared, &form),
        };
    }
    match path {
        "/" => page(shared),
        _ => job_resource(shared, &path["/api/jobs/".len()..]),
    }
}

/// The `Host` header must name the address we listen on (or `localhost`
/// on loopback); bound to every interface, any IP address with our port
/// is fine, since DNS rebinding needs a host name.
fn check_host(shared: &Shared, request: &Request) -> Result<(), Response> {
    let Some(host) = request.header("host") else {
        return Err(Response::error(400, "a single Host header is needed"));
    };
    if accepted_host(shared.local, host) {
        Ok(())
    } else {
        Err(Response::error(
            403,
            &format!("this page answers only to http://{}/", shared.local),
        ))
    }
}

fn accepted_host(local: SocketAddr, host: &str) -> bool {
    if host == local.to_string() {
        return true;
    }
    let Ok((name, port)) = client::split_addr(host) else {
        return false;
    };
    if port != local.port() || !host.ends_with(&format!(":{port}")) {
        return false;
    }
    if local.ip().is_loopback() && name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    local.ip().is_unspecified() && name.parse::<IpAddr>().is_ok()
}

/// An action needs the page's token, and an `Origin` (browsers send one on
/// every cross-site `POST`) naming this page.
fn check_action(shared: &Shared, request: &Request) -> Result<(), Response> {
    if let Some(origin) = request.header("origin") {
        let ours = origin
            .strip_prefix("http://")
            .is_some_and(|host| accepted_host(shared.local, host));
        if !ours {
            return Err(Response::error(403, "cross-site request refused"));
        }
    } else if request.header_count("origin") > 0 {
        return Err(Response::error(403, "cross-site request refused"));
    }
    let token = request.header("x-tcpfetch-token").unwrap_or("");
    if !crate::proto::auth::same_bytes(token.as_bytes(), shared.token.as_bytes()) {
        return Err(Response::error(
            403,
            "missing or wrong X-Tcpfetch-Token; reload the page",
        ));
    }
    Ok(())
}

fn page(shared: &Shared) -> Response {
    let html = PAGE
        .replace("{{TOKEN}}", &shared.token)
        .replace("{{SERVER}}", &html_escape(&shared.server))
        .replace("{{DIR}}", &html_escape(&shared.dir.display().to_string()))
        .replace("{{VERSION}}", cli::VERSION);
    Response::new(200, "text/html; charset=utf-8", html).with(
        "Content-Security-Policy",
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    )
}

fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A decoded form body.
struct Form(Vec<(String, String)>);

impl Form {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
            .collect()
    }

    /// The `server` field, checked as an address.
    fn server(&self) -> Result<String, Response> {
        let server = self
            .get("server")
            .ok_or_else(|| field_error("server", "enter the server's address"))?;
        client::split_addr(server).map_err(|e| field_error("server", &e.to_string()))?;
        Ok(server.to_string())
    }

    /// A whole number field within `range`, `default` when left empty.
    fn number(&self, key: &str, default: u64, max: u64) -> Result<u64, Response> {
        let Some(text) = self.get(key) else {
            return Ok(default);
        };
        match text.parse::<u64>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(field_error(
                key,
                &format!("needs a whole number from 1 to {max}"),
            )),
        }
    }
}

/// 400 naming the form field at fault, so the page can show the message
/// next to it.
fn field_error(field: &str, message: &str) -> Response {
    Response::json(
        400,
        format!(
            "{{\"error\":{},\"field\":{}}}\n",
            json_string(message),
            json_string(field)
        ),
    )
}

/// 502 for a failure on the way to the tcpfetch server, with its hint.
fn upstream_error(e: &Error) -> Response {
    let status = if e.exit_kind() == crate::error::ExitKind::Usage {
        400
    } else {
        502
    };
    let hint = e.hint().map_or_else(|| "null".to_string(), json_string);
    Response::json(
        status,
        format!(
            "{{\"error\":{},\"kind\":{},\"hint\":{hint}}}\n",
            json_string(&e.to_string()),
            json_string(e.kind())
        ),
    )
}

fn ping(form: &Form) -> Response {
    let server = match form.server() {
        Ok(s) => s,
        Err(r) => return r,
    };
    let started = Instant::now();
    let result = Connection::open(&server, CLIENT_TIMEOUTS).and_then(|mut conn| {
        let connected = started.elapsed();
        let sent = Instant::now();
        let version = conn.ping()?;
        Ok((conn.peer, version, connected, sent.elapsed()))
    });
    match result {
        Ok((peer, version, connect, rtt)) => Response::json(
            200,
            format!(
                "{{\"version\":{},\"peer\":{},\"connect_ms\":{},\"rtt_ms\":{}}}\n",
                json_string(&version),
                json_string(&peer.to_string()),
                bench::millis(connect),
                bench::millis(rtt)
            ),
        ),
        Err(e) => upstream_error(&e),
    }
}

fn list(form: &Form) -> Response {
    let server = match form.server() {
        Ok(s) => s,
        Err(r) => return r,
    };
    match Connection::open(&server, CLIENT_TIMEOUTS).and_then(|mut c| c.list()) {
        Ok(entries) => {
            let files: Vec<String> = entries
                .iter()
                .map(|e| {
                    format!(
                        "{{\"name\":{},\"size\":{},\"sha256\":{}}}",
                        json_string(&e.name),
                        e.size,
                        e.digest
                            .map_or_else(|| "null".to_string(), |d| json_string(&hex::encode(&d)))
                    )
                })
                .collect();
            Response::json(200, format!("{{\"files\":[{}]}}\n", files.join(",")))
        }
        Err(e) => upstream_error(&e),
    }
}

/// The jobs the page started, newest last.
struct Jobs {
    next: u64,
    list: VecDeque<Arc<Job>>,
}

struct Job {
    id: u64,
    kind: &'static str,
    /// What the job works on: the download's local path, the test's files.
    subject: String,
    started: Instant,
    state: Mutex<JobState>,
}

#[derive(Default)]
struct JobState {
    finished: Option<Duration>,
    done: u64,
    total: Option<u64>,
    failed: u64,
    /// The failure that ended the job, and its kind.
    error: Option<(String, &'static str)>,
    /// The finished job's result, as a JSON value.
    result: Option<String>,
    /// A load test's per-request log (JSON lines), up to `MAX_LOG_BYTES`.
    log: Vec<u8>,
    log_lines: u64,
    log_dropped: u64,
}

impl Job {
    fn running(&self) -> bool {
        lock(&self.state).finished.is_none()
    }

    fn finish(&self, outcome: Result<String>) {
        let mut state = lock(&self.state);
        state.finished = Some(self.started.elapsed());
        match outcome {
            Ok(result) => state.result = Some(result),
            Err(e) => state.error = Some((e.to_string(), e.kind())),
        }
    }

    fn json(&self) -> String {
        let s = lock(&self.state);
        let elapsed = s.finished.unwrap_or_else(|| self.started.elapsed());
        let status = match (&s.finished, &s.error) {
            (None, _) => "running",
            (Some(_), None) => "ok",
            (Some(_), Some(_)) => "failed",
        };
        let (error, kind) = match &s.error {
            Some((message, kind)) => (json_string(message), json_string(kind)),
            None => ("null".to_string(), "null".to_string()),
        };
        let mut out = format!(
            "{{\"id\":{},\"kind\":\"{}\",\"subject\":{},\"state\":\"{status}\",\"elapsed_s\":{:.3},\"done\":{},\"total\":{},\"failed\":{},\"error\":{error},\"error_kind\":{kind},\"result\":{}",
            self.id,
            self.kind,
            json_string(&self.subject),
            elapsed.as_secs_f64(),
            s.done,
            s.total.map_or_else(|| "null".to_string(), |t| t.to_string()),
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

impl Shared {
    /// Register a new job, unless too many run; the oldest finished jobs
    /// make room.
    fn add_job(&self, kind: &'static str, subject: String) -> Result<Arc<Job>, Response> {
        let mut jobs = lock(&self.jobs);
        if jobs.list.iter().filter(|j| j.running()).count() >= MAX_RUNNING {
            return Err(Response::error(
                409,
                "too many downloads and tests are running; wait for one to finish",
            ));
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
            state: Mutex::new(JobState::default()),
        });
        jobs.next += 1;
        jobs.list.push_back(Arc::clone(&job));
        Ok(job)
    }

    fn find_job(&self, id: u64) -> Option<Arc<Job>> {
        lock(&self.jobs).list.iter().find(|j| j.id == id).cloned()
    }

    fn running(&self, kind: &str, subject: &str) -> bool {
        lock(&self.jobs)
            .list
            .iter()
            .any(|j| j.kind == kind && (subject.is_empty() || j.subject == subject) && j.running())
    }
}

/// Run `work` for `job` on its own thread; 202 with the job's id.
fn spawn_job(
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

fn start_download(shared: &Shared, form: &Form) -> Response {
    let server = match form.server() {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some(name) = form.get("name").map(str::to_string) else {
        return field_error("name", "pick a file to download");
    };
    if let Err(why) = proto::check_name(&name) {
        return field_error("name", &format!("cannot request this name: {why}"));
    }
    // Only the last component of the server's name is ever used locally.
    let path = match crate::cmd::get::local_path(&name, shared.dir.to_str()) {
        Ok(p) => p,
        Err(e) => return field_error("name", &e.to_string()),
    };
    let subject = path.display().to_string();
    if shared.running("download", &subject) {
        return field_error("name", &format!("'{subject}' is already downloading"));
    }
    let job = match shared.add_job("download", subject) {
        Ok(job) => job,
        Err(r) => return r,
    };
    let dir = shared.dir.clone();
    spawn_job(job, move |job| {
        let saved =
            crate::cmd::get::fetch_to(&server, &name, &dir, CLIENT_TIMEOUTS, &mut |done, size| {
                let mut s = lock(&job.state);
                s.done = done;
                s.total = Some(size);
            })?;
        let mut s = lock(&job.state);
        s.done = saved.size;
        s.total = Some(saved.size);
        Ok(format!(
            "{{\"name\":{},\"path\":{},\"size\":{},\"sha256\":\"{}\",\"already\":{}}}",
            json_string(&name),
            json_string(&saved.path.display().to_string()),
            saved.size,
            hex::encode(&saved.digest),
            saved.already
        ))
    })
}

fn start_bench(shared: &Shared, form: &Form) -> Response {
    let server = match form.server() {
        Ok(s) => s,
        Err(r) => return r,
    };
    let names: Vec<String> = form.all("name").into_iter().map(str::to_string).collect();
    if names.is_empty() {
        return field_error("name", "pick at least one file");
    }
    if names.len() > MAX_NAMES {
        return field_error("name", &format!("pick at most {MAX_NAMES} files"));
    }
    for name in &names {
        if let Err(why) = proto::check_name(name) {
            return field_error("name", &format!("cannot request '{name}': {why}"));
        }
    }
    let clients = match form.number("clients", 10, MAX_CLIENTS as u64) {
        Ok(n) => n as usize,
        Err(r) => return r,
    };
    let requests = match form.number("requests", 1, MAX_REQUESTS) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let rate = match form.get("rate").map(str::parse::<f64>) {
        None => None,
        Some(Ok(r)) if r > 0.0 && r <= 1e6 => Some(r),
        Some(_) => return field_error("rate", "needs a number of requests per second, or nothing"),
    };
    if shared.running("bench", "") {
        return field_error("bench", "a load test is already running");
    }
    let job = match shared.add_job("bench", names.join(" ")) {
        Ok(job) => job,
        Err(r) => return r,
    };
    let args = bench::Args {
        addr: server,
        names,
        clients,
        requests,
        duration: None,
        keep_alive: form.get("keep_alive").is_some(),
        rate,
        log: None,
        json: true,
        save: None,
        timeouts: CLIENT_TIMEOUTS,
        retries: 0,
        key: None,
        legacy: false,
    };
    lock(&job.state).total = Some(requests * clients as u64);
    spawn_job(job, move |job| {
        let measured = bench::measure(&args, Some(&Watch(job)))?;
        {
            let mut s = lock(&job.state);
            s.done = measured.stats.requests();
            s.failed = measured.stats.failed() + measured.stats.corrupt;
        }
        let bins: Vec<String> = measured
            .latency_bins(BINS)
            .iter()
            .map(|&(low, high, n)| {
                format!(
                    "[{},{},{n}]",
                    bench::millis(Duration::from_micros(low)),
                    bench::millis(Duration::from_micros(high))
                )
            })
            .collect();
        Ok(format!(
            "{{\"report\":{},\"bins\":[{}],\"first_error\":{}}}",
            measured.json(&args).trim_end(),
            bins.join(","),
            measured
                .first_error
                .as_deref()
                .map_or_else(|| "null".to_string(), json_string)
        ))
    })
}

/// A load test's observer: progress and log lines into the job.
struct Watch<'a>(&'a Job);

impl bench::Observer for Watch<'_> {
    fn progress(&self, done: u64, _total: Option<u64>, failed: u64, _elapsed: Duration) {
        let mut s = lock(&self.0.state);
        s.done = done;
        s.failed = failed;
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
fn job_resource(shared: &Shared, rest: &str) -> Response {
    let (id, log) = match rest.strip_suffix("/log.jsonl") {
        Some(id) => (id, true),
        None => (rest, false),
    };
    let Some(job) = id
        .parse::<u64>()
        .ok()
        .filter(|_| id.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|id| shared.find_job(id))
    else {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_args(args: &[&str]) -> Result<Args> {
        parse(&mut lexopt::Parser::from_args(args.iter().copied())).map(|a| a.unwrap())
    }

    #[test]
    fn flags_parse_and_default() {
        let a = parse_args(&[]).unwrap();
        assert_eq!(a.listen, "127.0.0.1:8080");
        assert_eq!(a.dir, PathBuf::from("."));
        let a = parse_args(&["--server", "h:1", "--listen", "0.0.0.0:0", "--dir", "d"]).unwrap();
        assert_eq!(a.server.as_deref(), Some("h:1"));
        assert_eq!(a.listen, "0.0.0.0:0");
        for bad in [&["x"][..], &["--server", "h:x"], &["--bogus"]] {
            assert_eq!(parse_args(bad).unwrap_err().exit_code(), 2, "{bad:?}");
        }
    }

    #[test]
    fn only_our_own_host_is_accepted() {
        let lo: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let v6: SocketAddr = "[::1]:8080".parse().unwrap();
        let cases = [
            (lo, "127.0.0.1:8080", true),
            (lo, "localhost:8080", true),
            (lo, "LOCALHOST:8080", true),
            (lo, "localhost:8081", false),
            (lo, "localhost", false),
            (lo, "127.0.0.1", false),
            (lo, "evil.example:8080", false),
            (lo, "127.0.0.2:8080", false),
            (lo, "127.0.0.1:08080", false),
            (any, "10.1.2.3:8080", true),
            (any, "evil.example:8080", false),
            (any, "localhost:8080", false),
            (v6, "[::1]:8080", true),
            (v6, "localhost:8080", true),
            (v6, "::1", false),
        ];
        for (local, host, want) in cases {
            assert_eq!(accepted_host(local, host), want, "{local} {host}");
        }
    }

    #[test]
    fn html_is_escaped_in_the_page() {
        assert_eq!(
            html_escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
