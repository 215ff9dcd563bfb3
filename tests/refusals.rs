//! Black-box: each malformed-input check of the protocol parsers a server
//! runs (src/proto: the v1 request line, the key handshake, the old
//! protocol's frames and pickles), sent by itself and pinned to what the
//! server answers, so that one guard's answer cannot pass for another's.
//! The checks a client runs on a server's answers are unit tests next to
//! their parsers, and `tests/core.rs` sends the same through stand-ins.
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// Send `lines` on one connection, one at a time, and check each answer
/// line; every refusal here keeps the connection.
fn assert_answers(server: &Server, rows: &[(Vec<u8>, String)]) {
    let stream = server.connect();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    for (line, want) in rows {
        (&stream).write_all(line).unwrap();
        let mut answer = String::new();
        reader.read_line(&mut answer).unwrap();
        assert_eq!(
            answer.trim_end_matches('\n'),
            want,
            "{:?}",
            String::from_utf8_lossy(line)
        );
    }
}

#[test]
fn each_refused_request_form_is_answered_with_its_reason() {
    let (_t, server) = serve("refused-requests", &[("a.txt", b"hello")], &[]);
    let bad = |why: &str| format!("TCPFETCH/1 ERR bad-request {why}");
    let unknown = |word: &str| {
        bad(&format!(
            "unknown command '{word}'; expected PING, LIST or GET <offset> <name>"
        ))
    };
    let needs = bad("GET needs an offset and a name: GET <offset> <name>");
    let offset = bad("offset must be a decimal number");
    let name = |n: usize| format!("GET 0 {}\n", "n".repeat(n)).into_bytes();
    let rows: Vec<(Vec<u8>, String)> = vec![
        (b"\n".to_vec(), unknown("")),
        (b"ping\n".to_vec(), unknown("ping")),
        // A known command used wrongly is told so, not called unknown
        // (the old answer named 'LIST' an unknown command).
        (b"PING extra\n".to_vec(), bad("PING takes nothing after it")),
        (b"LIST all\n".to_vec(), bad("LIST takes nothing after it")),
        // The command is quoted by 16 bytes at most, escaped.
        (
            b"FETCHFETCHFETCHFETCH a\n".to_vec(),
            unknown("FETCHFETCHFETCHF"),
        ),
        (b"\x1b[2J\n".to_vec(), unknown("\\u{1b}[2J")),
        (b"GET\n".to_vec(), needs.clone()),
        (b"GET 0\n".to_vec(), needs.clone()),
        (b"GET +mtime\n".to_vec(), needs),
        (
            b"GET +size 0 a.txt\n".to_vec(),
            bad("unknown GET option; the one known is +mtime"),
        ),
        (b"GET x a.txt\n".to_vec(), offset.clone()),
        (b"GET  a.txt\n".to_vec(), offset.clone()),
        (b"GET 18446744073709551616 a.txt\n".to_vec(), offset.clone()),
        // 20 digits at most, leading zeros or not.
        (
            format!("GET {}5 a.txt\n", "0".repeat(20)).into_bytes(),
            offset,
        ),
        (
            format!("GET {}5 a.txt\n", "0".repeat(19)).into_bytes(),
            format!("TCPFETCH/1 OK 5 {}", sha256_hex(b"hello")),
        ),
        (b"GET 0 \xff.txt\n".to_vec(), bad("name is not UTF-8")),
        (b"GET 0 \n".to_vec(), bad("name is empty")),
        (
            b"GET 0 a\tb\n".to_vec(),
            bad("name contains a control character"),
        ),
        // The longest name leaves room for an offset of 20 digits.
        (name(4072), bad("name is too long")),
        (name(4071), "TCPFETCH/1 ERR not-found no such file".into()),
    ];
    assert_answers(&server, &rows);
}

/// Send `bytes` and read until the server closes (60 s at most).
fn answer_to(addr: &str, bytes: &[u8]) -> Vec<u8> {
    converse(addr, bytes.to_vec(), Duration::from_secs(60))
}

#[test]
fn each_malformed_handshake_line_is_refused() {
    let t = Scratch::new("refused-auth");
    let key = t.write("key", &random_bytes(32, 3));
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    t.write("srv/a.txt", b"hello");
    let server = Server::start(&t.join("srv"), &["--key-file", key.to_str().unwrap()]);
    let nonce = "ab".repeat(32);
    let not_hex = format!("{}g", "a".repeat(63));
    let mut not_utf8 = b"AUTH ".to_vec();
    not_utf8.extend_from_slice(&[0xff; 64]);
    not_utf8.push(b'\n');
    // Anything but `AUTH <64 hex digits>` (or PING) first is refused and
    // the connection closed.
    let no_key = "TCPFETCH/1 ERR forbidden this server requires a key: use --key-file\n";
    for first in [
        b"AUTH\n".to_vec(),
        b"AUTH abc\n".to_vec(),
        format!("AUTH  {nonce}\n").into_bytes(),
        format!("AUTH {nonce} \n").into_bytes(),
        format!("AUTH {nonce}a\n").into_bytes(),
        format!("AUTH {not_hex}\n").into_bytes(),
        format!("auth {nonce}\n").into_bytes(),
        format!("PROVE {nonce}\n").into_bytes(),
        not_utf8,
    ] {
        let answer = answer_to(&server.addr, &first);
        assert_eq!(
            String::from_utf8_lossy(&answer),
            no_key,
            "{:?}",
            String::from_utf8_lossy(&first)
        );
    }
    // After the server's challenge, anything but `PROVE <64 hex digits>`
    // fails as a wrong proof does (after the same delay).
    let proofs = [
        "PROVE".to_string(),
        "PROVE abc".into(),
        format!("PROVE {not_hex}"),
        format!("PROVE  {nonce}"),
        format!("AUTH {nonce}"),
    ];
    thread::scope(|scope| {
        for proof in &proofs {
            let (addr, nonce) = (&server.addr, &nonce);
            scope.spawn(move || {
                let mut stream = TcpStream::connect(addr).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_secs(60)))
                    .unwrap();
                stream
                    .write_all(format!("AUTH {nonce}\n").as_bytes())
                    .unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                assert!(line.starts_with("TCPFETCH/1 OK AUTH "), "{line}");
                stream.write_all(format!("{proof}\n").as_bytes()).unwrap();
                let mut rest = String::new();
                let _ = reader.read_to_string(&mut rest);
                assert_eq!(
                    rest, "TCPFETCH/1 ERR forbidden authentication failed\n",
                    "{proof}"
                );
            });
        }
    });
}

/// A protocol 2 pickle of `{"message": text}` made by hand (CPython pickles
/// the same dict so with `protocol=2` and no memo): 23 bytes and the text.
fn pickle(text: &[u8]) -> Vec<u8> {
    let mut out = b"\x80\x02}(X\x07\x00\x00\x00message".to_vec();
    out.push(b'X');
    out.extend_from_slice(&(text.len() as u32).to_le_bytes());
    out.extend_from_slice(text);
    out.extend_from_slice(b"u.");
    out
}

/// A 10-byte length header and `body`, as the old protocol frames it.
fn framed(body: &[u8]) -> Vec<u8> {
    let mut out = format!("{:<10}", body.len()).into_bytes();
    out.extend_from_slice(body);
    out
}

#[test]
fn each_malformed_old_protocol_message_is_logged_and_closed() {
    let t = Scratch::new("refused-legacy");
    t.write("srv/a.txt", b"hello");
    let (server, legacy) = Server::start_legacy(&t.join("srv"), &[]);
    // A string memoised and fetched until the copies pass 256 KiB.
    let mut expanding = b"\x80\x02}(X\x07\x00\x00\x00messageX\xd0\x07\x00\x00".to_vec();
    expanding.extend_from_slice(&[b'a'; 2000]);
    expanding.extend_from_slice(b"q\x00");
    for _ in 0..140 {
        expanding.extend_from_slice(b"h\x00");
    }
    let mut nested = b"\x80\x02}(X\x07\x00\x00\x00message}".to_vec();
    nested.extend_from_slice(b"u.");
    let rows: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "a message one byte over the limit",
            b"4097      ".to_vec(),
            "a control message of 4097 bytes (at most 4096 accepted)",
        ),
        (
            "a header with a space inside",
            b"1 2       x".to_vec(),
            "bad length header",
        ),
        (
            "a message at the limit is read (and is no known message)",
            framed(&pickle(&[b'H'; 4096 - 23])),
            "unknown message",
        ),
        (
            "a dict without 'message'",
            framed(b"\x80\x02}X\x01\x00\x00\x00aK\x01s."),
            "the message dict has no 'message' string",
        ),
        (
            "a 'message' that is a number",
            framed(b"\x80\x02}X\x07\x00\x00\x00messageK\x05s."),
            "the message dict has no 'message' string",
        ),
        (
            "a string that is not UTF-8",
            framed(&pickle(b"HELL\xff")),
            "a string is not valid UTF-8",
        ),
        (
            "memo fetches past 256 KiB",
            framed(&expanding),
            "the strings add up to too much data",
        ),
        (
            "a dict as the message",
            framed(&nested),
            "a dict inside a dict",
        ),
        (
            "pickle protocol 6",
            framed(b"\x80\x06}."),
            "pickle protocol 6",
        ),
        (
            "a length past the end",
            framed(b"\x80\x02}X\xff\x00\x00\x00ab"),
            "runs past the end of the data",
        ),
    ];
    for (what, bytes, logged) in &rows {
        let before = server.log().len();
        let answer = answer_to(&legacy, bytes);
        assert!(answer.is_empty(), "{what}: {answer:?}");
        // The log line comes after the close.
        let deadline = Instant::now() + Duration::from_secs(20);
        while !server.log()[before..].contains(logged) {
            assert!(
                Instant::now() < deadline,
                "{what}: no {logged:?} in\n{}",
                &server.log()[before..]
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
    tcpfetch(&t.path, &["get", "--legacy", &legacy, "1", "-o", "a.txt"]).expect_code(0);
}
