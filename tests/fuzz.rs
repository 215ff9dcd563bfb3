//! A mutation fuzzer for the two parsers a stranger can reach: the request
//! line parser of `serve` and the pickle decoder of `serve --legacy-listen`.
//! Both live inside the binary, so they are driven through it: mutated
//! inputs go over sockets to a real server.
//!
//! Inputs are mutations of the seed corpus in `tests/corpus/` (one request
//! per file under `requests/`, one pickled control message per file under
//! `pickles/`). Each test runs for a bounded time in `cargo test`; with
//! `TCPFETCH_FUZZ_SECONDS=N` each runs for N seconds (`make soak`). The seed
//! comes from `TCPFETCH_FUZZ_SEED` (default: fixed) and is printed on every
//! failure, so any failure replays.
//!
//! The oracles: the server never crashes or panics; every mutated request
//! is followed, on the same connection, by a `PING` that must still be
//! answered (the framing survived), unless the line was too long and the
//! connection was closed as documented; every legacy connection ends by
//! itself; afterwards the server's thread count is back to idle and a
//! normal client is served.
mod common;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

/// How long each fuzz test runs: a few seconds, or `TCPFETCH_FUZZ_SECONDS`.
fn budget() -> Duration {
    let secs = std::env::var("TCPFETCH_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3.0);
    Duration::from_secs_f64(secs)
}

/// Every file of `tests/corpus/<kind>/`, sorted by name.
fn corpus(kind: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(kind);
    let mut paths: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    let seeds: Vec<Vec<u8>> = paths.iter().map(|p| fs::read(p).unwrap()).collect();
    assert!(seeds.len() >= 5, "a thin corpus in {}", dir.display());
    seeds
}

/// Bytes that mean something to one of the parsers: separators, digits,
/// path tricks, and pickle opcodes (dangerous ones included).
const TOKENS: &[&[u8]] = &[
    b" ",
    b"\n",
    b"\r",
    b"\x00",
    b"/",
    b"../",
    b"//",
    b"\\",
    b"%2e",
    b"\xff",
    b"\xc3\xbc",
    b"0",
    b"9",
    b"18446744073709551616",
    b"-1",
    b"GET ",
    b"PING",
    b"LIST",
    // PROTO, FRAME, EMPTY_DICT, MARK, SHORT_BINUNICODE, BINUNICODE8, LONG4,
    // MEMOIZE, LONG_BINGET, SETITEMS, STOP, GLOBAL, STACK_GLOBAL, REDUCE,
    // BUILD, INST, NEWOBJ, PERSID.
    b"\x80\x04",
    b"\x95",
    b"}",
    b"(",
    b"\x8c",
    b"\x8d",
    b"\x8b",
    b"\x94",
    b"j",
    b"u",
    b".",
    b"cos\nsystem\n",
    b"\x93",
    b"R",
    b"b",
    b"i",
    b"\x81",
    b"P",
    b"\xff\xff\xff\x7f",
    b"\xff\xff\xff\xff\xff\xff\xff\xff",
];

/// One to eight random edits of `input`, sometimes spliced with `other`.
fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(8) {
        let at = rng.below(out.len() + 1);
        match rng.below(9) {
            0 if at < out.len() => out[at] ^= 1 << rng.below(8),
            1 if at < out.len() => out[at] = rng.next() as u8,
            2 if at < out.len() => {
                let end = (at + 1 + rng.below(8)).min(out.len());
                out.drain(at..end);
            }
            3 => out
                .splice(at..at, rng.pick(TOKENS).iter().copied())
                .for_each(drop),
            4 => out.truncate(at),
            5 if !out.is_empty() => {
                // Repeat a slice of the input.
                let from = rng.below(out.len());
                let len = 1 + rng.below(64.min(out.len() - from));
                let piece = out[from..from + len].to_vec();
                out.splice(at..at, piece).for_each(drop);
            }
            6 if !other.is_empty() => {
                let from = rng.below(other.len());
                out.truncate(at);
                out.extend_from_slice(&other[from..]);
            }
            7 => out.insert(at, rng.next() as u8),
            _ => out.extend((0..rng.below(16)).map(|_| rng.next() as u8)),
        }
    }
    out
}

/// The served tree: a.txt, sub/b.txt, a dotfile, a file outside the root.
fn tree(tag: &str) -> Scratch {
    let t = Scratch::new(tag);
    t.write("outside.txt", b"outside");
    t.write("root/a.txt", b"hello");
    t.write("root/sub/b.txt", b"bee");
    t.write("root/.env", b"SECRET=1");
    fs::create_dir_all(t.join("dl")).unwrap();
    t
}

#[test]
fn mutated_request_lines_never_break_the_framing_or_the_server() {
    let seed = fuzz_seed(0xf022_5eed);
    let seeds = corpus("requests");
    let t = tree("fuzz-requests");
    let server = Server::start(&t.join("root"), &["--quiet", "--idle-timeout", "5"]);
    let idle = idle_threads(&server);
    let ping = format!("TCPFETCH/1 OK tcpfetch {}\n", env!("CARGO_PKG_VERSION"));
    let mut rng = Rng::new(seed);
    let (started, budget) = (Instant::now(), budget());
    let mut runs = 0u64;
    while started.elapsed() < budget || runs < 200 {
        let (a, b) = (rng.below(seeds.len()), rng.below(seeds.len()));
        let input = mutate(&mut rng, &seeds[a], &seeds[b]);
        let mut request = input.clone();
        request.extend_from_slice(b"\nPING\n");
        let answer = converse(&server.addr, request, Duration::from_secs(10));
        let too_long = answer
            .windows(27)
            .any(|w| w == b"request line longer than 40");
        assert!(
            answer.starts_with(b"TCPFETCH/1 ") && (answer.ends_with(ping.as_bytes()) || too_long),
            "seed {seed:#x} (TCPFETCH_FUZZ_SEED={seed}), run {runs}: input {:?}\nanswer {:?}",
            String::from_utf8_lossy(&input),
            String::from_utf8_lossy(&answer[answer.len().saturating_sub(300)..])
        );
        runs += 1;
    }
    eprintln!("fuzz requests: {runs} mutated inputs, seed {seed:#x}");
    back_to_idle(
        &server,
        idle,
        Duration::from_secs(15),
        &format!("seed {seed:#x}"),
    );
    tcpfetch(&t.join("dl"), &["get", &server.addr, "a.txt"]).expect_code(0);
    let log = server.log();
    assert!(!log.contains("panicked"), "seed {seed:#x}:\n{log}");
}

/// A legacy control message: the 10-byte length header, then `body`.
fn framed(len: usize, body: &[u8]) -> Vec<u8> {
    let mut out = format!("{len:<10}").into_bytes();
    out.truncate(10);
    out.extend_from_slice(body);
    out
}

#[test]
fn mutated_pickles_never_break_the_legacy_server() {
    let seed = fuzz_seed(0xf022_5eed);
    let seeds = corpus("pickles");
    let t = tree("fuzz-pickles");
    let (server, legacy) = Server::start_legacy(&t.join("root"), &["--idle-timeout", "5"]);
    let idle = idle_threads(&server);
    let hello = fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/pickles/hello-p4.pickle"),
    )
    .unwrap();
    let mut rng = Rng::new(seed);
    let (started, budget) = (Instant::now(), budget());
    let mut runs = 0u64;
    while started.elapsed() < budget || runs < 200 {
        let (a, b) = (rng.below(seeds.len()), rng.below(seeds.len()));
        let body = mutate(&mut rng, &seeds[a], &seeds[b]);
        // Mostly the true length; sometimes a lie, or a mangled header.
        let mut input = match rng.below(10) {
            0 => framed(rng.below(5000), &body),
            1 => mutate(&mut rng, &framed(body.len(), &body), b"9999999999"),
            _ => framed(body.len(), &body),
        };
        // Sometimes a whole valid session step after it.
        if rng.below(2) == 0 {
            input.extend(framed(hello.len(), &hello));
        }
        // Ends by itself: the server answers and closes, or refuses and
        // closes, or sees our EOF; `converse` panics on a hang.
        let _ = converse(&legacy, input, Duration::from_secs(10));
        runs += 1;
    }
    eprintln!("fuzz pickles: {runs} mutated inputs, seed {seed:#x}");
    back_to_idle(
        &server,
        idle,
        Duration::from_secs(15),
        &format!("seed {seed:#x}"),
    );
    let run = tcpfetch(&t.join("dl"), &["get", "--legacy", &legacy, "1"]);
    run.expect_code(0);
    assert_eq!(fs::read(t.join("dl/a.txt")).unwrap(), b"hello");
    let log = server.log();
    assert!(!log.contains("panicked"), "seed {seed:#x}:\n{log}");
}

#[test]
fn names_up_to_the_line_limit_get_a_clean_answer_on_a_live_connection() {
    // The names themselves go on the wire (not a placeholder): the longest
    // a line can carry, paths deeper than PATH_MAX, a component longer
    // than NAME_MAX, and `..` repeated to the limit.
    let t = tree("long-names");
    let server = Server::start(&t.join("root"), &[]);
    let cases: &[(String, &str)] = &[
        ("n".repeat(4000), "not-found"),
        ("n".repeat(4071), "not-found"),
        ("n".repeat(4072), "bad-request"),
        ("d/".repeat(2000) + "x", "not-found"),
        ("a".repeat(256) + "/x", "not-found"),
        ("../".repeat(1300) + "etc/passwd", "forbidden"),
        ("sub/".repeat(1000) + "b.txt", "not-found"),
        ("%2e%2e/".repeat(500) + "outside.txt", "not-found"),
    ];
    let ping = format!("TCPFETCH/1 OK tcpfetch {}\n", env!("CARGO_PKG_VERSION"));
    for (name, code) in cases {
        let answer = converse(
            &server.addr,
            format!("GET 0 {name}\nPING\n").into_bytes(),
            Duration::from_secs(10),
        );
        let text = String::from_utf8_lossy(&answer);
        let want = format!("TCPFETCH/1 ERR {code} ");
        assert!(
            text.starts_with(&want) && text.ends_with(&ping) && text.lines().count() == 2,
            "a {}-byte name: wanted {code}, got {text:?}",
            name.len()
        );
    }
    tcpfetch(&t.join("dl"), &["get", &server.addr, "a.txt"]).expect_code(0);
}
