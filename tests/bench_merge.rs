//! Black-box tests of `bench --json` runs merged by `bench --merge`, of the
//! run's timeline and per-file breakdown, of `--warmup`, `--total` and
//! `--test-id`, and of the HTML `--report`.
mod common;

use common::bench::three_runs_merge_exactly;
use common::*;

fn bench(t: &Scratch, args: &[&str]) -> Run {
    let mut all = vec!["bench"];
    all.extend_from_slice(args);
    tcpfetch(&t.path, &all)
}

#[test]
fn three_concurrent_runs_merge_to_their_sums_and_their_requests_percentiles() {
    let (t, server) = serve(
        "merge-three",
        &[
            ("a.bin", &random_bytes(40_000, 1)),
            ("b.bin", &random_bytes(9_000, 2)),
        ],
        &["-q"],
    );
    let json = three_runs_merge_exactly(&t, &server.addr, &["a.bin", "b.bin"], 10, 6);
    // Each client cycles through both names: half the requests each.
    assert!(
        json.contains("\"per_file\":[{\"file\":\"a.bin\",\"requests\":90,\"ok\":90,"),
        "{json}"
    );
    // A merge is a run again: merging in two steps gives the same object.
    let first_two = bench(&t, &["--merge", "run1.json", "run2.json", "--json"]);
    first_two.expect_code(0);
    t.write("run12.json", first_two.stdout().as_bytes());
    let stepwise = bench(&t, &["--merge", "run12.json", "run3.json", "--json"]);
    assert_eq!(stepwise.stdout(), json, "{stepwise}");
    let text = bench(&t, &["--merge", "run1.json", "run2.json", "run3.json"]);
    text.expect_code(0);
    let report = text.stdout();
    assert!(
        report.contains(
            "  clients      30, 6 requests each, a new connection per request; 3 runs merged\n"
        ),
        "{text}"
    );
    assert!(report.contains("  requests     180\n"), "{text}");
    assert!(
        report.contains("\n  b.bin        90        90       0       0         810000 "),
        "{text}"
    );
}

#[test]
fn the_json_run_carries_its_histogram_span_and_timeline() {
    let (t, server) = serve(
        "merge-json",
        &[("f.bin", &random_bytes(20_000, 3))],
        &["-q"],
    );
    let run = bench(&t, &[&server.addr, "f.bin", "-c", "3", "-n", "4", "--json"]);
    run.expect_code(0);
    let json = run.stdout();
    assert_eq!(json.lines().count(), 1);
    for key in [
        "\"bench_format\":1,",
        "\"protocol\":\"tcpfetch/1\",",
        "\"runs\":1,",
        "\"requests_each\":4,",
        "\"warmup\":0,",
        "\"histogram\":{\"unit\":\"us\",\"sub_bits\":6,\"top_bits\":32,\"buckets\":1728}",
        "\"latency\":{\"count\":12,",
        "\"timeline\":[{\"t\":",
    ] {
        assert!(json.contains(key), "{key} missing from {json}");
    }
    assert!(
        !json.contains("\"per_file\""),
        "one file, no breakdown: {json}"
    );
    // The timeline's seconds add up to the run.
    let timeline = &json[json.find("\"timeline\":").unwrap()..];
    let seconds: Vec<&str> = timeline.split("{\"t\":").skip(1).collect();
    let requests: f64 = seconds.iter().map(|s| json_number(s, "requests")).sum();
    assert_eq!(requests, 12.0, "{timeline}");
    for s in &seconds {
        assert!(
            json_value(s, "p99_ms") != "null" && json_number(s, "throughput_mb_s") > 0.0,
            "{s}"
        );
    }
    // One run merged alone is the same run.
    t.write("one.json", json.as_bytes());
    let again = bench(&t, &["--merge", "one.json", "--json"]);
    again.expect_code(0);
    assert_eq!(again.stdout(), json);
}

#[test]
fn a_missing_file_is_counted_not_found_and_per_file() {
    let (t, server) = serve(
        "merge-not-found",
        &[("f.bin", &random_bytes(1000, 4))],
        &["-q"],
    );
    let run = bench(
        &t,
        &[
            &server.addr,
            "f.bin",
            "gone.bin",
            "-c",
            "2",
            "-n",
            "2",
            "--json",
        ],
    );
    run.expect_code(1);
    let json = run.stdout();
    let errors = json_value(&json, "errors");
    assert_eq!(json_number(errors, "not-found"), 2.0, "{run}");
    assert_eq!(json_number(errors, "protocol"), 0.0, "{run}");
    assert!(json.contains("{\"file\":\"gone.bin\",\"requests\":2,\"ok\":0,\"failed\":2,\"corrupt\":0,\"bytes\":0,\"errors\":{\"not-found\":2}"), "{json}");
    assert!(
        json.contains("{\"file\":\"f.bin\",\"requests\":2,\"ok\":2,"),
        "{json}"
    );
    let text = bench(&t, &[&server.addr, "gone.bin", "-c", "1"]);
    text.expect_code(1);
    assert!(text.stdout().contains("io 0, not-found 1)"), "{text}");
}

#[test]
fn warmup_requests_reach_the_server_but_are_not_counted() {
    let (t, server) = serve("merge-warmup", &[("f.bin", &random_bytes(5000, 5))], &[]);
    let run = bench(
        &t,
        &[
            &server.addr,
            "f.bin",
            "-c",
            "3",
            "-n",
            "2",
            "--warmup",
            "4",
            "--json",
            "--log",
            "log.jsonl",
        ],
    );
    run.expect_code(0);
    let json = run.stdout();
    assert_eq!(json_number(&json, "requests"), 6.0, "{run}");
    assert_eq!(json_number(&json, "warmup"), 4.0, "{run}");
    assert_eq!(
        std::fs::read_to_string(t.join("log.jsonl"))
            .unwrap()
            .lines()
            .count(),
        6
    );
    assert_eq!(
        server.wait_for_count("\"GET ", 3 * 4 + 6),
        3 * 4 + 6,
        "{}",
        server.log()
    );
}

#[test]
fn total_shares_its_requests_among_the_clients() {
    let (t, server) = serve("merge-total", &[("f.bin", &random_bytes(3000, 6))], &["-q"]);
    let run = bench(
        &t,
        &[
            &server.addr,
            "f.bin",
            "-c",
            "4",
            "--total",
            "11",
            "--json",
            "--log",
            "log.jsonl",
        ],
    );
    run.expect_code(0);
    assert_eq!(json_number(&run.stdout(), "requests"), 11.0, "{run}");
    assert_eq!(json_number(&run.stdout(), "total_requests"), 11.0, "{run}");
    assert_eq!(
        std::fs::read_to_string(t.join("log.jsonl"))
            .unwrap()
            .lines()
            .count(),
        11
    );
    let text = bench(&t, &[&server.addr, "f.bin", "-c", "4", "--total", "1"]);
    text.expect_code(0);
    assert!(
        text.stdout()
            .contains("  clients      4, 1 request in all, "),
        "{text}"
    );
}

#[test]
fn bad_run_flags_are_usage_errors() {
    let t = Scratch::new("merge-usage");
    let cases: &[&[&str]] = &[
        &["127.0.0.1:1", "f", "-c", "1", "--total", "0"],
        &["127.0.0.1:1", "f", "-c", "1", "--total", "3", "-n", "2"],
        &["127.0.0.1:1", "f", "-c", "1", "--total", "3", "-d", "2"],
        &["127.0.0.1:1", "f", "-c", "1", "--warmup", "-1"],
        &["127.0.0.1:1", "f", "-c", "1", "--test-id", ""],
        &["127.0.0.1:1", "f", "-c", "1", "--test-id", "a b"],
        &["127.0.0.1:1", "f", "-c", "1", "--test-id", &"x".repeat(65)],
        &["--merge"],
        &["--merge", "a.json", "-c", "3"],
        &["--merge", "a.json", "--log", "x"],
    ];
    for args in cases {
        let run = bench(&t, args);
        run.expect_code(2);
        assert!(run.stdout().is_empty(), "{run}");
    }
}

#[test]
fn runs_that_cannot_be_merged_are_refused_with_exit_2_and_the_file_named() {
    let (t, server) = serve(
        "merge-refuse",
        &[("f.bin", &random_bytes(2000, 7))],
        &["-q"],
    );
    let run = bench(&t, &[&server.addr, "f.bin", "-c", "2", "--json"]);
    run.expect_code(0);
    let good = run.stdout();
    t.write("good.json", good.as_bytes());
    let cases: &[(&str, String, &str)] = &[
        (
            "empty.json",
            String::new(),
            "not JSON: line 1, column 1: unexpected end",
        ),
        ("half.json", good[..good.len() / 2].to_string(), "not JSON"),
        ("text.json", "hello\n".into(), "not JSON"),
        ("binary.json", "\u{0}\u{1}{".into(), "not JSON"),
        ("array.json", "[1,2]".into(), "not a bench --json object"),
        (
            "old.json",
            good.replacen("\"bench_format\":1,", "", 1),
            "written by an older tcpfetch",
        ),
        (
            "hist.json",
            good.replacen("\"sub_bits\":6", "\"sub_bits\":7", 1),
            "runs with different histograms cannot be merged exactly",
        ),
        (
            "legacy.json",
            good.replacen("\"protocol\":\"tcpfetch/1\"", "\"protocol\":\"legacy\"", 1),
            "a legacy run cannot be merged with a tcpfetch/1 run",
        ),
        (
            "counts.json",
            good.replacen("\"ok\":2,", "\"ok\":3,", 1),
            "do not add up",
        ),
        ("deep.json", "[".repeat(10_000), "nested deeper than"),
        // The same run twice (a copy, or a file named twice) would count
        // double; counts that overflow when added were a panic (exit 101).
        (
            "again.json",
            good.clone(),
            "both hold the run that started at",
        ),
        (
            "clients.json",
            good.replacen("\"clients\":2,", "\"clients\":18446744073709551615,", 1),
            "add up past 2^64",
        ),
    ];
    for (name, text, want) in cases {
        t.write(name, text.as_bytes());
        let run = bench(&t, &["--merge", "good.json", name]);
        run.expect_code(2);
        assert!(run.stdout().is_empty(), "{run}");
        assert!(
            run.stderr().contains(name) && run.stderr().contains(want),
            "{name}: {run}"
        );
    }
    let run = bench(&t, &["--merge", "good.json", "missing.json"]);
    run.expect_code(2);
    assert!(
        run.stderr()
            .contains("'missing.json' cannot be read: no such file or directory"),
        "{run}"
    );
    std::fs::create_dir(t.join("dir.json")).unwrap();
    let run = bench(&t, &["--merge", "good.json", "dir.json"]);
    run.expect_code(2);
    assert!(
        run.stderr().contains("'dir.json' cannot be read: "),
        "{run}"
    );
    // Bytes that are not text, and input with no end: the read stops at the
    // cap instead of holding all of /dev/zero in memory.
    t.write("latin1.json", b"{\"caf\xe9\":1}");
    for (name, want) in [
        (
            "latin1.json",
            "'latin1.json' is not UTF-8 text: not a bench run",
        ),
        (
            "/dev/zero",
            "'/dev/zero' is larger than 64 MiB: not a bench run",
        ),
    ] {
        let run = bench(&t, &["--merge", "good.json", name]);
        run.expect_code(2);
        assert!(run.stdout().is_empty(), "{run}");
        assert!(run.stderr().contains(want), "{name}: {run}");
    }
    // A damaged file is not believed even alone.
    let run = bench(&t, &["--merge", "counts.json"]);
    run.expect_code(2);
}

/// Run files come from other hosts: an address, name, id, failure kind or
/// first error in one that holds terminal controls (ESC, BEL) or U+202E is
/// shown escaped in the report, the verdict and a refusal, never raw (the
/// report printed them as they were).
#[test]
fn a_run_file_cannot_drive_the_terminal() {
    let (t, server) = serve("merge-escapes", &[("f.bin", b"data")], &["-q"]);
    let run = bench(&t, &[&server.addr, "gone.bin", "-c", "2", "--json"]);
    run.expect_code(1);
    let good = run.stdout();
    let first_error = json_value(&good, "first_error");
    let evil = good
        .replacen(&server.addr, "\\u001b]0;owned\\u0007", 1)
        .replacen("\"gone.bin\"", "\"gone\\u001b[5m.bin\"", 1)
        .replace("\"not-found\"", "\"\\u001b[31m\"")
        .replacen(first_error, "\"\\u001b[2Jwiped\"", 1)
        .replacen("\"test_id\":\"", "\"test_id\":\"\\u202e", 1);
    assert_ne!(evil, good);
    t.write("evil.json", evil.as_bytes());
    // The same controls in a name the file refuses.
    let refused = good.replacen(
        "\"timeline\"",
        "\"per_file\":[{\"file\":\"\\u001b[2J\"}],\"timeline\"",
        1,
    );
    t.write("refused.json", refused.as_bytes());
    for (file, code) in [("evil.json", 1), ("refused.json", 2)] {
        let run = bench(&t, &["--merge", file]);
        run.expect_code(code);
        let all = run.stdout() + &run.stderr();
        for raw in ['\u{1b}', '\u{7}', '\u{202e}'] {
            assert!(!all.contains(raw), "{file} shows {raw:?} raw: {run}");
        }
        assert!(all.contains("\\u{1b}"), "{file}: {run}");
    }
    let run = bench(&t, &["--merge", "evil.json"]);
    for shown in [
        "bench \\u{1b}]0;owned\\u{7} gone\\u{1b}[5m.bin (test \\u{202e}",
        "\\u{1b}[31m 2)",
    ] {
        assert!(run.stdout().contains(shown), "{shown}: {run}");
    }
    assert!(run.stderr().contains("the first: \\u{1b}[2Jwiped"), "{run}");
}

/// `--rate R` is the rate of one run's clients together: merged runs say
/// it was each run's (the report read as if all of them together had
/// made R requests a second).
#[test]
fn merged_runs_say_their_rate_was_each_runs() {
    let (t, server) = serve("merge-rate", &[("f.bin", b"data")], &["-q"]);
    for json in ["a.json", "b.json"] {
        let run = bench(
            &t,
            &[&server.addr, "f.bin", "-c", "2", "--rate", "40", "--json"],
        );
        run.expect_code(0);
        t.write(json, run.stdout().as_bytes());
    }
    let run = bench(&t, &["--merge", "a.json"]);
    assert!(
        run.stdout().contains("open loop at 40 requests/s\n"),
        "{run}"
    );
    let run = bench(&t, &["--merge", "a.json", "b.json"]);
    run.expect_code(0);
    assert!(
        run.stdout()
            .contains("open loop at 40 requests/s in each run; 2 runs merged"),
        "{run}"
    );
}

#[test]
fn merged_failures_end_as_the_run_would() {
    let (t, server) = serve(
        "merge-failed",
        &[("f.bin", &random_bytes(2000, 8))],
        &["-q"],
    );
    let ok = bench(&t, &[&server.addr, "f.bin", "-c", "2", "--json"]);
    let bad = bench(&t, &[&server.addr, "gone.bin", "-c", "1", "--json"]);
    bad.expect_code(1);
    t.write("ok.json", ok.stdout().as_bytes());
    t.write("bad.json", bad.stdout().as_bytes());
    let run = bench(&t, &["--merge", "ok.json", "bad.json"]);
    run.expect_code(1);
    assert!(
        run.stderr().contains("1 of 3 requests failed; the first: "),
        "{run}"
    );
    assert!(run.stdout().contains("bench 127.0.0.1:"), "{run}");
    assert!(run.stdout().contains(" f.bin gone.bin (test "), "{run}");
}
#[test]
fn the_html_report_is_one_file_with_no_scripts_and_every_section() {
    let (t, server) = serve(
        "merge-report",
        &[
            ("a.bin", &random_bytes(30_000, 9)),
            ("b.bin", &random_bytes(3000, 10)),
        ],
        &["-q"],
    );
    // Two runs (one run twice is refused), the first with its own report.
    for (json, report) in [
        ("run.json", &["--report", "r.html"][..]),
        ("run2.json", &[]),
    ] {
        let args = [
            &server.addr,
            "a.bin",
            "b.bin",
            "gone.bin",
            "-c",
            "3",
            "-n",
            "3",
            "--json",
        ];
        let run = bench(&t, &[&args[..], report].concat());
        run.expect_code(1);
        t.write(json, run.stdout().as_bytes());
    }
    let merged = bench(
        &t,
        &["--merge", "run.json", "run2.json", "--report", "m.html"],
    );
    merged.expect_code(1);
    for file in ["r.html", "m.html"] {
        let html = std::fs::read_to_string(t.join(file)).unwrap();
        assert!(html.starts_with("<!doctype html>"), "{file}");
        let lower = html.to_ascii_lowercase();
        for banned in [
            "<script", "http://", "https://", " src=", "<link", "@import", "url(",
        ] {
            assert!(!lower.contains(banned), "{file} has {banned}");
        }
        for want in [
            "Latency histogram",
            "Throughput over time",
            "p99 over time",
            "Failures over time",
            "Per file",
            "gone.bin",
            "not-found",
            "<svg",
        ] {
            assert!(html.contains(want), "{file} lacks {want}");
        }
    }
}

#[test]
fn a_report_that_cannot_be_written_fails_before_the_run() {
    let (t, server) = serve(
        "merge-report-fail",
        &[("f.bin", &random_bytes(1000, 11))],
        &["-q"],
    );
    let run = bench(
        &t,
        &[
            &server.addr,
            "f.bin",
            "-c",
            "1",
            "--report",
            "no/such/dir/r.html",
        ],
    );
    run.expect_code(1);
    assert!(run.stdout().is_empty(), "{run}");
    assert!(
        run.stderr()
            .contains("cannot write 'no/such/dir/r.html': no such file or directory"),
        "{run}"
    );
    // --merge writes it after the merge: a bad RUN.json leaves no file.
    let run = bench(&t, &["--merge", "missing.json", "--report", "m.html"]);
    run.expect_code(2);
    assert!(!t.join("m.html").exists());
}
