//! Black-box tests of the core promises: serve, get, list, ping.
//!
//! Every test runs the real binary. Where a test needs a server that
//! misbehaves (dies mid-transfer, lies about the digest, speaks HTTP) it uses
//! a small stand-in written here on a `TcpListener` thread.
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// A stand-in server on 127.0.0.1: for each of up to `conns` connections
/// (accepted within 20 s) it reads one request line, writes `answer(line)`,
/// closes its sending side and drains the socket until the client goes, so
/// that nothing it sent is destroyed by a reset.
fn stand_in(conns: usize, answer: impl Fn(&str) -> Vec<u8> + Send + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    listener.set_nonblocking(true).unwrap();
    thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut served = 0;
        while served < conns && Instant::now() < deadline {
            let Ok((stream, _)) = listener.accept() else {
                thread::sleep(Duration::from_millis(10));
                continue;
            };
            served += 1;
            stream.set_nonblocking(false).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut reader = BufReader::new(&stream);
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let _ = (&stream).write_all(&answer(line.trim_end()));
            let _ = stream.shutdown(Shutdown::Write);
            let mut sink = [0u8; 4096];
            while matches!(reader.read(&mut sink), Ok(n) if n > 0) {}
        }
    });
    addr
}

/// A port on 127.0.0.1 that nothing listens on (bound, then released).
fn closed_port() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn get_downloads_a_file_and_verifies_it() {
    let t = Scratch::new("smoke");
    let data = random_bytes(3 << 20, 1);
    t.write("srv/big.bin", &data);
    std::fs::create_dir_all(t.join("dl")).unwrap();
    let server = Server::start(&t.join("srv"), &[]);
    let run = tcpfetch(&t.join("dl"), &["get", &server.addr, "big.bin"]);
    run.expect_code(0);
    assert!(run.stderr().contains("sha256 verified"), "{run}");
    assert_eq!(std::fs::read(t.join("dl/big.bin")).unwrap(), data);
}

#[test]
fn empty_and_one_byte_files_arrive_byte_identical() {
    let (t, server) = serve("tiny", &[("empty", b""), ("one", b"\x00")], &[]);
    for (name, data) in [("empty", &b""[..]), ("one", b"\x00")] {
        let run = tcpfetch(&t.join("dl"), &["get", &server.addr, name]);
        run.expect_code(0);
        assert!(run.stderr().contains("sha256 verified"), "{run}");
        assert_eq!(read(&t.join("dl").join(name)), data);
    }
}

#[test]
fn names_with_spaces_utf8_and_nested_paths_download() {
    let a = random_bytes(1000, 2);
    let b = random_bytes(70_000, 3);
    let c = random_bytes(5, 4);
    let (t, server) = serve(
        "names",
        &[
            ("with space.txt", &a),
            ("dir/sub dir/naïve ünïcödé 日本.bin", &b),
            ("a/b/c/d/e/deep.txt", &c),
        ],
        &[],
    );
    for (name, local, data) in [
        ("with space.txt", "with space.txt", &a),
        (
            "dir/sub dir/naïve ünïcödé 日本.bin",
            "naïve ünïcödé 日本.bin",
            &b,
        ),
        ("a/b/c/d/e/deep.txt", "deep.txt", &c),
    ] {
        tcpfetch(&t.join("dl"), &["get", &server.addr, name]).expect_code(0);
        assert_eq!(&read(&t.join("dl").join(local)), data, "{name}");
    }
    // Only the last component is used locally: nothing else appeared.
    let mut names: Vec<String> = std::fs::read_dir(t.join("dl"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["deep.txt", "naïve ünïcödé 日本.bin", "with space.txt"]
    );
}

#[test]
fn output_path_names_the_saved_file() {
    let data = random_bytes(10_000, 5);
    let (t, server) = serve("out-path", &[("sub/f.bin", &data)], &[]);
    tcpfetch(
        &t.join("dl"),
        &["get", &server.addr, "sub/f.bin", "-o", "renamed.dat"],
    )
    .expect_code(0);
    assert_eq!(read(&t.join("dl/renamed.dat")), data);
    assert!(!t.join("dl/f.bin").exists());
}

#[test]
fn output_directory_saves_inside_it() {
    let data = random_bytes(10_000, 6);
    let (t, server) = serve("out-dir", &[("sub/f.bin", &data)], &[]);
    std::fs::create_dir_all(t.join("dl/into")).unwrap();
    tcpfetch(
        &t.join("dl"),
        &["get", &server.addr, "sub/f.bin", "-o", "into/"],
    )
    .expect_code(0);
    assert_eq!(read(&t.join("dl/into/f.bin")), data);
    tcpfetch(
        &t.join("dl"),
        &["get", &server.addr, "sub/f.bin", "--output", "into"],
    )
    .expect_code(0);
    assert_eq!(read(&t.join("dl/into/f.bin")), data);
}

#[test]
fn output_dash_streams_the_file_to_stdout() {
    let data = random_bytes(300_000, 7);
    let (t, server) = serve("out-stdout", &[("f.bin", &data)], &[]);
    let run = tcpfetch(&t.join("dl"), &["get", &server.addr, "f.bin", "-o", "-"]);
    run.expect_code(0);
    assert!(run.output.stdout == data, "stdout differs from the file");
    assert!(run.stderr().contains("sha256 verified"), "{run}");
    assert_eq!(std::fs::read_dir(t.join("dl")).unwrap().count(), 0);
}

#[test]
fn right_sha256_is_accepted() {
    let data = random_bytes(50_000, 8);
    let (t, server) = serve("sha-right", &[("f.bin", &data)], &[]);
    let hex = sha256_hex(&data);
    tcpfetch(
        &t.join("dl"),
        &["get", &server.addr, "f.bin", "--sha256", &hex],
    )
    .expect_code(0);
    assert_eq!(read(&t.join("dl/f.bin")), data);
    // Upper case is the same digest.
    tcpfetch(
        &t.join("dl"),
        &[
            "get",
            &server.addr,
            "f.bin",
            "--sha256",
            &hex.to_uppercase(),
            "--force",
        ],
    )
    .expect_code(0);
}

#[test]
fn wrong_sha256_creates_no_file() {
    let data = random_bytes(50_000, 9);
    let (t, server) = serve("sha-wrong", &[("f.bin", &data)], &[]);
    let wrong = sha256_hex(b"something else");
    let run = tcpfetch(
        &t.join("dl"),
        &["get", &server.addr, "f.bin", "--sha256", &wrong],
    );
    run.expect_code(3);
    assert!(run.stderr().contains(&wrong), "{run}");
    assert!(run.stderr().contains(&sha256_hex(&data)), "{run}");
    assert_eq!(std::fs::read_dir(t.join("dl")).unwrap().count(), 0);
}

#[test]
fn wrong_sha256_leaves_an_existing_file_untouched() {
    let data = random_bytes(50_000, 10);
    let (t, server) = serve("sha-untouched", &[("f.bin", &data)], &[]);
    let wrong = sha256_hex(b"something else");
    // Both a different local file and an identical one stay as they were.
    for local in [&b"my own precious bytes"[..], &data] {
        t.write("dl/f.bin", local);
        let run = tcpfetch(
            &t.join("dl"),
            &["get", &server.addr, "f.bin", "--sha256", &wrong],
        );
        run.expect_code(3);
        assert_eq!(read(&t.join("dl/f.bin")), local);
        assert!(!t.join("dl/f.bin.part").exists(), "{run}");
    }
}

#[test]
fn resume_asks_only_for_the_rest_of_a_truncated_part() {
    let data = random_bytes(1 << 20, 11);
    let (t, server) = serve("resume", &[("x.bin", &data)], &[]);
    let half = data.len() / 2;
    t.write("dl/x.bin.part", &data[..half]);
    // The version record a real interrupted download leaves beside it.
    t.write(
        "dl/x.bin.part.sha256",
        format!("{}\n", sha256_hex(&data)).as_bytes(),
    );
    let run = tcpfetch(&t.join("dl"), &["get", &server.addr, "x.bin"]);
    run.expect_code(0);
    server.wait_for_log(&format!(
        "\"GET +mtime {half} x.bin\" ok {}",
        data.len() - half
    ));
    // Neither form of GET from offset 0.
    assert!(!server.log().contains(" 0 x.bin\""));
    assert_eq!(read(&t.join("dl/x.bin")), data);
    assert!(!t.join("dl/x.bin.part").exists());
    assert!(!t.join("dl/x.bin.part.sha256").exists());
}

#[test]
fn a_corrupt_part_fails_once_and_is_deleted() {
    let data = random_bytes(1 << 20, 12);
    let (t, server) = serve("corrupt-part", &[("x.bin", &data)], &[]);
    let mut prefix = data[..1000].to_vec();
    prefix[500] ^= 0xff;
    t.write("dl/x.bin.part", &prefix);
    // The version record a real interrupted download leaves beside it.
    t.write(
        "dl/x.bin.part.sha256",
        format!("{}\n", sha256_hex(&data)).as_bytes(),
    );
    let run = tcpfetch(&t.join("dl"), &["get", &server.addr, "x.bin"]);
    run.expect_code(3);
    assert!(!t.join("dl/x.bin").exists(), "{run}");
    assert!(!t.join("dl/x.bin.part").exists(), "{run}");
    tcpfetch(&t.join("dl"), &["get", &server.addr, "x.bin"]).expect_code(0);
    assert_eq!(read(&t.join("dl/x.bin")), data);
}

#[test]
fn a_part_of_another_version_starts_over() {
    let data = random_bytes(200_000, 13);
    let (t, server) = serve("other-version", &[("x.bin", &data)], &[]);
    // The bytes are right, but the note says they belong to another file.
    t.write("dl/x.bin.part", &data[..1000]);
    t.write(
        "dl/x.bin.part.sha256",
        format!("{}\n", sha256_hex(b"an older version")).as_bytes(),
    );
    let run = tcpfetch(&t.join("dl"), &["get", &server.addr, "x.bin"]);
    run.expect_code(0);
    assert!(run.stderr().contains("starting over"), "{run}");
    server.wait_for_log("\"GET +mtime 0 x.bin\" ok 200000");
    assert_eq!(read(&t.join("dl/x.bin")), data);
    assert!(!t.join("dl/x.bin.part.sha256").exists());
}

#[test]
fn a_part_longer_than_the_file_starts_over() {
    let data = random_bytes(1000, 14);
    let (t, server) = serve("long-part", &[("x.bin", &data)], &[]);
    t.write("dl/x.bin.part", &random_bytes(5000, 15));
    tcpfetch(&t.join("dl"), &["get", &server.addr, "x.bin"]).expect_code(0);
    assert_eq!(read(&t.join("dl/x.bin")), data);
}

#[test]
fn an_identical_file_is_not_transferred_again() {
    let data = random_bytes(100_000, 16);
    let (t, server) = serve("already", &[("x.bin", &data)], &[]);
    t.write("dl/x.bin", &data);
    let run = tcpfetch(&t.join("dl"), &["get", &server.addr, "x.bin"]);
    run.expect_code(0);
    assert!(run.stderr().contains("already here"), "{run}");
    server.wait_for_log("\"GET +mtime 100000 x.bin\" ok 0");
    // Neither form of GET from offset 0.
    assert!(!server.log().contains(" 0 x.bin\""));
    assert_eq!(read(&t.join("dl/x.bin")), data);
}

#[test]
fn force_downloads_an_identical_file_anyway() {
    let data = random_bytes(100_000, 17);
    let (t, server) = serve("force", &[("x.bin", &data)], &[]);
    t.write("dl/x.bin", &data);
    let run = tcpfetch(&t.join("dl"), &["get", &server.addr, "x.bin", "--force"]);
    run.expect_code(0);
    assert!(run.stderr().contains("sha256 verified"), "{run}");
    server.wait_for_log("\"GET +mtime 0 x.bin\" ok 100000");
    assert_eq!(read(&t.join("dl/x.bin")), data);
}

#[test]
fn a_different_local_file_is_replaced_by_the_verified_download() {
    let data = random_bytes(100_000, 18);
    let (t, server) = serve("replace", &[("x.bin", &data)], &[]);
    // Same size, other bytes: compared by digest, not by size.
    t.write("dl/x.bin", &random_bytes(100_000, 19));
    tcpfetch(&t.join("dl"), &["get", &server.addr, "x.bin"]).expect_code(0);
    assert_eq!(read(&t.join("dl/x.bin")), data);
}

#[test]
fn a_server_that_disappears_mid_transfer_leaves_the_part() {
    let data = random_bytes(1 << 20, 20);
    let digest = sha256_hex(&data);
    let half = data.len() / 2;
    let body = data[..half].to_vec();
    let addr = stand_in(1, move |_| {
        let mut out = format!("TCPFETCH/1 OK {} {digest}\n", 1 << 20).into_bytes();
        out.extend_from_slice(&body);
        out
    });
    let t = Scratch::new("disappears");
    let run = tcpfetch(&t.path, &["get", &addr, "x.bin"]);
    run.expect_code(1);
    assert!(run.stderr().contains("resume"), "{run}");
    assert!(!t.join("x.bin").exists());
    assert!(read(&t.join("x.bin.part")) == data[..half], "{run}");
}

#[test]
fn a_digest_that_does_not_match_the_bytes_leaves_nothing() {
    let data = random_bytes(100_000, 21);
    let lie = sha256_hex(b"not these bytes");
    let body = data.clone();
    let addr = stand_in(1, move |_| {
        let mut out = format!("TCPFETCH/1 OK {} {lie}\n", body.len()).into_bytes();
        out.extend_from_slice(&body);
        out
    });
    let t = Scratch::new("lying");
    let run = tcpfetch(&t.path, &["get", &addr, "x.bin"]);
    run.expect_code(3);
    assert!(run.stderr().contains(&sha256_hex(&data)), "{run}");
    assert!(
        run.stderr().contains(&sha256_hex(b"not these bytes")),
        "{run}"
    );
    assert_eq!(std::fs::read_dir(&t.path).unwrap().count(), 0, "{run}");
}

#[test]
fn an_http_server_is_named_not_a_tcpfetch_server() {
    let http = || b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi".to_vec();
    let t = Scratch::new("http");
    let run = tcpfetch(&t.path, &["get", &stand_in(1, move |_| http()), "x.bin"]);
    run.expect_code(1);
    assert!(run.stderr().contains("not a tcpfetch server"), "{run}");
    assert_eq!(std::fs::read_dir(&t.path).unwrap().count(), 0, "{run}");
    let run = tcpfetch(&t.path, &["ping", &stand_in(1, move |_| http())]);
    run.expect_code(1);
    assert!(run.stderr().contains("not a tcpfetch server"), "{run}");
    let run = tcpfetch(&t.path, &["list", &stand_in(1, move |_| http())]);
    run.expect_code(1);
    assert!(run.stderr().contains("not a tcpfetch server"), "{run}");
}

#[test]
fn a_server_that_says_nothing_and_closes_is_a_failure() {
    let t = Scratch::new("silent");
    for cmd in ["get", "ping", "list"] {
        let addr = stand_in(1, |_| Vec::new());
        let mut args = vec![cmd, addr.as_str()];
        if cmd == "get" {
            args.push("x.bin");
        }
        let run = tcpfetch(&t.path, &args);
        run.expect_code(1);
        assert!(run.stderr().starts_with("tcpfetch: "), "{run}");
    }
    assert_eq!(std::fs::read_dir(&t.path).unwrap().count(), 0);
}

#[test]
fn server_errors_become_exit_1_with_their_message() {
    let (t, server) = serve("remote-errors", &[("a.txt", b"a")], &[]);
    std::fs::create_dir_all(t.join("srv/dir")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", t.join("srv/out")).unwrap();
    run_program("mkfifo", &t.path, &["srv/pipe"], b"").expect_code(0);
    let addr = &server.addr;
    for (name, says) in [
        ("missing.txt", format!("tcpfetch: no file 'missing.txt' on {addr}; see 'tcpfetch list {addr}'\n")),
        ("dir", format!("tcpfetch: 'dir' is a directory on {addr}; fetch the files under it with 'tcpfetch get {addr} dir/ --all'\n")),
        // Other refusals name the file and the server as well (they used
        // to read only 'server refused: forbidden: ...').
        ("out", format!("tcpfetch: {addr} refused 'out': forbidden: path leaves the served directory\n")),
        ("pipe", format!("tcpfetch: {addr} refused 'pipe': forbidden: not a regular file; only regular files are served\n")),
    ] {
        let run = tcpfetch(&t.join("dl"), &["get", addr, name]);
        run.expect_code(1);
        assert_eq!(run.stderr(), says, "{run}");
    }
    assert_eq!(std::fs::read_dir(t.join("dl")).unwrap().count(), 0);
}

#[test]
fn a_servers_words_cannot_drive_the_terminal() {
    // A hostile server's ERR text used to reach stderr raw: an escape
    // could clear the screen or rewrite the lines above. So did the text
    // of an answer quoted as malformed, and a protocol version.
    let t = Scratch::new("err-escapes");
    let rows: [(&str, &[u8], &str); 5] = [
        (
            "get",
            b"TCPFETCH/1 ERR forbidden \x1b[2Jall clear\x07\n",
            "\\u{1b}[2Jall clear\\u{7}",
        ),
        (
            "get",
            b"TCPFETCH/1 OK 5 \x1b[2J\x07\n",
            "'5 \\u{1b}[2J\\u{7}'",
        ),
        ("list", b"TCPFETCH/1 OK \x1b[2J\x07\n", "'\\u{1b}[2J\\u{7}'"),
        ("ping", b"TCPFETCH/1 OK \x1b[2J\x07\n", "'\\u{1b}[2J\\u{7}'"),
        (
            "ping",
            b"TCPFETCH/\x1b[2J\x07 OK\n",
            "version \\u{1b}[2J\\u{7}",
        ),
    ];
    for (cmd, answer, shown) in rows {
        let addr = stand_in(1, move |_| answer.to_vec());
        let mut args = vec![cmd, addr.as_str()];
        if cmd == "get" {
            args.push("x.bin");
        }
        let run = tcpfetch(&t.path, &args);
        run.expect_code(1);
        assert!(
            !run.stderr().contains('\x1b') && !run.stderr().contains('\x07'),
            "{run}"
        );
        assert!(run.stderr().contains(shown), "{shown}: {run}");
    }
}

#[test]
fn list_prints_an_aligned_table_sorted_by_name() {
    let (t, server) = serve(
        "list-table",
        &[
            ("b.bin", &[7u8; 12345]),
            ("a \"q\".txt", b"hello"),
            ("sub/ü.txt", b""),
            (".hidden", b"secret"),
        ],
        &[],
    );
    let run = tcpfetch(&t.path, &["list", &server.addr]);
    run.expect_code(0);
    assert_eq!(
        run.stdout(),
        "    5  a \"q\".txt\n12345  b.bin\n    0  sub/ü.txt\n",
        "{run}"
    );
}

#[test]
fn list_json_escapes_names_and_shows_known_digests() {
    let (t, server) = serve(
        "list-json",
        &[("a \"q\".txt", b"hello"), ("ü/日本.txt", b"x")],
        &[],
    );
    // After a download the server knows the digest; LIST shows it.
    tcpfetch(&t.join("dl"), &["get", &server.addr, "a \"q\".txt"]).expect_code(0);
    let run = tcpfetch(&t.path, &["list", &server.addr, "--json"]);
    run.expect_code(0);
    assert_eq!(
        run.stdout(),
        format!(
            "{{\"name\":\"a \\\"q\\\".txt\",\"size\":5,\"sha256\":\"{}\"}}\n{{\"name\":\"ü/日本.txt\",\"size\":1}}\n",
            sha256_hex(b"hello")
        ),
        "{run}"
    );
}

#[test]
fn list_json_escapes_backslashes_and_control_free_names_from_any_server() {
    // A real server never lists a backslash (it could not be requested), so
    // a stand-in sends one to check the client's escaping.
    let addr = stand_in(1, |_| {
        b"TCPFETCH/1 OK 2\n3 - back\\slash \"x\"\n4 - tab\xe2\x80\xa8sep\n".to_vec()
    });
    let t = Scratch::new("list-escape");
    let run = tcpfetch(&t.path, &["list", &addr, "--json"]);
    run.expect_code(0);
    assert_eq!(
        run.stdout(),
        "{\"name\":\"back\\\\slash \\\"x\\\"\",\"size\":3}\n{\"name\":\"tab\\u2028sep\",\"size\":4}\n",
        "{run}"
    );
}

#[test]
fn list_leaves_out_names_that_cannot_be_requested() {
    let (t, server) = serve(
        "list-skip",
        &[("ok.txt", b"1"), ("back\\slash", b"2"), ("ctl\u{1}x", b"3")],
        &[],
    );
    let run = tcpfetch(&t.path, &["list", &server.addr]);
    run.expect_code(0);
    assert_eq!(run.stdout(), "1  ok.txt\n", "{run}");
}

#[test]
fn ping_reports_the_version_and_exits_0() {
    let (t, server) = serve("ping", &[], &[]);
    let run = tcpfetch(&t.path, &["ping", &server.addr]);
    run.expect_code(0);
    assert!(
        run.stdout()
            .starts_with(&format!("tcpfetch {}", env!("CARGO_PKG_VERSION"))),
        "{run}"
    );
    assert!(run.stdout().contains("time="), "{run}");
}

#[test]
fn ping_against_a_closed_port_exits_1() {
    let t = Scratch::new("ping-closed");
    let run = tcpfetch(&t.path, &["ping", &closed_port()]);
    run.expect_code(1);
    assert!(run.stderr().contains("cannot connect"), "{run}");
}

#[test]
fn a_name_of_several_addresses_reports_the_first_that_answered() {
    // `localhost` is tried as 127.0.0.1, then ::1. The error named the
    // last one tried, ::1: on a box without IPv6 its 'cannot assign
    // requested address' hid the refused IPv4 connect that mattered.
    let t = Scratch::new("ping-localhost-closed");
    let port = closed_port().rsplit_once(':').unwrap().1.to_string();
    let run = tcpfetch(&t.path, &["ping", &format!("localhost:{port}")]);
    run.expect_code(1);
    let want = format!("tcpfetch: cannot connect to 127.0.0.1:{port}: connection refused\n");
    assert!(run.stderr().starts_with(&want), "{run}");
}

#[test]
fn get_against_a_closed_port_exits_1_and_creates_nothing() {
    let t = Scratch::new("get-closed");
    let run = tcpfetch(&t.path, &["get", &closed_port(), "x.bin"]);
    run.expect_code(1);
    assert_eq!(std::fs::read_dir(&t.path).unwrap().count(), 0);
}

#[test]
fn usage_errors_exit_2() {
    let t = Scratch::new("usage");
    let cases: &[&[&str]] = &[
        &[],
        &["frobnicate"],
        &["--bogus"],
        &["get"],
        // No NAME and no terminal to pick one on.
        &["get", "127.0.0.1:1"],
        &["get", "127.0.0.1:1", "x", "--bogus"],
        &["get", "127.0.0.1:1", "x", "--sha256", "abc"],
        &["get", "127.0.0.1:1", "x", "-o"],
        &["get", "127.0.0.1:1", "dir/"],
        &["get", "bad:address:1", "x"],
        &["list"],
        &["list", "127.0.0.1:1", "--bogus"],
        &["ping"],
        &["ping", "127.0.0.1:1", "--bogus"],
        &["ping", "127.0.0.1:1", "--count", "x"],
        &["serve", "--bogus"],
        &["serve", "--max-clients", "0"],
        &["serve", "--idle-timeout", "-1"],
        &["serve", "a", "b"],
    ];
    for args in cases {
        let run = tcpfetch(&t.path, args);
        run.expect_code(2);
        assert!(run.stderr().starts_with("tcpfetch: "), "{run}");
    }
}

#[test]
fn help_and_version_exit_0_everywhere() {
    let t = Scratch::new("help");
    let version = format!("tcpfetch {}\n", env!("CARGO_PKG_VERSION"));
    for cmd in [None, Some("serve"), Some("get"), Some("list"), Some("ping")] {
        for flag in ["--help", "-h", "--version", "-V"] {
            let args: Vec<&str> = cmd.into_iter().chain([flag]).collect();
            let run = tcpfetch(&t.path, &args);
            run.expect_code(0);
            if flag.contains('V') || flag == "--version" {
                assert_eq!(run.stdout(), version, "{run}");
            } else {
                assert!(run.stdout().contains("Usage: tcpfetch"), "{run}");
            }
        }
    }
}

#[test]
fn a_name_with_a_line_feed_is_refused_before_anything_is_sent() {
    let (t, server) = serve("lf-name", &[("a.txt", b"hello")], &[]);
    for output in ["out", "-"] {
        let run = tcpfetch(
            &t.join("dl"),
            &["get", &server.addr, "a.txt\nLIST", "-o", output],
        );
        run.expect_code(2);
        assert!(run.output.stdout.is_empty(), "{run}");
    }
    // The ping's log line comes after anything the gets could have caused.
    tcpfetch(&t.path, &["ping", &server.addr]).expect_code(0);
    let log = server.wait_for_log("\"PING\" ok");
    assert!(!log.contains("GET") && !log.contains("LIST"), "{log}");
    assert_eq!(std::fs::read_dir(t.join("dl")).unwrap().count(), 0);
}

#[test]
fn output_to_a_missing_directory_fails_and_creates_nothing() {
    let (t, server) = serve("out-missing", &[("a.txt", b"hello")], &[]);
    let run = tcpfetch(
        &t.join("dl"),
        &["get", &server.addr, "a.txt", "-o", "nodir/"],
    );
    run.expect_code(1);
    assert!(run.stderr().contains("no such directory"), "{run}");
    assert_eq!(std::fs::read_dir(t.join("dl")).unwrap().count(), 0);
    // -o PATH in a directory that is not there, or under a file: said of
    // -o and its directory, before the server is asked. It used to read
    // "cannot write 'nodir/x.part': no such file or directory".
    std::fs::write(t.join("dl/file"), b"x").unwrap();
    for (out, says) in [
        ("nodir/x", "-o nodir/x: 'nodir' does not exist"),
        ("file/x", "-o file/x: 'file' is not a directory"),
    ] {
        let run = tcpfetch(&t.join("dl"), &["get", &server.addr, "a.txt", "-o", out]);
        run.expect_code(1);
        assert_eq!(run.stderr(), format!("tcpfetch: {says}\n"), "{run}");
    }
    tcpfetch(&t.path, &["ping", &server.addr]).expect_code(0);
    let log = server.wait_for_log("\"PING\" ok");
    assert!(!log.contains("GET"), "{log}");
}

#[test]
fn output_dash_with_a_wrong_sha256_writes_nothing() {
    let data = random_bytes(10_000, 22);
    let (t, server) = serve("stdout-sha", &[("f.bin", &data)], &[]);
    let wrong = sha256_hex(b"other");
    let run = tcpfetch(
        &t.join("dl"),
        &["get", &server.addr, "f.bin", "-o", "-", "--sha256", &wrong],
    );
    run.expect_code(3);
    assert!(run.output.stdout.is_empty(), "{run}");
}

#[test]
fn a_complete_part_is_verified_and_renamed_without_a_transfer() {
    let data = random_bytes(100_000, 23);
    let (t, server) = serve("complete-part", &[("x.bin", &data)], &[]);
    t.write("dl/x.bin.part", &data);
    // The version record a real interrupted download leaves beside it.
    t.write(
        "dl/x.bin.part.sha256",
        format!("{}\n", sha256_hex(&data)).as_bytes(),
    );
    tcpfetch(&t.join("dl"), &["get", &server.addr, "x.bin"]).expect_code(0);
    server.wait_for_log("\"GET +mtime 100000 x.bin\" ok 0");
    // Neither form of GET from offset 0.
    assert!(!server.log().contains(" 0 x.bin\""));
    assert_eq!(read(&t.join("dl/x.bin")), data);
    assert!(!t.join("dl/x.bin.part").exists());
}

#[test]
fn a_part_left_by_a_dead_server_resumes_from_a_real_one() {
    let data = random_bytes(1 << 20, 24);
    let digest = sha256_hex(&data);
    let cut = 300_000;
    let body = data[..cut].to_vec();
    let addr = stand_in(1, move |_| {
        let mut out = format!("TCPFETCH/1 OK {} {digest}\n", 1 << 20).into_bytes();
        out.extend_from_slice(&body);
        out
    });
    let (t, server) = serve("dead-then-real", &[("x.bin", &data)], &[]);
    tcpfetch(&t.join("dl"), &["get", &addr, "x.bin"]).expect_code(1);
    tcpfetch(&t.join("dl"), &["get", &server.addr, "x.bin"]).expect_code(0);
    server.wait_for_log(&format!(
        "\"GET +mtime {cut} x.bin\" ok {}",
        data.len() - cut
    ));
    assert_eq!(read(&t.join("dl/x.bin")), data);
    assert_eq!(std::fs::read_dir(t.join("dl")).unwrap().count(), 1);
}

#[test]
fn an_endless_status_line_is_not_a_tcpfetch_server() {
    let addr = stand_in(1, |_| vec![b'x'; 1 << 20]);
    let t = Scratch::new("endless");
    let run = tcpfetch(&t.path, &["get", &addr, "x.bin"]);
    run.expect_code(1);
    assert!(run.stderr().contains("not a tcpfetch server"), "{run}");
    assert_eq!(std::fs::read_dir(&t.path).unwrap().count(), 0);
}

#[test]
fn serve_on_a_missing_directory_exits_1() {
    let t = Scratch::new("serve-missing");
    let run = tcpfetch(
        &t.path,
        &["serve", "no-such-dir", "--listen", "127.0.0.1:0"],
    );
    run.expect_code(1);
    assert!(run.stderr().contains("cannot serve"), "{run}");
}

#[test]
fn malformed_server_answers_fail_cleanly() {
    let digest = sha256_hex(b"hello");
    let cases: Vec<(&str, String, &str)> = vec![
        ("get", "TCPFETCH/1 OK\n".into(), "malformed"),
        ("get", "TCPFETCH/1 OK 5 xyz\n".into(), "malformed"),
        ("get", format!("TCPFETCH/1 OK -5 {digest}\n"), "malformed"),
        ("get", format!("TCPFETCH/1 OK 5 {digest}"), "closed"),
        ("get", format!("TCPFETCH/1 OK 5 {digest}\nhel"), "resume"),
        ("get", "TCPFETCH/2 OK 5\n".into(), "version 2"),
        // Our tag without its space: a broken line, not "version 1".
        ("get", "TCPFETCH/1\n".into(), "malformed status line"),
        (
            "get",
            "TCPFETCH/1 ERR busy come back later\n".into(),
            "busy",
        ),
        (
            "get",
            "TCPFETCH/1 ERR teapot short and stout\n".into(),
            "teapot",
        ),
        ("get", "TCPFETCH/1 MAYBE\n".into(), "malformed"),
        ("get", "\x00\x01\x02\n".into(), "not a tcpfetch server"),
        ("list", "TCPFETCH/1 OK 2\n1 - a\n".into(), "closed"),
        ("list", "TCPFETCH/1 OK 99999999999\n".into(), "malformed"),
        (
            "list",
            "TCPFETCH/1 OK 1\nnot an entry\n".into(),
            "malformed",
        ),
        (
            "list",
            "TCPFETCH/1 OK 1\n1 - bad\x01name\n".into(),
            "malformed",
        ),
        ("ping", "TCPFETCH/1 ERR internal oops\n".into(), "internal"),
        // An OK that is not `OK tcpfetch <version>` (a LIST count from a
        // peer out of step, nothing at all) is no answer to PING.
        ("ping", "TCPFETCH/1 OK 3\n".into(), "malformed PING answer"),
        ("ping", "TCPFETCH/1 OK\n".into(), "malformed PING answer"),
        (
            "ping",
            "TCPFETCH/1 OK tcpfetch\n".into(),
            "malformed PING answer",
        ),
        (
            "ping",
            "SSH-2.0-OpenSSH_9.6\r\n".into(),
            "not a tcpfetch server",
        ),
    ];
    let t = Scratch::new("malformed-answers");
    for (cmd, answer, says) in cases {
        let bytes = answer.clone().into_bytes();
        let addr = stand_in(1, move |_| bytes.clone());
        let mut args = vec![cmd, addr.as_str()];
        if cmd == "get" {
            args.push("x.bin");
        }
        let run = tcpfetch(&t.path, &args);
        assert_eq!(run.code(), 1, "{answer:?}{run}");
        assert!(run.stderr().contains(says), "{answer:?}{run}");
        // Only a body that was cut short leaves a .part, to resume from.
        for leftover in ["x.bin", "x.bin.part", "x.bin.part.sha256"] {
            let _ = std::fs::remove_file(t.join(leftover));
        }
        assert_eq!(std::fs::read_dir(&t.path).unwrap().count(), 0, "{answer:?}");
    }
}

#[test]
fn serve_on_a_port_in_use_exits_1() {
    let (t, server) = serve("port-in-use", &[], &[]);
    let run = tcpfetch(&t.path, &["serve", "srv", "--listen", &server.addr]);
    run.expect_code(1);
    assert!(run.stderr().contains("cannot listen"), "{run}");
}

#[test]
fn a_different_local_file_that_is_slow_to_hash_is_still_replaced() {
    // Hashing the local copy (same size, other bytes) takes longer than the
    // server's idle timeout: the download must not use the dropped
    // connection. (In a debug build 32 MiB hash in well over half a second.)
    let data = random_bytes(32 << 20, 25);
    let (t, server) = serve("slow-hash", &[("x.bin", &data)], &["--idle-timeout", "0.5"]);
    t.write("dl/x.bin", &random_bytes(32 << 20, 26));
    let run = tcpfetch(&t.join("dl"), &["get", &server.addr, "x.bin", "-q"]);
    run.expect_code(0);
    assert!(read(&t.join("dl/x.bin")) == data, "{run}");
}

#[test]
fn resuming_a_part_that_is_slow_to_hash_still_works() {
    // Hashing the .part takes longer than the server's idle timeout (in a
    // debug build 32 MiB hash in well over half a second).
    let data = random_bytes(40 << 20, 27);
    let (t, server) = serve("slow-part", &[("x.bin", &data)], &["--idle-timeout", "0.5"]);
    let cut = 32 << 20;
    t.write("dl/x.bin.part", &data[..cut]);
    // The version record a real interrupted download leaves beside it.
    t.write(
        "dl/x.bin.part.sha256",
        format!("{}\n", sha256_hex(&data)).as_bytes(),
    );
    let run = tcpfetch(&t.join("dl"), &["get", &server.addr, "x.bin", "-q"]);
    run.expect_code(0);
    server.wait_for_log(&format!(
        "\"GET +mtime {cut} x.bin\" ok {}",
        data.len() - cut
    ));
    assert!(read(&t.join("dl/x.bin")) == data, "{run}");
}

#[test]
fn two_downloads_to_one_path_never_mix_their_bytes() {
    let t = Scratch::new("same-path");
    let data = random_bytes(3 << 20, 21);
    t.write("srv/big.bin", &data);
    // Paced, the first get is stopped (holding its .part's lock) well
    // before its end, while the second tries.
    let server = Server::start(&t.join("srv"), &["--max-rate", "1M"]);
    let second = ["get", &server.addr, "big.bin"];
    a_second_get_meets_the_lock(&t.path, &server.addr, "big.bin", &second, &data);
}

#[test]
fn a_failed_request_leaves_no_empty_part_behind() {
    let t = Scratch::new("no-empty-part");
    t.write("srv/a.txt", b"a");
    let server = Server::start(&t.join("srv"), &[]);
    tcpfetch(&t.path, &["get", &server.addr, "missing.txt"]).expect_code(1);
    assert!(!t.join("missing.txt.part").exists());
    assert!(!t.join("missing.txt").exists());
}

#[test]
fn a_closed_stdout_is_not_a_crash() {
    let t = Scratch::new("closed-stdout");
    t.write("srv/a.txt", b"a");
    let server = Server::start(&t.join("srv"), &[]);
    for args in ["ping ADDR -c 3", "list ADDR"] {
        let args = args.replace("ADDR", &server.addr);
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!("'{BIN}' {args} | true; echo ${{PIPESTATUS[0]}}"))
            .output()
            .unwrap();
        let cmd = &args;
        let code = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(
            code == "0" || code == "1",
            "{cmd}: exit {code}, stderr {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !String::from_utf8_lossy(&out.stderr).contains("panicked"),
            "{cmd}"
        );
    }
}

#[test]
fn list_sha256sums_names_a_refused_file_and_lists_the_rest() {
    // One file the server cannot read used to fail the whole manifest
    // with an error that named no file, and print nothing.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (a, c) = (sha256_hex(b"a"), sha256_hex(b"c"));
    let answers = move |line: &str| match line {
        "LIST" => "TCPFETCH/1 OK 3\n1 - a\n1 - b\n1 - c\n".to_string(),
        "GET 1 a" => format!("TCPFETCH/1 OK 1 {a}\n"),
        "GET 1 b" => "TCPFETCH/1 ERR forbidden permission denied\n".to_string(),
        "GET 1 c" => format!("TCPFETCH/1 OK 1 {c}\n"),
        _ => "TCPFETCH/1 ERR bad-request what\n".to_string(),
    };
    thread::spawn(move || {
        let Ok((stream, _)) = listener.accept() else {
            return;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let reader = BufReader::new(&stream);
        for line in reader.lines() {
            let Ok(line) = line else { return };
            let _ = (&stream).write_all(answers(line.trim_end()).as_bytes());
        }
    });
    let t = Scratch::new("list-sums-refused");
    let run = tcpfetch(&t.path, &["list", &addr, "--sha256sums"]);
    run.expect_code(1);
    assert_eq!(
        run.stdout(),
        format!("{}  a\n{}  c\n", sha256_hex(b"a"), sha256_hex(b"c")),
        "{run}"
    );
    assert_eq!(
        run.stderr(),
        "tcpfetch: b: server refused: forbidden: permission denied\n",
        "{run}"
    );
}
