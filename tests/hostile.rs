//! Black-box tests of what `serve` does with hostile or broken peers: names
//! that try to leave the served directory, special files, malformed and
//! oversized lines, too many clients, idle and trickling clients, and a
//! seeded stream of random requests. After each, the server still serves.
mod common;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use common::refused::{keep_sending, refused_while_sending};
use common::*;

/// One raw protocol connection, read line by line.
struct Raw {
    reader: BufReader<TcpStream>,
}

impl Raw {
    fn open(server: &Server) -> Raw {
        Raw {
            reader: BufReader::new(server.connect()),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).unwrap();
    }

    /// The next line, without its LF; panics on EOF or timeout.
    fn line(&mut self) -> String {
        let mut line = Vec::new();
        let n = self.reader.read_until(b'\n', &mut line).unwrap();
        assert!(n > 0 && line.ends_with(b"\n"), "no complete line: {line:?}");
        line.pop();
        String::from_utf8(line).unwrap()
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = vec![0; n];
        self.reader.read_exact(&mut out).unwrap();
        out
    }

    /// Whether the server closed the connection (EOF or reset) within the
    /// read timeout, with no further bytes.
    fn closed(&mut self) -> bool {
        let mut buf = [0u8; 64];
        match self.reader.read(&mut buf) {
            Ok(0) => true,
            Ok(n) => panic!("unexpected bytes: {:?}", String::from_utf8_lossy(&buf[..n])),
            Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
        }
    }
}

/// The served tree every refusal test works on, and a server on it.
///
/// ```text
/// outside.txt               (next to the root: never served)
/// root/a.txt  root/sub/b.txt  root/sub/.hidden  root/.env  root/.git/config
/// root/link-in -> a.txt          root/link-out -> ../outside.txt
/// root/link-abs -> /abs/outside.txt   root/link-etc -> /etc/passwd
/// root/link-dev -> /dev/null     root/up -> ..
/// root/loop -> loop              root/ping -> pong -> ping
/// root/dangling -> nowhere       root/dirlink -> sub
/// root/to-hidden -> .env         root/fifo (mkfifo)  root/link-fifo -> fifo
/// root/sock (a unix socket)      root/dir/ (a directory)
/// ```
fn hostile_tree(tag: &str, extra: &[&str]) -> (Scratch, Server) {
    use std::os::unix::fs::symlink;
    let t = Scratch::new(tag);
    let root = t.join("root");
    t.write("outside.txt", b"outside");
    t.write("root/a.txt", b"hello");
    t.write("root/sub/b.txt", b"bee");
    t.write("root/sub/.hidden", b"h");
    t.write("root/.env", b"SECRET=1");
    t.write("root/.git/config", b"[core]");
    std::fs::create_dir_all(root.join("dir")).unwrap();
    let outside_abs = std::fs::canonicalize(t.join("outside.txt")).unwrap();
    for (target, link) in [
        (Path::new("a.txt"), "link-in"),
        (Path::new("../outside.txt"), "link-out"),
        (outside_abs.as_path(), "link-abs"),
        (Path::new("/etc/passwd"), "link-etc"),
        (Path::new("/dev/null"), "link-dev"),
        (Path::new(".."), "up"),
        (Path::new("loop"), "loop"),
        (Path::new("pong"), "ping"),
        (Path::new("ping"), "pong"),
        (Path::new("nowhere"), "dangling"),
        (Path::new("sub"), "dirlink"),
        (Path::new(".env"), "to-hidden"),
        (Path::new("fifo"), "link-fifo"),
    ] {
        symlink(target, root.join(link)).unwrap();
    }
    let status = Command::new("mkfifo")
        .arg(root.join("fifo"))
        .status()
        .unwrap();
    assert!(status.success(), "mkfifo failed");
    // The socket file stays on disk after the listener is dropped; the
    // server only ever sees the file.
    drop(std::os::unix::net::UnixListener::bind(root.join("sock")).unwrap());
    let server = Server::start(&root, extra);
    (t, server)
}

/// The server still answers a real client, and no thread of it panicked.
fn assert_still_serving(t: &Scratch, server: &Server) {
    let dl = t.join("dl-after");
    std::fs::create_dir_all(&dl).unwrap();
    // A place held by a connection that just closed (wait_for_a_free_place's
    // probe, or this ping) frees only once the server sees the close, so a
    // client right after can meet `busy`: that, and only that, is retried.
    let answered = poll_until(Duration::from_secs(60), || {
        let run = tcpfetch(&dl, &["ping", &server.addr]);
        assert!(run.code() == 0 || run.stderr().contains("busy"), "{run}");
        run.code() == 0
    });
    assert!(answered.is_some(), "ping met busy for 60 s");
    tcpfetch(
        &dl,
        &["get", &server.addr, "a.txt", "--force", "--retries", "5"],
    )
    .expect_code(0);
    assert_eq!(std::fs::read(dl.join("a.txt")).unwrap(), b"hello");
    let log = server.log();
    assert!(
        !log.contains("panicked"),
        "a server thread panicked:\n{log}"
    );
}

/// What a refusal row expects: an OK, or an `ERR` with this code.
const OK: &str = "OK";

#[test]
fn each_traversal_and_special_file_gets_the_right_answer() {
    let (t, server) = hostile_tree("refusals", &[]);
    let abs_a = format!(
        "{}/a.txt",
        std::fs::canonicalize(t.join("root")).unwrap().display()
    );
    let long_name = "n".repeat(4000);
    let deep_name = "d/".repeat(2000) + "x";
    let cases: &[(&str, &str)] = &[
        // Served, as controls: the table can tell an OK from an ERR.
        ("a.txt", OK),
        ("sub/b.txt", OK),
        ("link-in", OK),
        ("dirlink/b.txt", OK),
        ("up/root/a.txt", OK),
        // `..` in every position.
        ("..", "forbidden"),
        ("../outside.txt", "forbidden"),
        ("../root/a.txt", "forbidden"),
        ("sub/..", "forbidden"),
        ("sub/../a.txt", "forbidden"),
        ("sub/../../outside.txt", "forbidden"),
        ("sub/b.txt/..", "forbidden"),
        ("../../../../../../etc/passwd", "forbidden"),
        // `.` and empty components.
        (".", "forbidden"),
        ("./a.txt", "forbidden"),
        ("sub/./b.txt", "forbidden"),
        ("sub/.", "forbidden"),
        ("sub//b.txt", "forbidden"),
        ("sub/", "forbidden"),
        ("a.txt/", "forbidden"),
        // Absolute paths, even to a file inside the root.
        ("/etc/passwd", "forbidden"),
        ("//etc/passwd", "forbidden"),
        ("/", "forbidden"),
        (&abs_a, "forbidden"),
        // Backslashes.
        ("sub\\b.txt", "forbidden"),
        ("..\\outside.txt", "forbidden"),
        ("\\etc\\passwd", "forbidden"),
        ("a.txt\\", "forbidden"),
        // Symlinks that resolve outside, loop, or dangle.
        ("link-out", "forbidden"),
        ("link-abs", "forbidden"),
        ("link-etc", "forbidden"),
        ("link-dev", "forbidden"),
        ("up/outside.txt", "forbidden"),
        ("loop", "forbidden"),
        ("ping", "forbidden"),
        ("dangling", "not-found"),
        // Not regular files.
        ("dir", "forbidden"),
        ("sub", "forbidden"),
        ("dirlink", "forbidden"),
        ("fifo", "forbidden"),
        ("link-fifo", "forbidden"),
        ("sock", "forbidden"),
        // Dotfiles do not even admit they exist.
        (".env", "not-found"),
        (".git/config", "not-found"),
        (".git", "not-found"),
        ("sub/.hidden", "not-found"),
        ("to-hidden", "not-found"),
        ("...", "not-found"),
        // Encodings that only look like traversal are plain names.
        ("%2e%2e/outside.txt", "not-found"),
        ("\u{ff0e}\u{ff0e}/outside.txt", "not-found"),
        ("\u{2024}\u{2024}/outside.txt", "not-found"),
        ("missing.txt", "not-found"),
        ("a.txt/x", "not-found"),
        // Names too long for the file system (one 4000-byte component,
        // 2000 levels), but not for a line: sent whole, answered like any
        // missing name.
        (&long_name, "not-found"),
        (&deep_name, "not-found"),
        // Control characters.
        ("a\u{0}b", "bad-request"),
        ("a\u{1}b", "bad-request"),
        ("a\u{1b}[2Jb", "bad-request"),
        ("a\tb", "bad-request"),
        ("a\rb", "bad-request"),
        ("a.txt\r\r", "bad-request"),
        ("a\u{7f}b", "bad-request"),
        ("a\u{85}b", "bad-request"),
    ];
    let limit = Duration::from_secs(5);
    // A name that is not there: every not-found answer must be this one,
    // word for word, whatever the name was.
    let missing = exchange(&server.addr, b"GET 0 missing.txt\n", limit);
    for (name, want) in cases {
        // The whole name is sent; long ones are shown by their length only.
        let label = if name.len() > 80 {
            format!("<{} bytes>", name.len())
        } else {
            format!("{name:?}")
        };
        let request = format!("GET 0 {name}\n");
        let answer = exchange(&server.addr, request.as_bytes(), limit);
        let text = String::from_utf8_lossy(&answer);
        let first = text.split('\n').next().unwrap_or("");
        if *want == OK {
            assert!(first.starts_with("TCPFETCH/1 OK "), "{label}: {text:?}");
        } else {
            assert!(
                first.starts_with(&format!("TCPFETCH/1 ERR {want} ")),
                "{label}: wanted {want}, got {text:?}"
            );
            assert_eq!(text.matches('\n').count(), 1, "{label}: {text:?}");
            assert!(text.ends_with('\n'), "{label}: {text:?}");
        }
        if *want == "not-found" {
            assert_eq!(
                text,
                String::from_utf8_lossy(&missing),
                "{label}: not the answer for a missing name"
            );
        }
    }
    // The long names reached the server as names, not as their labels: its
    // access log quotes the start of each request line.
    for name in [&long_name, &deep_name] {
        server.wait_for_log(&format!("\"GET 0 {}", &name[..40]));
    }
    assert_still_serving(&t, &server);
}

#[test]
fn malformed_requests_get_bad_request() {
    let (t, server) = hostile_tree("malformed", &[]);
    let cases: &[&[u8]] = &[
        b"GET 0 \xff\xfe\n",
        b"GET 0 a\xc3.txt\n",
        b"GET 6 a.txt\n",
        b"GET 18446744073709551615 a.txt\n",
        b"GET 18446744073709551616 a.txt\n",
        b"GET -1 a.txt\n",
        b"GET +0 a.txt\n",
        b"GET 0x0 a.txt\n",
        b"GET  a.txt\n",
        b"GET 0 \n",
        b"GET 0\n",
        b"GET\n",
        b"get 0 a.txt\n",
        b"PING extra\n",
        b" PING\n",
        b"LIST all\n",
        b"\n",
        b"\r\n",
        b"\x00\n",
        b"HTTP/1.1 200 OK\n",
        b"GET / HTTP/1.1\r\n",
    ];
    for request in cases {
        // `converse` panics if the server neither answers nor closes: the
        // limit only stops a hang (5 s read nothing on a loaded machine,
        // which looked like an unanswered request).
        let answer = converse(&server.addr, request.to_vec(), Duration::from_secs(60));
        let text = String::from_utf8_lossy(&answer);
        assert!(
            text.starts_with("TCPFETCH/1 ERR bad-request ") && text.matches('\n').count() == 1,
            "{:?}: {text:?}",
            String::from_utf8_lossy(request)
        );
    }
    assert_still_serving(&t, &server);
}

#[test]
fn the_access_log_quotes_each_request_whole_and_unforgeable() {
    // Requests used to be logged as their first 60 bytes with quotes left
    // as they were: two long paths read alike, and a name holding `" ok 5`
    // forged the status and byte fields after it.
    let deep = "releases/2026/november/linux-x86_64/tcpfetch";
    let (_t, server) = serve(
        "log-quoting",
        &[
            (&format!("{deep}-0.1.0.tar.gz"), b"a"),
            (&format!("{deep}-0.1.1.tar.gz"), b"b"),
        ],
        &[],
    );
    let requests = format!(
        "GET 0 {deep}-0.1.0.tar.gz\nGET 0 {deep}-0.1.1.tar.gz\nGET 0 x\" ok 5 0.1ms\nPING\n"
    );
    converse(&server.addr, requests.into_bytes(), Duration::from_secs(30));
    server.wait_for_log("\"PING\"");
    let log = server.log();
    for version in ["0.1.0", "0.1.1"] {
        assert!(
            log.contains(&format!("\"GET 0 {deep}-{version}.tar.gz\" ok 1 ")),
            "{log}"
        );
    }
    assert!(log.contains(r#""GET 0 x\" ok 5 0.1ms" not-found"#), "{log}");
}

#[test]
fn an_offset_at_the_end_sends_only_the_header() {
    let (_t, server) = hostile_tree("offset-end", &[]);
    let mut raw = Raw::open(&server);
    raw.send(b"GET 5 a.txt\nGET 3 a.txt\nPING\n");
    let header = raw.line();
    assert!(header.starts_with("TCPFETCH/1 OK 5 "), "{header}");
    assert_eq!(raw.line(), header);
    assert_eq!(raw.bytes(2), b"lo");
    assert!(raw.line().starts_with("TCPFETCH/1 OK tcpfetch "));
}

#[test]
fn a_4096_byte_line_is_parsed_and_the_connection_stays_usable() {
    let (_t, server) = hostile_tree("line-4096", &[]);
    let mut raw = Raw::open(&server);
    for terminator in [&b"\n"[..], b"\r\n"] {
        let mut line = b"GET 0 ".to_vec();
        line.resize(4096, b'n');
        line.extend_from_slice(terminator);
        raw.send(&line);
        let answer = raw.line();
        assert!(
            answer.starts_with("TCPFETCH/1 ERR bad-request "),
            "{answer}"
        );
        assert!(!answer.contains("longer than"), "{answer}");
    }
    raw.send(b"PING\n");
    assert!(raw.line().starts_with("TCPFETCH/1 OK tcpfetch "));
}

#[test]
fn a_4097_byte_line_is_refused_and_the_connection_closed() {
    let (t, server) = hostile_tree("line-4097", &[]);
    for (len, terminator) in [(4097, &b"\n"[..]), (4097, b"\r\n"), (100_000, b"\n")] {
        let mut raw = Raw::open(&server);
        let mut line = b"GET 0 ".to_vec();
        line.resize(len, b'n');
        line.extend_from_slice(terminator);
        // The server may close before it read all of a long line: a failed
        // write is part of the expected outcome.
        let _ = raw.reader.get_mut().write_all(&line);
        let _ = raw.reader.get_mut().write_all(b"PING\n");
        let answer = raw.line();
        assert_eq!(
            answer, "TCPFETCH/1 ERR bad-request request line longer than 4096 bytes",
            "{len}"
        );
        assert!(raw.closed(), "{len}: the connection stayed open");
    }
    assert_still_serving(&t, &server);
}

#[test]
fn a_line_without_end_is_dropped_at_the_limit() {
    let (t, server) = hostile_tree("no-lf", &[]);
    let mut raw = Raw::open(&server);
    let flood = vec![b'x'; 64 * 1024];
    let _ = raw.reader.get_mut().write_all(&flood);
    assert!(raw.line().starts_with("TCPFETCH/1 ERR bad-request "));
    assert!(raw.closed());
    assert_still_serving(&t, &server);
}

#[test]
fn crlf_line_endings_are_tolerated() {
    let (_t, server) = hostile_tree("crlf", &[]);
    let mut raw = Raw::open(&server);
    raw.send(b"PING\r\nGET 0 a.txt\r\nLIST\r\n");
    assert!(raw.line().starts_with("TCPFETCH/1 OK tcpfetch "));
    assert!(raw.line().starts_with("TCPFETCH/1 OK 5 "));
    assert_eq!(raw.bytes(5), b"hello");
    assert_eq!(raw.line(), "TCPFETCH/1 OK 3");
}

#[test]
fn garbage_lines_get_bad_request_and_the_connection_stays_usable() {
    let (_t, server) = hostile_tree("garbage", &[]);
    let mut raw = Raw::open(&server);
    let garbage: &[&[u8]] = &[
        b"HELLO\n",
        b"\n",
        b"GET\n",
        b"GET x a.txt\n",
        b"\x00\x01\x02\x03\n",
        b"\xff\xfe\xfd\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n",
        b"GET 0 ../outside.txt\n",
    ];
    for line in garbage {
        raw.send(line);
        let answer = raw.line();
        assert!(
            answer.starts_with("TCPFETCH/1 ERR "),
            "{:?}: {answer}",
            String::from_utf8_lossy(line)
        );
    }
    raw.send(b"GET 0 a.txt\n");
    assert!(raw.line().starts_with("TCPFETCH/1 OK 5 "));
    assert_eq!(raw.bytes(5), b"hello");
}

#[test]
fn keep_alive_answers_pipelined_requests_in_order() {
    let (_t, server) = hostile_tree("keep-alive", &[]);
    let mut raw = Raw::open(&server);
    raw.send(b"GET 0 a.txt\nGET 1 sub/b.txt\nPING\n");
    let a = raw.line();
    assert_eq!(
        a,
        format!("TCPFETCH/1 OK 5 {}", sha256_hex(b"hello")),
        "first GET"
    );
    assert_eq!(raw.bytes(5), b"hello");
    assert_eq!(
        raw.line(),
        format!("TCPFETCH/1 OK 3 {}", sha256_hex(b"bee")),
        "second GET"
    );
    assert_eq!(raw.bytes(2), b"ee");
    assert_eq!(
        raw.line(),
        format!("TCPFETCH/1 OK tcpfetch {}", env!("CARGO_PKG_VERSION"))
    );
    // One request at a time on the same connection works as well, and a
    // clean close ends it.
    raw.send(b"LIST\n");
    let count: usize = raw
        .line()
        .strip_prefix("TCPFETCH/1 OK ")
        .unwrap()
        .parse()
        .unwrap();
    let names: Vec<String> = (0..count).map(|_| raw.line()).collect();
    assert!(names.iter().any(|l| l.ends_with(" sub/b.txt")), "{names:?}");
    raw.reader.get_mut().shutdown(Shutdown::Write).unwrap();
    assert!(raw.closed());
}

#[test]
fn a_response_longer_than_the_idle_timeout_keeps_the_connection() {
    // The idle timeout is about silence, not about how long a transfer
    // takes: after a long download the same connection takes more requests.
    let (t, server) = hostile_tree("long-response", &["--idle-timeout", "1"]);
    let data = random_bytes(24 << 20, 30);
    t.write("root/big.bin", &data);
    let mut raw = Raw::open(&server);
    raw.send(b"GET 0 big.bin\n");
    assert!(raw.line().starts_with("TCPFETCH/1 OK 25165824 "));
    // Read slowly for 1.5 s, so the server is still sending after its
    // idle timeout; then send the next request and take the rest of the
    // body. The PING waits in the socket until the body is out: the server
    // must read it with a fresh deadline, not the one its GET had (long
    // past). Sent after the body instead, it raced the idle timeout: a
    // loaded machine can take a second to read the last megabytes.
    let started = Instant::now();
    let mut got = Vec::with_capacity(data.len());
    let mut chunk = vec![0u8; 256 * 1024];
    let mut pinged = false;
    while got.len() < data.len() {
        let want = chunk.len().min(data.len() - got.len());
        raw.reader.read_exact(&mut chunk[..want]).unwrap();
        got.extend_from_slice(&chunk[..want]);
        if started.elapsed() < Duration::from_millis(1500) {
            thread::sleep(Duration::from_millis(25));
        } else if !pinged {
            raw.send(b"PING\n");
            pinged = true;
        }
    }
    assert!(got == data, "body differs");
    if !pinged {
        raw.send(b"PING\n");
    }
    assert!(raw.line().starts_with("TCPFETCH/1 OK tcpfetch "));
}

/// Ping on fresh connections until one is answered OK; panics with `what`
/// once `limit` has passed.
fn wait_for_a_free_place(server: &Server, limit: Duration, what: &str) {
    let free = poll_until(limit, || ping_answered(&server.addr));
    assert!(free.is_some(), "{what}");
}

#[test]
fn clients_past_max_clients_get_busy_at_once() {
    let (t, server) = hostile_tree("busy", &["--max-clients", "2"]);
    let mut held: Vec<Raw> = (0..2).map(|_| Raw::open(&server)).collect();
    for raw in &mut held {
        raw.send(b"PING\n");
        assert!(raw.line().starts_with("TCPFETCH/1 OK "));
    }
    let mut third = Raw::open(&server);
    third
        .reader
        .get_ref()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let answer = third.line();
    assert!(answer.starts_with("TCPFETCH/1 ERR busy "), "{answer}");
    assert!(third.closed());
    // The client says so too, with exit 1.
    let run = tcpfetch(&t.path, &["ping", &server.addr]);
    run.expect_code(1);
    assert!(run.stderr().contains("busy"), "{run}");
    drop(held);
    // The slots free as soon as the server notices the two closes.
    wait_for_a_free_place(
        &server,
        Duration::from_secs(10),
        "still busy after the holders left",
    );
    assert_still_serving(&t, &server);
}

/// A refused client that pipelines many requests before it reads still
/// reads `ERR busy`: what it sends is drained, not answered with a reset.
#[test]
fn a_busy_client_still_sending_reads_its_refusal() {
    let (_t, server) = hostile_tree("busy-drain", &["--max-clients", "1"]);
    let mut holder = Raw::open(&server);
    holder.send(b"PING\n");
    assert!(holder.line().starts_with("TCPFETCH/1 OK "));
    let answer = refused_while_sending(|| {
        let connected = Instant::now();
        let mut s = server.connect();
        thread::sleep(Duration::from_millis(100));
        keep_sending(&mut s, connected, &b"PING\n".repeat(16 * 1024))
    });
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("TCPFETCH/1 ERR busy "), "{answer}");
}

#[test]
fn an_idle_client_is_dropped_after_the_idle_timeout() {
    let (_t, server) = hostile_tree("idle", &["--idle-timeout", "1"]);
    let mut silent = Raw::open(&server);
    let mut after_request = Raw::open(&server);
    after_request.send(b"PING\n");
    assert!(after_request.line().starts_with("TCPFETCH/1 OK "));
    // `connect` set a 60 s read timeout, only to stop a hang: the close
    // comes after the 1 s idle timeout.
    assert!(silent.closed(), "a silent client was not dropped");
    assert!(
        after_request.closed(),
        "an idle keep-alive client was not dropped"
    );
    server.wait_for_log("idle timeout");
}

#[test]
fn a_trickling_client_is_dropped_by_the_request_deadline() {
    let (_t, server) = hostile_tree("trickle", &["--idle-timeout", "1"]);
    let mut raw = Raw::open(&server);
    raw.reader
        .get_ref()
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    // One byte every 300 ms never leaves the socket silent for a second,
    // but the whole line would take 12 s.
    let line = b"GET 0 a-name-that-takes-long-to-trickle.txt\n";
    let mut dropped_after = None;
    for (i, byte) in line.iter().enumerate() {
        if raw.reader.get_mut().write_all(&[*byte]).is_err() || raw.closed() {
            dropped_after = Some(i);
            break;
        }
    }
    let sent = dropped_after.expect("the trickler was never dropped");
    assert!(sent < line.len() - 1, "dropped only after the whole line");
    server.wait_for_log("idle timeout");
}

#[test]
fn a_client_that_stops_reading_is_dropped() {
    let (t, server) = hostile_tree("non-reader", &["--idle-timeout", "1", "--max-clients", "1"]);
    t.write("root/big.bin", &random_bytes(32 << 20, 31));
    let mut stalled = Raw::open(&server);
    stalled.send(b"GET 0 big.bin\n");
    assert!(stalled.line().starts_with("TCPFETCH/1 OK "));
    // It reads nothing more. Its slot frees once the server's write times
    // out, and the one place left serves someone else.
    wait_for_a_free_place(
        &server,
        Duration::from_secs(15),
        "the stalled reader kept its slot",
    );
    drop(stalled);
}

/// Check that `answer` is a well-framed sequence of responses to the lines
/// of `sent`, as the server split them: one response per line, in order,
/// each body as long as its header says, until the stream ends; it may end
/// early only right after a too-long line. Returns how many were answered.
fn check_framing(sent: &[u8], answer: &[u8], digests: &[String]) -> Result<usize, String> {
    let mut rest = answer;
    let mut answered = 0;
    let take_line = |rest: &mut &[u8]| -> Option<String> {
        let end = rest.iter().position(|&b| b == b'\n')?;
        let line = String::from_utf8_lossy(&rest[..end]).into_owned();
        *rest = &rest[end + 1..];
        Some(line)
    };
    // `sent` ends with LF: the empty piece after it is no line.
    let body = sent.strip_suffix(b"\n").unwrap_or(sent);
    for raw_line in body.split(|&b| b == b'\n') {
        if rest.is_empty() {
            break;
        }
        let line = raw_line.strip_suffix(b"\r").unwrap_or(raw_line);
        let status = take_line(&mut rest).ok_or("a status line without its LF")?;
        answered += 1;
        if line.len() > 4096 {
            if !status.starts_with("TCPFETCH/1 ERR bad-request request line longer") {
                return Err(format!("too-long line answered {status:?}"));
            }
            return if rest.is_empty() {
                Ok(answered)
            } else {
                Err("bytes after the too-long answer".into())
            };
        }
        if status.starts_with("TCPFETCH/1 ERR ") {
            continue;
        }
        let details = status
            .strip_prefix("TCPFETCH/1 OK ")
            .ok_or_else(|| format!("not a status line: {status:?}"))?;
        if line == b"PING" {
            if !details.starts_with("tcpfetch ") {
                return Err(format!("PING answered {status:?}"));
            }
        } else if line == b"LIST" {
            let n: usize = details
                .parse()
                .map_err(|_| format!("LIST answered {status:?}"))?;
            for _ in 0..n {
                take_line(&mut rest).ok_or("a LIST entry without its LF")?;
            }
        } else if let Some(get) = line.strip_prefix(b"GET ") {
            let offset: u64 = std::str::from_utf8(get.split(|&b| b == b' ').next().unwrap_or(b""))
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("GET with a bad offset answered {status:?}"))?;
            let (size, digest) = details
                .split_once(' ')
                .ok_or_else(|| format!("GET answered {status:?}"))?;
            let size: u64 = size
                .parse()
                .map_err(|_| format!("GET answered {status:?}"))?;
            if !digests.iter().any(|d| d == digest) {
                return Err(format!("GET answered an unknown digest: {status:?}"));
            }
            let body = usize::try_from(size - offset).map_err(|_| "huge body")?;
            if rest.len() < body {
                return Err(format!("GET body cut short: {status:?}"));
            }
            rest = &rest[body..];
        } else {
            return Err(format!(
                "{:?} answered {status:?}",
                String::from_utf8_lossy(line)
            ));
        }
    }
    if !rest.is_empty() {
        return Err(format!("{} bytes after the last answer", rest.len()));
    }
    Ok(answered)
}

#[test]
fn random_and_mutated_requests_never_break_the_server() {
    let seed = fuzz_seed(0x5eed_7cf0);
    let (t, server) = hostile_tree("fuzz", &["--quiet"]);
    let digests: Vec<String> = [&b"hello"[..], b"bee"]
        .iter()
        .map(|d| sha256_hex(d))
        .collect();
    let mut rng = Rng::new(seed);
    let mut lines_sent = 0;
    let mut answered = 0;
    for conn in 0..200 {
        let mut request = Vec::new();
        for _ in 0..100 {
            request.extend(hostile_line(&mut rng, 200));
        }
        lines_sent += request.iter().filter(|&&b| b == b'\n').count();
        let answer = converse(&server.addr, request.clone(), Duration::from_secs(10));
        match check_framing(&request, &answer, &digests) {
            Ok(n) => answered += n,
            Err(why) => panic!(
                "seed {seed:#x} (TCPFETCH_FUZZ_SEED={seed}), connection {conn}: {why}\n\
                 answer starts {:?}",
                String::from_utf8_lossy(&answer[..answer.len().min(400)])
            ),
        }
    }
    eprintln!("fuzz: {answered} of {lines_sent} lines answered");
    // A third of the connections meet a too-long line; most lines are
    // still answered.
    assert!(lines_sent >= 20_000, "{lines_sent}");
    assert!(
        answered > lines_sent / 4,
        "seed {seed:#x}: {answered} of {lines_sent}"
    );
    assert_still_serving(&t, &server);
}
