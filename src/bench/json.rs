//! `bench --json`: a run as one JSON object on one line. The first keys are
//! the summary a script reads; the rest (from `bench_format` on) carry
//! everything `bench --merge` needs to add runs up exactly: the histograms'
//! counters, the spans of time, the timeline by second and the per-file
//! breakdown. [`super::load`] reads it back.

use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use super::histogram::{self, Histogram};
use super::report::{kinds, mean, point, Timing, POINTS};
use super::stats::{Results, Stats};
use crate::util::format::{self, json_string};

/// The version of the keys past the summary; `--merge` refuses others.
pub const FORMAT: u64 = 1;

/// The histogram's shape, as `--json` states it; runs merge only when it
/// is the same.
pub fn histogram_params() -> String {
    format!(
        "{{\"unit\":\"us\",\"sub_bits\":{},\"top_bits\":{},\"buckets\":{}}}",
        histogram::SUB_BITS,
        histogram::TOP_BITS,
        histogram::BUCKETS
    )
}

/// The whole `--json` object, newline included.
pub fn json(r: &Results) -> String {
    let timing = Timing::of(r);
    let mut out = head(r, &timing);
    let s = &r.stats;
    let shape = r.shape.as_ref();
    let opt = |v: Option<String>| v.unwrap_or_else(|| "null".into());
    let (start, end) = r.bounds();
    let spans: Vec<String> = r.spans.iter().map(|(s, e)| format!("[{s},{e}]")).collect();
    let _ = write!(
        out,
        ",\"bench_format\":{FORMAT},\"protocol\":{},\"runs\":{},\"requests_each\":{},\"total_requests\":{},\"duration_s\":{},\"warmup\":{},\"started_at\":\"{}\",\"ended_at\":\"{}\",\"spans\":[{}],\"first_error\":{},\"histogram\":{}",
        json_string(&r.protocol),
        r.runs,
        opt(shape.and_then(|a| a.requests_each).map(|n| n.to_string())),
        opt(shape.and_then(|a| a.total).map(|n| n.to_string())),
        opt(shape.and_then(|a| a.duration).map(|d| format!("{:.6}", d.as_secs_f64()))),
        opt(shape.map(|a| a.warmup.to_string())),
        format::rfc3339(UNIX_EPOCH + Duration::from_micros(start)),
        format::rfc3339(UNIX_EPOCH + Duration::from_micros(end)),
        spans.join(","),
        opt(r.first_error.as_deref().map(json_string)),
        histogram_params(),
    );
    let _ = write!(
        out,
        ",\"latency\":{},\"ttfb\":{}",
        counters(&s.latency),
        counters(&s.ttfb)
    );
    let seconds: Vec<String> = r
        .timeline
        .iter()
        .map(|(&t, s)| {
            let from = t.saturating_mul(1_000_000);
            second(
                t,
                s,
                timing.running.covered(from, from.saturating_add(1_000_000)),
            )
        })
        .collect();
    let _ = write!(out, ",\"timeline\":[{}]", seconds.join(","));
    if r.names.len() > 1 {
        let files: Vec<String> = r
            .files
            .iter()
            .map(|(name, s)| format!("{{\"file\":{},{}}}", json_string(name), stats(s)))
            .collect();
        let _ = write!(out, ",\"per_file\":[{}]", files.join(","));
    }
    out.push_str("}\n");
    out
}

/// The summary alone (the keys a script reads, through `rate`), as the
/// `ui` page shows it, newline included.
pub fn summary(r: &Results) -> String {
    head(r, &Timing::of(r)) + "}\n"
}

/// The summary's members, without the closing brace.
fn head(r: &Results, t: &Timing) -> String {
    let s = &r.stats;
    let names: Vec<String> = r.names.iter().map(|n| json_string(n)).collect();
    let mut out = format!(
        "{{\"test_id\":{},\"addr\":{},\"files\":[{}],\"clients\":{},\"requests\":{},\"ok\":{},\"failed\":{},\"corrupt\":{},\"bytes\":{},\"seconds\":{:.6},\"throughput_mb_s\":{:.3},\"requests_per_s\":{:.3},\"errors\":{}",
        json_string(&r.test_id),
        json_string(&r.addr),
        names.join(","),
        r.clients,
        s.requests(),
        s.ok,
        s.failed(),
        s.corrupt,
        s.bytes,
        t.wall.as_secs_f64(),
        t.mb_per_s,
        t.requests_per_s,
        errors(s, true),
    );
    let _ = write!(
        out,
        ",\"latency_ms\":{},\"ttfb_ms\":{}",
        points(&s.latency),
        points(&s.ttfb)
    );
    let shape = r.shape.as_ref();
    let opt = |v: Option<String>| v.unwrap_or_else(|| "null".into());
    let _ = write!(
        out,
        ",\"keep_alive\":{},\"rate\":{}",
        opt(shape.map(|a| a.keep_alive.to_string())),
        opt(shape.and_then(|a| a.rate).map(|r| r.to_string()))
    );
    out
}

/// One second of the timeline: its Unix second `t`, throughput (over the
/// part of the second the run was `running`) and p99, then its [`stats`].
fn second(t: u64, s: &Stats, running: Duration) -> String {
    let p99 = point(&s.latency, 99.0).unwrap_or_else(|| "null".into());
    format!(
        "{{\"t\":{t},\"throughput_mb_s\":{:.3},\"p99_ms\":{p99},{}}}",
        s.bytes as f64 / 1e6 / running.as_secs_f64().max(1e-3),
        stats(s)
    )
}

/// The members (no braces) that describe a [`Stats`] completely.
fn stats(s: &Stats) -> String {
    format!(
        "\"requests\":{},\"ok\":{},\"failed\":{},\"corrupt\":{},\"bytes\":{},\"errors\":{},\"latency_ms\":{},\"ttfb_ms\":{},\"latency\":{},\"ttfb\":{}",
        s.requests(),
        s.ok,
        s.failed(),
        s.corrupt,
        s.bytes,
        errors(s, false),
        points(&s.latency),
        points(&s.ttfb),
        counters(&s.latency),
        counters(&s.ttfb)
    )
}

/// Failures by kind; with `all`, the standard kinds even at zero.
fn errors(s: &Stats, all: bool) -> String {
    let fields: Vec<String> = kinds(s)
        .into_iter()
        .filter(|&(_, n)| all || n > 0)
        .map(|(k, n)| format!("{}:{n}", json_string(k)))
        .collect();
    format!("{{{}}}", fields.join(","))
}

/// The report's percentiles and mean, in milliseconds.
fn points(h: &Histogram) -> String {
    let mut fields: Vec<String> = POINTS
        .iter()
        .map(|&(k, _, p)| format!("\"{k}\":{}", point(h, p).unwrap_or_else(|| "null".into())))
        .collect();
    let mean = mean(h).unwrap_or_else(|| "null".into());
    fields.push(format!("\"mean\":{mean}"));
    format!("{{{}}}", fields.join(","))
}

/// The histogram itself: count, exact min, max and sum (µs), and every
/// non-empty counter as `[index, count]`.
fn counters(h: &Histogram) -> String {
    let buckets: Vec<String> = h.buckets().map(|(i, c)| format!("[{i},{c}]")).collect();
    let opt = |v: Option<u64>| v.map_or_else(|| "null".into(), |v| v.to_string());
    format!(
        "{{\"count\":{},\"min\":{},\"max\":{},\"sum\":{},\"buckets\":[{}]}}",
        h.count(),
        opt(h.min()),
        opt(h.max()),
        h.sum(),
        buckets.join(",")
    )
}
