//! Black-box tests of several `serve` behind HAProxy (tests/haproxy/haproxy.cfg,
//! the configuration tests/README.md shows): load reaches every backend, health
//! checks speak the protocol without filling the access log, and losing a
//! backend mid-run costs no transfer.
//!
//! They need HAProxy (/usr/sbin/haproxy or `haproxy` on PATH; Debian package
//! `haproxy`, which .ci/run installs); without it each test fails and says
//! how to install it.
mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;

const CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/haproxy/haproxy.cfg");

/// Where HAProxy is: /usr/sbin/haproxy (Debian's), else `haproxy` on PATH.
/// Panics when it is nowhere: these tests cannot pass without it.
fn haproxy() -> PathBuf {
    let debian = Path::new("/usr/sbin/haproxy");
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::iter::once(debian.to_path_buf())
        .chain(std::env::split_paths(&path).map(|dir| dir.join("haproxy")))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "haproxy not found (not /usr/sbin/haproxy, not on PATH): \
                 install it (apt-get install haproxy)"
            )
        })
}

/// A running `haproxy -db -f haproxy.cfg` in front of three backends, killed
/// on drop.
struct Haproxy {
    child: Child,
    /// `127.0.0.1:PORT` where clients connect.
    addr: String,
    stats: PathBuf,
    stderr_path: PathBuf,
}

impl Haproxy {
    /// Start HAProxy on a free loopback port in front of `backends` (the
    /// config's s1, s2, s3), and wait until each has had its first health
    /// check. The port is found by binding port 0 and letting it go, so
    /// another process may take it meanwhile: then try another one.
    ///
    /// HAProxy binds with SO_REUSEPORT by default, so two of them (two tests
    /// at once, handed the same free port) would share the port and each
    /// take some of the other's clients (`not-found` for files of the other
    /// test). A second config file turns that off for the tests: the later
    /// one then fails to bind and tries another port.
    fn start(t: &Scratch, backends: [&str; 3]) -> Haproxy {
        let haproxy = haproxy();
        let exclusive = t.write("noreuseport.cfg", b"global\n    noreuseport\n");
        for attempt in 0..3 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let addr = format!("127.0.0.1:{port}");
            // A Unix socket path must fit in 108 bytes, which a deep
            // target directory may not: the socket lives in /tmp.
            let stats = std::env::temp_dir().join(format!(
                "tcpfetch-{}.sock",
                t.path.file_name().unwrap().to_string_lossy()
            ));
            let stderr_path = t.join(&format!("haproxy-{attempt}.log"));
            let child = Command::new(&haproxy)
                .arg("-db")
                .arg("-f")
                .arg(&exclusive)
                .args(["-f", CONFIG])
                .env("TCPFETCH_LISTEN", &addr)
                .env("TCPFETCH_STATS", &stats)
                .env("TCPFETCH_S1", backends[0])
                .env("TCPFETCH_S2", backends[1])
                .env("TCPFETCH_S3", backends[2])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&stderr_path).unwrap())
                .spawn()
                .unwrap();
            let mut proxy = Haproxy {
                child,
                addr,
                stats,
                stderr_path,
            };
            if proxy.wait_ready() {
                return proxy;
            }
            eprintln!("haproxy did not start on port {port}:\n{}", proxy.log());
        }
        panic!("haproxy did not start in three attempts");
    }

    /// Wait (at most 10 s) until the stats socket answers and no backend is
    /// still in its first checks; false if HAProxy exited.
    fn wait_ready(&mut self) -> bool {
        poll_until(Duration::from_secs(10), || {
            if self.child.try_wait().unwrap().is_some() {
                return Some(false);
            }
            let servers = self.servers();
            (servers.len() == 3 && servers.iter().all(|s| !s.status.contains("INI")))
                .then_some(true)
        })
        .unwrap_or(false)
    }

    /// s1, s2 and s3 as `show stat` on the stats socket reports them;
    /// empty while the socket is not up.
    fn servers(&self) -> Vec<ServerStat> {
        let Ok(mut sock) = UnixStream::connect(&self.stats) else {
            return Vec::new();
        };
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        if sock.write_all(b"show stat\n").is_err() {
            return Vec::new();
        }
        let mut csv = String::new();
        let _ = sock.read_to_string(&mut csv);
        let header: Vec<&str> = match csv.lines().next() {
            Some(h) => h.trim_start_matches("# ").split(',').collect(),
            None => return Vec::new(),
        };
        let Some(col) = ["svname", "scur", "status", "check_status"]
            .map(|name| header.iter().position(|h| *h == name))
            .into_iter()
            .collect::<Option<Vec<usize>>>()
        else {
            return Vec::new();
        };
        csv.lines()
            .skip(1)
            .map(|l| l.split(',').collect::<Vec<_>>())
            .filter(|f| col.iter().all(|&c| c < f.len()) && ["s1", "s2", "s3"].contains(&f[col[0]]))
            .map(|f| ServerStat {
                name: f[col[0]].to_string(),
                sessions: f[col[1]].parse().unwrap_or(0),
                // A check in progress is shown as `* L7OK`: the last result
                // is what counts.
                status: format!("{} {}", f[col[2]], f[col[3]].trim_start_matches("* ")),
            })
            .collect()
    }

    /// `UP L7OK`, `DOWN L4CON`...: the state of one server and its last check.
    fn status(&self, server: &str) -> String {
        self.servers()
            .into_iter()
            .find(|s| s.name == server)
            .map(|s| s.status)
            .unwrap_or_default()
    }

    /// Poll (at most `limit`) until `server`'s status starts with `want`.
    fn wait_status(&self, server: &str, want: &str, limit: Duration) -> String {
        let status = || self.status(server);
        poll_until(limit, || Some(status()).filter(|s| s.starts_with(want))).unwrap_or_else(status)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Poll (at most `limit`) until backend `index` (0 for s1) has at least
    /// `count` sessions open.
    fn wait_sessions(&self, index: usize, count: u32, limit: Duration) {
        let name = format!("s{}", index + 1);
        let open = || {
            self.servers()
                .iter()
                .find(|s| s.name == name)
                .map_or(0, |s| s.sessions)
        };
        assert!(
            poll_until(limit, || open() >= count).is_some(),
            "{name} never had {count} sessions: {}",
            open()
        );
    }

    /// The index (0 for s1) of the one backend with a session open, when
    /// one download is all that runs.
    fn only_busy_backend(&self) -> usize {
        let busy: Vec<usize> = self
            .servers()
            .iter()
            .filter(|s| s.sessions > 0)
            .map(|s| s.name[1..].parse::<usize>().unwrap() - 1)
            .collect();
        assert_eq!(busy.len(), 1, "one backend serves the get: {busy:?}");
        busy[0]
    }
}

/// Wait (at most 10 s) until a download's `.part` holds 256 KiB.
fn wait_for_bytes(part: &Path) {
    let started = poll_until(Duration::from_secs(10), || {
        std::fs::metadata(part).map_or(0, |m| m.len()) >= 256 * 1024
    });
    assert!(started.is_some(), "the get did not start");
}

/// `tcpfetch get ADDR NAME --retries 20 --retry-wait 0.2` in `cwd`, on a
/// thread of its own.
fn get_in_background(cwd: PathBuf, addr: &str, name: &str) -> thread::JoinHandle<Run> {
    let (addr, name) = (addr.to_string(), name.to_string());
    thread::spawn(move || {
        tcpfetch(
            &cwd,
            &[
                "get",
                &addr,
                &name,
                "--retries",
                "20",
                "--retry-wait",
                "0.2",
            ],
        )
    })
}

/// One backend's line of `show stat`.
struct ServerStat {
    name: String,
    /// Current sessions (health checks are not sessions).
    sessions: u32,
    status: String,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.stats);
    }
}

/// Three `serve --quiet-ping DIR --listen 127.0.0.1:0 EXTRA...`, each with
/// its access log in a file of its own.
fn three_backends(t: &Scratch, dir: &str, extra: &[&str]) -> [Server; 3] {
    backends_of(t, [dir, dir, dir], extra)
}

/// Like [`three_backends`], each with a directory of its own.
fn backends_of(t: &Scratch, dirs: [&str; 3], extra: &[&str]) -> [Server; 3] {
    let args: Vec<&str> = ["--quiet-ping"].iter().chain(extra).copied().collect();
    dirs.map(|dir| Server::start(&t.join(dir), &args))
}

fn gets_in(log: &str) -> usize {
    log.lines().filter(|l| l.contains("\"GET ")).count()
}

#[test]
fn bench_through_haproxy_reaches_all_three_backends_every_transfer_verified() {
    let t = Scratch::new("haproxy-spread");
    t.write("files/f.bin", &random_bytes(64 * 1024, 91));
    let backends = three_backends(&t, "files", &[]);
    let proxy = Haproxy::start(
        &t,
        [&backends[0].addr, &backends[1].addr, &backends[2].addr],
    );
    let run = tcpfetch(
        &t.path,
        &["bench", &proxy.addr, "f.bin", "--clients", "200", "--json"],
    );
    run.expect_code(0);
    let json = run.stdout();
    assert_eq!(json_number(&json, "ok"), 200.0, "{run}");
    assert_eq!(json_number(&json, "failed"), 0.0, "{run}");
    assert_eq!(json_number(&json, "corrupt"), 0.0, "{run}");
    // A backend logs a GET after it has answered it: wait (60 s, only a
    // bound on a hang) for the 200 lines before counting them.
    let counts = || -> Vec<usize> { backends.iter().map(|b| gets_in(&b.log())).collect() };
    let counts = poll_until(Duration::from_secs(60), || {
        Some(counts()).filter(|c| c.iter().sum::<usize>() >= 200)
    })
    .unwrap_or_else(counts);
    assert_eq!(
        counts.iter().sum::<usize>(),
        200,
        "GETs per backend: {counts:?}"
    );
    assert!(
        counts.iter().all(|&n| n > 0),
        "every backend must take part of the load; GETs per backend: {counts:?}"
    );
}

#[test]
fn three_benches_at_once_through_haproxy_merge_to_their_sums() {
    let t = Scratch::new("haproxy-merge");
    t.write("files/f.bin", &random_bytes(32 * 1024, 92));
    let backends = three_backends(&t, "files", &["-q"]);
    let proxy = Haproxy::start(
        &t,
        [&backends[0].addr, &backends[1].addr, &backends[2].addr],
    );
    // The multi-host recipe (tests/common/bench.rs), three hosts played by
    // three processes: the merge equals the sums and the percentiles of
    // every logged request.
    let json = common::bench::three_runs_merge_exactly(&t, &proxy.addr, &["f.bin"], 20, 3);
    assert_eq!(json_number(&json, "ok"), 180.0, "{json}");
}

#[test]
fn health_checks_pass_on_every_backend_and_stay_out_of_its_access_log() {
    let t = Scratch::new("haproxy-checks");
    t.write("files/f.bin", b"hello");
    let backends = three_backends(&t, "files", &[]);
    let proxy = Haproxy::start(
        &t,
        [&backends[0].addr, &backends[1].addr, &backends[2].addr],
    );
    // Wait for a passed check on each rather than a fixed time: a check
    // has 1 s to answer, which a loaded machine can miss once (L7TOUT),
    // and the next one (500 ms later) passes.
    for server in ["s1", "s2", "s3"] {
        let status = proxy.wait_status(server, "UP L7OK", Duration::from_secs(30));
        assert_eq!(status, "UP L7OK", "{server}: {}", proxy.log());
    }
    for b in &backends {
        assert_eq!(b.log(), "", "health checks must not be logged");
    }
}

#[test]
fn a_port_that_accepts_but_is_not_tcpfetch_fails_the_health_check() {
    let t = Scratch::new("haproxy-impostor");
    t.write("files/f.bin", b"hello");
    let backends = three_backends(&t, "files", &[]);
    // Something else listening on the third backend's address: it accepts
    // and answers, but not with `TCPFETCH/1 OK`.
    let impostor = TcpListener::bind("127.0.0.1:0").unwrap();
    let impostor_addr = impostor.local_addr().unwrap().to_string();
    impostor.set_nonblocking(true).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = Arc::clone(&stop);
    let answering = thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline && !stopped.load(Ordering::SeqCst) {
            match impostor.accept() {
                Ok((mut s, _)) => {
                    let _ = s.write_all(b"SSH-2.0-OpenSSH_9.2\r\n");
                }
                Err(_) => thread::sleep(Duration::from_millis(20)),
            }
        }
    });
    let proxy = Haproxy::start(&t, [&backends[0].addr, &backends[1].addr, &impostor_addr]);
    let status = proxy.wait_status("s3", "DOWN", Duration::from_secs(5));
    assert!(
        status.starts_with("DOWN L7"),
        "s3: {status}\n{}",
        proxy.log()
    );
    assert_eq!(proxy.status("s1"), "UP L7OK");
    // With the impostor out, every request lands on a real backend.
    let run = tcpfetch(
        &t.path,
        &["bench", &proxy.addr, "f.bin", "--clients", "20", "--json"],
    );
    run.expect_code(0);
    assert_eq!(json_number(&run.stdout(), "ok"), 20.0, "{run}");
    stop.store(true, Ordering::SeqCst);
    answering.join().unwrap();
}

#[test]
fn a_backend_killed_mid_run_costs_no_transfer_and_is_marked_down() {
    let t = Scratch::new("haproxy-loss");
    let big = random_bytes(4 << 20, 93);
    t.write("files/big.bin", &big);
    t.write("files/small.bin", &random_bytes(512 * 1024, 95));
    // 1 MiB/s per connection: the 4 MiB get takes about 4 s, long enough
    // to be cut halfway.
    let mut backends = three_backends(&t, "files", &["--max-rate", "1M"]);
    let proxy = Haproxy::start(
        &t,
        [&backends[0].addr, &backends[1].addr, &backends[2].addr],
    );
    std::fs::create_dir_all(t.join("dl")).unwrap();

    let get = get_in_background(t.join("dl"), &proxy.addr, "big.bin");
    let part = t.join("dl/big.bin.part");
    wait_for_bytes(&part);
    let victim = proxy.only_busy_backend();

    let (addr, cwd) = (proxy.addr.clone(), t.path.clone());
    let log = t.join("bench.jsonl");
    let log_arg = log.to_str().unwrap().to_string();
    let bench = thread::spawn(move || {
        tcpfetch(
            &cwd,
            &[
                "bench",
                &addr,
                "small.bin",
                "--clients",
                "12",
                "--duration",
                "3",
                "--retries",
                "10",
                "--json",
                "--log",
                &log_arg,
            ],
        )
    });
    // Kill once the bench has a request on the victim too (the get is its
    // first session), so that the kill cuts one of each.
    proxy.wait_sessions(victim, 2, Duration::from_secs(30));
    assert!(part.exists(), "the get finished before the kill");
    backends[victim].kill();
    let name = format!("s{}", victim + 1);

    let status = proxy.wait_status(&name, "DOWN", Duration::from_secs(30));
    assert!(
        status.starts_with("DOWN"),
        "{name}: {status}\n{}",
        proxy.log()
    );
    // HAProxy logs the change right after it shows it.
    let down = format!("Server tcpfetch/{name} is DOWN");
    let logged = poll_until(Duration::from_secs(10), || proxy.log().contains(&down));
    assert!(logged.is_some(), "{}", proxy.log());

    let get = get.join().unwrap();
    get.expect_code(0);
    assert!(get.stderr().contains("retrying"), "the get was cut: {get}");
    assert!(!get.stderr().contains("starting over"), "{get}");
    // It went on from where it was cut, on a backend that survived. A
    // paced server logs the request a moment after its last byte left, so
    // give the line a little time.
    let resumed_from_offset = |line: &str| {
        line.split('"')
            .nth(1)
            .and_then(|req| req.strip_prefix("GET +mtime ")?.strip_suffix(" big.bin"))
            .and_then(|offset| offset.parse::<u64>().ok())
            .is_some_and(|offset| offset > 0)
    };
    let resumed = poll_until(Duration::from_secs(30), || {
        backends
            .iter()
            .any(|b| b.log().lines().any(resumed_from_offset))
    });
    assert!(
        resumed.is_some(),
        "no backend logged a GET of big.bin from an offset"
    );
    let fetched = std::fs::read(t.join("dl/big.bin")).unwrap();
    assert!(
        fetched == big,
        "the resumed file differs from the served one"
    );
    assert!(!part.exists());

    let bench = bench.join().unwrap();
    bench.expect_code(0);
    let json = bench.stdout();
    let requests = json_number(&json, "requests");
    assert!(requests > 12.0, "{bench}");
    assert_eq!(json_number(&json, "ok"), requests, "{bench}");
    assert_eq!(json_number(&json, "corrupt"), 0.0, "{bench}");
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        log.lines().any(|l| !l.contains("\"attempts\":1}")),
        "some bench request was cut by the kill and retried:\n{log}"
    );
}

#[test]
fn a_resume_that_lands_on_a_backend_with_another_version_starts_over() {
    // Each backend serves its own copy; once the get is under way, the
    // two it is not using get a new version of the file (same size).
    let t = Scratch::new("haproxy-versions");
    let old = random_bytes(4 << 20, 97);
    let new = random_bytes(4 << 20, 99);
    for dir in ["a", "b", "c"] {
        t.write(&format!("{dir}/v.bin"), &old);
    }
    let mut backends = backends_of(&t, ["a", "b", "c"], &["--max-rate", "1M"]);
    let proxy = Haproxy::start(
        &t,
        [&backends[0].addr, &backends[1].addr, &backends[2].addr],
    );
    std::fs::create_dir_all(t.join("dl")).unwrap();
    let get = get_in_background(t.join("dl"), &proxy.addr, "v.bin");
    wait_for_bytes(&t.join("dl/v.bin.part"));
    let victim = proxy.only_busy_backend();
    for (i, dir) in ["a", "b", "c"].iter().enumerate() {
        if i != victim {
            t.write(&format!("{dir}/v.bin"), &new);
        }
    }
    backends[victim].kill();

    let get = get.join().unwrap();
    get.expect_code(0);
    assert!(get.stderr().contains("starting over"), "{get}");
    let fetched = std::fs::read(t.join("dl/v.bin")).unwrap();
    assert!(
        fetched == new,
        "the file must be the new version whole, never a splice of both"
    );
}
