//! Black-box proof that a download is either complete and verified or
//! clearly failed with nothing lost, under the faults a real network, a real
//! disk and a changing server bring: flipped bits and lying headers (through
//! a tamper proxy written here, between the client and a real `serve`),
//! connections cut at seeded points, a server killed mid-transfer, files
//! that change while they are sent, and a full disk. (Files past 4 GiB are
//! in `soak.rs`: hashing 4 GiB twice takes minutes in a debug build.)
mod common;

use std::fs;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;

/// What the tamper proxy does to the server's bytes, on every connection;
/// positions count from the first byte the server sends on it.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// XOR `mask` into the byte at `at`.
    Flip { at: u64, mask: u8 },
    /// Replace the byte at `at` with `byte`.
    Set { at: u64, byte: u8 },
    /// Forward the first `at` bytes, then close the connection.
    Cut { at: u64 },
    /// Forward the first `at` bytes, then nothing, with the connection
    /// left open until the client gives up.
    Stall { at: u64 },
}

/// A TCP proxy on 127.0.0.1 in front of `upstream` that passes the
/// client's bytes unchanged and applies a [`Fault`] to the server's. It
/// stops accepting on drop; each relay ends when both peers are done.
struct Proxy {
    addr: String,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    fn start(upstream: &str, fault: Fault) -> Proxy {
        Proxy::start_first(upstream, fault, usize::MAX)
    }

    /// Apply `fault` to the first `faulty` connections only; later ones
    /// pass through untouched.
    fn start_first(upstream: &str, fault: Fault, faulty: usize) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, upstream) = (Arc::clone(&stop), upstream.to_string());
        thread::spawn(move || {
            let mut accepted = 0;
            while !flag.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let upstream = upstream.clone();
                        let fault = (accepted < faulty).then_some(fault);
                        accepted += 1;
                        thread::spawn(move || relay(client, &upstream, fault));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Proxy { addr, stop }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn relay(client: TcpStream, upstream: &str, fault: Option<Fault>) {
    client.set_nonblocking(false).unwrap();
    let Ok(server) = TcpStream::connect(upstream) else {
        return;
    };
    for s in [&client, &server] {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    }
    let (mut from_client, mut to_server) =
        (client.try_clone().unwrap(), server.try_clone().unwrap());
    let up = thread::spawn(move || {
        let _ = io::copy(&mut from_client, &mut to_server);
        let _ = to_server.shutdown(Shutdown::Write);
    });
    let mut pos = 0u64;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match (&server).read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut len = n;
        let mut last = false;
        let here = |at: u64| {
            (pos..pos + n as u64)
                .contains(&at)
                .then(|| (at - pos) as usize)
        };
        match fault {
            None => {}
            Some(Fault::Flip { at, mask }) => {
                if let Some(i) = here(at) {
                    buf[i] ^= mask;
                }
            }
            Some(Fault::Set { at, byte }) => {
                if let Some(i) = here(at) {
                    buf[i] = byte;
                }
            }
            Some(Fault::Cut { at }) if pos + n as u64 >= at => {
                len = (at - pos) as usize;
                last = true;
            }
            Some(Fault::Cut { .. }) => {}
            Some(Fault::Stall { at }) if pos + n as u64 >= at => {
                let _ = (&client).write_all(&buf[..(at - pos) as usize]);
                let _ = up.join();
                return;
            }
            Some(Fault::Stall { .. }) => {}
        }
        if (&client).write_all(&buf[..len]).is_err() {
            break;
        }
        pos += len as u64;
        if last {
            break;
        }
    }
    // Close our sending side and wait for the client to go, so nothing we
    // sent is destroyed by a reset.
    let _ = client.shutdown(Shutdown::Write);
    let _ = server.shutdown(Shutdown::Both);
    let _ = up.join();
}

/// The length of `GET`'s status line for a file of `data`, LF included.
/// `get` asks for the mtime (`bench` does not): the line then ends with a
/// time of these years, ` <10 digits>.<9 digits>`.
fn header_len(data: &[u8], with_mtime: bool) -> u64 {
    let mtime = if with_mtime {
        " 1234567890.123456789"
    } else {
        ""
    };
    format!("TCPFETCH/1 OK {} {}{mtime}\n", data.len(), sha256_hex(data)).len() as u64
}

/// Wait until `read()` satisfies `done`; the last value. At most 60 s, only
/// a bound on a hang (the caller asserts): on a loaded machine a debug
/// server hashing the file before its first byte can take many seconds.
fn wait_until<T>(mut read: impl FnMut() -> T, done: impl Fn(&T) -> bool) -> T {
    poll_until(Duration::from_secs(60), || Some(read()).filter(|v| done(v))).unwrap_or_else(read)
}

/// `tcpfetch ARGS...` started in `cwd` without waiting for it.
fn spawn(cwd: &Path, args: &[&str]) -> Child {
    Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Wait (at most 60 s, then kill) for a spawned run and collect it.
fn finish(mut child: Child, args: &[&str]) -> Run {
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
        }
        thread::sleep(Duration::from_millis(5));
    }
    let output = child.wait_with_output().unwrap();
    Run {
        cmd: format!("tcpfetch {}", args.join(" ")),
        output,
    }
}

fn part_len(path: &Path) -> u64 {
    fs::metadata(path).map_or(0, |m| m.len())
}

// ---------------------------------------------------------------------------
// Flipped bits and lying headers

#[test]
fn a_flipped_bit_anywhere_in_the_file_fails_with_3_and_leaves_nothing() {
    let data = random_bytes(300_000, 31);
    let (t, server) = serve("flip", &[("x.bin", &data)], &[]);
    let dl = t.join("dl");
    let mut rng = Rng::new(0xf11b);
    let header = header_len(&data, true);
    // The first byte, the last byte, and seeded ones between.
    let mut positions = vec![0, data.len() as u64 - 1];
    positions.extend((0..6).map(|_| rng.below_u64(data.len() as u64)));
    for at in positions {
        let mask = 1u8 << rng.below(8);
        let proxy = Proxy::start(
            &server.addr,
            Fault::Flip {
                at: header + at,
                mask,
            },
        );
        let run = tcpfetch(&dl, &["get", &proxy.addr, "x.bin"]);
        run.expect_code(3);
        assert!(run.stderr().contains("integrity failure"), "{run}");
        assert!(
            listing(&dl).is_empty(),
            "byte {at}: {:?}{run}",
            listing(&dl)
        );
    }
    // A clean retry gets the file: no corrupt .part was kept to resume.
    tcpfetch(&dl, &["get", &server.addr, "x.bin"]).expect_code(0);
    assert_eq!(fs::read(dl.join("x.bin")).unwrap(), data);
    server.wait_for_log("\"GET +mtime 0 x.bin\" ok 300000");
    let log = server.log();
    assert!(
        !log.contains("\"GET 1") && !log.contains("\"GET +mtime 1"),
        "{log}"
    );
}

#[test]
fn a_flipped_bit_is_counted_corrupt_by_bench() {
    let data = random_bytes(100_000, 32);
    let (t, server) = serve("flip-bench", &[("x.bin", &data)], &[]);
    let at = header_len(&data, false) + 54_321;
    let proxy = Proxy::start(&server.addr, Fault::Flip { at, mask: 0x10 });
    let run = tcpfetch(
        &t.path,
        &[
            "bench",
            &proxy.addr,
            "x.bin",
            "-c",
            "2",
            "-n",
            "3",
            "--json",
        ],
    );
    run.expect_code(3);
    let json = run.stdout();
    assert!(json.contains("\"ok\":0,"), "{run}");
    assert!(json.contains("\"corrupt\":6,"), "{run}");
}

/// `GET`'s header with the first hex digit of the digest replaced by
/// another hex digit: a well-formed header whose digest is wrong.
fn lying_header(server: &Server, data: &[u8]) -> (Proxy, String) {
    let real = sha256_hex(data);
    let lie_digit = if real.starts_with('0') { b'1' } else { b'0' };
    let at = format!("TCPFETCH/1 OK {} ", data.len()).len() as u64;
    let lie = format!("{}{}", lie_digit as char, &real[1..]);
    let proxy = Proxy::start(
        &server.addr,
        Fault::Set {
            at,
            byte: lie_digit,
        },
    );
    (proxy, lie)
}

#[test]
fn a_header_digest_that_does_not_match_the_bytes_fails_with_3() {
    let data = random_bytes(200_000, 33);
    let (t, server) = serve("lie", &[("x.bin", &data)], &[]);
    let (proxy, lie) = lying_header(&server, &data);
    let dl = t.join("dl");
    let real = sha256_hex(&data);
    let cases: [&[&str]; 3] = [
        &[],
        // The user knows the right digest: the lying header is refused
        // before a byte is transferred.
        &["--sha256", &real],
        // The user was told the lie too: the bytes give it away.
        &["--sha256", &lie],
    ];
    for extra in cases {
        let mut args = vec!["get", &proxy.addr, "x.bin"];
        args.extend_from_slice(extra);
        let run = tcpfetch(&dl, &args);
        run.expect_code(3);
        assert!(run.stderr().contains("integrity failure"), "{run}");
        assert!(listing(&dl).is_empty(), "{:?}{run}", listing(&dl));
    }
    // Into a pipe nothing can be taken back, but the exit says so.
    let run = tcpfetch(&dl, &["get", &proxy.addr, "x.bin", "-o", "-"]);
    run.expect_code(3);
    assert!(run.stderr().contains("discard what was written"), "{run}");
}

// ---------------------------------------------------------------------------
// Cut connections

#[test]
fn fifty_seeded_cuts_each_fail_keep_the_part_and_resume_only_the_rest() {
    let seed = 0xc075_u64;
    let data = random_bytes(150_000, 34);
    let size = data.len() as u64;
    let (t, server) = serve("cuts", &[("x.bin", &data)], &[]);
    // The resumes go to a second server, so its log holds only them (on a
    // second path: the harness names the log after the directory).
    std::os::unix::fs::symlink("srv", t.join("srv2")).unwrap();
    let direct = Server::start(&t.join("srv2"), &[]);
    let dl = t.join("dl");
    let (part, path) = (dl.join("x.bin.part"), dl.join("x.bin"));
    let mut rng = Rng::new(seed);
    for i in 0..50u64 {
        // Sometimes a .part from an earlier attempt is already there.
        let start = if i % 3 == 2 { rng.below_u64(size) } else { 0 };
        if start > 0 {
            fs::write(&part, &data[..start as usize]).unwrap();
            // With the version record such an attempt leaves beside it.
            fs::write(
                dl.join("x.bin.part.sha256"),
                format!("{}\n", sha256_hex(&data)),
            )
            .unwrap();
        }
        let header = header_len(&data, true);
        let stream = header + size - start;
        let cut = match i % 5 {
            0 => rng.below_u64(header), // inside the status line
            1 => stream - 1,            // one byte before the end
            2 => header,                // right after the header
            _ => header + rng.below_u64(size - start - 1),
        };
        let proxy = Proxy::start(&server.addr, Fault::Cut { at: cut });
        let run = tcpfetch(&dl, &["get", &proxy.addr, "x.bin"]);
        let context = format!("seed {seed:#x}, cut {i} at {cut} from {start}");
        assert_eq!(run.code(), 1, "{context}{run}");
        assert!(!path.exists(), "{context}{run}");
        let kept = start + cut.saturating_sub(header);
        assert_eq!(part_len(&part), kept, "{context}{run}");
        if kept > 0 {
            let on_disk = fs::read(&part).unwrap();
            assert!(on_disk == data[..kept as usize], "{context}: wrong bytes");
        }
        drop(proxy);
        let run = tcpfetch(&dl, &["get", &direct.addr, "x.bin"]);
        run.expect_code(0);
        assert!(run.stderr().contains("sha256 verified"), "{context}{run}");
        assert_eq!(fs::read(&path).unwrap(), data, "{context}");
        let want = format!("\"GET +mtime {kept} x.bin\" ok {}", size - kept);
        let log = wait_until(|| direct.log(), |l| l.matches("\"GET ").count() as u64 > i);
        let last = log.lines().rfind(|l| l.contains("\"GET "));
        assert!(
            last.is_some_and(|l| l.contains(&want)),
            "{context}: wanted {want:?}, log:\n{log}"
        );
        fs::remove_file(&path).unwrap();
        assert!(listing(&dl).is_empty(), "{context}: {:?}", listing(&dl));
    }
}

#[test]
fn retries_survive_a_server_killed_mid_transfer_and_restarted() {
    let data = random_bytes(64 << 20, 35);
    let size = data.len() as u64;
    let (t, mut server) = serve("killed", &[("big.bin", &data)], &["--max-rate", "16M"]);
    let addr = server.addr.clone();
    let dl = t.join("dl");
    let args = [
        "get",
        &addr,
        "big.bin",
        "--retries",
        "20",
        "--retry-wait",
        "0.2",
        "--timeout",
        "10",
    ];
    let child = spawn(&dl, &args);
    let part = dl.join("big.bin.part");
    let got = wait_until(|| part_len(&part), |&n| n >= 8 << 20);
    assert!(
        got >= 8 << 20 && got < size,
        "the transfer did not get going"
    );
    // SIGKILL: no chance to finish the response or say goodbye.
    server.kill();
    let restarted = Server::start(&t.join("srv"), &["--listen", &addr]);
    let run = finish(child, &args);
    run.expect_code(0);
    assert!(run.stderr().contains("retrying"), "{run}");
    assert_eq!(fs::read(dl.join("big.bin")).unwrap(), data);
    assert_eq!(listing(&dl), ["big.bin"]);
    // The restarted server was asked only for the rest.
    let log = restarted.wait_for_log("\"GET ");
    let resumed = log
        .lines()
        .find_map(|l| l.split("\"GET +mtime ").nth(1))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse::<u64>().ok());
    assert!(
        resumed.is_some_and(|offset| offset >= got && offset < size),
        "{log}"
    );
}

// ---------------------------------------------------------------------------
// Files that change while they are sent

/// What a run against a changing file may end in: a verified file equal to
/// one whole version, or a failure that left no file at PATH.
fn assert_never_wrong(run: &Run, path: &Path, versions: &[&[u8]]) {
    if run.code() == 0 {
        let got = fs::read(path).unwrap();
        assert!(
            versions.iter().any(|v| *v == &got[..]),
            "a verified file that is no version of the served one{run}"
        );
    } else {
        assert!(!path.exists(), "a failed run left a file{run}");
    }
}

/// Bytes `server` has written so far, to sockets and its log alike
/// (`wchar` of /proc/PID/io, where sendfile counts what it queued): more
/// than the body bytes it has sent.
fn written(server: &Server) -> u64 {
    let pid = server.child.id();
    proc_io(pid, "wchar").unwrap_or_else(|| panic!("no wchar in /proc/{pid}/io"))
}

/// A slow `get` of `srv/x.bin` (served at 512 KiB/s: 2 s for the tests'
/// 1 MiB), `change` applied once the server has sent its first 64 KiB and
/// before it has sent byte `unsent` (what the change must reach the client
/// through).
///
/// The server paces by the clock (a late start is caught up at once), so
/// on a loaded machine it may be past `unsent` before this thread gets to
/// the change: the server's bytes written are read again once the change
/// is made, and if they reach `unsent` that get is left to finish, not
/// judged, and the scene is set again. Watching the server rather than
/// the client's `.part` (which lags while a starved client hashes), and
/// from its first bytes, leaves the change the most time.
fn change_while_sent(
    tag: &str,
    data: &[u8],
    unsent: u64,
    mut change: impl FnMut(&Path),
) -> (Scratch, Server, Run) {
    for _ in 0..5 {
        let (t, server) = serve(tag, &[("x.bin", data)], &["--max-rate", "512K"]);
        let dl = t.join("dl");
        let args = ["get", &server.addr, "x.bin", "--timeout", "10"];
        let child = spawn(&dl, &args);
        let begun = 64 * 1024;
        assert!(wait_until(|| written(&server), |&n| n >= begun) >= begun);
        change(&t.join("srv/x.bin"));
        let sent = written(&server);
        let run = finish(child, &args);
        if sent < unsent {
            return (t, server, run);
        }
        eprintln!("{tag}: the server had written {sent} bytes when the change was made; again");
    }
    panic!("{tag}: in 5 tries the server always got past byte {unsent} before the change");
}

#[test]
fn a_file_appended_to_while_sent_arrives_as_the_announced_version() {
    let data = random_bytes(1 << 20, 36);
    let (t, _server, run) = change_while_sent("append", &data, data.len() as u64, |p| {
        let mut f = fs::OpenOptions::new().append(true).open(p).unwrap();
        f.write_all(&random_bytes(100_000, 37)).unwrap();
    });
    // The header announced the old size and digest; exactly those bytes
    // were sent and verified.
    run.expect_code(0);
    assert_never_wrong(&run, &t.join("dl/x.bin"), &[&data]);
}

#[test]
fn a_file_rewritten_in_place_while_sent_is_never_accepted() {
    let data = random_bytes(1 << 20, 38);
    let mut changed = data.clone();
    let at = 3 * data.len() / 4;
    let (t, _server, run) = change_while_sent("rewrite", &data, at as u64, |p| {
        // Overwrite the last quarter, which has not been sent yet.
        let f = fs::OpenOptions::new().write(true).open(p).unwrap();
        changed[at..].copy_from_slice(&random_bytes(data.len() - at, 39));
        f.write_all_at(&changed[at..], at as u64).unwrap();
    });
    run.expect_code(3);
    assert_never_wrong(&run, &t.join("dl/x.bin"), &[&data]);
    assert!(listing(&t.join("dl")).is_empty(), "{run}");
}

#[test]
fn a_file_truncated_while_sent_ends_the_transfer_instead_of_hanging() {
    let data = random_bytes(1 << 20, 40);
    let half = data.len() as u64 / 2;
    let (t, server, run) = change_while_sent("truncate", &data, half, |p| {
        let f = fs::OpenOptions::new().write(true).open(p).unwrap();
        f.set_len(half).unwrap();
    });
    // The server stopped at the new end and closed: the client saw the
    // short body at once (not after its 10 s timeout, not padded).
    run.expect_code(1);
    assert!(
        run.stderr().contains("closed the connection after"),
        "{run}"
    );
    let dl = t.join("dl");
    assert_never_wrong(&run, &dl.join("x.bin"), &[]);
    assert!(part_len(&dl.join("x.bin.part")) <= data.len() as u64 / 2);
    // The next get sees another version and starts over.
    let run = tcpfetch(&dl, &["get", &server.addr, "x.bin"]);
    run.expect_code(0);
    assert!(run.stderr().contains("starting over"), "{run}");
    assert_eq!(fs::read(dl.join("x.bin")).unwrap(), data[..data.len() / 2]);
}

#[test]
fn a_file_replaced_by_rename_while_sent_arrives_as_the_old_version() {
    let data = random_bytes(1 << 20, 41);
    let new = random_bytes(700_000, 42);
    let replacement = new.clone();
    let (t, server, run) = change_while_sent("rename", &data, data.len() as u64, move |p| {
        let tmp = p.with_extension("new");
        fs::write(&tmp, &replacement).unwrap();
        fs::rename(&tmp, p).unwrap();
    });
    // The open descriptor still reads the old file, whole.
    run.expect_code(0);
    let dl = t.join("dl");
    assert_never_wrong(&run, &dl.join("x.bin"), &[&data]);
    // Asked again, the server sends the new version.
    tcpfetch(&dl, &["get", &server.addr, "x.bin"]).expect_code(0);
    assert_eq!(fs::read(dl.join("x.bin")).unwrap(), new);
}

// ---------------------------------------------------------------------------
// Write failures on the client

/// `tcpfetch ARGS...` in `cwd` under `prlimit --fsize=LIMIT`, with SIGXFSZ
/// at its default (which kills): tcpfetch itself must ignore the signal so
/// that the write fails with EFBIG and is reported.
fn limited(cwd: &Path, limit: u64, args: &[&str]) -> Run {
    let script = format!("exec prlimit --fsize={limit} \"$@\"");
    let child = Command::new("sh")
        .args(["-c", &script, "sh", BIN])
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    finish(child, args)
}

#[test]
fn a_file_size_limit_fails_cleanly_and_leaves_the_old_file_untouched() {
    let data = random_bytes(2 << 20, 43);
    let (t, server) = serve("fsize", &[("x.bin", &data)], &[]);
    let dl = t.join("dl");
    let old = b"the previous version, which must survive".to_vec();
    fs::write(dl.join("x.bin"), &old).unwrap();
    let limit = 1 << 20;
    let run = limited(&dl, limit, &["get", &server.addr, "x.bin"]);
    run.expect_code(1);
    assert!(run.stderr().contains("file too large"), "{run}");
    assert!(run.stderr().contains("partial download is kept"), "{run}");
    assert_eq!(fs::read(dl.join("x.bin")).unwrap(), old);
    let kept = fs::read(dl.join("x.bin.part")).unwrap();
    assert!(kept.len() as u64 <= limit && kept == data[..kept.len()]);
    // Without the limit the download resumes and replaces the old file.
    tcpfetch(&dl, &["get", &server.addr, "x.bin"]).expect_code(0);
    assert_eq!(fs::read(dl.join("x.bin")).unwrap(), data);
    assert_eq!(listing(&dl), ["x.bin"]);
}

#[test]
fn a_file_size_limit_inside_the_first_chunk_keeps_the_bytes_written() {
    // The limit falls inside the first write: write_all stored a prefix
    // and then failed. The old code counted none of it, so the message
    // said the partial download was kept while the .part was deleted.
    let data = random_bytes(2 << 20, 46);
    let (t, server) = serve("fsize-chunk", &[("x.bin", &data)], &[]);
    let dl = t.join("dl");
    let limit = 100_000;
    let run = limited(&dl, limit, &["get", &server.addr, "x.bin"]);
    run.expect_code(1);
    assert!(run.stderr().contains("partial download is kept"), "{run}");
    let kept = fs::read(dl.join("x.bin.part")).unwrap();
    assert!(
        kept.len() as u64 == limit && kept == data[..kept.len()],
        "{run}"
    );
    let run = tcpfetch(&dl, &["get", &server.addr, "x.bin"]);
    run.expect_code(0);
    assert!(run.stderr().contains("resuming at byte 100000"), "{run}");
    assert_eq!(fs::read(dl.join("x.bin")).unwrap(), data);
}

#[test]
fn a_version_record_that_cannot_be_written_leaves_no_temporary_file() {
    // Under a 10-byte limit the 65-byte record fails after its temporary
    // was created; the old code left PATH.part.sha256.tmp behind.
    let (t, server) = serve("fsize-record", &[("x.txt", b"hello world\n")], &[]);
    let dl = t.join("dl");
    let run = limited(&dl, 10, &["get", &server.addr, "x.txt"]);
    run.expect_code(1);
    assert!(
        run.stderr().contains("cannot write 'x.txt.part.sha256'"),
        "{run}"
    );
    assert!(listing(&dl).is_empty(), "{run}\n{:?}", listing(&dl));
}

#[test]
fn a_name_too_long_even_to_stage_shortened_says_how_to_get_the_file() {
    // A name within 16 bytes of the 255-byte limit is staged under a
    // shortened name (tests/longnames.rs); one past the limit cannot be
    // saved at all. It is refused before a byte is downloaded, with the way
    // out rather than a bare 'file name too long', and nothing is left.
    let (t, server) = serve("long-name", &[("x.txt", b"data")], &[]);
    let dl = t.join("dl");
    let long = "m".repeat(256);
    let run = tcpfetch(&dl, &["get", &server.addr, "x.txt", "-o", &long]);
    run.expect_code(1);
    assert!(run.stderr().contains("file name too long"), "{run}");
    assert!(
        run.stderr()
            .contains("save it under a shorter name with -o PATH"),
        "{run}"
    );
    assert!(listing(&dl).is_empty(), "{run}\n{:?}", listing(&dl));
}

/// A 1 MiB tmpfs mounted on a directory, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mount it, or panic with mount's reason: the test that asks for one
    /// cannot pass without it.
    fn mount(dir: &Path) -> Tmpfs {
        fs::create_dir_all(dir).unwrap();
        let out: Output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tcpfetch-test"])
            .arg(dir)
            .output()
            .unwrap_or_else(|e| panic!("cannot run mount: {e}"));
        assert!(
            out.status.success(),
            "cannot mount a tmpfs on {} (this test needs root or CAP_SYS_ADMIN; \
             .ci/run runs it as root): {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
#[ignore = "needs root to mount a tmpfs; .ci/run runs it as root"]
fn a_full_disk_fails_cleanly_and_leaves_the_old_file_untouched() {
    let data = random_bytes(3 << 20, 45);
    let (t, server) = serve("full", &[("x.bin", &data)], &[]);
    let disk = Tmpfs::mount(&t.join("small"));
    let old = b"the previous version, on the full disk".to_vec();
    fs::write(disk.0.join("x.bin"), &old).unwrap();
    let run = tcpfetch(&disk.0, &["get", &server.addr, "x.bin"]);
    run.expect_code(1);
    assert!(run.stderr().contains("no space left on device"), "{run}");
    assert_eq!(fs::read(disk.0.join("x.bin")).unwrap(), old);
    let kept = fs::read(disk.0.join("x.bin.part")).unwrap();
    assert!(kept.len() < data.len() && kept == data[..kept.len()]);
    // Saved elsewhere, the same server's file arrives whole.
    let out = t.join("dl/x.bin");
    let run = tcpfetch(
        &disk.0,
        &["get", &server.addr, "x.bin", "-o", out.to_str().unwrap()],
    );
    run.expect_code(0);
    assert_eq!(fs::read(&out).unwrap(), data);
}

#[test]
fn a_file_truncated_while_sent_at_full_speed_ends_the_body() {
    // Without --max-rate the body goes out through sendfile(2); a reader
    // that holds back keeps the server mid-file while it shrinks.
    let data = random_bytes(32 << 20, 46);
    let (t, server) = serve("truncate-fast", &[("x.bin", &data)], &[]);
    let mut s = server.connect();
    s.write_all(b"GET 0 x.bin\n").unwrap();
    let mut got = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    while got < 1 << 20 {
        got += s.read(&mut buf).unwrap();
    }
    let f = fs::OpenOptions::new()
        .write(true)
        .open(t.join("srv/x.bin"))
        .unwrap();
    f.set_len(2 << 20).unwrap();
    // The rest arrives (what was already in socket buffers, then up to the
    // new end), and then the server closes: no padding, no hang.
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => panic!("after {got} bytes: {e}"),
        }
    }
    assert!(got < data.len(), "{got} bytes of a file that shrank");
}

// ---------------------------------------------------------------------------
// What --retries must not retry

#[test]
fn an_integrity_failure_is_never_retried() {
    let data = random_bytes(100_000, 47);
    let (t, server) = serve("no-retry-flip", &[("x.bin", &data)], &[]);
    let at = header_len(&data, true) + 777;
    let proxy = Proxy::start(&server.addr, Fault::Flip { at, mask: 1 });
    let args = [
        "get",
        &proxy.addr,
        "x.bin",
        "--retries",
        "5",
        "--retry-wait",
        "0.1",
    ];
    let run = tcpfetch(&t.join("dl"), &args);
    run.expect_code(3);
    assert!(!run.stderr().contains("retrying"), "{run}");
    assert!(listing(&t.join("dl")).is_empty(), "{run}");
}

#[test]
fn not_found_and_forbidden_are_never_retried() {
    let (t, server) = serve("no-retry-remote", &[("x.bin", b"x")], &[]);
    for name in ["missing.bin", "../x.bin"] {
        let args = ["get", &server.addr, name, "-o", "out", "--retries", "5"];
        let run = tcpfetch(&t.join("dl"), &args);
        run.expect_code(1);
        assert!(!run.stderr().contains("retrying"), "{run}");
    }
    assert_eq!(server.wait_for_count("\"GET ", 2), 2);
}
#[test]
fn a_local_write_failure_is_not_retried() {
    // Retrying cannot make room on a full disk: the partial download is
    // kept and the user told at once, instead of after N backoffs.
    let data = random_bytes(2 << 20, 48);
    let (t, server) = serve("no-retry-write", &[("x.bin", &data)], &[]);
    let dl = t.join("dl");
    let args = [
        "get",
        &server.addr,
        "x.bin",
        "--retries",
        "3",
        "--retry-wait",
        "0.1",
    ];
    let run = limited(&dl, 1 << 20, &args);
    run.expect_code(1);
    assert!(run.stderr().contains("file too large"), "{run}");
    assert!(!run.stderr().contains("retrying"), "{run}");
    assert_eq!(server.wait_for_count("\"GET ", 1), 1, "{}", server.log());
}

#[test]
fn a_retried_download_to_stdout_never_repeats_bytes() {
    // Bytes written to a pipe cannot be taken back: after a cut, a retry
    // from the start would hand the reader a prefix twice and exit 0.
    let data = random_bytes(400_000, 49);
    let (t, server) = serve("stdout-retry", &[("x.bin", &data)], &[]);
    let cut = header_len(&data, true) + 200_000;
    let proxy = Proxy::start_first(&server.addr, Fault::Cut { at: cut }, 1);
    let args = [
        "get",
        &proxy.addr,
        "x.bin",
        "-o",
        "-",
        "--retries",
        "3",
        "--retry-wait",
        "0.1",
    ];
    let run = tcpfetch(&t.join("dl"), &args);
    let out = &run.output.stdout;
    if run.code() == 0 {
        assert!(
            out == &data,
            "exit 0 but stdout holds {} bytes{run}",
            out.len()
        );
    } else {
        assert_eq!(run.code(), 1, "{run}");
        assert!(
            out.len() <= data.len() && out[..] == data[..out.len()],
            "{run}"
        );
    }
}

#[test]
fn retries_get_past_a_stalled_server_and_resume() {
    let data = random_bytes(300_000, 50);
    let (t, server) = serve("stall-retry", &[("x.bin", &data)], &[]);
    let at = header_len(&data, true) + 100_000;
    let proxy = Proxy::start_first(&server.addr, Fault::Stall { at }, 1);
    let args = [
        "get",
        &proxy.addr,
        "x.bin",
        "--timeout",
        "1",
        "--retries",
        "2",
        "--retry-wait",
        "0.1",
    ];
    let run = tcpfetch(&t.join("dl"), &args);
    run.expect_code(0);
    assert!(run.stderr().contains("timed out"), "{run}");
    assert_eq!(fs::read(t.join("dl/x.bin")).unwrap(), data);
    // The retry resumed exactly where the stalled transfer stopped: what
    // arrived before the silence was kept.
    let want = "\"GET +mtime 100000 x.bin\" ok 200000";
    let log = wait_until(|| server.log(), |l| l.contains(want));
    assert!(log.contains(want), "{log}");
}

#[test]
fn retries_wait_out_a_busy_server() {
    let data = random_bytes(100_000, 51);
    let (t, server) = serve("busy-retry", &[("x.bin", &data)], &["--max-clients", "1"]);
    let holder = server.connect();
    let args = [
        "get",
        &server.addr,
        "x.bin",
        "--retries",
        "10",
        "--retry-wait",
        "0.2",
    ];
    let child = spawn(&t.join("dl"), &args);
    // Refused at least once before the place frees, whenever the get
    // started (a fixed pause could end before a starved client connects).
    server.wait_for_log("busy (at --max-clients)");
    drop(holder);
    let run = finish(child, &args);
    run.expect_code(0);
    assert!(run.stderr().contains("busy"), "{run}");
    assert_eq!(fs::read(t.join("dl/x.bin")).unwrap(), data);
}
