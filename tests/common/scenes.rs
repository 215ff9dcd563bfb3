//! Scenes that several test files set: a crowd of LIST clients that never
//! read (tests/bounds.rs, tests/soak.rs), and a first get
//! stopped while it holds NAME.part so that a second one meets its lock
//! (tests/core.rs for v1, tests/legacy.rs for the legacy protocol).

use super::*;

/// `clients` connections that each send `LIST`, read only the answer's
/// status line (proof that the server built the listing and began to
/// send it) and then nothing more: each holds the server to a listing it
/// cannot finish sending. `files` is the count the status line must show.
pub fn silent_listers(addr: &str, clients: usize, files: usize) -> Vec<TcpStream> {
    let status = format!("TCPFETCH/1 OK {files}\n");
    let conns: Vec<TcpStream> = (0..clients)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
            s.write_all(b"LIST\n").unwrap();
            s
        })
        .collect();
    for mut s in &conns {
        let mut got = vec![0u8; status.len()];
        s.read_exact(&mut got).unwrap();
        assert_eq!(String::from_utf8_lossy(&got), status);
    }
    conns
}

/// `count` empty files named `<prefix>NNNNNNN` in `dir`.
pub fn empty_files(dir: &Path, prefix: &str, count: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..count {
        std::fs::File::create(dir.join(format!("{prefix}{i:07}"))).unwrap();
    }
}

/// Send `sig` (STOP, CONT) to `child`, through sh's kill (std sends only
/// SIGKILL).
pub fn signal(child: &Child, sig: &str) {
    let sent = Command::new("sh")
        .args(["-c", &format!("kill -{sig} {}", child.id())])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -{sig}");
}

/// `tcpfetch get ADDR NAME -q` in `cwd`, stopped (SIGSTOP) once it has
/// written bytes to `cwd/NAME.part` and while it still holds it, so that a
/// second download to the same path meets its lock. The server must pace
/// the file (`--max-rate`) so the get is still running when the stop
/// lands; a loaded machine can take seconds to deliver it, so a get that
/// finished meanwhile is reaped and the scene set again. Send CONT to let
/// it go on.
pub fn stopped_get(cwd: &Path, addr: &str, name: &str) -> Child {
    let part = cwd.join(format!("{name}.part"));
    for _ in 0..5 {
        let _ = std::fs::remove_file(cwd.join(name));
        let get = Command::new(BIN)
            .args(["get", addr, name, "-q"])
            .current_dir(cwd)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !std::fs::metadata(&part).is_ok_and(|m| m.len() > 0) {
            assert!(Instant::now() < deadline, "the first get never began");
            std::thread::sleep(Duration::from_millis(10));
        }
        signal(&get, "STOP");
        if part.exists() {
            return get;
        }
        // Done, or about to be: let it go and reap it.
        signal(&get, "CONT");
        assert!(get.wait_with_output().unwrap().status.success());
    }
    panic!("the first get always ended before it could be stopped");
}

/// The scene both concurrent-download tests set: `second` (a get of NAME
/// into `cwd`, by either protocol) runs while a first get of NAME from
/// `addr` is stopped holding NAME.part ([`stopped_get`]), and is refused as
/// in progress (exit 1); the first then goes on and ends with `data`.
pub fn a_second_get_meets_the_lock(
    cwd: &Path,
    addr: &str,
    name: &str,
    second: &[&str],
    data: &[u8],
) {
    let first = stopped_get(cwd, addr, name);
    let second = tcpfetch(cwd, second);
    signal(&first, "CONT");
    second.expect_code(1);
    assert!(second.stderr().contains("in progress"), "{second}");
    let status = first.wait_with_output().unwrap().status;
    assert!(status.success(), "{status:?}");
    assert_eq!(std::fs::read(cwd.join(name)).unwrap(), data);
}
