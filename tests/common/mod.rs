//! Shared helpers for the black-box tests: each test gets its own scratch
//! directory, starts the real `tcpfetch serve` on 127.0.0.1:0, and runs the
//! real binary as a user would. Every process started here is killed on drop.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub mod bench;
pub mod refused;
pub mod relay;
pub mod scenes;
pub mod wait;

// Not every test crate sets one of these scenes, or waits.
#[allow(unused_imports)]
pub use scenes::*;
#[allow(unused_imports)]
pub use wait::poll_until;

pub const BIN: &str = env!("CARGO_BIN_EXE_tcpfetch");

/// A scratch directory under `target/`, unique per test, removed on drop.
pub struct Scratch {
    pub path: PathBuf,
}

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let path = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Scratch { path }
    }

    pub fn join(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }

    /// Write `data` at `rel`, creating parent directories.
    pub fn write(&self, rel: &str, data: &[u8]) -> PathBuf {
        let p = self.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data).unwrap();
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Deterministic pseudo-random bytes (the same xorshift64* as [`Rng`]),
/// so failures reproduce.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    // Odd, and distinct per seed (`Rng::new` folds seeds 2k and 2k+1).
    let mut rng = Rng(seed.wrapping_mul(2).wrapping_add(1));
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&rng.next().to_le_bytes());
    }
    out.truncate(len);
    out
}

/// A running `tcpfetch serve`, killed on drop.
pub struct Server {
    pub child: Child,
    /// `127.0.0.1:PORT`, read from the first stdout line.
    pub addr: String,
    pub stdout: BufReader<std::process::ChildStdout>,
    pub stderr_path: PathBuf,
}

impl Server {
    /// `tcpfetch serve DIR --listen 127.0.0.1:0 EXTRA...`, with its access
    /// log captured to a file next to DIR.
    pub fn start(dir: &Path, extra: &[&str]) -> Server {
        Server::start_under(&[], dir, extra)
    }

    /// The same, run through `wrapper` (e.g. `prlimit --nofile=64 --`),
    /// which must exec the server so that `child` is the server itself.
    pub fn start_under(wrapper: &[&str], dir: &Path, extra: &[&str]) -> Server {
        static LOGS: AtomicUsize = AtomicUsize::new(0);
        let n = LOGS.fetch_add(1, Ordering::SeqCst);
        let stderr_path = dir.with_extension(format!("serve-{n}.log"));
        let log = std::fs::File::create(&stderr_path).unwrap();
        Server::launch(wrapper, dir, extra, log.into(), stderr_path)
    }

    /// [`Server::start`] with the access log on a pipe the caller holds
    /// (to close it, or to stop reading it); [`Server::log`] is empty.
    pub fn start_log_piped(dir: &Path, extra: &[&str]) -> (Server, std::process::ChildStderr) {
        let mut server = Server::launch(&[], dir, extra, Stdio::piped(), PathBuf::new());
        let stderr = server.child.stderr.take().unwrap();
        (server, stderr)
    }

    fn launch(
        wrapper: &[&str],
        dir: &Path,
        extra: &[&str],
        stderr: Stdio,
        stderr_path: PathBuf,
    ) -> Server {
        let (program, wrapper) = match wrapper.split_first() {
            Some((program, rest)) => (*program, rest),
            None => (BIN, &[][..]),
        };
        let mut child = Command::new(program)
            .args(wrapper)
            .args(if program == BIN { None } else { Some(BIN) })
            .arg("serve")
            .arg(dir)
            .args(["--listen", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from serve: {line:?}"))
            .to_string();
        Server {
            child,
            addr,
            stdout,
            stderr_path,
        }
    }

    /// [`Server::start`] with `--legacy-listen 127.0.0.1:0` too, and the
    /// old protocol's address, read from the second stdout line.
    pub fn start_legacy(dir: &Path, extra: &[&str]) -> (Server, String) {
        let args: Vec<&str> = ["--legacy-listen", "127.0.0.1:0"]
            .iter()
            .chain(extra)
            .copied()
            .collect();
        let mut server = Server::start(dir, &args);
        let legacy = server.legacy_addr();
        (server, legacy)
    }

    /// The address of `--legacy-listen`, from the second stdout line.
    fn legacy_addr(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        line.trim()
            .strip_prefix("legacy listening on ")
            .unwrap_or_else(|| panic!("unexpected second line from serve: {line:?}"))
            .to_string()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Wait (up to 60 s: only a bound on a hang) for the log to show
    /// `needle`, and return the log. The server writes a line after it has
    /// answered or closed, so a client that saw the answer may look before
    /// the line is there.
    pub fn wait_for_log(&self, needle: &str) -> String {
        poll_until(Duration::from_secs(60), || {
            Some(self.log()).filter(|log| log.contains(needle))
        })
        .unwrap_or_else(|| panic!("no '{needle}' in the log:\n{}", self.log()))
    }

    /// Wait (up to 60 s: only a bound on a hang) until the log holds
    /// `count` lines with `needle`, then return how many it holds (a caller
    /// asserts it is exactly `count`). Lines are written by a log thread,
    /// after the answer.
    pub fn wait_for_count(&self, needle: &str, count: usize) -> usize {
        let seen = || self.log().matches(needle).count();
        poll_until(Duration::from_secs(60), || {
            Some(seen()).filter(|&n| n >= count)
        })
        .unwrap_or_else(seen)
    }

    /// A raw connection with a read timeout, for speaking the protocol by
    /// hand. The timeout only stops a hung test: a loaded machine (the
    /// server hashing a large file at a fiftieth of a core) can take
    /// seconds to answer or to drop an idle client, so it is generous.
    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(&self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        s
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The server a [`Server::start_under`] wrapper that does not exec
    /// (strace) started as its one child; killed when the guard drops, as
    /// killing the wrapper leaves it running.
    pub fn wrapped(&self) -> Wrapped {
        let wrapper = self.child.id();
        let children = std::fs::read_to_string(format!("/proc/{wrapper}/task/{wrapper}/children"))
            .unwrap_or_default();
        let pid = children
            .split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no server under {wrapper}: {children:?}"));
        Wrapped(pid)
    }
}

/// A server started by a wrapper ([`Server::wrapped`]): its process id,
/// killed on drop.
pub struct Wrapped(pub u32);

impl Drop for Wrapped {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", &self.0.to_string()])
            .status();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Send raw bytes and read everything until the server closes or `limit`
/// passes.
pub fn exchange(addr: &str, request: &[u8], limit: Duration) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(limit)).unwrap();
    // A server may close before it has read a large request (a too-long
    // line, a full house): what it answered is what the caller checks.
    let _ = s.write_all(request);
    let _ = s.shutdown(std::net::Shutdown::Write);
    let mut out = Vec::new();
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 65536];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    out
}

/// Whether a `PING` on a new connection is answered OK (not `busy`, not
/// closed); 60 s only stops a hang.
pub fn ping_answered(addr: &str) -> bool {
    exchange(addr, b"PING\n", Duration::from_secs(60)).starts_with(b"TCPFETCH/1 OK ")
}

/// Send `request` on a new connection from its own thread (so a server
/// that answers while we still send can never deadlock us), close our
/// side, and read until the server closes. Panics if the server neither
/// answers nor closes for `limit`: it hung on this input. A reset (after a
/// refused too-long line) ends the answer like a close.
pub fn converse(addr: &str, request: Vec<u8>, limit: Duration) -> Vec<u8> {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let _ = writer.write_all(&request);
        let _ = writer.shutdown(std::net::Shutdown::Write);
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match (&stream).read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                panic!("the server neither answered nor closed within {limit:?}")
            }
            Err(_) => break,
        }
    }
    sender.join().unwrap();
    answer
}

/// A small seeded PRNG (xorshift64*), so a failing run can be replayed:
/// the one every test draws its random choices from.
pub struct Rng(u64);

impl Rng {
    /// The generator for `seed`. xorshift needs a non-zero state, so the
    /// low bit is set: seeds 2k and 2k+1 give the same stream.
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform-ish in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        self.below_u64(n as u64) as usize
    }
    /// [`Rng::below`] for offsets and sizes kept as `u64`.
    pub fn below_u64(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// The fuzzing seed: `TCPFETCH_FUZZ_SEED` (decimal, as failures print it,
/// or `0x` hex) when set, else `default`. A value that does not parse
/// panics rather than quietly replaying the default.
pub fn fuzz_seed(default: u64) -> u64 {
    let Ok(text) = std::env::var("TCPFETCH_FUZZ_SEED") else {
        return default;
    };
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(&hex.replace('_', ""), 16),
        None => text.parse(),
    };
    parsed.unwrap_or_else(|_| panic!("TCPFETCH_FUZZ_SEED={text:?} is not a u64"))
}

/// A request line for the fuzzing tests, LF-terminated: one in `wild_odds`
/// is longer than the 4096-byte limit, one in ten is random bytes, the rest
/// are one of `seeds`; then up to four mutations (a byte changed, removed
/// or inserted, a cut, one of `pieces` spliced in).
pub fn mutated_line(rng: &mut Rng, seeds: &[&[u8]], pieces: &[&[u8]], wild_odds: usize) -> Vec<u8> {
    let mut line = match rng.below(wild_odds) {
        0 => vec![b'A' + rng.below(26) as u8; 4090 + rng.below(12)],
        n if n <= wild_odds / 10 => (0..rng.below(64)).map(|_| rng.next() as u8).collect(),
        _ => rng.pick(seeds).to_vec(),
    };
    for _ in 0..rng.below(5) {
        let at = rng.below(line.len() + 1);
        match rng.below(5) {
            0 if at < line.len() => line[at] = rng.next() as u8,
            1 if at < line.len() => {
                line.remove(at);
            }
            2 => line
                .splice(at..at, rng.pick(pieces).iter().copied())
                .for_each(drop),
            3 => line.truncate(at),
            _ => line.insert(at, rng.next() as u8),
        }
    }
    line.push(b'\n');
    line
}

/// A request line for the fuzzing tests of a served tree with `a.txt`,
/// `sub/b.txt` and `.env` (and, in hostile.rs's tree, `link-in`, `fifo`,
/// `loop` and `dir`; elsewhere those are merely missing): mostly a mutation
/// of a plausible line, sometimes random bytes, one in `wild_odds` longer
/// than the limit. Always LF-terminated.
pub fn hostile_line(rng: &mut Rng, wild_odds: usize) -> Vec<u8> {
    const SEEDS: &[&[u8]] = &[
        b"PING",
        b"LIST",
        b"GET 0 a.txt",
        b"GET 3 a.txt",
        b"GET 0 sub/b.txt",
        b"GET 0 link-in",
        b"GET 0 ../outside.txt",
        b"GET 0 fifo",
        b"GET 0 loop",
        b"GET 0 .env",
        b"GET 0 dir",
        b"GET 0 sub",
        b"GET 18446744073709551615 a.txt",
    ];
    const PIECES: &[&[u8]] = &[
        b"../",
        b"/",
        b"//",
        b"./",
        b"\\",
        b"\x00",
        b"\r",
        b" ",
        b"GET ",
        b"fifo",
        b"sock",
        b"\xff",
        b"\xc3\xbc",
        b"%2e",
        b"99999999999999999999",
        b"-1",
    ];
    mutated_line(rng, SEEDS, PIECES, wild_odds)
}

/// A served directory `srv/` with `files`, a download directory `dl/`, and
/// a server on it.
pub fn serve(tag: &str, files: &[(&str, &[u8])], extra: &[&str]) -> (Scratch, Server) {
    let t = Scratch::new(tag);
    std::fs::create_dir_all(t.join("srv")).unwrap();
    std::fs::create_dir_all(t.join("dl")).unwrap();
    for (name, data) in files {
        t.write(&format!("srv/{name}"), data);
    }
    let server = Server::start(&t.join("srv"), extra);
    (t, server)
}

/// A field of the server's `/proc/<pid>/status` (`Threads`, `VmRSS` in kB).
pub fn proc_status(server: &Server, field: &str) -> u64 {
    status_field(&format!("/proc/{}", server.child.id()), field)
}

/// A field of `DIR/status`, for a process or one of its threads
/// (`/proc/<pid>/task/<tid>`).
pub fn status_field(dir: &str, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("{dir}/status")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in {text}"))
}

/// A counter of `/proc/<pid>/io` (`rchar`, `wchar`: bytes read and
/// written, sockets and files alike); `None` once the process is gone.
pub fn proc_io(pid: u32, field: &str) -> Option<u64> {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(": ")?.parse().ok())
}

/// The fields of `/proc/<pid>/stat` after the command name (which is in
/// parentheses and may hold spaces): `[0]` is field 3 of proc(5), state.
pub fn proc_stat(pid: u32) -> Vec<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let (_, after) = stat.rsplit_once(") ").unwrap();
    after.split_whitespace().map(str::to_string).collect()
}

/// The server's thread count.
pub fn threads(server: &Server) -> u64 {
    proc_status(server, "Threads")
}

/// The server's thread count at rest: after one request has been served
/// (so every helper thread has started) and the count held for 300 ms.
pub fn idle_threads(server: &Server) -> u64 {
    tcpfetch(&std::env::temp_dir(), &["ping", &server.addr]).expect_code(0);
    let mut last = threads(server);
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(300));
        let now = threads(server);
        if now == last {
            return now;
        }
        last = now;
    }
    last
}

/// Wait (at most `limit`) for the thread count to fall back to `idle` (or
/// below: a connection thread kept for reuse when `idle` was counted may
/// have exited since, after its 2 s wait), panicking with `what` if it does
/// not; how long it took.
pub fn back_to_idle(server: &Server, idle: u64, limit: Duration, what: &str) -> Duration {
    let started = Instant::now();
    poll_until(limit, || threads(server) <= idle);
    let now = threads(server);
    assert!(
        now <= idle,
        "{what}: threads did not return to idle ({now}, at rest {idle})"
    );
    started.elapsed()
}

/// The raw text of `key`'s value in a flat JSON object whose strings hold
/// no commas or braces (true of what bench writes for these tests); an
/// object value is returned whole, braces included.
pub fn json_value<'a>(json: &'a str, key: &str) -> &'a str {
    let pat = format!("\"{key}\":");
    let start = json
        .find(&pat)
        .unwrap_or_else(|| panic!("no key {key} in {json}"))
        + pat.len();
    let rest = &json[start..];
    let end = if rest.starts_with('{') {
        rest.find('}').unwrap() + 1
    } else {
        rest.find([',', '}']).unwrap()
    };
    &rest[..end]
}

/// `key`'s value in bench's one-line JSON report, as a number.
pub fn json_number(json: &str, key: &str) -> f64 {
    json_value(json, key)
        .parse()
        .unwrap_or_else(|_| panic!("{key} is not a number in {json}"))
}

/// The result of running the binary, with everything needed to explain a
/// failed assertion.
pub struct Run {
    pub cmd: String,
    pub output: Output,
}

impl Run {
    pub fn code(&self) -> i32 {
        self.output.status.code().unwrap_or(-1)
    }
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
    /// Assert the exit code, printing the whole run when it differs.
    pub fn expect_code(&self, code: i32) -> &Run {
        assert_eq!(self.code(), code, "{self}");
        self
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "\n$ {}\nexit: {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.cmd,
            self.output.status,
            self.stdout(),
            self.stderr()
        )
    }
}

/// Run `tcpfetch ARGS...` in `cwd`, stdin empty, killed after 60 s.
pub fn tcpfetch(cwd: &Path, args: &[&str]) -> Run {
    run_program(BIN, cwd, args, b"")
}

/// Run `program ARGS...` in `cwd` with `stdin` as its input (in a UTF-8
/// locale, so messages compare alike), killed after 60 s.
pub fn run_program(program: &str, cwd: &Path, args: &[&str], stdin: &[u8]) -> Run {
    let mut child = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .env("LC_ALL", "C.UTF-8")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    // Drain both pipes on their own threads so a chatty child never blocks.
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out = drain(Box::new(child.stdout.take().unwrap()));
    let err = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let _ = feeder.join();
    let name = if program == BIN { "tcpfetch" } else { program };
    Run {
        cmd: format!("{name} {}", args.join(" ")),
        output: Output {
            status,
            stdout: out.join().unwrap(),
            stderr: err.join().unwrap(),
        },
    }
}

/// SHA-256 of `data` as hex, computed by coreutils' `sha256sum` (an oracle
/// independent of the code under test).
pub fn sha256_hex(data: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

/// The files in `dir`, sorted, for messages and "nothing was left" checks.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Wait for the server's log line `<request> aborted SENT/DUE` (`request`
/// quoted as the log quotes it, with the listener's tag before it if any)
/// and return SENT and DUE.
pub fn wait_for_aborted(server: &Server, request: &str) -> (u64, u64) {
    let needle = format!("{request} aborted ");
    let log = server.wait_for_log(&needle);
    let line = log.lines().find(|l| l.contains(&needle)).unwrap();
    let counts = line.split(&needle).nth(1).unwrap();
    let (sent, due) = counts.split_once(' ').unwrap().0.split_once('/').unwrap();
    (sent.parse().unwrap(), due.parse().unwrap())
}
