//! What `bench` prints: the readable report, the `--log` lines and the
//! live line. Pure formatting, tested on its own.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use super::stats::{Results, Running, Stats};
use super::{bytes_text, millis, Outcome, KINDS};
use crate::bench::histogram::Histogram;
use crate::util::format;

/// The percentiles every report shows, with their JSON keys and labels.
pub const POINTS: [(&str, &str, f64); 6] = [
    ("min", "min", 0.0),
    ("p50", "p50", 50.0),
    ("p90", "p90", 90.0),
    ("p99", "p99", 99.0),
    ("p999", "p99.9", 99.9),
    ("max", "max", 100.0),
];

/// Rows of the ASCII latency histogram, and the longest bar.
const ROWS: u64 = 10;
const BAR: u64 = 40;

/// How long a run (or merged runs) ran and how fast: the spans merged
/// once, for everything a report says of time.
pub struct Timing {
    /// The union of the spans, for rates over part of the run.
    pub running: Running,
    /// The time some run was running ([`Running::total`]).
    pub wall: Duration,
    pub requests_per_s: f64,
    /// The JSON's number: 0 for a run with no time at all.
    pub mb_per_s: f64,
    /// The throughput as every command shows a rate ([`format::rate`]):
    /// `None` for a run too short or too small to time, which would read
    /// `0.0 MB/s`.
    pub shown_mb_per_s: Option<f64>,
}

impl Timing {
    pub fn of(r: &Results) -> Timing {
        let running = r.running();
        let wall = running.total();
        Timing {
            requests_per_s: per_second(r.stats.requests() as f64, wall),
            mb_per_s: per_second(r.stats.bytes as f64 / 1e6, wall),
            shown_mb_per_s: format::megabytes_per_second(r.stats.bytes, wall),
            running,
            wall,
        }
    }
}

/// How the run was shaped, in words.
pub fn plan_text(r: &Results) -> String {
    let Some(a) = &r.shape else {
        return format!("{}, {} runs with different plans", r.clients, r.runs);
    };
    let s = |n: u64| if n == 1 { "" } else { "s" };
    let mut plan = match (a.duration, a.total) {
        (Some(d), _) => format!("{}, for {}", r.clients, format::seconds(d)),
        (None, Some(total)) => {
            let total = total.saturating_mul(r.runs);
            format!("{}, {total} request{} in all", r.clients, s(total))
        }
        (None, None) => {
            let each = a.requests_each.unwrap_or(1);
            format!("{}, {each} request{} each", r.clients, s(each))
        }
    };
    plan.push_str(if a.keep_alive {
        ", one connection per client"
    } else {
        ", a new connection per request"
    });
    if let Some(rate) = a.rate {
        let _ = write!(plan, ", open loop at {rate} requests/s");
        // A run's rate is its clients' together; merged runs each had
        // their own, at once or not.
        if r.runs > 1 {
            plan.push_str(" in each run");
        }
    }
    if a.warmup > 0 {
        let _ = write!(
            plan,
            ", after {} warm-up request{} each",
            a.warmup,
            s(a.warmup)
        );
    }
    if r.runs > 1 {
        let _ = write!(plan, "; {} runs merged", r.runs);
    }
    plan
}

/// The readable report.
pub fn text(r: &Results) -> String {
    let s = &r.stats;
    let mut out = String::new();
    let row = |out: &mut String, label: &str, value: String| {
        let _ = writeln!(out, "  {label:<12} {value}");
    };
    let _ = writeln!(
        out,
        "bench {} {} (test {})",
        r.addr,
        r.names.join(" "),
        r.test_id
    );
    row(&mut out, "clients", plan_text(r));
    row(&mut out, "requests", s.requests().to_string());
    row(&mut out, "ok", s.ok.to_string());
    let by_kind: Vec<String> = kinds(s)
        .into_iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    row(
        &mut out,
        "failed",
        format!("{}  ({})", s.failed(), by_kind.join(", ")),
    );
    row(&mut out, "corrupt", s.corrupt.to_string());
    row(&mut out, "bytes", bytes_text(s.bytes));
    let t = Timing::of(r);
    row(&mut out, "wall time", format::seconds(t.wall));
    let throughput = format::rate(s.bytes, t.wall).unwrap_or_else(|| "-".into());
    row(
        &mut out,
        "throughput",
        format!("{throughput}, {:.1} requests/s", t.requests_per_s),
    );
    let _ = write!(out, "\n  {:<10}", "(ms)");
    for (_, label, _) in POINTS {
        let _ = write!(out, " {label:>9}");
    }
    out.push('\n');
    for (label, h) in [("latency", &s.latency), ("ttfb", &s.ttfb)] {
        let _ = write!(out, "  {label:<10}");
        for (_, _, p) in POINTS {
            let _ = write!(out, " {:>9}", point(h, p).unwrap_or_else(|| "-".into()));
        }
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "\n  latency histogram (ms, {} completed transfers)",
        s.latency.count()
    );
    for line in bars(&s.latency) {
        let _ = writeln!(out, "  {line}");
    }
    if r.names.len() > 1 {
        per_file_text(&mut out, r);
    }
    // The address, names, ids and failure kinds may come from a --merge
    // file, written anywhere: whatever line shows one, it cannot drive the
    // terminal or pass for another.
    let lines: Vec<String> = out.split('\n').map(format::visible).collect();
    lines.join("\n")
}

/// The per-file table, for a run of several files.
fn per_file_text(out: &mut String, r: &Results) {
    let width = r
        .files
        .iter()
        .map(|(n, _)| format::visible(n).chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    let _ = writeln!(
        out,
        "\n  {:<width$} {:>9} {:>9} {:>7} {:>7} {:>14} {:>9} {:>9}",
        "file", "requests", "ok", "failed", "corrupt", "bytes", "p50 ms", "p99 ms"
    );
    for (name, s) in &r.files {
        let _ = writeln!(
            out,
            "  {:<width$} {:>9} {:>9} {:>7} {:>7} {:>14} {:>9} {:>9}",
            format::visible(name),
            s.requests(),
            s.ok,
            s.failed(),
            s.corrupt,
            s.bytes,
            point(&s.latency, 50.0).unwrap_or_else(|| "-".into()),
            point(&s.latency, 99.0).unwrap_or_else(|| "-".into()),
        );
    }
}

/// The five standard failure kinds (even at zero), then any other seen.
pub fn kinds(s: &Stats) -> Vec<(&str, u64)> {
    let mut out: Vec<(&str, u64)> = KINDS
        .iter()
        .map(|&k| (k, s.errors.get(k).copied().unwrap_or(0)))
        .collect();
    for (k, &n) in &s.errors {
        if !KINDS.contains(&k.as_str()) {
            out.push((k, n));
        }
    }
    out
}

fn per_second(amount: f64, wall: Duration) -> f64 {
    let secs = wall.as_secs_f64();
    if secs > 0.0 {
        amount / secs
    } else {
        0.0
    }
}

/// Percentile `p` in milliseconds; 0 and 100 are the exact min and max.
pub fn point(h: &Histogram, p: f64) -> Option<String> {
    let us = if p <= 0.0 {
        h.min()
    } else if p >= 100.0 {
        h.max()
    } else {
        h.percentile(p)
    };
    us.map(micros_ms)
}

/// The mean in milliseconds.
pub fn mean(h: &Histogram) -> Option<String> {
    h.mean().map(|us| format!("{:.3}", us / 1000.0))
}

fn micros_ms(us: u64) -> String {
    millis(Duration::from_micros(us))
}

/// The ASCII histogram: `ROWS` equal slices from min to max, bars of `#`
/// scaled to the fullest slice.
fn bars(h: &Histogram) -> Vec<String> {
    let slices = bins(h, ROWS);
    if slices.is_empty() {
        return vec!["(no completed transfers)".to_string()];
    }
    let fullest = slices.iter().map(|s| s.2).max().unwrap_or(1).max(1);
    let width = h.count().to_string().len();
    slices
        .iter()
        .map(|&(low, _, c)| {
            let len = if c == 0 {
                0
            } else {
                (c * BAR).div_ceil(fullest)
            };
            format!(
                "{:>10} [{c:>width$}] {}",
                micros_ms(low),
                "#".repeat(len as usize)
            )
            .trim_end()
            .to_string()
        })
        .collect()
}

/// At most `rows` equal slices from min to max (microseconds): each
/// slice's low and high bound and its count; empty without samples.
pub fn bins(h: &Histogram, rows: u64) -> Vec<(u64, u64, u64)> {
    let (Some(min), Some(max)) = (h.min(), h.max()) else {
        return Vec::new();
    };
    let span = max - min + 1;
    let rows = rows.clamp(1, span);
    let mut counts = vec![0u64; rows as usize];
    for (value, count) in h.iter() {
        let row = ((value - min) as u128 * u128::from(rows) / u128::from(span)) as usize;
        counts[row.min(rows as usize - 1)] += count;
    }
    let bound = |i: u64| min + (u128::from(span) * u128::from(i) / u128::from(rows)) as u64;
    counts
        .iter()
        .enumerate()
        .map(|(i, &c)| (bound(i as u64), bound(i as u64 + 1), c))
        .collect()
}

/// One `--log` line for one request, newline included.
pub fn log_line(test_id: &str, o: &Outcome, started_at: SystemTime) -> String {
    let ms = |d: Option<Duration>| d.map_or_else(|| "null".to_string(), millis);
    let (status, integrity, error) = match &o.result {
        Ok(()) => ("ok", "ok", "null".to_string()),
        Err(e) => (
            e.kind(),
            if e.kind() == "corrupt" {
                "corrupt"
            } else {
                "unchecked"
            },
            format::json_string(&e.to_string()),
        ),
    };
    format!(
        "{{\"test_id\":{},\"client_id\":{},\"request\":{},\"file\":{},\"started_at\":\"{}\",\"connect_ms\":{},\"ttfb_ms\":{},\"total_ms\":{},\"bytes\":{},\"status\":\"{status}\",\"integrity\":\"{integrity}\",\"error\":{error},\"attempts\":{}}}\n",
        format::json_string(test_id),
        o.client,
        o.request,
        format::json_string(o.name),
        format::rfc3339(started_at),
        ms(o.connect),
        ms(o.ttfb),
        millis(o.total),
        o.bytes,
        o.attempts,
    )
}

/// The live line: done / total, current rate, failures so far.
pub fn live_line(
    done: u64,
    total: Option<u64>,
    elapsed: Duration,
    duration: Option<Duration>,
    rate: f64,
    failed: u64,
) -> String {
    let progress = match (total, duration) {
        (Some(total), _) => format!("{done} / {total} requests"),
        (None, Some(d)) => format!(
            "{done} requests  {:.1} / {:.1} s",
            elapsed.as_secs_f64(),
            d.as_secs_f64()
        ),
        (None, None) => format!("{done} requests"),
    };
    format!("bench  {progress}  {rate:.0} requests/s  {failed} failed")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::stats::Shape;
    use crate::error::{Error, Phase};
    use std::time::{Instant, UNIX_EPOCH};

    fn results(stats: Stats, wall: Duration) -> Results {
        Results {
            test_id: "abc".into(),
            addr: "127.0.0.1:9".into(),
            names: vec!["a.bin".into()],
            protocol: "tcpfetch/1".into(),
            clients: 2,
            shape: Some(Shape {
                requests_each: Some(3),
                total: None,
                duration: None,
                keep_alive: false,
                rate: None,
                warmup: 0,
            }),
            runs: 1,
            stats,
            spans: vec![(1_000_000, 1_000_000 + wall.as_micros() as u64)],
            timeline: Default::default(),
            files: Vec::new(),
            first_error: None,
        }
    }

    fn stats() -> Stats {
        let mut s = Stats {
            ok: 5,
            bytes: 5_000_000,
            ..Stats::default()
        };
        s.errors.insert("busy".into(), 1);
        for us in [1000, 2000, 3000, 4000, 50_000] {
            s.latency.record_micros(us);
            s.ttfb.record_micros(us / 10);
        }
        s
    }

    #[test]
    fn the_report_shows_counts_kinds_percentiles_and_a_histogram() {
        let text = text(&results(stats(), Duration::from_secs(2)));
        for want in [
            "  requests     6\n",
            "  ok           5\n",
            "  failed       1  (refused 0, busy 1, timeout 0, protocol 0, io 0)\n",
            "  corrupt      0\n",
            "  bytes        5000000 (4.8 MiB)\n",
            "  throughput   2.5 MB/s, 3.0 requests/s\n",
            "  clients      2, 3 requests each, a new connection per request\n",
            "     p99.9",
            "  latency        1.000",
            "50.000\n",
            "[4] ########################################\n",
            "[1] ##########\n",
        ] {
            assert!(text.contains(want), "{want:?} missing from\n{text}");
        }
        assert!(!text.contains("p50 ms"), "no per-file table for one file");
    }

    #[test]
    fn plans_read_as_asked() {
        let mut r = results(stats(), Duration::from_secs(1));
        let shape = r.shape.as_mut().unwrap();
        (
            shape.requests_each,
            shape.total,
            shape.warmup,
            shape.keep_alive,
        ) = (None, Some(1), 2, true);
        assert_eq!(
            plan_text(&r),
            "2, 1 request in all, one connection per client, after 2 warm-up requests each"
        );
        r.runs = 3;
        assert!(plan_text(&r).ends_with("3 requests in all, one connection per client, after 2 warm-up requests each; 3 runs merged"));
        r.shape = None;
        assert_eq!(plan_text(&r), "2, 3 runs with different plans");
    }

    #[test]
    fn several_files_get_a_table_of_their_own() {
        let mut r = results(stats(), Duration::from_secs(1));
        r.names.push("b.bin".into());
        r.files = vec![
            ("a.bin".into(), stats()),
            ("b.bin".into(), Stats::default()),
        ];
        let text = text(&r);
        assert!(
            text.contains(
                "  file   requests        ok  failed corrupt          bytes    p50 ms    p99 ms\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "  a.bin         6         5       1       0        5000000     2.991    49.919\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "  b.bin         0         0       0       0              0         -         -\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn json_has_every_key_and_nulls_for_empty_histograms() {
        let mut s = stats();
        let json = crate::bench::json::json(&results(s.clone(), Duration::from_secs(2)));
        for key in [
            "\"clients\":2,",
            "\"requests\":6,",
            "\"ok\":5,",
            "\"failed\":1,",
            "\"corrupt\":0,",
            "\"bytes\":5000000,",
            "\"seconds\":2.000000,",
            "\"throughput_mb_s\":2.500,",
            "\"requests_per_s\":3.000,",
            "\"errors\":{\"refused\":0,\"busy\":1,\"timeout\":0,\"protocol\":0,\"io\":0}",
            "\"latency_ms\":{\"min\":1.000,\"p50\":2.991,",
            "\"p999\":49.919,\"max\":50.000,\"mean\":12.000}",
            "\"ttfb_ms\":{\"min\":0.100,",
            "\"keep_alive\":false,\"rate\":null,\"bench_format\":1,",
            "\"started_at\":\"1970-01-01T00:00:01.000Z\",\"ended_at\":\"1970-01-01T00:00:03.000Z\",\"spans\":[[1000000,3000000]]",
        ] {
            assert!(json.contains(key), "{key} missing from {json}");
        }
        assert!(json.starts_with('{') && json.ends_with("}\n"));
        s.latency = Histogram::new();
        let json = crate::bench::json::json(&results(s, Duration::ZERO));
        assert!(json.contains("\"latency_ms\":{\"min\":null,\"p50\":null,"));
        assert!(json.contains("\"requests_per_s\":0.000"));
    }

    #[test]
    fn log_lines_carry_every_field() {
        let mut o = Outcome {
            client: 4,
            request: 2,
            name: "a \"b\".bin",
            started: Instant::now(),
            connect: Some(Duration::from_micros(1500)),
            ttfb: None,
            total: Duration::from_millis(7),
            bytes: 10,
            attempts: 1,
            result: Ok(()),
        };
        let at = UNIX_EPOCH + Duration::from_millis(1_795_599_390_123);
        assert_eq!(
            log_line("t1", &o, at),
            "{\"test_id\":\"t1\",\"client_id\":4,\"request\":2,\"file\":\"a \\\"b\\\".bin\",\"started_at\":\"2026-11-25T09:36:30.123Z\",\"connect_ms\":1.500,\"ttfb_ms\":null,\"total_ms\":7.000,\"bytes\":10,\"status\":\"ok\",\"integrity\":\"ok\",\"error\":null,\"attempts\":1}\n"
        );
        o.result = Err(Error::Integrity("bad".into()));
        let line = log_line("t1", &o, at);
        assert!(line.contains("\"status\":\"corrupt\",\"integrity\":\"corrupt\",\"error\":\"integrity failure: bad\""), "{line}");
        o.result = Err(Error::Timeout {
            phase: Phase::ReceiveHeader,
        });
        let line = log_line("t1", &o, at);
        assert!(
            line.contains("\"status\":\"timeout\",\"integrity\":\"unchecked\""),
            "{line}"
        );
    }

    #[test]
    fn an_empty_histogram_draws_a_note() {
        assert_eq!(bars(&Histogram::new()), ["(no completed transfers)"]);
        let mut h = Histogram::new();
        h.record_micros(5);
        assert_eq!(bars(&h).len(), 1);
    }

    #[test]
    fn the_live_line_shows_progress_rate_and_failures() {
        assert_eq!(
            live_line(5, Some(10), Duration::from_secs(1), None, 4.6, 1),
            "bench  5 / 10 requests  5 requests/s  1 failed"
        );
        assert_eq!(
            live_line(
                5,
                None,
                Duration::from_secs(3),
                Some(Duration::from_secs(10)),
                0.0,
                0
            ),
            "bench  5 requests  3.0 / 10.0 s  0 requests/s  0 failed"
        );
    }
}
