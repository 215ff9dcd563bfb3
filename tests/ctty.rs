//! `serve` opens a requested file with `O_NOCTTY`: a terminal swapped in
//! for a checked file, between the check and the open, must not become the
//! server's controlling terminal, whose hang-up would kill the server.
//!
//! The kernel hands a terminal to a session leader with none that opens it
//! without `O_NOCTTY`, so the server runs under setsid(1). The swap happens
//! in a window strace holds open: `openat2` fails as on an old kernel
//! (ENOSYS), so names go the full way (stat the path, then open it), and
//! that stat is held for seconds after it returns; strace has logged it by
//! then, and the test swaps the file for a symlink to a pty. The server
//! opens the pty, sees a character device on the descriptor and refuses;
//! the test then reads the server's controlling terminal from /proc. With
//! the flag dropped from the open, this test fails: the pty becomes the
//! server's terminal.
//!
//! Needs strace, setsid (util-linux) and python3 (for a pty), as .ci/run
//! installs; a missing one fails the test.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

/// A pty that is no session's terminal (openpty opens the slave with
/// O_NOCTTY): its slave's path on the first line; the master is held until
/// stdin closes.
const PTY: &str = "import os, sys
master, slave = os.openpty()
print(os.ttyname(slave), flush=True)
sys.stdin.read()";

/// The pty's holder, killed on drop (the server under strace is killed by
/// [`Server::wrapped`]'s guard).
struct Started(Child);

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Fields 6 (session) and 7 (controlling terminal) of /proc/PID/stat.
fn session_and_tty(pid: u32) -> (u32, u64) {
    // After the command name: state, ppid, pgrp, session, tty_nr.
    let fields = proc_stat(pid);
    (fields[3].parse().unwrap(), fields[4].parse().unwrap())
}

#[test]
fn a_tty_swapped_in_after_the_check_never_becomes_the_servers_terminal() {
    let t = Scratch::new("ctty");
    t.write("served/file", b"hello\n");
    let root = std::fs::canonicalize(t.join("served")).unwrap();
    let file = root.join("file");
    let mut holder = Command::new("python3")
        .args(["-c", PTY])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 is needed for a pty");
    let mut slave = String::new();
    BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut slave)
        .unwrap();
    let slave = slave.trim().to_string();
    assert!(slave.starts_with("/dev/pts/"), "no pty: {slave:?}");
    let holder = Started(holder);

    let log = t.join("strace.log");
    let (file_arg, log_arg) = (file.to_str().unwrap(), log.to_str().unwrap());
    // The second stat of the path in a thread is the full way's (the
    // first is the openat2 way's lstat); it is held for 5 s.
    let server = Server::start_under(
        &[
            "strace",
            "-f",
            "-qq",
            "-P",
            file_arg,
            "-e",
            "trace=statx,openat,openat2",
            "-e",
            "inject=openat2:error=ENOSYS",
            "-e",
            "inject=statx:delay_exit=5000000:when=2",
            "-o",
            log_arg,
            "setsid",
        ],
        &root,
        &[],
    );
    let serve = server.wrapped();
    let pid = serve.0;
    // A session leader, or the kernel would never give it a terminal and
    // the test would prove nothing.
    assert_eq!(session_and_tty(pid), (pid, 0), "setsid did not run serve");

    let mut conn = server.connect();
    conn.write_all(b"GET 0 file\n").unwrap();
    let held = format!("statx(AT_FDCWD, \"{file_arg}\", AT_STATX_SYNC_AS_STAT, ");
    let trace = || std::fs::read_to_string(&log).unwrap_or_default();
    let held_stat = poll_until(Duration::from_secs(60), || {
        trace()
            .lines()
            .any(|l| l.contains(&held) && l.ends_with("(DELAYED)"))
    });
    assert!(
        held_stat.is_some(),
        "strace never held the stat:\n{}",
        trace()
    );
    let swap = root.join(".swap");
    std::os::unix::fs::symlink(&slave, &swap).unwrap();
    std::fs::rename(&swap, &file).unwrap();

    let mut answer = String::new();
    BufReader::new(&conn).read_line(&mut answer).unwrap();
    // The stat saw the regular file, so this refusal is the open
    // descriptor's check: the server opened the pty (had it opened the
    // file, it would have served it).
    assert_eq!(
        answer,
        "TCPFETCH/1 ERR forbidden not a regular file; only regular files are served\n",
        "strace log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert_eq!(
        session_and_tty(pid),
        (pid, 0),
        "{slave} became the server's controlling terminal"
    );
    // The pty hangs up; a server whose terminal it were would get SIGHUP.
    drop(holder);
    tcpfetch(&t.path, &["ping", &server.addr]).expect_code(0);
}
