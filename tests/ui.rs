//! Black-box tests of `tcpfetch ui`: the real binary on 127.0.0.1:0, spoken
//! to over raw `TcpStream`s, against a real `serve` where a server is needed.

mod common;
use common::refused::{keep_sending, refused_while_sending};
use common::*;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// A running `tcpfetch ui`, killed on drop.
struct Ui {
    child: Child,
    /// `127.0.0.1:PORT`.
    addr: String,
    token: String,
}

impl Ui {
    fn start(dir: &std::path::Path, extra: &[&str]) -> Ui {
        let mut child = Command::new(BIN)
            .args(["ui", "--listen", "127.0.0.1:0", "--dir"])
            .arg(dir)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .strip_prefix("ui on http://")
            .and_then(|rest| rest.strip_suffix("/\n"))
            .unwrap_or_else(|| panic!("unexpected first line from ui: {line:?}"))
            .to_string();
        let mut ui = Ui {
            child,
            addr,
            token: String::new(),
        };
        let page = ui.get("/");
        ui.token = page
            .body
            .split("name=\"tcpfetch-token\" content=\"")
            .nth(1)
            .and_then(|rest| rest.get(..64))
            .unwrap_or_else(|| panic!("no token in the page: {}", page.body))
            .to_string();
        ui
    }

    fn send(&self, raw: &[u8]) -> Reply {
        // The ui closes after each answer: the limit only stops a hang.
        Reply::parse(&exchange(&self.addr, raw, Duration::from_secs(60)))
    }

    fn get(&self, path: &str) -> Reply {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", self.addr).as_bytes())
    }

    /// A `POST` of a URL-encoded form, with the page's token.
    fn post(&self, path: &str, form: &str) -> Reply {
        self.post_with(path, form, &format!("X-Tcpfetch-Token: {}\r\n", self.token))
    }

    fn post_with(&self, path: &str, form: &str, headers: &str) -> Reply {
        self.send(
            format!(
                "POST {path} HTTP/1.1\r\nHost: {}\r\n{headers}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
                self.addr,
                form.len()
            )
            .as_bytes(),
        )
    }

    /// Poll a job until it is no longer running or winding down after a
    /// cancel (20 s at most).
    fn wait_job(&self, id: &str) -> Reply {
        self.poll_job(id, |body| {
            !body.contains("\"state\":\"running\"") && !body.contains("\"state\":\"cancelling\"")
        })
    }

    /// Poll a job until `ready` holds for its state (20 s at most).
    fn poll_job(&self, id: &str, ready: impl Fn(&str) -> bool) -> Reply {
        let job = || self.get(&format!("/api/jobs/{id}"));
        poll_until(Duration::from_secs(20), || {
            Some(job()).filter(|r| ready(&r.body))
        })
        .unwrap_or_else(job)
    }
}

impl Drop for Ui {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
struct Reply {
    status: u16,
    head: String,
    body: String,
}

impl Reply {
    fn parse(raw: &[u8]) -> Reply {
        let text = String::from_utf8_lossy(raw).into_owned();
        let (head, body) = text
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("no complete response: {text:?}"));
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status: {head:?}"));
        Reply {
            status,
            head: head.to_string(),
            body: body.to_string(),
        }
    }

    /// The job id of a 202 answer.
    fn job(&self) -> String {
        assert_eq!(self.status, 202, "{self:?}");
        self.body
            .trim()
            .strip_prefix("{\"job\":")
            .and_then(|s| s.strip_suffix('}'))
            .unwrap_or_else(|| panic!("no job id: {self:?}"))
            .to_string()
    }
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A `serve` of `files` and a `ui` saving into its own directory.
fn setup(tag: &str, files: &[(&str, &[u8])]) -> (Scratch, Server, Ui) {
    let t = Scratch::new(tag);
    for (name, data) in files {
        t.write(&format!("served/{name}"), data);
    }
    std::fs::create_dir_all(t.join("downloads")).unwrap();
    std::fs::create_dir_all(t.join("served")).unwrap();
    let server = Server::start(&t.join("served"), &[]);
    let ui = Ui::start(&t.join("downloads"), &[]);
    (t, server, ui)
}

#[test]
fn the_first_line_names_the_page_and_the_page_carries_a_token() {
    let t = Scratch::new("ui-page");
    let ui = Ui::start(&t.path, &["--server", "10.0.0.2:99"]);
    let page = ui.get("/");
    assert_eq!(page.status, 200);
    assert!(
        page.head.contains("Content-Type: text/html"),
        "{}",
        page.head
    );
    assert!(page.body.contains("value=\"10.0.0.2:99\""));
    assert!(ui.token.bytes().all(|b| b.is_ascii_hexdigit()));
}

#[test]
fn the_page_quotes_rates_as_the_command_line_does() {
    // Decimal MB/s (README, get, bench), never a binary size with "/s"
    // appended (MiB/s), and none for a transfer too short to time.
    let t = Scratch::new("ui-units");
    let page = Ui::start(&t.path, &[]).get("/").body;
    assert!(!page.contains("+ \"/s\""), "a size unit made into a rate");
    assert!(page.contains("mbps.toFixed(1) + \" MB/s\""));
    assert!(page.contains("secs >= 0.01 && mbps >= 0.05"));
}

/// What a page's `<style>` holds before the rules of its own begin.
fn shared_style<'a>(page: &'a str, own: &str) -> &'a str {
    page.split_once("<style>\n")
        .and_then(|(_, style)| style.split_once(own))
        .map(|(shared, _)| shared.trim_end())
        .unwrap_or_else(|| panic!("no <style> starting before {own:?} in {page}"))
}

#[test]
fn the_page_and_the_bench_report_start_with_one_stylesheet() {
    let (t, server, ui) = setup("ui-theme", &[("a.txt", b"abc")]);
    let page = ui.get("/").body;
    tcpfetch(
        &t.path,
        &[
            "bench",
            &server.addr,
            "a.txt",
            "--clients",
            "1",
            "--requests",
            "1",
            "--report",
            "r.html",
        ],
    )
    .expect_code(0);
    let report = std::fs::read_to_string(t.join("r.html")).unwrap();
    let shared = shared_style(&page, "/* The page's own rules");
    assert_eq!(
        shared,
        shared_style(&report, "/* The report's own rules"),
        "the report's shared rules differ from the page's"
    );
    for rule in [
        ":root {",
        "prefers-color-scheme: dark",
        ".tile .v {",
        "svg.hist .s7 {",
    ] {
        assert!(shared.contains(rule), "{rule:?} is not shared: {shared}");
    }
    // The report shows one of each chart's two drawings by its own class
    // names, which the page's `.wide` (a card across the grid) is not.
    assert!(report.contains("<div class=\"chart-wide\"><svg class=\"hist\""));
    assert!(!report.contains("class=\"wide\"") && !report.contains("<script"));
}

#[test]
fn server_names_are_escaped_in_the_page() {
    let t = Scratch::new("ui-escape");
    let ui = Ui::start(&t.path, &["--server", "a\"><script>x:1"]);
    let page = ui.get("/");
    assert!(!page.body.contains("a\"><script>"));
    assert!(page.body.contains("a&quot;&gt;&lt;script&gt;x:1"));
}

#[test]
fn malformed_and_misdirected_requests_get_their_status() {
    let t = Scratch::new("ui-bad");
    let ui = Ui::start(&t.path, &[]);
    let port = ui.addr.rsplit(':').next().unwrap().to_string();
    let host = format!("Host: {}\r\n", ui.addr);
    let cases: Vec<(String, u16)> = vec![
        (format!("GET / HTTP/1.1\r\n{host}\r\n"), 200),
        (
            format!("GET / HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n"),
            200,
        ),
        ("GET / HTTP/1.1\r\n\r\n".into(), 400),
        ("GET / HTTP/1.1\r\nHost: evil.example\r\n\r\n".into(), 403),
        (
            format!("GET / HTTP/1.1\r\nHost: evil.example:{port}\r\n\r\n"),
            403,
        ),
        (format!("GET / HTTP/1.1\r\n{host}{host}\r\n"), 400),
        (format!("GET /nope HTTP/1.1\r\n{host}\r\n"), 404),
        (format!("GET /api/jobs/999 HTTP/1.1\r\n{host}\r\n"), 404),
        (format!("GET /api/jobs/x HTTP/1.1\r\n{host}\r\n"), 404),
        (format!("PUT / HTTP/1.1\r\n{host}\r\n"), 405),
        (format!("POST / HTTP/1.1\r\n{host}\r\n"), 405),
        (format!("GET /api/ping HTTP/1.1\r\n{host}\r\n"), 405),
        (format!("DELETE /api/jobs/1 HTTP/1.1\r\n{host}\r\n"), 405),
        (format!("G(T / HTTP/1.1\r\n{host}\r\n"), 400),
        (format!("GET / HTTP/3\r\n{host}\r\n"), 505),
        (
            format!("GET /{} HTTP/1.1\r\n{host}\r\n", "a".repeat(9000)),
            414,
        ),
        (
            format!("GET / HTTP/1.1\r\n{host}X: {}\r\n\r\n", "a".repeat(33000)),
            431,
        ),
        (
            format!("GET / HTTP/1.1\r\n{host}{}\r\n", "X: y\r\n".repeat(101)),
            431,
        ),
        (
            format!("POST /api/ping HTTP/1.1\r\n{host}Content-Length: 1x\r\n\r\n"),
            400,
        ),
        (
            format!("POST /api/ping HTTP/1.1\r\n{host}Content-Length: 20\r\n\r\nshort"),
            400,
        ),
        (
            format!("POST /api/ping HTTP/1.1\r\n{host}Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
            501,
        ),
        (format!("GET / HTTP/1.1\r\n{host}"), 400),
    ];
    for (raw, want) in cases {
        let reply = ui.send(raw.as_bytes());
        let shown: String = raw.chars().take(80).collect();
        assert_eq!(reply.status, want, "{shown:?} -> {reply:?}");
    }
}

/// Each malformed request is refused by its own guard: the 400's reason
/// names it, so no case passes on another guard's refusal.
#[test]
fn each_malformed_request_is_refused_with_its_reason() {
    let t = Scratch::new("ui-bad-why");
    let ui = Ui::start(&t.path, &[]);
    let host = format!("Host: {}\r\n", ui.addr);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"GET /".to_vec(), "truncated request line"),
        (
            b"GET / HTTP/1.1 x\r\n\r\n".to_vec(),
            "malformed request line",
        ),
        (
            b"GET  / HTTP/1.1\r\n\r\n".to_vec(),
            "malformed request line",
        ),
        (b"GET / FTP/1.1\r\n\r\n".to_vec(), "malformed request line"),
        (
            b"GET /\xff HTTP/1.1\r\n\r\n".to_vec(),
            "request line not UTF-8",
        ),
        (b"get / HTTP/1.1\r\n\r\n".to_vec(), "malformed method"),
        (
            b"GET a HTTP/1.1\r\n\r\n".to_vec(),
            "malformed request target",
        ),
        (
            b"GET /a\x01b HTTP/1.1\r\n\r\n".to_vec(),
            "malformed request target",
        ),
        (
            format!("GET / HTTP/1.1\r\n{host}").into_bytes(),
            "truncated headers",
        ),
        (
            format!("GET / HTTP/1.1\r\n{host}X").into_bytes(),
            "truncated headers",
        ),
        (
            [
                format!("GET / HTTP/1.1\r\n{host}X: ").as_bytes(),
                b"\xff\r\n\r\n",
            ]
            .concat(),
            "header not UTF-8",
        ),
        (
            format!("GET / HTTP/1.1\r\n{host}no colon\r\n\r\n").into_bytes(),
            "malformed header",
        ),
        (
            format!("GET / HTTP/1.1\r\n{host}Bad Name: x\r\n\r\n").into_bytes(),
            "malformed header name",
        ),
        (
            format!("GET / HTTP/1.1\r\n{host}: x\r\n\r\n").into_bytes(),
            "malformed header name",
        ),
        // Obsolete line folding: a continuation line starting with a space.
        (
            format!("GET / HTTP/1.1\r\n{host}X: a\r\n b: c\r\n\r\n").into_bytes(),
            "malformed header name",
        ),
        (
            format!(
                "POST /api/ping HTTP/1.1\r\n{host}Content-Length: 1\r\nContent-Length: 1\r\n\r\nx"
            )
            .into_bytes(),
            "more than one Content-Length",
        ),
        (
            format!("POST /api/ping HTTP/1.1\r\n{host}Content-Length: \r\n\r\n").into_bytes(),
            "malformed Content-Length",
        ),
        (
            format!("POST /api/ping HTTP/1.1\r\n{host}Content-Length: -1\r\n\r\n").into_bytes(),
            "malformed Content-Length",
        ),
        (
            format!(
                "POST /api/ping HTTP/1.1\r\n{host}Content-Length: {}\r\n\r\n",
                "9".repeat(20)
            )
            .into_bytes(),
            "malformed Content-Length",
        ),
        (
            format!("POST /api/ping HTTP/1.1\r\n{host}Content-Length: 20\r\n\r\nshort")
                .into_bytes(),
            "the body is shorter than its Content-Length",
        ),
    ];
    for (raw, why) in cases {
        let reply = ui.send(&raw);
        let shown = String::from_utf8_lossy(&raw);
        assert_eq!(reply.status, 400, "{shown:?} -> {reply:?}");
        assert_eq!(
            reply.body,
            format!("{{\"error\":\"{why}\"}}\n"),
            "{shown:?}"
        );
    }
}

#[test]
fn wrong_methods_name_the_allowed_one() {
    let t = Scratch::new("ui-405");
    let ui = Ui::start(&t.path, &[]);
    let reply = ui.get("/api/bench");
    assert_eq!(reply.status, 405);
    assert!(reply.head.contains("\r\nAllow: POST"), "{}", reply.head);
}

#[test]
fn an_oversized_body_is_answered_413_even_while_it_is_sent() {
    let t = Scratch::new("ui-413");
    let ui = Ui::start(&t.path, &[]);
    let body = "a".repeat(200 * 1024);
    let reply = ui.post("/api/ping", &body);
    assert_eq!(reply.status, 413, "{reply:?}");
}

#[test]
fn actions_without_the_token_are_refused() {
    let (_t, server, ui) = setup("ui-token", &[("a.txt", b"a")]);
    let form = format!("server={}", encode(&server.addr));
    for headers in [
        String::new(),
        "X-Tcpfetch-Token: 00\r\n".to_string(),
        format!("X-Tcpfetch-Token: {}\r\n", "0".repeat(64)),
        format!(
            "X-Tcpfetch-Token: {}\r\nX-Tcpfetch-Token: {}\r\n",
            ui.token, ui.token
        ),
    ] {
        let reply = ui.post_with("/api/ping", &form, &headers);
        assert_eq!(reply.status, 403, "{headers:?} -> {reply:?}");
    }
}

#[test]
fn actions_from_another_origin_are_refused() {
    let (_t, server, ui) = setup("ui-origin", &[("a.txt", b"a")]);
    let form = format!("server={}", encode(&server.addr));
    let token = format!("X-Tcpfetch-Token: {}\r\n", ui.token);
    let evil = ui.post_with(
        "/api/ping",
        &form,
        &format!("{token}Origin: http://evil.example\r\n"),
    );
    assert_eq!(evil.status, 403, "{evil:?}");
    let null = ui.post_with("/api/ping", &form, &format!("{token}Origin: null\r\n"));
    assert_eq!(null.status, 403, "{null:?}");
    let ours = ui.post_with(
        "/api/ping",
        &form,
        &format!("{token}Origin: http://{}\r\n", ui.addr),
    );
    assert_eq!(ours.status, 200, "{ours:?}");
}

#[test]
fn ping_shows_the_version_and_round_trip() {
    let (_t, server, ui) = setup("ui-ping", &[]);
    let reply = ui.post("/api/ping", &format!("server={}", encode(&server.addr)));
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(reply.body.contains("\"version\":\"tcpfetch "), "{reply:?}");
    assert!(reply.body.contains("\"rtt_ms\":"), "{reply:?}");
}

#[test]
fn ping_to_a_dead_port_explains_itself() {
    let t = Scratch::new("ui-dead");
    let ui = Ui::start(&t.path, &[]);
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let reply = ui.post("/api/ping", &format!("server=127.0.0.1%3A{port}"));
    assert_eq!(reply.status, 502, "{reply:?}");
    assert!(reply.body.contains("connection refused"), "{reply:?}");
    assert!(
        reply.body.contains("\"hint\":\"is 'tcpfetch serve'"),
        "{reply:?}"
    );
}

#[test]
fn a_bad_address_names_the_server_field() {
    let t = Scratch::new("ui-badaddr");
    let ui = Ui::start(&t.path, &[]);
    for form in ["server=host%3Ax", "server=", "", "server=%zz"] {
        let reply = ui.post("/api/ping", form);
        assert_eq!(reply.status, 400, "{form:?} -> {reply:?}");
    }
    let reply = ui.post("/api/list", "server=host%3A70000");
    assert!(reply.body.contains("\"field\":\"server\""), "{reply:?}");
}

#[test]
fn list_returns_every_file() {
    let (_t, server, ui) = setup("ui-list", &[("a.txt", b"abc"), ("d/b \"q\".bin", b"")]);
    let reply = ui.post("/api/list", &format!("server={}", encode(&server.addr)));
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(
        reply.body.contains("{\"name\":\"a.txt\",\"size\":3,"),
        "{reply:?}"
    );
    assert!(
        reply
            .body
            .contains("{\"name\":\"d/b \\\"q\\\".bin\",\"size\":0,"),
        "{reply:?}"
    );
}

#[test]
fn a_download_is_verified_and_saved_under_its_last_component() {
    let data = random_bytes(1_500_000, 7);
    let (t, server, ui) = setup("ui-download", &[("sub/x.bin", &data)]);
    let form = format!("server={}&name=sub%2Fx.bin", encode(&server.addr));
    let id = ui.post("/api/download", &form).job();
    let job = ui.wait_job(&id);
    assert!(job.body.contains("\"state\":\"ok\""), "{job:?}");
    assert!(job
        .body
        .contains(&format!("\"sha256\":\"{}\"", sha256_hex(&data))));
    assert!(job.body.contains("\"done\":1500000,\"total\":1500000"));
    assert_eq!(std::fs::read(t.join("downloads/x.bin")).unwrap(), data);
    assert!(!t.join("downloads/sub").exists());
}

#[test]
fn a_download_the_server_corrupts_fails_as_an_integrity_error() {
    let t = Scratch::new("ui-corrupt");
    let ui = Ui::start(&t.path, &[]);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let stand_in = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut reader = BufReader::new(&stream);
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let answer = format!("TCPFETCH/1 OK 5 {}\nhellX", sha256_hex(b"hello"));
        (&stream).write_all(answer.as_bytes()).unwrap();
        let _ = stream.shutdown(Shutdown::Write);
        let mut sink = [0u8; 1024];
        while matches!(reader.read(&mut sink), Ok(n) if n > 0) {}
    });
    let id = ui
        .post("/api/download", &format!("server={}&name=x", encode(&addr)))
        .job();
    let job = ui.wait_job(&id);
    stand_in.join().unwrap();
    assert!(job.body.contains("\"state\":\"failed\""), "{job:?}");
    assert!(job.body.contains("\"error_kind\":\"corrupt\""), "{job:?}");
    assert!(!t.join("x").exists() && !t.join("x.part").exists());
}

/// `text` as a JSON string (quotes and backslashes escaped; enough for the
/// messages compared here).
fn json_text(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A failed download job says what `get` prints for the same failure: its
/// message as `error`, the line after it (if any) as `error_hint`.
fn assert_download_fails_as_get_does(ui: &Ui, server: &str, name: &str, dir: &std::path::Path) {
    let get = tcpfetch(dir, &["get", server, name]);
    get.expect_code(1);
    let stderr = get.stderr();
    let mut lines = stderr
        .lines()
        .map(|l| l.strip_prefix("tcpfetch: ").unwrap());
    let (message, hint) = (lines.next().unwrap(), lines.next());
    let form = format!("server={}&name={}", encode(server), encode(name));
    let job = ui.wait_job(&ui.post("/api/download", &form).job());
    assert!(job.body.contains("\"state\":\"failed\""), "{job:?}");
    let want = format!("\"error\":{},", json_text(message));
    assert!(job.body.contains(&want), "{want} in {job:?}\nget: {get}");
    let want = format!("\"error_hint\":{},", hint.map_or("null".into(), json_text));
    assert!(job.body.contains(&want), "{want} in {job:?}\nget: {get}");
}

#[test]
fn a_download_the_server_refuses_reads_as_get_says_it() {
    let (t, server, ui) = setup("ui-refused", &[("sub/a.txt", b"abc")]);
    // Not found, and a directory: get names the file and the server and
    // says what to run; the page had the server's bare answer.
    assert_download_fails_as_get_does(&ui, &server.addr, "missing.txt", &t.path);
    assert_download_fails_as_get_does(&ui, &server.addr, "sub", &t.path);
    // No server: get's hint follows its message.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    assert_download_fails_as_get_does(&ui, &format!("127.0.0.1:{port}"), "a.txt", &t.path);
}

#[test]
fn download_names_that_could_escape_are_refused() {
    let (_t, server, ui) = setup("ui-escape-name", &[]);
    for name in ["..", "a%2F..", "a%2F", "a%0Ab", ""] {
        let form = format!("server={}&name={name}", encode(&server.addr));
        let reply = ui.post("/api/download", &form);
        assert_eq!(reply.status, 400, "{name:?} -> {reply:?}");
        assert!(reply.body.contains("\"field\":\"name\""), "{reply:?}");
        // The page has no -o to give a name with, as `get`'s message says.
        assert!(!reply.body.contains("-o"), "{name:?} -> {reply:?}");
    }
}

#[test]
fn a_load_test_reports_and_keeps_its_log() {
    let (_t, server, ui) = setup("ui-bench", &[("a.bin", &random_bytes(50_000, 3))]);
    let form = format!(
        "server={}&name=a.bin&clients=3&requests=2",
        encode(&server.addr)
    );
    let id = ui.post("/api/bench", &form).job();
    let job = ui.wait_job(&id);
    for want in [
        "\"state\":\"ok\"",
        "\"requests\":6,\"ok\":6,\"failed\":0,\"corrupt\":0",
        "\"bins\":[[",
        // The chart is drawn by the server, as `bench --report` draws it.
        "\"histogram_svg\":{\"narrow\":\"<svg class=\\\"hist\\\" id=\\\"histogram-svg\\\" viewBox=\\\"0 0 360 ",
        "\"log_lines\":6",
    ] {
        assert!(job.body.contains(want), "{want} missing from {job:?}");
    }
    let log = ui.get(&format!("/api/jobs/{id}/log.jsonl"));
    assert_eq!(log.status, 200);
    assert_eq!(log.body.lines().count(), 6, "{log:?}");
    assert!(log.body.lines().all(|l| l.contains("\"integrity\":\"ok\"")));
}

#[test]
fn load_test_fields_out_of_range_name_their_field() {
    let (_t, server, ui) = setup("ui-bench-bad", &[]);
    let server = encode(&server.addr);
    for (extra, field) in [
        ("name=a&clients=0", "clients"),
        ("name=a&clients=1001", "clients"),
        ("name=a&requests=x", "requests"),
        ("name=a&rate=-1", "rate"),
        ("clients=1", "name"),
    ] {
        let reply = ui.post("/api/bench", &format!("server={server}&{extra}"));
        assert_eq!(reply.status, 400, "{extra} -> {reply:?}");
        assert!(
            reply.body.contains(&format!("\"field\":\"{field}\"")),
            "{extra} -> {reply:?}"
        );
    }
}

#[test]
fn only_load_tests_have_a_log() {
    let (_t, server, ui) = setup("ui-nolog", &[("a.txt", b"a")]);
    let form = format!("server={}&name=a.txt", encode(&server.addr));
    let id = ui.post("/api/download", &form).job();
    ui.wait_job(&id);
    assert_eq!(ui.get(&format!("/api/jobs/{id}/log.jsonl")).status, 404);
}

/// Take every one of the ui's 64 slots with a silent connection, run
/// `probe` while the ui holds them all, and return the connections and
/// what `probe` returned.
///
/// Connecting 64 times and then probing is not enough: on a loaded machine
/// the kernel may queue a later connection (a probe) for `accept` before an
/// earlier one, and a probe served meanwhile holds a slot while the late
/// connection is turned away; a slot then frees under the test. So: first
/// wait until the ui holds no socket but its listening one (the page
/// `Ui::start` fetched is closed), then connect, then wait until the ui has
/// accepted all 64 (its sockets in /proc/PID/fd), and only then probe.
///
/// The ui lets an idle connection go after 10 s of silence, and one turned
/// away reads a 503: either shows on our side of it as bytes or a close.
/// Any such, before or after the probe, means the ui did not hold all 64
/// throughout (a machine too loaded to fill them within those 10 s, or the
/// page's slot freed a moment after its socket closed): the scene is set
/// again, up to 5 times.
fn with_every_slot_held<T>(ui: &Ui, mut probe: impl FnMut() -> T) -> (Vec<TcpStream>, T) {
    // Only bounds on a hang.
    let limit = Duration::from_secs(60);
    for _ in 0..5 {
        let alone = poll_until(limit, || ui_sockets(ui) == 1);
        assert!(alone.is_some(), "the ui holds {} sockets", ui_sockets(ui));
        let idle: Vec<TcpStream> = (0..64)
            .map(|_| TcpStream::connect(&ui.addr).unwrap())
            .collect();
        let accepted = poll_until(limit, || ui_sockets(ui) > 64 || !all_silent(&idle));
        assert!(
            accepted.is_some(),
            "the ui accepted {} of 64 idle connections",
            ui_sockets(ui) - 1
        );
        if all_silent(&idle) {
            let seen = probe();
            if all_silent(&idle) {
                return (idle, seen);
            }
        }
        eprintln!("the ui did not hold all 64 idle connections; again");
    }
    panic!("in 5 tries the ui never held 64 idle connections throughout");
}

/// The sockets the ui has open: its listening one, and every connection
/// it has accepted and not yet closed (served, or turned away and still
/// drained).
fn ui_sockets(ui: &Ui) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", ui.child.id()))
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with("socket:"))
        .count()
}

/// Whether the ui has neither answered nor closed any of `idle`.
fn all_silent(idle: &[TcpStream]) -> bool {
    idle.iter().all(|s| {
        s.set_nonblocking(true).unwrap();
        let silent = matches!(s.peek(&mut [0u8]), Err(e) if e.kind() == ErrorKind::WouldBlock);
        s.set_nonblocking(false).unwrap();
        silent
    })
}

#[test]
fn connections_beyond_the_cap_are_answered_503() {
    let t = Scratch::new("ui-cap");
    let ui = Ui::start(&t.path, &[]);
    let (idle, reply) = with_every_slot_held(&ui, || ui.get("/"));
    assert_eq!(reply.status, 503, "64 idle connections held: {reply:?}");
    drop(idle);
    let back = poll_until(Duration::from_secs(60), || ui.get("/").status == 200);
    assert!(back.is_some(), "slots never came back");
}

/// A client that sends its whole request before it reads (a form with a
/// body) still reads the 503: the refused connection is drained, not
/// closed under it with a reset.
#[test]
fn a_refused_client_sends_its_whole_request_and_reads_the_503() {
    let t = Scratch::new("ui-cap-drain");
    let ui = Ui::start(&t.path, &[]);
    let body = vec![b'x'; 64 * 1024];
    let head = format!(
        "POST /api/ping HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n\r\n",
        ui.addr,
        body.len()
    );
    let request = [head.as_bytes(), &body].concat();
    let reply = refused_while_sending(|| {
        let (idle, (connected, mut s, seen)) = with_every_slot_held(&ui, || {
            let connected = Instant::now();
            let s = TcpStream::connect(&ui.addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
            // Let the refusal land first, as it does for any client slower
            // than the accept loop: it is written at once, before we send.
            let mut head = [0u8; 12];
            let seen = s.peek(&mut head).expect("the refusal arrives");
            (connected, s, head[..seen].to_vec())
        });
        assert!(seen.starts_with(b"HTTP/1.1 503"), "{seen:?}");
        let sent = keep_sending(&mut s, connected, &request);
        drop(idle);
        sent
    });
    assert_eq!(Reply::parse(&reply).status, 503);
}

#[test]
fn a_non_loopback_listen_address_warns() {
    let t = Scratch::new("ui-warn");
    let mut child = Command::new(BIN)
        .args(["ui", "--listen", "0.0.0.0:0", "--dir"])
        .arg(&t.path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let mut warning = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut warning)
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(line.starts_with("ui on http://0.0.0.0:"), "{line:?}");
    assert!(warning.contains("warning"), "{warning:?}");
}

#[test]
fn a_missing_downloads_directory_fails_as_get_o_dir_does() {
    let t = Scratch::new("ui-nodir");
    t.write("file", b"x");
    let run = tcpfetch(&t.path, &["ui", "--listen", "127.0.0.1:0", "--dir", "nope"]);
    run.expect_code(1);
    assert_eq!(
        run.stderr(),
        "tcpfetch: --dir nope: no such directory\n",
        "{run}"
    );
    let run = tcpfetch(&t.path, &["ui", "--listen", "127.0.0.1:0", "--dir", "file"]);
    run.expect_code(1);
    assert_eq!(
        run.stderr(),
        "tcpfetch: --dir file: not a directory\n",
        "{run}"
    );
}

/// The number `key` holds in a job's JSON.
fn job_number(job: &Reply, key: &str) -> u64 {
    json_number(&job.body, key) as u64
}

#[test]
fn a_cancelled_download_stops_keeps_its_part_and_resumes_later() {
    let data = random_bytes(6_000_000, 11);
    let t = Scratch::new("ui-cancel-dl");
    t.write("served/x.bin", &data);
    std::fs::create_dir_all(t.join("downloads")).unwrap();
    // 1 MB/s: the whole file would take six seconds.
    let slow = Server::start(&t.join("served"), &["--max-rate", "1M"]);
    let ui = Ui::start(&t.join("downloads"), &[]);
    let form = format!("server={}&name=x.bin", encode(&slow.addr));
    let id = ui.post("/api/download", &form).job();
    let moving = ui.poll_job(&id, |body| {
        json_number(body, "done") >= 300_000.0 || !body.contains("\"state\":\"running\"")
    });
    assert!(moving.body.contains("\"state\":\"running\""), "{moving:?}");
    let cancel = ui.post(&format!("/api/jobs/{id}/cancel"), "");
    assert_eq!(cancel.status, 202, "{cancel:?}");
    assert!(
        cancel.body.contains("\"state\":\"cancelling\""),
        "{cancel:?}"
    );
    let job = ui.wait_job(&id);
    assert!(job.body.contains("\"state\":\"cancelled\""), "{job:?}");
    assert!(job.body.contains("\"error\":null"), "{job:?}");
    let kept = job_number(&job, "kept");
    assert!(kept > 0 && kept < data.len() as u64, "{job:?}");
    let part = std::fs::read(t.join("downloads/x.bin.part")).unwrap();
    assert_eq!(
        part,
        data[..kept as usize],
        "the .part holds the first bytes"
    );
    assert!(!t.join("downloads/x.bin").exists());

    // The next download of the file picks up where the cancel left it,
    // and keeps the server's modification time as `get` does.
    let past = std::time::UNIX_EPOCH + Duration::new(1_000_000_000, 5);
    let served = std::fs::File::options()
        .write(true)
        .open(t.join("served/x.bin"));
    served.unwrap().set_modified(past).unwrap();
    let fast = Server::start(&t.join("served"), &[]);
    let form = format!("server={}&name=x.bin", encode(&fast.addr));
    let id = ui.post("/api/download", &form).job();
    let job = ui.wait_job(&id);
    assert!(job.body.contains("\"state\":\"ok\""), "{job:?}");
    assert_eq!(job_number(&job, "from"), kept, "{job:?}");
    fast.wait_for_log(&format!("GET +mtime {kept} x.bin"));
    assert_eq!(std::fs::read(t.join("downloads/x.bin")).unwrap(), data);
    assert!(!t.join("downloads/x.bin.part").exists());
    let kept_time = std::fs::metadata(t.join("downloads/x.bin"))
        .unwrap()
        .modified();
    assert_eq!(kept_time.unwrap(), past);
}

#[test]
fn a_cancelled_load_test_stops_its_clients_and_reports_what_finished() {
    let t = Scratch::new("ui-cancel-bench");
    t.write("served/small.txt", b"small");
    t.write("served/big.bin", &random_bytes(4_000_000, 5));
    std::fs::create_dir_all(t.join("downloads")).unwrap();
    let slow = Server::start(&t.join("served"), &["--max-rate", "1M"]);
    let ui = Ui::start(&t.join("downloads"), &[]);
    // Client 1 starts with small.txt, client 2 with big.bin (4 s each).
    let form = format!(
        "server={}&name=small.txt&name=big.bin&clients=2&requests=50",
        encode(&slow.addr)
    );
    let id = ui.post("/api/bench", &form).job();
    let started = ui.poll_job(&id, |body| {
        json_number(body, "done") >= 1.0 || !body.contains("\"state\":\"running\"")
    });
    assert!(
        started.body.contains("\"state\":\"running\""),
        "{started:?}"
    );
    let cancel = ui.post(&format!("/api/jobs/{id}/cancel"), "");
    assert_eq!(cancel.status, 202, "{cancel:?}");
    let job = ui.wait_job(&id);
    assert!(job.body.contains("\"state\":\"cancelled\""), "{job:?}");
    assert!(job.body.contains("\"cancelled\":true"), "{job:?}");
    let report = json_value(&job.body, "report");
    let requests = json_number(report, "requests") as u64;
    assert!((1..100).contains(&requests), "{report}");
    // The transfers the cancel cut are not failures.
    assert_eq!(json_number(report, "failed"), 0.0, "{report}");
    assert_eq!(job_number(&job, "log_lines"), requests, "{job:?}");
    let log = ui.get(&format!("/api/jobs/{id}/log.jsonl"));
    assert!(
        log.body.lines().all(|l| l.contains("\"status\":\"ok\"")),
        "{log:?}"
    );
}

#[test]
fn cancel_answers_for_unknown_finished_and_unauthorised_requests() {
    let (_t, server, ui) = setup("ui-cancel-bad", &[("a.txt", b"a")]);
    let form = format!("server={}&name=a.txt", encode(&server.addr));
    let id = ui.post("/api/download", &form).job();
    assert!(ui.wait_job(&id).body.contains("\"state\":\"ok\""));
    let cases = [
        (format!("/api/jobs/{id}/cancel"), 409),
        ("/api/jobs/999/cancel".to_string(), 404),
        ("/api/jobs/x/cancel".to_string(), 404),
        ("/api/jobs//cancel".to_string(), 404),
    ];
    for (path, want) in cases {
        let reply = ui.post(&path, "");
        assert_eq!(reply.status, want, "{path} -> {reply:?}");
    }
    let path = format!("/api/jobs/{id}/cancel");
    assert_eq!(ui.post_with(&path, "", "").status, 403);
    let get = ui.get(&path);
    assert_eq!(get.status, 405, "{get:?}");
    assert!(get.head.contains("\r\nAllow: POST"), "{}", get.head);
    // The finished job is as it was.
    assert!(ui.wait_job(&id).body.contains("\"state\":\"ok\""));
}
