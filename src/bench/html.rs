//! `bench --report FILE.html`: the run (or merged runs) as one
//! self-contained page: inline CSS and SVG, no scripts, nothing fetched.
//! The charts are [`crate::util::svg`]'s, the ones the `ui` page shows,
//! each drawn at a phone's width and a desktop's; CSS shows one.

use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use super::report::{self, kinds, mean, point, Timing, POINTS};
use super::stats::{Results, Running, Stats};
use crate::util::format;
use crate::util::svg::{self, escape, Column, Frame, NARROW, THEME, WIDE};

const CSS: &str = include_str!("report.css");
/// Columns of the latency histogram.
const BINS: u64 = 20;
/// The most columns a chart over time has; longer runs group seconds.
const MAX_COLUMNS: u64 = 120;

/// The whole page.
pub fn report(r: &Results) -> String {
    let mut out = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>tcpfetch bench {}</title>\n<style>\n{THEME}{CSS}</style>\n</head>\n<body>\n<main>\n",
        escape(&r.test_id)
    );
    let timing = Timing::of(r);
    summary(&mut out, r, &timing);
    latency(&mut out, r);
    over_time(&mut out, r, &timing.running);
    if r.names.len() > 1 {
        per_file(&mut out, r);
    }
    let _ = write!(
        out,
        "</main>\n<footer>tcpfetch {} · latencies from a log-linear histogram ({} counters, within 0.78 %)</footer>\n</body>\n</html>\n",
        env!("CARGO_PKG_VERSION"),
        super::histogram::BUCKETS
    );
    out
}

fn summary(out: &mut String, r: &Results, timing: &Timing) {
    let s = &r.stats;
    let (start, end) = r.bounds();
    let at = |us: u64| format::rfc3339(UNIX_EPOCH + Duration::from_micros(us));
    let _ = write!(
        out,
        "<section class=\"card\">\n<h1>Load test report</h1>\n<p class=\"meta mono\">bench {} {}</p>\n<p class=\"meta\">test <span class=\"mono\">{}</span> · {} · {}</p>\n<p class=\"meta\">{} to {} (UTC)</p>\n<div class=\"tiles\">",
        escape(&r.addr),
        escape(&r.names.join(" ")),
        escape(&r.test_id),
        escape(&r.protocol),
        escape(&report::plan_text(r)),
        at(start),
        at(end),
    );
    let tile = |out: &mut String, k: &str, v: String, class: &str, unit: &str| {
        let unit = if unit.is_empty() {
            String::new()
        } else {
            format!("<small>{unit}</small>")
        };
        let _ = write!(out, "<div class=\"tile {class}\"><div class=\"k\">{k}</div><div class=\"v\">{v}{unit}</div></div>");
    };
    let flag = |bad: bool| if bad { "bad" } else { "" };
    tile(out, "Requests", s.requests().to_string(), "", "");
    tile(
        out,
        "OK",
        s.ok.to_string(),
        if s.ok == s.requests() { "good" } else { "" },
        "",
    );
    tile(
        out,
        "Failed",
        s.failed().to_string(),
        flag(s.failed() > 0),
        "",
    );
    tile(
        out,
        "Corrupt",
        s.corrupt.to_string(),
        flag(s.corrupt > 0),
        "",
    );
    // As everywhere: no rate for a run too short or too small to time.
    match timing.shown_mb_per_s {
        Some(mb) => tile(out, "Throughput", format!("{mb:.1}"), "", "MB/s"),
        None => tile(out, "Throughput", "–".into(), "", ""),
    }
    let requests_per_s = format!("{:.1}", timing.requests_per_s);
    tile(out, "Rate", requests_per_s, "", "req/s");
    tile(
        out,
        "Wall time",
        format!("{:.2}", timing.wall.as_secs_f64()),
        "",
        "s",
    );
    let by_kind: Vec<String> = kinds(s)
        .into_iter()
        .map(|(k, n)| format!("{} {n}", escape(k)))
        .collect();
    let _ = write!(
        out,
        "</div>\n<p class=\"kinds\">{} clients · {} bytes · failures by kind: {}</p>\n",
        r.clients,
        escape(&super::bytes_text(s.bytes)),
        by_kind.join(", ")
    );
    if let Some(e) = &r.first_error {
        let _ = writeln!(out, "<p class=\"error\">First failure: {}</p>", escape(e));
    }
    out.push_str("</section>\n");
}

fn latency(out: &mut String, r: &Results) {
    let s = &r.stats;
    out.push_str("<section class=\"card\">\n<h2>Latency (ms)</h2>\n<div class=\"scroll\"><table><thead><tr><th></th>");
    for (_, label, _) in POINTS {
        let _ = write!(out, "<th class=\"num\">{label}</th>");
    }
    out.push_str("<th class=\"num\">mean</th></tr></thead><tbody>");
    for (label, h) in [("total", &s.latency), ("first byte", &s.ttfb)] {
        let _ = write!(out, "<tr><th scope=\"row\">{label}</th>");
        for (_, _, p) in POINTS {
            let _ = write!(
                out,
                "<td class=\"num\">{}</td>",
                point(h, p).unwrap_or_else(|| "-".into())
            );
        }
        let mean = mean(h).unwrap_or_else(|| "-".into());
        let _ = write!(out, "<td class=\"num\">{mean}</td></tr>");
    }
    out.push_str("</tbody></table></div>\n<h2 style=\"margin-top:16px\">Latency histogram</h2>\n");
    if s.latency.count() == 0 {
        out.push_str("<p class=\"meta\">No completed transfers.</p>\n");
    } else {
        both(out, |width| histogram_chart(r, width, None));
    }
    out.push_str("</section>\n");
}

/// The latency histogram as a chart `width` wide: the report's, and the
/// `ui` page's load-test result.
pub fn histogram_chart(r: &Results, width: f64, id: Option<&str>) -> String {
    let bins = report::bins(&r.stats.latency, BINS);
    let cols: Vec<Column> = bins
        .iter()
        .map(|&(low, high, n)| Column {
            label: ms(low),
            title: format!(
                "{n} request{}, {}–{} ms",
                if n == 1 { "" } else { "s" },
                ms(low),
                ms(high)
            ),
            parts: vec![(0, n as f64)],
        })
        .collect();
    let max = format!("ms (max {})", ms(bins.last().map_or(0, |b| b.1)));
    let frame = Frame {
        id,
        ..frame(
            width,
            "Latency histogram: requests by total latency",
            &max,
            "requests",
        )
    };
    svg::columns(&frame, &cols)
}

fn over_time(out: &mut String, r: &Results, spans: &Running) {
    let (first, step, groups) = group_seconds(r);
    // Rates over the part of each column some run was running.
    let running = |offset: u64| {
        let from = (first + offset).saturating_mul(1_000_000);
        let to = from.saturating_add(step.saturating_mul(1_000_000));
        spans.covered(from, to).as_secs_f64().max(1e-3)
    };
    let unit = if step == 1 {
        "s".to_string()
    } else {
        format!("s ({step} s a column)")
    };
    let label = |offset: u64| format!("{offset} s");
    out.push_str("<section class=\"card\">\n<h2>Throughput over time</h2>\n");
    let cols: Vec<Column> = groups
        .iter()
        .map(|(offset, s)| {
            let secs = running(*offset);
            Column {
                label: label(*offset),
                title: format!(
                    "{}: {:.1} MB/s, {:.1} requests/s, {} failed",
                    label(*offset),
                    s.bytes as f64 / 1e6 / secs,
                    s.requests() as f64 / secs,
                    s.failed() + s.corrupt
                ),
                parts: vec![(0, s.bytes as f64 / 1e6 / secs)],
            }
        })
        .collect();
    both(out, |w| {
        svg::columns(
            &frame(
                w,
                "Throughput in MB/s by second since the start",
                &unit,
                "MB/s",
            ),
            &cols,
        )
    });
    out.push_str("<h2 style=\"margin-top:16px\">p99 over time</h2>\n");
    let points: Vec<(String, Option<f64>)> = groups
        .iter()
        .map(|(offset, s)| {
            (
                label(*offset),
                s.latency.percentile(99.0).map(|us| us as f64 / 1000.0),
            )
        })
        .collect();
    both(out, |w| {
        svg::line(
            &frame(
                w,
                "p99 latency in ms by second since the start",
                &unit,
                "ms",
            ),
            &points,
        )
    });
    failures(out, &groups, &unit);
    out.push_str("</section>\n");
}

/// Failures by kind over time (corrupt transfers as a kind of their own),
/// stacked, with a legend.
fn failures(out: &mut String, groups: &[(u64, Stats)], unit: &str) {
    out.push_str("<h2 style=\"margin-top:16px\">Failures over time</h2>\n");
    let mut names: Vec<&str> = Vec::new();
    for (_, s) in groups {
        for kind in s.errors.keys() {
            if !names.contains(&kind.as_str()) {
                names.push(kind);
            }
        }
        if s.corrupt > 0 && !names.contains(&"corrupt") {
            names.push("corrupt");
        }
    }
    if names.is_empty() {
        out.push_str("<p class=\"meta\">No failures.</p>\n");
        return;
    }
    // Series 1… (0 is the accent colour); the palette has 7 before it repeats.
    let series = |i: usize| i % 7 + 1;
    let cols: Vec<Column> = groups
        .iter()
        .map(|(offset, s)| {
            let count = |k: &str| {
                if k == "corrupt" {
                    s.corrupt
                } else {
                    s.errors.get(k).copied().unwrap_or(0)
                }
            };
            let parts: Vec<(usize, f64)> = names
                .iter()
                .enumerate()
                .map(|(i, k)| (series(i), count(k) as f64))
                .collect();
            let text: Vec<String> = names
                .iter()
                .filter(|k| count(k) > 0)
                .map(|k| format!("{k} {}", count(k)))
                .collect();
            Column {
                label: format!("{offset} s"),
                title: format!(
                    "{offset} s: {}",
                    if text.is_empty() {
                        "none".into()
                    } else {
                        text.join(", ")
                    }
                ),
                parts,
            }
        })
        .collect();
    both(out, |w| {
        svg::columns(
            &frame(
                w,
                "Failed requests by kind by second since the start",
                unit,
                "failed",
            ),
            &cols,
        )
    });
    out.push_str("<div class=\"legend\">");
    for (i, k) in names.iter().enumerate() {
        let _ = write!(
            out,
            "<span><i style=\"background:var(--s{})\"></i>{}</span>",
            series(i),
            escape(k)
        );
    }
    out.push_str("</div>\n");
}

fn per_file(out: &mut String, r: &Results) {
    out.push_str("<section class=\"card\">\n<h2>Per file</h2>\n<div class=\"scroll\"><table><thead><tr><th>file</th>");
    for h in [
        "requests", "ok", "failed", "corrupt", "bytes", "p50 ms", "p99 ms", "mean ms",
    ] {
        let _ = write!(out, "<th class=\"num\">{h}</th>");
    }
    out.push_str("</tr></thead><tbody>");
    for (name, s) in &r.files {
        let cell = |v: String| format!("<td class=\"num\">{v}</td>");
        let mean = mean(&s.latency).unwrap_or_else(|| "-".into());
        let _ = write!(
            out,
            "<tr><td class=\"name mono\">{}</td>{}{}{}{}{}{}{}{}</tr>",
            escape(name),
            cell(s.requests().to_string()),
            cell(s.ok.to_string()),
            cell(s.failed().to_string()),
            cell(s.corrupt.to_string()),
            cell(s.bytes.to_string()),
            cell(point(&s.latency, 50.0).unwrap_or_else(|| "-".into())),
            cell(point(&s.latency, 99.0).unwrap_or_else(|| "-".into())),
            cell(mean),
        );
    }
    out.push_str("</tbody></table></div>\n</section>\n");
}

/// The timeline from the run's first second to its last, in groups of
/// `step` seconds so there are at most [`MAX_COLUMNS`]: each group's
/// offset from the start in seconds and its merged stats, after the first
/// second and the step. Seconds with no finished request are empty
/// groups, so time runs evenly along the axis.
fn group_seconds(r: &Results) -> (u64, u64, Vec<(u64, Stats)>) {
    let first = r.bounds().0 / 1_000_000;
    let (Some(&low), Some(&high)) = (r.timeline.keys().next(), r.timeline.keys().next_back())
    else {
        return (first, 1, Vec::new());
    };
    let first = first.min(low);
    let span = high - first + 1;
    let step = span.div_ceil(MAX_COLUMNS).max(1);
    let mut groups: Vec<(u64, Stats)> = (0..span.div_ceil(step))
        .map(|i| (i * step, Stats::default()))
        .collect();
    for (&t, s) in &r.timeline {
        let i = ((t - first) / step) as usize;
        if let Some((_, g)) = groups.get_mut(i) {
            g.merge(s);
        }
    }
    (first, step, groups)
}

fn frame<'a>(width: f64, label: &'a str, x_unit: &'a str, y_unit: &'a str) -> Frame<'a> {
    Frame {
        width,
        label,
        x_unit,
        y_unit,
        id: None,
    }
}

/// A chart drawn for a desktop and for a phone; the CSS shows one.
fn both(out: &mut String, draw: impl Fn(f64) -> String) {
    let _ = writeln!(
        out,
        "<div class=\"chart-wide\">{}</div><div class=\"chart-narrow\">{}</div>",
        draw(WIDE),
        draw(NARROW)
    );
}

fn ms(us: u64) -> String {
    super::millis(Duration::from_micros(us))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seconds: &[u64]) -> Results {
        let mut r = Results {
            test_id: "t<1>".into(),
            addr: "h:1".into(),
            names: vec!["a".into(), "b&c".into()],
            protocol: "tcpfetch/1".into(),
            clients: 1,
            shape: None,
            runs: 2,
            stats: Stats::default(),
            spans: vec![(
                1_000_000_000,
                1_000_000_000 + seconds.iter().max().unwrap_or(&0) * 1_000_000,
            )],
            timeline: Default::default(),
            files: vec![
                ("a".into(), Stats::default()),
                ("b&c".into(), Stats::default()),
            ],
            first_error: Some("x <y>".into()),
        };
        for &t in seconds {
            let mut s = Stats {
                ok: 1,
                bytes: 1_000_000,
                ..Stats::default()
            };
            s.latency.record_micros(1000 + t);
            r.timeline.insert(1000 + t, s.clone());
            r.stats.merge(&s);
        }
        r
    }

    #[test]
    fn long_runs_are_grouped_into_at_most_max_columns() {
        let (first, step, groups) = group_seconds(&run(&[0, 1, 5]));
        assert_eq!((first, step, groups.len()), (1000, 1, 6));
        assert_eq!(
            groups[2].1.requests(),
            0,
            "an idle second is an empty column"
        );
        let (_, step, groups) = group_seconds(&run(&[0, 1000, 7199]));
        assert_eq!((step, groups.len()), (60, 120));
        assert_eq!(groups.iter().map(|g| g.1.requests()).sum::<u64>(), 3);
        assert_eq!(group_seconds(&run(&[])).2.len(), 0);
    }

    #[test]
    fn the_page_escapes_what_it_shows_and_has_no_script() {
        let html = report(&run(&[0, 1]));
        assert!(
            html.contains("test <span class=\"mono\">t&lt;1&gt;</span>"),
            "{html}"
        );
        assert!(html.contains("First failure: x &lt;y&gt;"));
        assert!(html.contains("<td class=\"name mono\">b&amp;c</td>"));
        assert!(!html.contains("<script"));
        assert_eq!(
            html.matches("<svg").count(),
            6,
            "three charts, two widths each"
        );
        assert!(html.contains("No failures."));
    }
}
