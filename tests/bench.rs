//! Black-box tests of `tcpfetch bench`: counts, logs, JSON, corrupt and busy
//! servers, and the open-loop schedule.
mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// The number after `label` in the text report (`  ok           150`).
fn count(report: &str, label: &str) -> u64 {
    let line = report
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{label} ")))
        .unwrap_or_else(|| panic!("no '{label}' line in\n{report}"));
    line.trim_start()[label.len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("bad '{label}' line: {line}"))
}

/// A file served by a stand-in server: what it announces and what it sends.
struct Answer {
    announced: String,
    body: Vec<u8>,
    stall: Duration,
}

/// A fake server on 127.0.0.1:0 that handles `conns` connections one at a
/// time: reads one request line, waits `stall`, sends the header and body,
/// closes. It gives up after 20 s so a test can never hang on it.
fn stand_in(conns: usize, answer: Answer) -> (String, thread::JoinHandle<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let handle = thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut served = 0;
        while served < conns && Instant::now() < deadline {
            let stream = match listener.accept() {
                Ok((s, _)) => s,
                Err(_) => {
                    thread::sleep(Duration::from_millis(2));
                    continue;
                }
            };
            stream.set_nonblocking(false).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut line = String::new();
            let _ = BufReader::new(&stream).read_line(&mut line);
            thread::sleep(answer.stall);
            let mut out = &stream;
            let header = format!("TCPFETCH/1 OK {} {}\n", answer.body.len(), answer.announced);
            let _ = out.write_all(header.as_bytes());
            let _ = out.write_all(&answer.body);
            served += 1;
        }
        served
    });
    (addr, handle)
}

#[test]
fn fifty_clients_of_three_requests_are_all_verified_and_logged() {
    let t = Scratch::new("bench-50");
    let data = random_bytes(200_000, 3);
    t.write("srv/f.bin", &data);
    let server = Server::start(&t.join("srv"), &["-q"]);
    let log = t.join("log.jsonl");
    let run = tcpfetch(
        &t.path,
        &[
            "bench",
            &server.addr,
            "f.bin",
            "--clients",
            "50",
            "--requests",
            "3",
            "--log",
            log.to_str().unwrap(),
        ],
    );
    run.expect_code(0);
    let report = run.stdout();
    assert_eq!(count(&report, "requests"), 150, "{run}");
    assert_eq!(count(&report, "ok"), 150, "{run}");
    assert_eq!(count(&report, "failed"), 0, "{run}");
    assert_eq!(count(&report, "corrupt"), 0, "{run}");
    assert_eq!(count(&report, "bytes"), 150 * data.len() as u64, "{run}");
    assert!(report.contains("latency histogram"), "{run}");

    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 150);
    let test_id = json_value(lines[0], "test_id");
    let mut clients = HashSet::new();
    let mut pairs = HashSet::new();
    for line in &lines {
        assert!(line.starts_with('{') && line.ends_with('}'), "{line}");
        assert_eq!(json_value(line, "test_id"), test_id, "one id per run");
        let client = json_number(line, "client_id") as u64;
        let request = json_number(line, "request") as u64;
        assert!(
            (1..=50).contains(&client) && (1..=3).contains(&request),
            "{line}"
        );
        clients.insert(client);
        pairs.insert((client, request));
        assert_eq!(json_value(line, "file"), "\"f.bin\"");
        let started = json_value(line, "started_at");
        assert!(
            started.len() == 26 && started.ends_with("Z\"") && &started[11..12] == "T",
            "{line}"
        );
        let (connect, ttfb, total) = (
            json_number(line, "connect_ms"),
            json_number(line, "ttfb_ms"),
            json_number(line, "total_ms"),
        );
        assert!(connect >= 0.0 && ttfb >= connect && total >= ttfb, "{line}");
        assert_eq!(json_number(line, "bytes") as usize, data.len());
        assert_eq!(json_value(line, "status"), "\"ok\"");
        assert_eq!(json_value(line, "integrity"), "\"ok\"");
        assert_eq!(json_value(line, "error"), "null");
    }
    assert_eq!(clients.len(), 50, "50 distinct clients");
    assert_eq!(pairs.len(), 150, "every (client, request) once");
}

#[test]
fn a_run_too_small_to_time_shows_no_rate_rather_than_zero() {
    // README: a transfer too short to time shows no rate rather than
    // 0.0 MB/s, in get, bench and the ui alike. The page did; bench's text
    // and HTML reports printed '0.0 MB/s' for 24 bytes.
    let (t, server) = serve("bench-tiny", &[("tiny.txt", b"hello world\n")], &[]);
    let page = t.join("run.html");
    let run = tcpfetch(
        &t.path,
        &[
            "bench",
            &server.addr,
            "tiny.txt",
            "-c",
            "2",
            "--report",
            page.to_str().unwrap(),
        ],
    );
    run.expect_code(0);
    let line = run
        .stdout()
        .lines()
        .find(|l| l.contains("throughput"))
        .unwrap_or_default()
        .to_string();
    assert!(
        line.starts_with("  throughput   -, ") && line.ends_with(" requests/s"),
        "{run}"
    );
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        html.contains("Throughput</div><div class=\"v\">–</div>"),
        "{html}"
    );
    assert!(
        !run.stdout().contains("0.0 MB/s") && !html.contains("0.0<small>MB/s"),
        "{run}"
    );
}

#[test]
fn json_output_has_every_key_with_consistent_counts() {
    let t = Scratch::new("bench-json");
    t.write("srv/a.bin", &random_bytes(70_000, 1));
    t.write("srv/b.bin", &random_bytes(30_000, 2));
    let server = Server::start(&t.join("srv"), &["-q"]);
    let run = tcpfetch(
        &t.path,
        &[
            "bench",
            &server.addr,
            "a.bin",
            "b.bin",
            "--clients",
            "4",
            "-n",
            "3",
            "--keep-alive",
            "--json",
        ],
    );
    run.expect_code(0);
    let json = run.stdout();
    assert_eq!(json.lines().count(), 1, "one object on one line: {json}");
    assert_eq!(json_number(&json, "clients"), 4.0);
    assert_eq!(json_number(&json, "requests"), 12.0);
    assert_eq!(json_number(&json, "ok"), 12.0);
    assert_eq!(json_number(&json, "failed"), 0.0);
    assert_eq!(json_number(&json, "corrupt"), 0.0);
    // Each client cycles through both names: 6 of each in all.
    assert_eq!(json_number(&json, "bytes"), 6.0 * 70_000.0 + 6.0 * 30_000.0);
    let seconds = json_number(&json, "seconds");
    assert!(seconds > 0.0);
    let rps = json_number(&json, "requests_per_s");
    assert!((rps * seconds / 12.0 - 1.0).abs() < 0.01, "{json}");
    let mbs = json_number(&json, "throughput_mb_s");
    assert!((mbs * seconds / 0.6 - 1.0).abs() < 0.01, "{json}");
    let errors = json_value(&json, "errors");
    for kind in ["refused", "busy", "timeout", "protocol", "io"] {
        assert_eq!(json_number(errors, kind), 0.0, "{json}");
    }
    for key in ["latency_ms", "ttfb_ms"] {
        let h = json_value(&json, key);
        let points: Vec<f64> = ["min", "p50", "p90", "p99", "p999", "max"]
            .iter()
            .map(|p| json_number(h, p))
            .collect();
        assert!(points.windows(2).all(|w| w[0] <= w[1]), "{key}: {h}");
        assert!(points[0] > 0.0, "{key}: {h}");
    }
}

#[test]
fn a_wrong_digest_is_counted_corrupt_and_exits_3() {
    let t = Scratch::new("bench-corrupt");
    let body = b"hello world\n".to_vec();
    let announced = sha256_hex(b"something else");
    let (addr, server) = stand_in(
        3,
        Answer {
            announced,
            body,
            stall: Duration::ZERO,
        },
    );
    let log = t.join("log.jsonl");
    let run = tcpfetch(
        &t.path,
        &[
            "bench",
            &addr,
            "f.txt",
            "--clients",
            "3",
            "--log",
            log.to_str().unwrap(),
        ],
    );
    run.expect_code(3);
    assert_eq!(count(&run.stdout(), "corrupt"), 3, "{run}");
    assert_eq!(count(&run.stdout(), "ok"), 0, "{run}");
    assert!(
        run.stderr().contains("3 of 3 transfers were corrupt"),
        "{run}"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(text.lines().count(), 3);
    for line in text.lines() {
        assert_eq!(json_value(line, "status"), "\"corrupt\"", "{line}");
        assert_eq!(json_value(line, "integrity"), "\"corrupt\"", "{line}");
        assert!(
            json_value(line, "error").contains("integrity failure"),
            "{line}"
        );
    }
    assert_eq!(server.join().unwrap(), 3);
}

/// A report or log that cannot be written (`/dev/full` opens, then every
/// write fails) is told, and the requests still decide the exit status:
/// a corrupt run stays exit 3 with its message (it was exit 1 with only
/// the report's error), and a failed run's cut-short log is told beside
/// the failure (it was not told at all).
#[test]
fn an_output_that_cannot_be_written_is_told_and_the_requests_decide_the_exit() {
    let t = Scratch::new("bench-unwritten");
    let (corrupt, stand_in) = stand_in(
        1,
        Answer {
            announced: sha256_hex(b"something else"),
            body: b"hello world\n".to_vec(),
            stall: Duration::ZERO,
        },
    );
    let server = Server::start(&t.path, &["-q"]);
    let rows: [(&str, &str, &str, i32, &str); 2] = [
        (
            &corrupt,
            "f.txt",
            "--report",
            3,
            "1 of 1 transfers were corrupt",
        ),
        (
            &server.addr,
            "missing",
            "--log",
            1,
            "1 of 1 requests failed",
        ),
    ];
    for (addr, name, flag, code, verdict) in rows {
        let run = tcpfetch(
            &t.path,
            &["bench", addr, name, "-c", "1", flag, "/dev/full"],
        );
        run.expect_code(code);
        let stderr = run.stderr();
        assert!(
            stderr.contains("tcpfetch: cannot write '/dev/full': no space left on device"),
            "{flag}: {run}"
        );
        assert!(stderr.contains(verdict), "{flag}: {run}");
        assert_eq!(count(&run.stdout(), "requests"), 1, "{flag}: {run}");
    }
    stand_in.join().unwrap();
}

#[test]
fn clients_past_max_clients_are_counted_busy_and_bench_ends() {
    let t = Scratch::new("bench-busy");
    t.write("srv/f.bin", &random_bytes(100_000, 5));
    let server = Server::start(&t.join("srv"), &["--max-clients", "5", "-q"]);
    // Five idle connections take every place, so every bench client is
    // turned away, whatever the timing.
    let held: Vec<TcpStream> = (0..5).map(|_| server.connect()).collect();
    thread::sleep(Duration::from_millis(100));
    let run = tcpfetch(
        &t.path,
        &["bench", &server.addr, "f.bin", "--clients", "20", "--json"],
    );
    run.expect_code(1);
    let json = run.stdout();
    assert_eq!(json_number(&json, "failed"), 20.0, "{run}");
    assert_eq!(
        json_number(json_value(&json, "errors"), "busy"),
        20.0,
        "{run}"
    );
    assert!(
        json_value(json_value(&json, "latency_ms"), "p50") == "null",
        "{run}"
    );
    assert!(run.stderr().contains("20 of 20 requests failed"), "{run}");
    assert!(run.stderr().contains("busy"), "{run}");
    drop(held);
}

#[test]
fn an_overloaded_server_serves_some_and_turns_the_rest_away() {
    let t = Scratch::new("bench-overload");
    // Large enough that the one free place is still taken while the other
    // nineteen clients, released together, connect.
    t.write("srv/f.bin", &random_bytes(4 << 20, 6));
    let server = Server::start(&t.join("srv"), &["--max-clients", "5", "-q"]);
    let held: Vec<TcpStream> = (0..4).map(|_| server.connect()).collect();
    thread::sleep(Duration::from_millis(100));
    let run = tcpfetch(
        &t.path,
        &["bench", &server.addr, "f.bin", "--clients", "20", "--json"],
    );
    run.expect_code(1);
    let json = run.stdout();
    let (ok, busy) = (
        json_number(&json, "ok"),
        json_number(json_value(&json, "errors"), "busy"),
    );
    assert!(ok >= 1.0 && busy >= 1.0, "{run}");
    assert_eq!(ok + busy, 20.0, "{run}");
    assert_eq!(json_number(&json, "corrupt"), 0.0, "{run}");
    drop(held);
}

#[test]
fn retries_get_through_once_the_load_goes() {
    let t = Scratch::new("bench-retry");
    t.write("srv/f.bin", &random_bytes(10_000, 8));
    let server = Server::start(&t.join("srv"), &["--max-clients", "1"]);
    // The one place is held (an answered PING proves it was accepted), and
    // let go once the bench has been turned away: after a fixed 300 ms a
    // bench slow to start on a loaded machine found the place free.
    let mut held = server.connect();
    held.write_all(b"PING\n").unwrap();
    let mut pong = [0u8; 11];
    held.read_exact(&mut pong).unwrap();
    assert_eq!(&pong, b"TCPFETCH/1 ");
    let log = t.join("log.jsonl");
    let run = thread::scope(|scope| {
        scope.spawn(|| {
            server.wait_for_log("busy (at --max-clients)");
            drop(held);
        });
        tcpfetch(
            &t.path,
            &[
                "bench",
                &server.addr,
                "f.bin",
                "--clients",
                "1",
                "--retries",
                "8",
                "--log",
                log.to_str().unwrap(),
            ],
        )
    });
    run.expect_code(0);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(json_number(&text, "attempts") > 1.0, "{text}");
    assert_eq!(json_value(&text, "status"), "\"ok\"");
}

#[test]
fn rate_latencies_include_the_wait_for_a_stalled_server() {
    let t = Scratch::new("bench-rate");
    let body = b"slow but sure\n".to_vec();
    let stall = Duration::from_millis(200);
    let (addr, server) = stand_in(
        5,
        Answer {
            announced: sha256_hex(&body),
            body,
            stall,
        },
    );
    // Five requests due 50 ms apart, one client, 200 ms per answer: request
    // k really starts at about 200k ms but was due at 50k ms, so measured
    // from its schedule it waited 200 + 150k ms. A closed-loop measurement
    // would show 200 ms for every one of them.
    let run = tcpfetch(
        &t.path,
        &[
            "bench",
            &addr,
            "f.txt",
            "--clients",
            "1",
            "-n",
            "5",
            "--rate",
            "20",
            "--json",
        ],
    );
    run.expect_code(0);
    let json = run.stdout();
    let latency = json_value(&json, "latency_ms");
    assert!(json_number(latency, "p50") >= 200.0, "{json}");
    assert!(json_number(latency, "max") >= 700.0, "{json}");
    assert_eq!(server.join().unwrap(), 5);
}

#[test]
fn duration_mode_keeps_requesting_until_time_is_up() {
    let t = Scratch::new("bench-duration");
    t.write("srv/f.bin", &random_bytes(1000, 9));
    let server = Server::start(&t.join("srv"), &["-q"]);
    let run = tcpfetch(
        &t.path,
        &[
            "bench",
            &server.addr,
            "f.bin",
            "--clients",
            "2",
            "--duration",
            "0.5",
            "--keep-alive",
            "--json",
        ],
    );
    run.expect_code(0);
    let json = run.stdout();
    let requests = json_number(&json, "requests");
    assert!(requests > 2.0, "{json}");
    assert_eq!(json_number(&json, "ok"), requests);
    assert!(json_number(&json, "seconds") >= 0.5, "{json}");
}

#[test]
fn save_keeps_each_verified_file_under_client_and_request() {
    let t = Scratch::new("bench-save");
    let data = random_bytes(50_000, 4);
    t.write("srv/sub/f.bin", &data);
    let server = Server::start(&t.join("srv"), &["-q"]);
    let run = tcpfetch(
        &t.path,
        &[
            "bench",
            &server.addr,
            "sub/f.bin",
            "--clients",
            "2",
            "-n",
            "2",
            "--save",
            "out",
        ],
    );
    run.expect_code(0);
    let mut saved: Vec<String> = std::fs::read_dir(t.join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    saved.sort();
    assert_eq!(saved, ["1-1-f.bin", "1-2-f.bin", "2-1-f.bin", "2-2-f.bin"]);
    for name in saved {
        assert_eq!(std::fs::read(t.join("out").join(name)).unwrap(), data);
    }
}

/// Bodies under 1 MiB are hashed where the connection's read buffer holds
/// them, larger ones are read into the client's own buffer: both, in turn
/// on one kept connection, arrive whole.
#[test]
fn small_and_large_files_arrive_whole_over_one_kept_connection() {
    let t = Scratch::new("bench-sizes");
    let small = random_bytes(50_001, 9);
    let large = random_bytes((3 << 20) + 7, 10);
    t.write("srv/small.bin", &small);
    t.write("srv/large.bin", &large);
    let server = Server::start(&t.join("srv"), &["-q"]);
    let run = tcpfetch(
        &t.path,
        &[
            "bench",
            &server.addr,
            "small.bin",
            "large.bin",
            "--clients",
            "1",
            "-n",
            "4",
            "--keep-alive",
            "--save",
            "out",
        ],
    );
    run.expect_code(0);
    for (name, data) in [
        ("1-1-small.bin", &small),
        ("1-2-large.bin", &large),
        ("1-3-small.bin", &small),
        ("1-4-large.bin", &large),
    ] {
        let saved = std::fs::read(t.join("out").join(name)).unwrap();
        assert!(saved == *data, "{name}: {} bytes", saved.len());
    }
}

#[test]
fn a_closed_port_is_counted_refused() {
    let t = Scratch::new("bench-refused");
    // A port that stays closed: the local end of a connection held (and
    // its listener) for the whole test, which nothing listens on and
    // nobody can bind. A port freed by dropping a listener was taken by
    // another test's server meanwhile (2 of ~12 runs of every test at
    // once: "connection reset by peer", counted io).
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let held = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let port = held.local_addr().unwrap().port();
    let addr = format!("127.0.0.1:{port}");
    let run = tcpfetch(&t.path, &["bench", &addr, "f", "--clients", "3", "--json"]);
    run.expect_code(1);
    assert_eq!(
        json_number(json_value(&run.stdout(), "errors"), "refused"),
        3.0,
        "{run}"
    );
    drop((held, listener));
}

#[test]
fn bad_command_lines_are_usage_errors() {
    let t = Scratch::new("bench-usage");
    let cases: &[&[&str]] = &[
        &["bench", "127.0.0.1:1"],
        &["bench", "127.0.0.1:1", "f"],
        &["bench", "127.0.0.1:1", "f", "--clients", "0"],
        &["bench", "127.0.0.1:1", "f", "-c", "1", "-n", "1", "-d", "1"],
        &["bench", "127.0.0.1:1", "f", "-c", "1", "--rate", "0"],
        &["bench", "127.0.0.1:1", "f", "-c", "1", "--rate", "1e-300"],
        &["bench", "127.0.0.1:1", "..", "-c", "1", "--save", "out"],
        &["bench", "127.0.0.1:1", "f", "-c", "1", "--frobnicate"],
    ];
    for args in cases {
        let run = tcpfetch(&t.path, args);
        run.expect_code(2);
        assert!(run.stdout().is_empty(), "{run}");
    }
    assert!(!t.join("out").exists());
}

#[test]
fn bench_authenticates_with_a_key_file() {
    use std::os::unix::fs::PermissionsExt;
    let t = Scratch::new("bench-key");
    t.write("srv/f.bin", &random_bytes(50_000, 4));
    let key = t.write("key", &random_bytes(32, 9));
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let key = key.to_str().unwrap();
    let server = Server::start(&t.join("srv"), &["--key-file", key]);
    let run = tcpfetch(
        &t.path,
        &[
            "bench",
            &server.addr,
            "f.bin",
            "--clients",
            "4",
            "--requests",
            "2",
            "--key-file",
            key,
        ],
    );
    run.expect_code(0);
    assert_eq!(count(&run.stdout(), "ok"), 8, "{run}");
    // Without the key every request is refused by the server.
    let run = tcpfetch(&t.path, &["bench", &server.addr, "f.bin", "--clients", "2"]);
    run.expect_code(1);
}

#[test]
fn bench_load_tests_the_old_protocol() {
    let t = Scratch::new("bench-legacy");
    t.write("srv/a.bin", &random_bytes(200_000, 6));
    let (_server, legacy) = Server::start_legacy(&t.join("srv"), &[]);
    let log = t.join("log.jsonl");
    let run = tcpfetch(
        &t.path,
        &[
            "bench",
            "--legacy",
            &legacy,
            "1",
            "--clients",
            "5",
            "--requests",
            "2",
            "--log",
            log.to_str().unwrap(),
        ],
    );
    run.expect_code(0);
    assert_eq!(count(&run.stdout(), "ok"), 10, "{run}");
    let lines = std::fs::read_to_string(&log).unwrap();
    assert_eq!(lines.lines().count(), 10);
    assert!(
        lines
            .lines()
            .all(|l| l.contains("\"integrity\":\"ok\"") && l.contains("\"bytes\":200000")),
        "{lines}"
    );
}

/// A name the old server does not list is a missing file, as v1's
/// `ERR not-found` is: it was counted as an `io` failure.
#[test]
fn a_name_the_old_server_does_not_list_is_counted_not_found() {
    let t = Scratch::new("bench-legacy-unlisted");
    t.write("srv/a.bin", b"hello");
    let (_server, legacy) = Server::start_legacy(&t.join("srv"), &[]);
    let run = tcpfetch(
        &t.path,
        &[
            "bench",
            "--legacy",
            &legacy,
            "b.bin",
            "--clients",
            "2",
            "--json",
        ],
    );
    run.expect_code(1);
    let json = run.stdout();
    let errors = json_value(&json, "errors");
    assert_eq!(json_number(errors, "not-found"), 2.0, "{run}");
    assert_eq!(json_number(errors, "io"), 0.0, "{run}");
    assert!(
        run.stderr()
            .contains("'b.bin' is not in the legacy server's list"),
        "{run}"
    );
}

/// More clients than the open-file limit holds are refused before the
/// run, with the numbers, not run to fail one by one with "too many open
/// files". `prlimit` (util-linux) is installed by `.ci/run`.
#[test]
fn a_crowd_past_the_open_file_limit_is_refused_before_it_starts() {
    let (t, server) = serve("bench-nofile", &[("f.bin", b"hello")], &["-q"]);
    let run = run_program(
        "prlimit",
        &t.path,
        &[
            "--nofile=64",
            "--",
            BIN,
            "bench",
            &server.addr,
            "f.bin",
            "--clients",
            "100",
        ],
        b"",
    );
    assert!(
        run.stderr()
            .contains("100 clients need about 116 open files, but the limit is 64 (hard limit 64)"),
        "{run}"
    );
    assert!(run.stdout().is_empty(), "no report of a run: {run}");
    // Within the limit the same crowd runs.
    let run = tcpfetch(&t.path, &["bench", &server.addr, "f.bin", "-c", "20"]);
    run.expect_code(0);
}
