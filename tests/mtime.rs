//! Downloads keep the server's modification time (issue #16 item 19):
//! `get`, `get --all` and keyed downloads; `--no-mtime` and an "already
//! here" file are left alone; a client that does not ask (`GET` without
//! `+mtime`, the old grammar) gets the old answer; and this client still
//! downloads from a server older than `GET +mtime`.

mod common;

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sha2::{Digest as _, Sha256};

use common::{serve, sha256_hex, tcpfetch, Scratch, Server};

/// 2001-09-09 01:46:40.123456789 UTC: long past, with nanoseconds.
fn past() -> SystemTime {
    UNIX_EPOCH + Duration::new(1_000_000_000, 123_456_789)
}

fn set_mtime(path: &Path, when: SystemTime) {
    File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(when)
        .unwrap();
}

fn mtime(path: &Path) -> SystemTime {
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .modified()
        .unwrap()
}

/// Whether `when` is within a day of now: the time of a download, not
/// the server's.
fn recent(when: SystemTime) -> bool {
    let day = Duration::from_secs(86_400);
    when > SystemTime::now() - day
}

#[test]
fn get_keeps_the_server_mtime_and_leaves_an_already_here_file_alone() {
    let (t, server) = serve("mtime-get", &[("f.txt", b"hello world\n")], &[]);
    set_mtime(&t.join("srv/f.txt"), past());
    let dl = t.join("dl");
    tcpfetch(&dl, &["get", &server.addr, "f.txt"]).expect_code(0);
    assert_eq!(mtime(&dl.join("f.txt")), past());

    // Already here: nothing is written, the file's own time stays.
    let later = past() + Duration::from_secs(3600);
    set_mtime(&dl.join("f.txt"), later);
    let run = tcpfetch(&dl, &["get", &server.addr, "f.txt"]);
    assert!(
        run.expect_code(0).stderr().contains("already here"),
        "{run}"
    );
    assert_eq!(mtime(&dl.join("f.txt")), later);

    // --force downloads again, and the server's time comes back.
    tcpfetch(&dl, &["get", &server.addr, "f.txt", "--force"]).expect_code(0);
    assert_eq!(mtime(&dl.join("f.txt")), past());

    // --no-mtime: the time of the download, and no +mtime on the wire.
    tcpfetch(
        &dl,
        &[
            "get",
            &server.addr,
            "f.txt",
            "-o",
            "plain.txt",
            "--no-mtime",
        ],
    )
    .expect_code(0);
    assert!(recent(mtime(&dl.join("plain.txt"))));
    let log = server.wait_for_log("\"GET 0 f.txt\"");
    assert!(log.contains("\"GET +mtime 0 f.txt\" ok"), "{log}");
}

#[test]
fn get_all_keeps_every_files_mtime() {
    let (t, server) = serve(
        "mtime-all",
        &[("a.bin", b"aaaa"), ("sub/b.bin", b"bb"), ("empty", b"")],
        &[],
    );
    let times = [
        ("a.bin", past()),
        ("sub/b.bin", past() + Duration::from_secs(86_400 * 400)),
        ("empty", UNIX_EPOCH + Duration::from_secs(1)),
    ];
    for (name, when) in times {
        set_mtime(&t.join(&format!("srv/{name}")), when);
    }
    tcpfetch(&t.path, &["get", &server.addr, "--all", "-o", "dl"]).expect_code(0);
    for (name, when) in times {
        assert_eq!(mtime(&t.join(&format!("dl/{name}"))), when, "{name}");
    }
}

/// A scratch directory serving `srv/f.bin` (`size` bytes, the past
/// mtime), and the path of a key file for it.
fn keyed_scratch(tag: &str, size: usize) -> (Scratch, String) {
    let t = Scratch::new(tag);
    t.write("srv/f.bin", &common::random_bytes(size, 19));
    set_mtime(&t.join("srv/f.bin"), past());
    let key = t.write("key", &common::random_bytes(32, 7));
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    let key = key.to_str().unwrap().to_string();
    (t, key)
}

#[test]
fn a_keyed_get_keeps_the_mtime_under_the_mac() {
    let (t, key) = keyed_scratch("mtime-key", 70_000);
    let key = key.as_str();
    let server = Server::start(&t.join("srv"), &["--key-file", key]);
    tcpfetch(&t.path, &["get", &server.addr, "f.bin", "--key-file", key]).expect_code(0);
    assert_eq!(mtime(&t.join("f.bin")), past());
}

/// Read one status line from `stream`.
fn status_line(reader: &mut impl BufRead) -> String {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    line.strip_suffix('\n')
        .unwrap_or_else(|| panic!("no whole line: {line:?}"))
        .to_string()
}

#[test]
fn a_client_that_does_not_ask_gets_the_old_answer() {
    let data = b"hello world\n";
    let (t, server) = serve("mtime-old-client", &[("f.txt", data)], &[]);
    set_mtime(&t.join("srv/f.txt"), past());
    let digest = sha256_hex(data);
    let stream = server.connect();
    let mut reader = BufReader::new(&stream);

    // The released clients' request, parsed with their grammar: exactly
    // `<size> <digest>` (a third field must be a MAC, a fourth is refused).
    (&stream).write_all(b"GET 0 f.txt\n").unwrap();
    let line = status_line(&mut reader);
    let details = line.strip_prefix("TCPFETCH/1 OK ").expect(&line);
    let fields: Vec<&str> = details.split(' ').collect();
    assert_eq!(fields, [data.len().to_string().as_str(), digest.as_str()]);
    let mut body = vec![0; data.len()];
    reader.read_exact(&mut body).unwrap();
    assert_eq!(body, data);

    // Asked for, on the same connection: the mtime follows the digest.
    (&stream).write_all(b"GET +mtime 6 f.txt\n").unwrap();
    let line = status_line(&mut reader);
    assert_eq!(
        line,
        format!("TCPFETCH/1 OK 12 {digest} 1000000000.123456789"),
        "{line}"
    );
    let mut body = vec![0; 6];
    reader.read_exact(&mut body).unwrap();
    assert_eq!(body, b"world\n");

    // An option this server does not know is a bad request, and the
    // connection carries on.
    (&stream).write_all(b"GET +size 0 f.txt\nPING\n").unwrap();
    let line = status_line(&mut reader);
    assert!(
        line.starts_with("TCPFETCH/1 ERR bad-request unknown GET option"),
        "{line}"
    );
    assert!(status_line(&mut reader).starts_with("TCPFETCH/1 OK tcpfetch "));
}

/// A stand-in for a server older than `GET +mtime`: it speaks the v1
/// grammar as released (`GET <offset> <name>` only, anything else a bad
/// request, the connection kept), serves `files`, and records every
/// request line. With `key` it runs the released key handshake first and
/// MACs each answer as src/proto/auth.rs did, numbering every line.
fn old_server(
    files: HashMap<String, Vec<u8>>,
    key: Option<Vec<u8>>,
) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    listener.set_nonblocking(true).unwrap();
    thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let Ok((stream, _)) = listener.accept() else {
                thread::sleep(Duration::from_millis(10));
                continue;
            };
            stream.set_nonblocking(false).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            answer_old_style(&stream, &files, key.as_deref(), &log);
        }
    });
    (addr, seen)
}

/// HMAC-SHA256 of the concatenated `parts`, for a key of at most 64 bytes.
fn hmac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let pad = |byte: u8| {
        let mut block = [byte; 64];
        block.iter_mut().zip(key).for_each(|(b, k)| *b ^= k);
        block
    };
    let mut inner = Sha256::new();
    inner.update(pad(0x36));
    parts.iter().for_each(|part| inner.update(part));
    let mut outer = Sha256::new();
    outer.update(pad(0x5c));
    outer.update(inner.finalize());
    outer.finalize().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// The released handshake's server half; the two nonces.
fn old_handshake(reader: &mut impl BufRead, stream: &TcpStream, key: &[u8]) -> [Vec<u8>; 2] {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let client = unhex(line.trim_end().strip_prefix("AUTH ").unwrap());
    let server = vec![3u8; 32];
    let proof = hmac(key, &[b"tcpfetch/1 server", &client, &server]);
    let answer = format!("TCPFETCH/1 OK AUTH {} {}\n", hex(&server), hex(&proof));
    (&*stream).write_all(answer.as_bytes()).unwrap();
    line.clear();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("PROVE "), "{line:?}");
    (&*stream)
        .write_all(b"TCPFETCH/1 OK authenticated\n")
        .unwrap();
    [client, server]
}

fn answer_old_style(
    stream: &TcpStream,
    files: &HashMap<String, Vec<u8>>,
    key: Option<&[u8]>,
    log: &Mutex<Vec<String>>,
) {
    let mut reader = BufReader::new(stream);
    let nonces = key.map(|key| old_handshake(&mut reader, stream, key));
    let mut line = String::new();
    let mut number = 0u64;
    while matches!(reader.read_line(&mut line), Ok(n) if n > 0) {
        let request = line.trim_end().to_string();
        line.clear();
        log.lock().unwrap().push(request.clone());
        let get = request.strip_prefix("GET ").and_then(|rest| {
            let (offset, name) = rest.split_once(' ')?;
            if offset.is_empty() || !offset.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            Some((offset.parse::<u64>().ok()?, name))
        });
        let answer = match get {
            None => b"TCPFETCH/1 ERR bad-request offset must be a decimal number\n".to_vec(),
            Some((offset, name)) => match files.get(name) {
                None => b"TCPFETCH/1 ERR not-found no such file\n".to_vec(),
                Some(data) => {
                    let digest = Sha256::digest(data);
                    let mut header = format!("TCPFETCH/1 OK {} {}", data.len(), hex(&digest));
                    if let (Some(key), Some([client, server])) = (key, &nonces) {
                        let mac = hmac(
                            key,
                            &[
                                b"tcpfetch/1 get",
                                client,
                                server,
                                &number.to_be_bytes(),
                                &offset.to_be_bytes(),
                                &(data.len() as u64).to_be_bytes(),
                                &digest,
                                name.as_bytes(),
                            ],
                        );
                        header = format!("{header} {}", hex(&mac));
                    }
                    let mut out = format!("{header}\n").into_bytes();
                    out.extend_from_slice(&data[offset as usize..]);
                    out
                }
            },
        };
        number += 1;
        if (&*stream).write_all(&answer).is_err() {
            return;
        }
    }
}

#[test]
fn this_client_still_downloads_from_a_server_without_mtimes() {
    let t = Scratch::new("mtime-old-server");
    let files: HashMap<String, Vec<u8>> = [
        ("a.txt".to_string(), b"first file\n".to_vec()),
        ("b.txt".to_string(), common::random_bytes(50_000, 3)),
    ]
    .into();
    let (addr, seen) = old_server(files.clone(), None);
    let run = tcpfetch(&t.path, &["get", &addr, "a.txt", "b.txt"]);
    run.expect_code(0);
    for (name, data) in &files {
        assert_eq!(&fs::read(t.join(name)).unwrap(), data, "{name}");
        // No time from the server: the download's own.
        assert!(recent(mtime(&t.join(name))), "{name}");
    }
    // One refused `GET +mtime`, then plain GETs only: the second file's
    // connection knows what the first learned.
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        ["GET +mtime 0 a.txt", "GET 0 a.txt", "GET 0 b.txt"],
        "{run}"
    );
}

#[test]
fn a_keyed_client_falls_back_in_step_with_an_old_keyed_server() {
    // The refused `GET +mtime` counts as a request on both ends: the plain
    // GET after it is number 1, and its MAC must check.
    let t = Scratch::new("mtime-old-keyed");
    let key = common::random_bytes(32, 9);
    let key_path = t.write("key", &key);
    fs::set_permissions(&key_path, fs::Permissions::from_mode(0o600)).unwrap();
    let data = common::random_bytes(20_000, 4);
    let files = [("f.bin".to_string(), data.clone())].into();
    let (addr, seen) = old_server(files, Some(key));
    let key_path = key_path.to_str().unwrap();
    let run = tcpfetch(&t.path, &["get", &addr, "f.bin", "--key-file", key_path]);
    run.expect_code(0);
    assert_eq!(fs::read(t.join("f.bin")).unwrap(), data);
    assert!(recent(mtime(&t.join("f.bin"))));
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen, ["GET +mtime 0 f.bin", "GET 0 f.bin"], "{run}");
}

/// A relay to `upstream` that sets the mtime field of every `GET +mtime`
/// answer to 1970-01-01 00:00:01 and passes everything else unchanged.
fn mtime_forger(upstream: String) -> String {
    common::relay::answer_rewriting_relay(upstream, forge_mtimes)
}

fn forge_mtimes(server: TcpStream, mut client: TcpStream) -> std::io::Result<()> {
    let mut reader = BufReader::new(server);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut fields: Vec<&str> = line.trim_end().split(' ').collect();
        let Some(size) = fields.get(2).and_then(|s| s.parse::<usize>().ok()) else {
            client.write_all(line.as_bytes())?;
            continue;
        };
        if fields.len() >= 5 && fields[4].contains('.') {
            fields[4] = "1.000000000";
        }
        client.write_all(format!("{}\n", fields.join(" ")).as_bytes())?;
        // The whole file follows (every request here is from offset 0).
        let mut body = vec![0u8; size];
        reader.read_exact(&mut body)?;
        client.write_all(&body)?;
    }
}

#[test]
fn a_forged_mtime_is_caught_by_the_mac() {
    let (t, key) = keyed_scratch("mtime-forged", 10_000);
    let key = key.as_str();
    fs::create_dir_all(t.join("dl")).unwrap();

    // Without a key nothing vouches for the header: the forgery passes
    // (as a forged digest with its forged bytes would).
    let plain = Server::start(&t.join("srv"), &[]);
    let forger = mtime_forger(plain.addr.clone());
    tcpfetch(&t.path, &["get", &forger, "f.bin", "-o", "dl/plain.bin"]).expect_code(0);
    assert_eq!(
        mtime(&t.join("dl/plain.bin")),
        UNIX_EPOCH + Duration::from_secs(1)
    );

    // With one, the MAC covers the time: the answer is refused, nothing saved.
    let keyed = Server::start(&t.join("srv"), &["--key-file", key]);
    let forger = mtime_forger(keyed.addr.clone());
    let run = tcpfetch(
        &t.path,
        &[
            "get",
            &forger,
            "f.bin",
            "-o",
            "dl/keyed.bin",
            "--key-file",
            key,
        ],
    );
    assert!(run.expect_code(3).stderr().contains("MAC"), "{run}");
    assert!(!t.join("dl/keyed.bin").exists());
}
