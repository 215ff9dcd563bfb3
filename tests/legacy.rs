//! Black-box tests of the old Python tcp-server protocol, both ways: tcpfetch
//! against a stand-in of the old server (tests/legacy/old_server.py), and a
//! stand-in of the old client (tests/legacy/old_client.py) and hostile peers
//! against `serve --legacy-listen`. CPython's own `pickle` does the pickling
//! on the Python side.
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::refused::{keep_sending, refused_while_sending};
use common::*;

const OLD_SERVER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/legacy/old_server.py");
const OLD_CLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/legacy/old_client.py");

/// The stand-in old server, killed on drop.
struct OldServer {
    child: Child,
    addr: String,
}

impl OldServer {
    /// Serve `files` (the first is the one listed; `1` and `2` are served).
    fn start(files: &[&Path], extra: &[&str]) -> OldServer {
        let mut child = Command::new("python3")
            .arg(OLD_SERVER)
            .args(files)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 is needed for the legacy tests");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from old_server.py: {line:?}"))
            .to_string();
        OldServer { child, addr }
    }
}

impl Drop for OldServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run the stand-in old client for file `n`, saving to `out`.
fn old_client(addr: &str, n: &str, out: &Path, protocol: u8) -> Output {
    let (host, port) = addr.rsplit_once(':').unwrap();
    let output = Command::new("python3")
        .args([OLD_CLIENT, host, port, n])
        .arg(out)
        .args(["--protocol", &protocol.to_string()])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "old_client.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// `python3 -c script`'s stdout.
fn python(script: &str) -> Vec<u8> {
    let out = Command::new("python3")
        .args(["-c", script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A control message as the old code frames it, pickled by CPython.
fn message(text: &str) -> Vec<u8> {
    python(&format!(
        "import pickle, sys\n\
         p = pickle.dumps({{'messageSize': {n}, 'message': {text:?}}}, protocol=4)\n\
         sys.stdout.buffer.write(f'{{len(p):<10}}'.encode() + p)",
        n = text.chars().count()
    ))
}

/// Send `bytes` on a fresh connection and read until the server closes.
fn poke(addr: &str, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(bytes).unwrap();
    let _ = s.shutdown(Shutdown::Write);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

/// The old client's whole session works and gets the right file.
fn assert_old_client_works(t: &Scratch, addr: &str, data: &[u8]) {
    let out = t.join("check.bin");
    let run = old_client(addr, "1", &out, 4);
    let stdout = String::from_utf8(run.stdout).unwrap();
    assert!(stdout.ends_with("Correcto\n"), "{stdout}");
    assert_eq!(std::fs::read(out).unwrap(), data);
}

#[test]
fn get_legacy_downloads_from_the_old_server_and_verifies() {
    let t = Scratch::new("lg-get");
    let data = random_bytes(700_000, 51);
    let first = t.write("old/data.bin", &data);
    let second = t.write("old/second.txt", b"second\n");
    std::fs::create_dir_all(t.join("dl")).unwrap();
    let old = OldServer::start(&[&first, &second], &[]);
    let run = tcpfetch(&t.join("dl"), &["get", "--legacy", &old.addr, "1"]);
    run.expect_code(0);
    assert!(run.stderr().contains("sha256 verified"), "{run}");
    // Saved under the name the old server listed (it upper-cases).
    assert_eq!(std::fs::read(t.join("dl/DATA.BIN")).unwrap(), data);
    assert!(!t.join("dl/DATA.BIN.part").exists());
}

#[test]
fn get_legacy_fetches_the_unlisted_second_file() {
    let t = Scratch::new("lg-second");
    let first = t.write("old/data.bin", b"first");
    let second = t.write("old/second.txt", b"second\n");
    let old = OldServer::start(&[&first, &second], &[]);
    tcpfetch(
        &t.path,
        &["get", "--legacy", &old.addr, "2", "-o", "two.txt"],
    )
    .expect_code(0);
    assert_eq!(std::fs::read(t.join("two.txt")).unwrap(), b"second\n");
}

#[test]
fn get_legacy_finds_a_listed_name_ignoring_case() {
    let t = Scratch::new("lg-name");
    let first = t.write("old/data.bin", b"by name");
    let old = OldServer::start(&[&first, &first], &[]);
    tcpfetch(&t.path, &["get", "--legacy", &old.addr, "data.bin"]).expect_code(0);
    assert_eq!(std::fs::read(t.join("data.bin")).unwrap(), b"by name");
    let run = tcpfetch(&t.path, &["get", "--legacy", &old.addr, "other.bin"]);
    run.expect_code(1);
    assert!(
        run.stderr().contains("not in the legacy server's list"),
        "{run}"
    );
}

#[test]
fn get_legacy_understands_every_pickle_protocol_old_servers_use() {
    let t = Scratch::new("lg-proto");
    let data = random_bytes(10_000, 52);
    let first = t.write("old/data.bin", &data);
    for proto in ["2", "3", "4", "5"] {
        let old = OldServer::start(&[&first, &first], &["--protocol", proto]);
        let out = format!("p{proto}.bin");
        tcpfetch(&t.path, &["get", "--legacy", &old.addr, "1", "-o", &out]).expect_code(0);
        assert_eq!(
            std::fs::read(t.join(&out)).unwrap(),
            data,
            "protocol {proto}"
        );
    }
}

#[test]
fn a_wrong_digest_from_the_old_server_exits_3_and_saves_nothing() {
    let t = Scratch::new("lg-corrupt");
    let first = t.write("old/data.bin", &random_bytes(5000, 53));
    let old = OldServer::start(&[&first, &first], &["--corrupt"]);
    let run = tcpfetch(&t.path, &["get", "--legacy", &old.addr, "1", "-o", "x.bin"]);
    run.expect_code(3);
    assert!(run.stderr().contains("nothing was saved"), "{run}");
    assert!(!t.join("x.bin").exists() && !t.join("x.bin.part").exists());
}

#[test]
fn a_file_shorter_than_its_size_header_fails_and_saves_nothing() {
    let t = Scratch::new("lg-short");
    let first = t.write("old/data.bin", &random_bytes(5000, 54));
    let old = OldServer::start(&[&first, &first], &["--truncate"]);
    let run = tcpfetch(&t.path, &["get", "--legacy", &old.addr, "1", "-o", "x.bin"]);
    run.expect_code(1);
    assert!(run.stderr().contains("after 5000 of 6000 bytes"), "{run}");
    assert!(!t.join("x.bin").exists() && !t.join("x.bin.part").exists());
}

#[test]
fn an_oversized_control_message_is_refused_by_the_client() {
    let t = Scratch::new("lg-huge");
    let first = t.write("old/data.bin", b"x");
    let old = OldServer::start(&[&first, &first], &["--huge-message"]);
    let run = tcpfetch(&t.path, &["get", "--legacy", &old.addr, "1"]);
    run.expect_code(1);
    assert!(
        run.stderr()
            .contains("a control message of 1000000000 bytes"),
        "{run}"
    );
}

#[test]
fn get_legacy_of_a_number_the_server_lacks_fails_cleanly() {
    let t = Scratch::new("lg-missing");
    let first = t.write("old/data.bin", b"x");
    let old = OldServer::start(&[&first, &first], &[]);
    let run = tcpfetch(&t.path, &["get", "--legacy", &old.addr, "3", "-o", "x"]);
    run.expect_code(1);
    assert!(run.stderr().contains("instead of sending file 3"), "{run}");
    assert!(!t.join("x").exists() && !t.join("x.part").exists());
}

#[test]
fn get_legacy_needs_a_number_and_cannot_retry() {
    let t = Scratch::new("lg-usage");
    tcpfetch(&t.path, &["get", "--legacy", "127.0.0.1:1"]).expect_code(2);
    tcpfetch(
        &t.path,
        &["get", "--legacy", "127.0.0.1:1", "1", "--retries", "2"],
    )
    .expect_code(2);
}

#[test]
fn list_legacy_shows_the_old_servers_numbered_list() {
    let t = Scratch::new("lg-list");
    let first = t.write("old/data.bin", b"x");
    let old = OldServer::start(&[&first, &first], &[]);
    let run = tcpfetch(&t.path, &["list", "--legacy", &old.addr]);
    run.expect_code(0);
    assert_eq!(run.stdout(), "1  DATA.BIN\n");
    let run = tcpfetch(&t.path, &["list", "--legacy", "--json", &old.addr]);
    assert_eq!(run.stdout(), "{\"number\":1,\"name\":\"DATA.BIN\"}\n");
}

#[test]
fn ping_legacy_gets_ok_from_the_old_server() {
    let t = Scratch::new("lg-ping");
    let first = t.write("old/data.bin", b"x");
    let old = OldServer::start(&[&first, &first], &[]);
    let run = tcpfetch(&t.path, &["ping", "--legacy", &old.addr, "-c", "2"]);
    run.expect_code(0);
    assert_eq!(run.stdout().matches(": OK time=").count(), 2, "{run}");
}

#[test]
fn ping_legacy_refuses_a_tcpfetch_v1_server() {
    let t = Scratch::new("lg-ping-v1");
    std::fs::create_dir_all(t.join("srv")).unwrap();
    // A v1 server answers the old client's first message at once (its
    // idle timeout is the default 30 s: waiting for it would not say this).
    let server = Server::start(&t.join("srv"), &[]);
    let run = tcpfetch(&t.path, &["ping", "--legacy", &server.addr]);
    run.expect_code(1);
    let want = format!(
        "tcpfetch: {} is a tcpfetch server (it answered TCPFETCH/1); drop --legacy",
        server.addr
    );
    assert!(run.stderr().contains(&want), "{run}");
}

#[test]
fn ping_without_legacy_recognises_the_old_server_at_once() {
    let t = Scratch::new("lg-ping-old");
    std::fs::create_dir_all(t.join("srv")).unwrap();
    let (server, legacy) = Server::start_legacy(&t.join("srv"), &[]);
    for cmd in [
        &["ping", &legacy][..],
        &["list", &legacy],
        &["get", &legacy, "1"],
    ] {
        let run = tcpfetch(&t.path, cmd);
        run.expect_code(1);
        let want = format!("tcpfetch: {legacy} looks like the old Python tcp-server (it answered with a length header); add --legacy");
        assert!(run.stderr().contains(&want), "{run}");
    }
    // The listener still serves the old protocol afterwards.
    tcpfetch(&t.path, &["ping", "--legacy", &legacy]).expect_code(0);
    drop(server);
}

#[test]
fn serve_prints_the_legacy_address_as_its_second_line() {
    let t = Scratch::new("lg-announce");
    std::fs::create_dir_all(t.join("srv")).unwrap();
    let (server, legacy) = Server::start_legacy(&t.join("srv"), &[]);
    assert!(legacy.starts_with("127.0.0.1:"), "{legacy}");
    assert_ne!(legacy, server.addr);
}

#[test]
fn the_old_client_gets_the_right_bytes_and_digest_from_serve() {
    let t = Scratch::new("lg-oldclient");
    let big = random_bytes(1_500_000, 55);
    t.write("srv/b.bin", &big);
    t.write("srv/a.txt", b"alpha\n");
    let (_server, legacy) = Server::start_legacy(&t.join("srv"), &[]);
    for proto in [3, 4] {
        let out = t.join(&format!("got-{proto}"));
        let run = old_client(&legacy, "2", &out, proto);
        let stdout = String::from_utf8(run.stdout).unwrap();
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(
            lines[0], "ARCHIVOS: 1. a.txt | 2. b.bin",
            "protocol {proto}"
        );
        assert_eq!(lines[1], sha256_hex(&big));
        assert_eq!(lines[2], "Correcto");
        assert_eq!(std::fs::read(&out).unwrap(), big);
    }
}

#[test]
fn tcpfetch_legacy_commands_work_against_serve_legacy_listen() {
    let t = Scratch::new("lg-self");
    let data = random_bytes(300_000, 56);
    t.write("srv/sub/x.bin", &data);
    t.write("srv/a.txt", b"a");
    std::fs::create_dir_all(t.join("dl")).unwrap();
    let (_server, legacy) = Server::start_legacy(&t.join("srv"), &[]);
    let run = tcpfetch(&t.path, &["list", "--legacy", &legacy]);
    assert_eq!(run.stdout(), "1  a.txt\n2  sub/x.bin\n", "{run}");
    tcpfetch(&t.join("dl"), &["get", "--legacy", &legacy, "sub/x.bin"]).expect_code(0);
    assert_eq!(std::fs::read(t.join("dl/x.bin")).unwrap(), data);
    tcpfetch(&t.path, &["ping", "--legacy", &legacy]).expect_code(0);
}

#[test]
fn a_hostile_pickle_runs_nothing_and_the_server_keeps_serving() {
    let t = Scratch::new("lg-hostile");
    t.write("srv/a.txt", b"still here");
    let (server, legacy) = Server::start_legacy(&t.join("srv"), &[]);
    let marker = t.join("pwned");
    // What `pickle.loads` would turn into os.system("touch MARKER").
    let evil = python(&format!(
        "import os, pickle, sys\n\
         class Evil:\n    def __reduce__(self):\n        return (os.system, ('touch {}',))\n\
         p = pickle.dumps({{'messageSize': 5, 'message': Evil()}}, protocol=4)\n\
         sys.stdout.buffer.write(f'{{len(p):<10}}'.encode() + p)",
        marker.display()
    ));
    assert_eq!(poke(&legacy, &evil), b"");
    assert!(!marker.exists());
    server.wait_for_log("STACK_GLOBAL");
    assert_old_client_works(&t, &legacy, b"still here");
}

#[test]
fn bad_peers_do_not_stop_the_legacy_server() {
    let t = Scratch::new("lg-bad");
    t.write("srv/a.txt", b"survivor");
    let (server, legacy) = Server::start_legacy(&t.join("srv"), &[]);
    let hello = message("HELLO");
    let mut two = hello.clone();
    two.extend_from_slice(&message("7"));
    let mut digest = hello.clone();
    digest.extend_from_slice(&message("DIGEST9"));
    let rows: Vec<(&str, Vec<u8>, &str)> = vec![
        ("leaves without a message", vec![], "left without a message"),
        ("half a header", b"12".to_vec(), "closed the connection"),
        ("a huge header", b"9999999999".to_vec(), "at most 4096"),
        (
            "a header that is not a number",
            b"HELLO     ".to_vec(),
            "bad length header",
        ),
        (
            "a message cut short",
            hello[..hello.len() - 3].to_vec(),
            "closed the connection",
        ),
        (
            "a protocol 0 pickle",
            b"9         (dp0\nS'a'\n.".to_vec(),
            "PROTO",
        ),
        ("an unknown message", message("GIMME"), "unknown message"),
        ("a number past the last file", two, "no file 7"),
        ("a digest past the last file", digest, "no file 9"),
    ];
    for (what, bytes, logged) in &rows {
        let before = server.log().len();
        let answer = poke(&legacy, bytes);
        assert!(answer.len() < 100, "{what}: {answer:?}");
        // The log line comes after the close; give it a moment.
        let mut log = String::new();
        for _ in 0..100 {
            log = server.log()[before..].to_string();
            if log.contains(logged) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(log.contains(logged), "{what}: {log}");
    }
    assert_old_client_works(&t, &legacy, b"survivor");
    tcpfetch(&t.path, &["ping", &server.addr]).expect_code(0);
}

#[test]
fn get_legacy_checks_the_sha256_flag_and_saves_nothing_on_mismatch() {
    let t = Scratch::new("lg-sha-flag");
    let first = t.write("old/data.bin", b"checked");
    let old = OldServer::start(&[&first, &first], &[]);
    let wrong = "0".repeat(64);
    let run = tcpfetch(
        &t.path,
        &[
            "get", "--legacy", &old.addr, "1", "-o", "x", "--sha256", &wrong,
        ],
    );
    run.expect_code(3);
    assert!(!t.join("x").exists() && !t.join("x.part").exists());
    let right = sha256_hex(b"checked");
    tcpfetch(
        &t.path,
        &[
            "get", "--legacy", &old.addr, "1", "-o", "x", "--sha256", &right,
        ],
    )
    .expect_code(0);
}

#[test]
fn get_legacy_writes_to_stdout_with_dash() {
    let t = Scratch::new("lg-stdout");
    let data = random_bytes(200_000, 57);
    let first = t.write("old/data.bin", &data);
    let old = OldServer::start(&[&first, &first], &[]);
    let run = tcpfetch(&t.path, &["get", "--legacy", &old.addr, "1", "-o", "-"]);
    run.expect_code(0);
    assert!(run.output.stdout == data, "{}", run.stderr());
}

/// The old protocol cannot say "busy": a connection past --max-clients
/// just ends, with a clean close rather than a reset, even while the peer
/// is still sending.
#[test]
fn a_legacy_client_past_max_clients_sees_a_clean_close() {
    let t = Scratch::new("legacy-busy");
    t.write("srv/a.bin", b"a");
    let (server, legacy) = Server::start_legacy(&t.join("srv"), &["--max-clients", "1"]);
    // The holder's HELLO is answered, so it surely holds the one slot
    // (a sleep would only make that likely on a loaded machine). The
    // message is pickled first: a starved python can take longer than the
    // server's 30 s idle timeout, which would drop a silent holder.
    let hello = message("HELLO");
    let mut holder = TcpStream::connect(&legacy).unwrap();
    holder
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    holder.write_all(&hello).unwrap();
    let mut header = [0u8; 10];
    holder.read_exact(&mut header).expect("HELLO BACK's header");
    let rest = refused_while_sending(|| {
        let connected = Instant::now();
        let mut s = TcpStream::connect(&legacy).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        keep_sending(&mut s, connected, &[b'x'; 64 * 1024])
    });
    assert_eq!(rest, b"", "a clean close, nothing said");
    server.wait_for_log("legacy - busy (at --max-clients)");
}

#[test]
fn the_legacy_listener_honours_allow_and_refuses_to_run_with_a_key() {
    let t = Scratch::new("legacy-allow");
    t.write("srv/a.bin", b"guarded");
    let (server, legacy) = Server::start_legacy(&t.join("srv"), &["--allow", "10.0.0.0/8"]);
    let run = tcpfetch(&t.path, &["get", "--legacy", &legacy, "1", "-o", "out.bin"]);
    run.expect_code(1);
    assert!(!t.join("out.bin").exists());
    server.wait_for_log("legacy - forbidden (not in --allow)");

    let key = t.write("key", &random_bytes(32, 3));
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let run = tcpfetch(
        &t.path,
        &[
            "serve",
            "srv",
            "--key-file",
            key.to_str().unwrap(),
            "--legacy-listen",
            "127.0.0.1:0",
        ],
    );
    run.expect_code(2);
    assert!(run.stderr().contains("cannot authenticate"), "{run}");
}

#[test]
fn get_legacy_checks_a_carried_manifest() {
    let t = Scratch::new("legacy-manifest");
    t.write("srv/a.bin", b"the real bytes");
    let (_server, legacy) = Server::start_legacy(&t.join("srv"), &[]);
    t.write("SUMS", format!("{}  1\n", "0".repeat(64)).as_bytes());
    let run = tcpfetch(
        &t.path,
        &[
            "get",
            "--legacy",
            &legacy,
            "1",
            "-o",
            "out.bin",
            "--manifest",
            "SUMS",
        ],
    );
    run.expect_code(3);
    assert!(!t.join("out.bin").exists());
    let key = t.write("key", &random_bytes(32, 3));
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let key = key.to_str().unwrap();
    tcpfetch(
        &t.path,
        &["get", "--legacy", &legacy, "1", "--key-file", key],
    )
    .expect_code(2);
}

#[test]
fn a_locked_part_refuses_a_concurrent_get_legacy() {
    // `get --legacy` stages its bytes in the same locked PATH.part as
    // `get`: it used to truncate the .part of a download in progress and
    // write its own bytes into it.
    let t = Scratch::new("legacy-lock");
    let data = random_bytes(3 << 20, 61);
    t.write("srv/big.bin", &data);
    // Paced at 1 MiB/s, the first get is stopped well before its end.
    let (server, legacy) = Server::start_legacy(&t.join("srv"), &["--max-rate", "1M"]);
    let second = ["get", "--legacy", &legacy, "big.bin"];
    a_second_get_meets_the_lock(&t.path, &server.addr, "big.bin", &second, &data);
}

#[test]
fn every_legacy_session_ends_as_the_old_clients_do() {
    // The original server fails on a connection closed mid-conversation:
    // a session ends with DIGEST<n> after a file, and with TEST otherwise.
    let t = Scratch::new("legacy-endings");
    t.write("srv/a.txt", b"hello\n");
    let (server, legacy) = Server::start_legacy(&t.join("srv"), &[]);
    tcpfetch(&t.path, &["list", "--legacy", &legacy]).expect_code(0);
    let log = server.wait_for_log("\"TEST\"");
    assert!(log.contains("\"PREPARED\""), "{log}");
    tcpfetch(&t.path, &["get", "--legacy", &legacy, "1", "-q"]).expect_code(0);
    let log = server.wait_for_log("\"DIGEST1\"");
    assert_eq!(log.matches("\"TEST\"").count(), 1, "{log}");
}

/// A legacy client that reads 1 MiB of a 16 MiB file and goes away is
/// logged as a cut transfer, `aborted SENT/DUE`, as protocol v1's are (it
/// was logged as a failure with its own wording).
#[test]
fn a_legacy_transfer_cut_by_the_client_is_logged_as_aborted() {
    const SIZE: u64 = 16 << 20;
    let t = Scratch::new("lg-cut");
    std::fs::create_dir_all(t.join("srv")).unwrap();
    let file = std::fs::File::create(t.join("srv/big.bin")).unwrap();
    file.set_len(SIZE).unwrap();
    let (server, legacy) = Server::start_legacy(&t.join("srv"), &[]);
    let mut s = TcpStream::connect(&legacy).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&message("1")).unwrap();
    let mut header = [0u8; 10];
    s.read_exact(&mut header).unwrap();
    assert_eq!(String::from_utf8_lossy(&header).trim(), SIZE.to_string());
    let mut body = vec![0u8; 1 << 20];
    s.read_exact(&mut body).unwrap();
    let _ = s.shutdown(Shutdown::Both);
    drop(s);
    let (sent, due) = wait_for_aborted(&server, "legacy \"1\"");
    assert_eq!(due, SIZE);
    assert!((1 << 20..SIZE).contains(&sent), "sent {sent}");
}

/// The legacy listener's access log quotes a message as v1's does: whole,
/// with `"` escaped. It cut messages at 60 bytes and left `"` alone, so
/// two long messages logged alike and one could forge the fields after it.
#[test]
fn a_legacy_message_is_logged_whole_with_its_quotes_escaped() {
    let t = Scratch::new("lg-quoted");
    std::fs::create_dir_all(t.join("srv")).unwrap();
    let (server, legacy) = Server::start_legacy(&t.join("srv"), &[]);
    let text = format!("{}\" ok 5 the-end", "x".repeat(70));
    poke(&legacy, &message(&text));
    let want = format!("legacy \"{}\\\" ok 5 the-end\" ", "x".repeat(70));
    let log = server.wait_for_log(&want);
    assert!(log.contains(&want), "{log}");
}
