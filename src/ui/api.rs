//! The page's actions (`POST /api/...`): check the form, then ping or list
//! a tcpfetch server at once, or start a download or a load test as a job.

use std::path::Path;
use std::time::{Duration, Instant};

use super::http::Response;
use super::jobs::{self, Alone, Job, NotAdded, Watch};
use super::Shared;
use crate::bench;
use crate::client::{self, Connection, Timeouts};
use crate::error::{Error, Result};
use crate::proto;
use crate::util::format::json_string;
use crate::util::hex;
use crate::util::lock;

/// Load-test bounds from the page (the command line allows more).
const MAX_CLIENTS: usize = 1000;
const MAX_REQUESTS: u64 = 100_000;
const MAX_NAMES: usize = 16;
/// Slices of the latency histogram the page draws.
const BINS: u64 = 20;
/// How long the page's own connections to a tcpfetch server may wait.
const CLIENT_TIMEOUTS: Timeouts = Timeouts {
    connect: Duration::from_secs(5),
    io: Duration::from_secs(15),
};

/// A decoded form body.
pub struct Form(pub Vec<(String, String)>);

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
    Response::json(
        status,
        format!(
            "{{{}}}\n",
            jobs::error_members(Some(e), ["error", "kind", "hint"])
        ),
    )
}

pub fn ping(form: &Form) -> Response {
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

pub fn list(form: &Form) -> Response {
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

pub fn start_download(shared: &Shared, form: &Form) -> Response {
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
    // Only the last component of the server's name is ever used locally,
    // in the downloads directory: worked out here once, for the job's
    // subject, the download and a cancel's `.part`.
    let Ok(base) = crate::fetch::local_path(&name, None) else {
        return field_error(
            "name",
            &format!("cannot save '{name}': its last part is empty, '.' or '..'"),
        );
    };
    let path = shared.dir.join(base);
    let subject = path.display().to_string();
    let job = match shared
        .jobs
        .add("download", subject.clone(), Alone::PerSubject)
    {
        Ok(job) => job,
        Err(NotAdded::AlreadyRunning) => {
            return field_error("name", &format!("'{subject}' is already downloading"))
        }
        Err(NotAdded::Refused(r)) => return r,
    };
    jobs::spawn(job, move |job| download(job, &server, &name, &path))
}

/// A download job's work: fetch `name` to `path`, its progress (and where
/// a resume started) into the job, until done or cancelled.
fn download(job: &Job, server: &str, name: &str, path: &Path) -> Result<String> {
    let fetched = crate::fetch::fetch_to(server, name, path, CLIENT_TIMEOUTS, &mut |done, size| {
        let mut s = lock(&job.state);
        s.from.get_or_insert(done);
        s.done = done;
        s.total = Some(size);
        drop(s);
        job.go_on()
    });
    let saved = match fetched {
        Ok(saved) => saved,
        // Cut by the page's Cancel: the `.part` stays, as after an
        // interrupted `get`, and the next download of the file resumes it.
        Err(_) if job.cancel_requested() => {
            let part = crate::fetch::part::staging(path);
            let kept = std::fs::metadata(&part).map_or(0, |m| m.len());
            lock(&job.state).cancelled = true;
            return Ok(format!(
                "{{\"name\":{},\"part\":{},\"kept\":{kept}}}",
                json_string(name),
                json_string(&part.display().to_string())
            ));
        }
        Err(e) => return Err(e),
    };
    let mut s = lock(&job.state);
    s.done = saved.size;
    s.total = Some(saved.size);
    Ok(format!(
        "{{\"name\":{},\"path\":{},\"size\":{},\"sha256\":\"{}\",\"already\":{}}}",
        json_string(name),
        json_string(&saved.path.display().to_string()),
        saved.size,
        hex::encode(&saved.digest),
        saved.already
    ))
}

pub fn start_bench(shared: &Shared, form: &Form) -> Response {
    let plan = match bench_plan(form) {
        Ok(plan) => plan,
        Err(r) => return r,
    };
    let job = match shared
        .jobs
        .add("bench", plan.names.join(" "), Alone::PerKind)
    {
        Ok(job) => job,
        Err(NotAdded::AlreadyRunning) => {
            return field_error("bench", "a load test is already running")
        }
        Err(NotAdded::Refused(r)) => return r,
    };
    let planned = plan.requests * plan.clients as u64;
    lock(&job.state).total = Some(planned);
    jobs::spawn(job, move |job| {
        let measured = bench::measure(&plan, Some(&Watch(job)))?;
        let cancelled = {
            let mut s = lock(&job.state);
            s.done = measured.results.stats.requests();
            s.failed = measured.results.stats.failed() + measured.results.stats.corrupt;
            // Cancelled once every request was done is no cancel.
            s.cancelled = job.cancel_requested() && s.done < planned;
            s.cancelled
        };
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
        // The histogram is drawn here, as `bench --report` draws it.
        let svg = measured.histogram_svgs("histogram-svg").map_or_else(
            || "null".to_string(),
            |(narrow, wide)| {
                format!(
                    "{{\"narrow\":{},\"wide\":{}}}",
                    json_string(&narrow),
                    json_string(&wide)
                )
            },
        );
        Ok(format!(
            "{{\"report\":{},\"bins\":[{}],\"histogram_svg\":{svg},\"first_error\":{},\"cancelled\":{cancelled}}}",
            measured.summary_json().trim_end(),
            bins.join(","),
            measured
                .results
                .first_error
                .as_deref()
                .map_or_else(|| "null".to_string(), json_string)
        ))
    })
}

/// The load test the form asks for, within the page's bounds.
fn bench_plan(form: &Form) -> Result<bench::Plan, Response> {
    let server = form.server()?;
    let names: Vec<String> = form.all("name").into_iter().map(str::to_string).collect();
    if names.is_empty() {
        return Err(field_error("name", "pick at least one file"));
    }
    if names.len() > MAX_NAMES {
        return Err(field_error(
            "name",
            &format!("pick at most {MAX_NAMES} files"),
        ));
    }
    for name in &names {
        if let Err(why) = proto::check_name(name) {
            return Err(field_error(
                "name",
                &format!("cannot request '{name}': {why}"),
            ));
        }
    }
    let clients = form.number("clients", 10, MAX_CLIENTS as u64)? as usize;
    let requests = form.number("requests", 1, MAX_REQUESTS)?;
    let rate = match form.get("rate").map(str::parse::<f64>) {
        None => None,
        Some(Ok(r)) if r > 0.0 && r <= 1e6 => Some(r),
        Some(_) => {
            return Err(field_error(
                "rate",
                "needs a number of requests per second, or nothing",
            ))
        }
    };
    Ok(bench::Plan {
        peer: crate::client::Peer::v1(&server, CLIENT_TIMEOUTS),
        names,
        clients,
        requests,
        keep_alive: form.get("keep_alive").is_some(),
        rate,
        ..bench::Plan::default()
    })
}
