//! Access and trust: --allow, hidden files, the shared key, rate caps.
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use sha2::{Digest, Sha256};

fn key_file(t: &Scratch, name: &str, seed: u64) -> String {
    let path = t.write(name, &random_bytes(32, seed));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path.to_str().unwrap().to_string()
}

/// The first line of the answer to `request`; the server closes after it.
/// The limit only stops a server that hangs: exchange returns at the close,
/// and a tighter bound read nothing on a loaded machine.
fn first_line(addr: &str, request: &[u8]) -> String {
    let out = converse(addr, request.to_vec(), Duration::from_secs(60));
    String::from_utf8_lossy(&out)
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

#[test]
fn allow_list_refuses_addresses_outside_it() {
    let t = Scratch::new("allow");
    t.write("srv/a.txt", b"a");
    let outside = Server::start(
        &t.join("srv"),
        &["--allow", "10.0.0.0/8", "--allow", "::1/128"],
    );
    assert!(first_line(&outside.addr, b"PING\n").starts_with("TCPFETCH/1 ERR forbidden"));
    tcpfetch(&t.path, &["ping", &outside.addr]).expect_code(1);
    outside.wait_for_log("forbidden (not in --allow)");
    let inside = Server::start(
        &t.join("srv"),
        &["--allow", "10.0.0.0/8", "--allow", "127.0.0.0/8"],
    );
    tcpfetch(&t.path, &["ping", &inside.addr]).expect_code(0);
}

#[test]
fn bad_allow_prefix_is_a_usage_error() {
    let t = Scratch::new("allow-bad");
    let run = tcpfetch(&t.path, &["serve", ".", "--allow", "10.0.0.0/33"]);
    run.expect_code(2);
}

#[test]
fn dotfiles_are_neither_listed_nor_served_unless_hidden() {
    let t = Scratch::new("hidden");
    t.write("srv/.env", b"SECRET=1");
    t.write("srv/.git/config", b"x");
    t.write("srv/visible.txt", b"v");
    let server = Server::start(&t.join("srv"), &[]);
    let list = tcpfetch(&t.path, &["list", &server.addr]);
    list.expect_code(0);
    assert_eq!(list.stdout().trim(), "1  visible.txt", "{list}");
    for name in [".env", ".git/config"] {
        let line = first_line(&server.addr, format!("GET 0 {name}\n").as_bytes());
        assert!(
            line.starts_with("TCPFETCH/1 ERR not-found"),
            "{name}: {line}"
        );
    }
    let open = Server::start(&t.join("srv"), &["--hidden"]);
    let run = tcpfetch(&t.path, &["get", &open.addr, ".env", "-o", "env.txt"]);
    run.expect_code(0);
    assert_eq!(std::fs::read(t.join("env.txt")).unwrap(), b"SECRET=1");
}

#[test]
fn right_key_downloads_and_every_command_authenticates() {
    let t = Scratch::new("key-ok");
    let data = random_bytes(300_000, 7);
    t.write("srv/f.bin", &data);
    let key = key_file(&t, "key", 1);
    let server = Server::start(&t.join("srv"), &["--key-file", &key]);
    tcpfetch(&t.path, &["get", &server.addr, "f.bin", "--key-file", &key]).expect_code(0);
    assert_eq!(std::fs::read(t.join("f.bin")).unwrap(), data);
    tcpfetch(
        &t.path,
        &["ping", &server.addr, "--key-file", &key, "-c", "3"],
    )
    .expect_code(0);
    let list = tcpfetch(&t.path, &["list", &server.addr, "--key-file", &key]);
    list.expect_code(0);
    assert!(list.stdout().contains("f.bin"), "{list}");
}

#[test]
fn missing_wrong_or_one_sided_keys_fail_clearly() {
    let t = Scratch::new("key-bad");
    t.write("srv/f.bin", b"data");
    let key = key_file(&t, "key", 1);
    let other = key_file(&t, "other", 2);
    let keyed = Server::start(&t.join("srv"), &["--key-file", &key]);
    let plain = Server::start(&t.join("srv"), &[]);
    let cases: [(&str, Vec<&str>, &str); 3] = [
        (&keyed.addr, vec![], "requires a key"),
        (
            &keyed.addr,
            vec!["--key-file", &other],
            "do not hold the same key",
        ),
        (&plain.addr, vec!["--key-file", &key], "does not use a key"),
    ];
    for (addr, extra, message) in cases {
        let mut args = vec!["get", addr, "f.bin", "-o", "out.bin"];
        args.extend(extra);
        let run = tcpfetch(&t.path, &args);
        run.expect_code(1);
        assert!(run.stderr().contains(message), "{run}");
        assert!(!t.join("out.bin").exists());
    }
    // A client that sends a wrong proof is refused after the fixed delay.
    let mut s = keyed.connect();
    s.write_all(format!("AUTH {}\n", "00".repeat(32)).as_bytes())
        .unwrap();
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("TCPFETCH/1 OK AUTH "), "{line}");
    let started = Instant::now();
    s.write_all(format!("PROVE {}\n", "11".repeat(32)).as_bytes())
        .unwrap();
    line.clear();
    reader.read_line(&mut line).unwrap();
    assert!(line.starts_with("TCPFETCH/1 ERR forbidden"), "{line}");
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[test]
fn a_key_file_that_is_not_a_file_is_refused_as_such() {
    // A directory was told 'is readable by others (mode 755); run chmod
    // 600 DIR', and a FIFO hung the command in open(2) before any check.
    let t = Scratch::new("key-not-file");
    run_program("mkfifo", &t.path, &["fifo"], b"").expect_code(0);
    for key in [".", "fifo"] {
        for args in [
            &["serve", ".", "--listen", "127.0.0.1:0"][..],
            &["ping", "127.0.0.1:1"],
        ] {
            let run = tcpfetch(&t.path, &[args, &["--key-file", key]].concat());
            run.expect_code(1);
            let want = format!("tcpfetch: key file '{key}' is not a regular file");
            assert!(run.stderr().starts_with(&want), "{run}");
        }
    }
}

#[test]
fn key_file_readable_by_others_is_refused() {
    let t = Scratch::new("key-mode");
    let key = key_file(&t, "key", 1);
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let run = tcpfetch(&t.path, &["ping", "127.0.0.1:1", "--key-file", &key]);
    run.expect_code(1);
    assert!(run.stderr().contains("readable by others"), "{run}");
    let short = t.write("short", b"too short");
    std::fs::set_permissions(&short, std::fs::Permissions::from_mode(0o600)).unwrap();
    let run = tcpfetch(
        &t.path,
        &["ping", "127.0.0.1:1", "--key-file", short.to_str().unwrap()],
    );
    run.expect_code(1);
    assert!(run.stderr().contains("at least 32 bytes"), "{run}");
}

/// A man in the middle that swaps every file for other bytes of the same
/// size and rewrites the header's digest to match them, leaving anything
/// else (the handshake, a MAC) as it was. Returns the proxy's address.
fn tampering_proxy(upstream: String) -> String {
    common::relay::answer_rewriting_relay(upstream, rewrite_answers)
}

fn rewrite_answers(server: TcpStream, mut client: TcpStream) -> std::io::Result<()> {
    let mut reader = BufReader::new(server);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let fields: Vec<&str> = line.trim_end().split(' ').collect();
        let is_get_header = fields.len() >= 4
            && fields[1] == "OK"
            && fields[3].len() == 64
            && fields[2].bytes().all(|b| b.is_ascii_digit());
        if !is_get_header {
            client.write_all(line.as_bytes())?;
            continue;
        }
        let size: usize = fields[2].parse().unwrap();
        let mut body = vec![0u8; size];
        reader.read_exact(&mut body)?;
        body.iter_mut().for_each(|b| *b ^= 0xff);
        let digest: String = Sha256::digest(&body)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        // The rest of the line (the mtime, the MAC) passes unchanged.
        let mut forged = format!("TCPFETCH/1 OK {size} {digest}");
        for field in &fields[4..] {
            forged.push(' ');
            forged.push_str(field);
        }
        forged.push('\n');
        client.write_all(forged.as_bytes())?;
        client.write_all(&body)?;
    }
}

#[test]
fn consistent_tampering_is_caught_only_with_a_key_and_then_always() {
    let t = Scratch::new("tamper");
    let data = random_bytes(100_000, 3);
    t.write("srv/f.bin", &data);
    let key = key_file(&t, "key", 1);
    let plain = Server::start(&t.join("srv"), &[]);
    let keyed = Server::start(&t.join("srv"), &["--key-file", &key]);

    // Without a key the forgery is self-consistent, so it is accepted: this
    // is the attack the key exists for.
    let proxy = tampering_proxy(plain.addr.clone());
    tcpfetch(&t.path, &["get", &proxy, "f.bin", "-o", "plain.bin"]).expect_code(0);
    assert_ne!(std::fs::read(t.join("plain.bin")).unwrap(), data);

    let proxy = tampering_proxy(keyed.addr.clone());
    for _ in 0..5 {
        let run = tcpfetch(
            &t.path,
            &[
                "get",
                &proxy,
                "f.bin",
                "-o",
                "keyed.bin",
                "--key-file",
                &key,
            ],
        );
        run.expect_code(3);
        assert!(run.stderr().contains("MAC"), "{run}");
        assert!(!t.join("keyed.bin").exists());
    }
}

/// A transparent proxy that records what the client sent.
fn recording_proxy(upstream: String) -> (String, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let record = Arc::new(Mutex::new(Vec::new()));
    let rec = Arc::clone(&record);
    thread::spawn(move || {
        let Ok((mut client, _)) = listener.accept() else {
            return;
        };
        let mut server = TcpStream::connect(&upstream).unwrap();
        let mut server_out = server.try_clone().unwrap();
        let mut client_in = client.try_clone().unwrap();
        thread::spawn(move || {
            let _ = std::io::copy(&mut server, &mut client_in);
        });
        let mut buf = [0u8; 8192];
        while let Ok(n) = client.read(&mut buf) {
            if n == 0 {
                break;
            }
            rec.lock().unwrap().extend_from_slice(&buf[..n]);
            if server_out.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = server_out.shutdown(std::net::Shutdown::Write);
    });
    (addr, record)
}

#[test]
fn replayed_session_is_refused() {
    let t = Scratch::new("replay");
    t.write("srv/f.bin", b"precious");
    let key = key_file(&t, "key", 1);
    let server = Server::start(&t.join("srv"), &["--key-file", &key]);
    let (proxy, record) = recording_proxy(server.addr.clone());
    tcpfetch(&t.path, &["get", &proxy, "f.bin", "--key-file", &key]).expect_code(0);
    let captured = record.lock().unwrap().clone();
    assert!(
        captured.starts_with(b"AUTH "),
        "{}",
        String::from_utf8_lossy(&captured)
    );
    let answer = exchange(&server.addr, &captured, Duration::from_secs(60));
    let text = String::from_utf8_lossy(&answer);
    assert!(text.contains("TCPFETCH/1 ERR forbidden"), "{text}");
    assert!(!text.contains("precious"), "{text}");
}

#[test]
fn rate_caps_slow_transfers_down() {
    let t = Scratch::new("rate");
    t.write("srv/f.bin", &random_bytes(1 << 20, 5));
    let capped = Server::start(&t.join("srv"), &["--max-rate", "4M"]);
    let started = Instant::now();
    tcpfetch(&t.path, &["get", &capped.addr, "f.bin", "-o", "a.bin"]).expect_code(0);
    // 1 MiB at 4 MiB/s cannot take less than 0.25 s (a loose lower bound).
    assert!(
        started.elapsed() >= Duration::from_millis(240),
        "{:?}",
        started.elapsed()
    );
    let plain = Server::start(&t.join("srv"), &[]);
    let started = Instant::now();
    tcpfetch(
        &t.path,
        &[
            "get",
            &plain.addr,
            "f.bin",
            "-o",
            "b.bin",
            "--limit-rate",
            "4M",
        ],
    )
    .expect_code(0);
    assert!(
        started.elapsed() >= Duration::from_millis(240),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        std::fs::read(t.join("a.bin")).unwrap(),
        std::fs::read(t.join("b.bin")).unwrap()
    );
}

#[test]
fn a_keyed_server_answers_ping_before_authentication_and_nothing_else() {
    let t = Scratch::new("key-ping");
    t.write("srv/f.bin", b"secret bytes");
    let key = key_file(&t, "key", 1);
    let server = Server::start(&t.join("srv"), &["--key-file", &key]);
    let out = exchange(
        &server.addr,
        b"PING\nPING\nGET 0 f.bin\n",
        // Only a bound on a hang: the server closes after the refusal, and
        // 5 s read nothing once on a loaded machine.
        Duration::from_secs(60),
    );
    let text = String::from_utf8_lossy(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("TCPFETCH/1 OK tcpfetch "), "{text}");
    assert!(lines[1].starts_with("TCPFETCH/1 OK tcpfetch "), "{text}");
    assert!(lines[2].starts_with("TCPFETCH/1 ERR forbidden"), "{text}");
    assert!(!text.contains("secret"), "{text}");
    tcpfetch(&t.path, &["ping", &server.addr]).expect_code(0);
}

#[test]
fn a_keyed_download_resumes_on_an_authenticated_connection() {
    let t = Scratch::new("key-resume");
    let data = random_bytes(300_000, 11);
    t.write("srv/f.bin", &data);
    t.write("f.bin.part", &data[..100_000]);
    // The version record a real interrupted download leaves beside it.
    t.write(
        "f.bin.part.sha256",
        format!("{}\n", sha256_hex(&data)).as_bytes(),
    );
    let key = key_file(&t, "key", 1);
    let server = Server::start(&t.join("srv"), &["--key-file", &key]);
    tcpfetch(&t.path, &["get", &server.addr, "f.bin", "--key-file", &key]).expect_code(0);
    assert_eq!(std::fs::read(t.join("f.bin")).unwrap(), data);
    let log = server.wait_for_log("\"GET +mtime 100000 f.bin\" ok");
    assert!(!log.contains("no authentication"), "{log}");
}

#[test]
fn sha256sums_with_a_key_takes_every_digest_from_a_maced_answer() {
    let t = Scratch::new("key-sums");
    t.write("srv/a.txt", b"alpha");
    t.write("srv/b.txt", b"beta");
    let key = key_file(&t, "key", 1);
    let server = Server::start(&t.join("srv"), &["--key-file", &key, "--precompute"]);
    // Once the server has hashed both, LIST carries their digests (waited
    // for, not assumed: without them the GETs below prove nothing)...
    let hashed = poll_until(Duration::from_secs(60), || {
        let list = tcpfetch(
            &t.path,
            &["list", &server.addr, "--json", "--key-file", &key],
        );
        list.stdout().matches("sha256").count() == 2
    });
    assert!(hashed.is_some(), "the server never listed both digests");
    // ...but the manifest still asks for each one with a MACed GET.
    let run = tcpfetch(
        &t.path,
        &["list", &server.addr, "--sha256sums", "--key-file", &key],
    );
    run.expect_code(0);
    assert_eq!(run.stdout().lines().count(), 2, "{run}");
    server.wait_for_log("\"GET 5 a.txt\" ok");
    server.wait_for_log("\"GET 4 b.txt\" ok");
}
