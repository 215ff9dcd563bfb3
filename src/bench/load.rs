//! Reading a `bench --json` run back, for `bench --merge`: every field the
//! merge needs is checked (type, range, the counts adding up), so a damaged,
//! truncated or hand-edited file is refused with the name of what is wrong
//! rather than merged into a wrong answer.

use std::collections::BTreeMap;
use std::time::Duration;

use super::histogram::Histogram;
use super::json::{histogram_params, FORMAT};
use super::stats::{Results, Shape, Stats};
use crate::util::json::{self, Value};

/// The largest run file read: a run of a few hours at full detail.
pub const MAX_BYTES: u64 = 64 << 20;

/// The run `text` describes.
pub fn results(text: &str) -> Result<Results, String> {
    let v = json::parse(text).map_err(|e| format!("not JSON: {e}"))?;
    if v.as_object().is_none() {
        return Err("not a bench --json object".into());
    }
    match v.get("bench_format") {
        None => {
            return Err(
                "has no histogram (no 'bench_format'): it was written by an older tcpfetch".into(),
            )
        }
        Some(f) if f.as_u64() != Some(FORMAT) => {
            return Err(format!(
                "is bench_format {}; this tcpfetch reads {FORMAT}",
                text_of(f)
            ))
        }
        Some(_) => {}
    }
    let params = v.get("histogram").map(text_of).unwrap_or_default();
    if params != histogram_params() {
        return Err(format!(
            "was recorded with histogram {params}; this tcpfetch's is {}: runs with different histograms cannot be merged exactly",
            histogram_params()
        ));
    }
    let stats = stats(&v, "")?;
    let names = strings(field(&v, "files")?, "files")?;
    let files = per_file(&v, &names, &stats)?;
    let timeline = timeline(&v, &stats)?;
    Ok(Results {
        test_id: string(&v, "test_id")?,
        addr: string(&v, "addr")?,
        protocol: string(&v, "protocol")?,
        clients: number(&v, "clients")?,
        shape: shape(&v)?,
        runs: number(&v, "runs")?.max(1),
        spans: spans(field(&v, "spans")?)?,
        first_error: match field(&v, "first_error")? {
            Value::Null => None,
            e => Some(
                e.as_str()
                    .ok_or("'first_error' is not a string")?
                    .to_string(),
            ),
        },
        names,
        stats,
        timeline,
        files,
    })
}

/// A value as JSON text again, for messages (numbers and params).
fn text_of(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.clone(),
        Value::String(s) => crate::util::format::json_string(s),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(text_of).collect();
            format!("[{}]", items.join(","))
        }
        Value::Object(members) => {
            let members: Vec<String> = members
                .iter()
                .map(|(k, v)| format!("{}:{}", crate::util::format::json_string(k), text_of(v)))
                .collect();
            format!("{{{}}}", members.join(","))
        }
    }
}

fn field<'a>(v: &'a Value, key: &str) -> Result<&'a Value, String> {
    v.get(key).ok_or_else(|| format!("'{key}' is missing"))
}

fn number(v: &Value, key: &str) -> Result<u64, String> {
    field(v, key)?
        .as_u64()
        .ok_or_else(|| format!("'{key}' is not a whole number"))
}

fn string(v: &Value, key: &str) -> Result<String, String> {
    field(v, key)?
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("'{key}' is not a string"))
}

fn strings(v: &Value, key: &str) -> Result<Vec<String>, String> {
    let items = v
        .as_array()
        .ok_or_else(|| format!("'{key}' is not a list"))?;
    items
        .iter()
        .map(|i| i.as_str().map(str::to_string))
        .collect::<Option<_>>()
        .ok_or_else(|| format!("'{key}' holds something other than strings"))
}

/// A null or a number of type `T`.
fn optional<T>(
    v: &Value,
    key: &str,
    read: impl Fn(&Value) -> Option<T>,
) -> Result<Option<T>, String> {
    match field(v, key)? {
        Value::Null => Ok(None),
        x => read(x)
            .map(Some)
            .ok_or_else(|| format!("'{key}' is out of range")),
    }
}

fn shape(v: &Value) -> Result<Option<Shape>, String> {
    let Some(keep_alive) = field(v, "keep_alive")?.as_bool() else {
        return Ok(None); // null: merged runs of different shapes
    };
    let seconds = |x: &Value| x.as_f64().and_then(|s| Duration::try_from_secs_f64(s).ok());
    Ok(Some(Shape {
        requests_each: optional(v, "requests_each", Value::as_u64)?,
        total: optional(v, "total_requests", Value::as_u64)?,
        duration: optional(v, "duration_s", seconds)?,
        keep_alive,
        rate: optional(v, "rate", Value::as_f64)?,
        warmup: number(v, "warmup")?,
    }))
}

fn spans(v: &Value) -> Result<Vec<(u64, u64)>, String> {
    let bad = || "'spans' must be a list of [start, end] microsecond pairs".to_string();
    let items = v.as_array().ok_or_else(bad)?;
    if items.is_empty() {
        return Err(bad());
    }
    items
        .iter()
        .map(|pair| match pair.as_array() {
            Some([s, e]) => match (s.as_u64(), e.as_u64()) {
                (Some(s), Some(e)) if s <= e => Ok((s, e)),
                _ => Err(bad()),
            },
            _ => Err(bad()),
        })
        .collect()
}

/// The counts and histograms of an object `stats` wrote (`at` names it in
/// messages), checked to add up.
fn stats(v: &Value, at: &str) -> Result<Stats, String> {
    let within = |e: String| {
        if at.is_empty() {
            e
        } else {
            format!("{at}: {e}")
        }
    };
    let mut s = Stats {
        ok: number(v, "ok").map_err(within)?,
        corrupt: number(v, "corrupt").map_err(within)?,
        bytes: number(v, "bytes").map_err(within)?,
        errors: BTreeMap::new(),
        latency: histogram(field(v, "latency").map_err(within)?)
            .map_err(|e| within(format!("latency: {e}")))?,
        ttfb: histogram(field(v, "ttfb").map_err(within)?)
            .map_err(|e| within(format!("ttfb: {e}")))?,
    };
    let errors = field(v, "errors")
        .map_err(within)?
        .as_object()
        .ok_or_else(|| within("'errors' is not an object".into()))?;
    for (kind, n) in errors {
        let n = n
            .as_u64()
            .ok_or_else(|| within(format!("errors: '{kind}' is not a whole number")))?;
        if n > 0 {
            s.errors.insert(kind.clone(), n);
        }
    }
    let failed = s.errors.values().try_fold(0u64, |a, &n| a.checked_add(n));
    let requests = [Some(s.ok), Some(s.corrupt), failed]
        .into_iter()
        .try_fold(0u64, |a, n| a.checked_add(n?));
    if failed != Some(number(v, "failed").map_err(within)?)
        || requests != Some(number(v, "requests").map_err(within)?)
    {
        return Err(within(
            "'requests', 'ok', 'failed', 'corrupt' and 'errors' do not add up".into(),
        ));
    }
    if s.latency.count() > s.ok + s.corrupt || s.ttfb.count() > s.latency.count() {
        return Err(within(
            "the histograms count more transfers than completed".into(),
        ));
    }
    Ok(s)
}

fn histogram(v: &Value) -> Result<Histogram, String> {
    let count = number(v, "count")?;
    let mut buckets = Vec::new();
    let list = field(v, "buckets")?
        .as_array()
        .ok_or("'buckets' is not a list")?;
    for pair in list {
        match pair.as_array() {
            Some([i, c]) => match (i.as_u64().and_then(|i| usize::try_from(i).ok()), c.as_u64()) {
                (Some(i), Some(c)) => buckets.push((i, c)),
                _ => return Err("a bucket is not a pair of whole numbers".into()),
            },
            _ => return Err("a bucket is not an [index, count] pair".into()),
        }
    }
    let sum = match field(v, "sum")? {
        Value::Number(text) => text.parse::<u128>().ok(),
        _ => None,
    }
    .ok_or("'sum' is not a whole number")?;
    let (min, max) = if count == 0 {
        (0, 0)
    } else {
        (number(v, "min")?, number(v, "max")?)
    };
    let h = Histogram::from_parts(&buckets, min, max, sum)?;
    if h.count() != count {
        return Err(format!(
            "'count' is {count} but the buckets hold {}",
            h.count()
        ));
    }
    Ok(h)
}

fn timeline(v: &Value, total: &Stats) -> Result<BTreeMap<u64, Stats>, String> {
    let items = field(v, "timeline")?
        .as_array()
        .ok_or("'timeline' is not a list")?;
    let mut out: BTreeMap<u64, Stats> = BTreeMap::new();
    for item in items {
        let t = number(item, "t").map_err(|e| format!("timeline: {e}"))?;
        let s = stats(item, &format!("timeline second {t}"))?;
        if out.insert(t, s).is_some() {
            return Err(format!("timeline: second {t} appears twice"));
        }
    }
    check_parts("timeline", out.values(), total)?;
    Ok(out)
}

fn per_file(v: &Value, names: &[String], total: &Stats) -> Result<Vec<(String, Stats)>, String> {
    let Some(list) = v.get("per_file") else {
        // One file: the run's totals are that file's.
        return match names {
            [name] => Ok(vec![(name.clone(), total.clone())]),
            _ => Err("'per_file' is missing for a run of several files".into()),
        };
    };
    let items = list.as_array().ok_or("'per_file' is not a list")?;
    let mut out: Vec<(String, Stats)> = Vec::new();
    for item in items {
        let name = string(item, "file").map_err(|e| format!("per_file: {e}"))?;
        if !names.contains(&name) || out.iter().any(|(n, _)| *n == name) {
            return Err(format!(
                "per_file: '{name}' is not one of 'files' or appears twice"
            ));
        }
        let s = stats(item, &format!("per_file '{name}'"))?;
        out.push((name, s));
    }
    check_parts("per_file", out.iter().map(|(_, s)| s), total)?;
    Ok(out)
}

/// Parts (seconds or files) must add up to the run's totals.
fn check_parts<'a>(
    what: &str,
    parts: impl Iterator<Item = &'a Stats>,
    total: &Stats,
) -> Result<(), String> {
    let add = |a: [u64; 4], s: &Stats| {
        let b = [s.ok, s.corrupt, s.bytes, s.failed()];
        [0, 1, 2, 3].map(|i| a[i].saturating_add(b[i]))
    };
    let sum = parts.fold([0; 4], add);
    if sum != add([0; 4], total) {
        return Err(format!("the {what} does not add up to the run's totals"));
    }
    Ok(())
}

/// The runs in `paths`, read and merged in order; the message names the
/// file at fault.
pub fn merge_files(paths: &[std::path::PathBuf]) -> Result<Results, String> {
    let mut merged: Option<Results> = None;
    for path in paths {
        let run = read(path).map_err(|e| format!("'{}' {e}", path.display()))?;
        match &mut merged {
            None => merged = Some(run),
            Some(m) => m.merge(run).map_err(|e| {
                format!(
                    "cannot merge '{}' with the runs before it: {e}",
                    path.display()
                )
            })?,
        }
    }
    merged.ok_or_else(|| "no RUN.json to merge".to_string())
}

/// One run file, at most [`MAX_BYTES`] of UTF-8.
fn read(path: &std::path::Path) -> Result<Results, String> {
    use std::io::Read;
    let file = std::fs::File::open(path)
        .map_err(|e| format!("cannot be read: {}", crate::error::describe_io(&e)))?;
    let mut bytes = Vec::new();
    file.take(MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot be read: {}", crate::error::describe_io(&e)))?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(format!(
            "is larger than {} MiB: not a bench run",
            MAX_BYTES >> 20
        ));
    }
    let text =
        String::from_utf8(bytes).map_err(|_| "is not UTF-8 text: not a bench run".to_string())?;
    results(&text).map_err(|e| format!("is not a bench --json run: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::json::json;
    use crate::bench::stats::Shape;

    /// A run of two files over two seconds, with a failure and a corrupt
    /// transfer, as `--json` writes it.
    fn sample() -> String {
        let s = |ok, corrupt, busy: u64, lat: &[u64]| {
            let mut s = Stats {
                ok,
                corrupt,
                bytes: 1000 * (ok + corrupt),
                ..Stats::default()
            };
            if busy > 0 {
                s.errors.insert("busy".into(), busy);
            }
            for &us in lat {
                s.latency.record_micros(us);
                s.ttfb.record_micros(us / 2);
            }
            s
        };
        let (a, b) = (s(2, 0, 1, &[900, 1500]), s(1, 1, 0, &[70_000, 333]));
        let mut total = a.clone();
        total.merge(&b);
        let r = Results {
            test_id: "t-1".into(),
            addr: "h:1".into(),
            names: vec!["a".into(), "b \"q\"".into()],
            protocol: "tcpfetch/1".into(),
            clients: 4,
            shape: Some(Shape {
                requests_each: Some(1),
                total: None,
                duration: None,
                keep_alive: true,
                rate: Some(2.5),
                warmup: 3,
            }),
            runs: 1,
            stats: total,
            spans: vec![(1_000_000_000, 1_002_500_000)],
            timeline: [(1000, a.clone()), (1001, b.clone())].into_iter().collect(),
            files: vec![("a".into(), a), ("b \"q\"".into(), b)],
            first_error: Some("server busy".into()),
        };
        json(&r)
    }

    #[test]
    fn a_run_reads_back_to_the_same_json() {
        let text = sample();
        let back = results(&text).unwrap();
        assert_eq!(json(&back), text);
        assert_eq!(back.stats.latency.count(), 4);
        assert_eq!(back.shape.as_ref().unwrap().warmup, 3);
    }

    #[test]
    fn damaged_runs_are_refused_with_the_reason() {
        let good = sample();
        let cases: &[(&str, &str, &str)] = &[
            ("\"ok\":3,", "\"ok\":4,", "do not add up"),
            ("\"ok\":3,", "\"ok\":\"3\",", "'ok' is not a whole number"),
            ("\"bench_format\":1,", "", "written by an older tcpfetch"),
            (
                "\"bench_format\":1,",
                "\"bench_format\":2,",
                "bench_format 2",
            ),
            ("\"sub_bits\":6", "\"sub_bits\":5", "different histograms"),
            (
                "\"spans\":[[1000000000,1002500000]]",
                "\"spans\":[[5,4]]",
                "'spans' must be",
            ),
            (
                "\"spans\":[[1000000000,1002500000]]",
                "\"spans\":[]",
                "'spans' must be",
            ),
            (
                "\"clients\":4,",
                "\"clients\":-4,",
                "'clients' is not a whole number",
            ),
            ("\"protocol\":\"tcpfetch/1\",", "", "'protocol' is missing"),
            (
                "\"buckets\":[[",
                "\"buckets\":[[99999,1],[",
                "past the last one",
            ),
            ("\"count\":4,", "\"count\":5,", "but the buckets hold"),
            ("\"t\":1001,", "\"t\":1000,", "second 1000 appears twice"),
            ("{\"t\":1001,", "{\"t\":1001,\"x\":", "not JSON"),
            ("\"file\":\"a\",", "\"file\":\"c\",", "not one of 'files'"),
            ("\"per_file\":", "\"per_filx\":", "'per_file' is missing"),
            (
                "\"first_error\":\"server busy\"",
                "\"first_error\":7",
                "not a string",
            ),
            (
                "\"keep_alive\":true",
                "\"keep_alive\":true,\"rate\":1e999",
                "out of range",
            ),
        ];
        for (from, to, want) in cases {
            assert!(good.contains(from), "{from}");
            let bad = good.replacen(from, to, 1);
            let err = results(&bad)
                .err()
                .unwrap_or_else(|| panic!("{to} was accepted"));
            assert!(err.contains(want), "{to}: {err}");
        }
        for text in [
            "",
            "[]",
            "null",
            "{}",
            "{\"bench_format\":1}",
            &good[..good.len() / 2],
        ] {
            assert!(results(text).is_err(), "{text}");
        }
    }

    #[test]
    fn a_timeline_that_does_not_add_up_is_refused() {
        let good = sample();
        let at = good.find("\"t\":1001").unwrap();
        let bad = format!(
            "{}{}",
            &good[..at],
            good[at..].replacen("\"bytes\":2000,", "\"bytes\":1000,", 1)
        );
        let err = results(&bad).err().unwrap();
        assert!(err.contains("timeline does not add up"), "{err}");
    }
}
