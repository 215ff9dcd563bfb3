//! The multi-host recipe of `bench`, on one machine: three `bench --json`
//! processes at once with one `--test-id`, then `bench --merge`, checked
//! against the per-request logs of all three (tests/bench_merge.rs runs it
//! against one server, tests/haproxy.rs through HAProxy).

use std::thread;

use super::*;

/// The nearest-rank percentile `p` of `sorted`.
pub fn exact_percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

/// Run three benches of `clients` clients × `requests` against `addr` at
/// once, merge their `--json` runs, and check the merge against their
/// `--log` files: the counts are the sums, exactly, and p50/p90/p99 are
/// those of every logged latency within the histogram's stated error
/// (1/128 of the value, plus the logs' and histogram's 1 µs rounding).
/// Returns the merged JSON.
pub fn three_runs_merge_exactly(
    t: &Scratch,
    addr: &str,
    names: &[&str],
    clients: u32,
    requests: u32,
) -> String {
    let runs: Vec<Run> = thread::scope(|s| {
        let handles: Vec<_> = (1..=3)
            .map(|i| {
                s.spawn(move || {
                    let log = format!("log{i}.jsonl");
                    let (c, n) = (clients.to_string(), requests.to_string());
                    let mut args = vec!["bench", addr];
                    args.extend_from_slice(names);
                    args.extend_from_slice(&[
                        "-c",
                        &c,
                        "-n",
                        &n,
                        "--test-id",
                        "shared",
                        "--json",
                        "--log",
                        &log,
                    ]);
                    tcpfetch(&t.path, &args)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut files = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        run.expect_code(0);
        let file = format!("run{}.json", i + 1);
        t.write(&file, run.stdout().as_bytes());
        files.push(file);
    }
    let mut args = vec!["bench", "--merge"];
    args.extend(files.iter().map(String::as_str));
    args.push("--json");
    let merged = tcpfetch(&t.path, &args);
    merged.expect_code(0);
    let json = merged.stdout();
    let sum = |key: &str| {
        runs.iter()
            .map(|r| json_number(&r.stdout(), key))
            .sum::<f64>()
    };
    for key in ["clients", "requests", "ok", "failed", "corrupt", "bytes"] {
        assert_eq!(json_number(&json, key), sum(key), "{key}: {merged}");
    }
    assert_eq!(
        json_number(&json, "requests"),
        f64::from(3 * clients * requests)
    );
    assert_eq!(json_number(&json, "runs"), 3.0);
    assert_eq!(json_value(&json, "test_id"), "\"shared\"");
    // Throughput over the union of the spans: the runs overlapped, so it
    // is at least the longest run and at most all three end to end.
    let seconds = json_number(&json, "seconds");
    let longest = runs
        .iter()
        .map(|r| json_number(&r.stdout(), "seconds"))
        .fold(0.0, f64::max);
    assert!(
        seconds >= longest - 1e-6 && seconds <= sum("seconds") + 1e-6,
        "{seconds} vs {longest}"
    );

    let mut latencies: Vec<f64> = Vec::new();
    for i in 1..=3 {
        let log = std::fs::read_to_string(t.join(&format!("log{i}.jsonl"))).unwrap();
        for line in log.lines() {
            assert_eq!(json_value(line, "test_id"), "\"shared\"", "{line}");
            latencies.push(json_number(line, "total_ms"));
        }
    }
    assert_eq!(latencies.len() as f64, json_number(&json, "requests"));
    latencies.sort_by(f64::total_cmp);
    let merged_latency = json_value(&json, "latency_ms");
    for (key, p) in [("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("max", 100.0)] {
        let exact = exact_percentile(&latencies, p);
        let got = json_number(merged_latency, key);
        assert!(
            (got - exact).abs() <= exact / 128.0 + 0.002,
            "{key}: merged {got} ms, all requests' {exact} ms\n{json}"
        );
    }
    json
}
