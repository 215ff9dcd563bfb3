//! Black-box tests of how `serve`'s connection threads accept: each waits
//! in `accept` itself (serve::pool), one more than `--max-clients` at
//! most, so that with every place taken one still answers `busy`; idle
//! ones exit; out of descriptors, they neither spin nor flood the log.
//! `prlimit` (util-linux) is installed by `.ci/run`; without it the last
//! test fails, it does not pass.
mod common;

use std::io::Write;
use std::net::TcpStream;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;

/// The server's threads named `name` (protocol v1's connection threads
/// are `client`; the first one is the main thread, named after the
/// program).
fn threads_named(server: &Server, name: &str) -> usize {
    let tasks = format!("/proc/{}/task", server.child.id());
    std::fs::read_dir(tasks)
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.trim_end() == name)
        .count()
}

/// utime + stime of the server so far, in clock ticks.
fn cpu_ticks(server: &Server) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", server.child.id())).unwrap();
    // Fields after the command name, which is in parentheses.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// `n` connections, each served a PING, kept open.
fn hold(server: &Server, n: usize) -> Vec<TcpStream> {
    let mut held: Vec<TcpStream> = (0..n).map(|_| server.connect()).collect();
    assert_all_served(&mut held);
    held
}

fn assert_all_served(held: &mut [TcpStream]) {
    for s in held {
        assert!(ping(s).starts_with("TCPFETCH/1 OK tcpfetch"));
    }
}

#[test]
fn with_every_place_taken_a_crowd_waiting_to_be_accepted_is_told_busy() {
    let (_t, server) = serve("accept-busy", &[], &["--max-clients", "4"]);
    let mut held = hold(&server, 4);
    // All connect before any answer is read: they queue in the kernel and
    // are accepted one after another by the one thread left waiting.
    let crowd: Vec<TcpStream> = (0..60).map(|_| server.connect()).collect();
    for s in &crowd {
        let answer = line(s);
        assert!(answer.starts_with("TCPFETCH/1 ERR busy"), "{answer:?}");
    }
    // The main thread and at most 4 more: one more thread than places.
    assert!(threads_named(&server, "client") <= 4);
    // The held ones are still served.
    assert_all_served(&mut held);
    // One leaves: its place is served again (a client connecting just as
    // the place is freed may still be told busy, and retries).
    held.pop();
    // (60 s: only a bound on a hang; a loaded machine's server may take
    // seconds to notice the close.)
    let answer = poll_until(Duration::from_secs(60), || {
        let answer = ping(&mut server.connect());
        (!answer.contains("busy")).then_some(answer)
    });
    let answer = answer.expect("a freed place is served again");
    assert!(answer.starts_with("TCPFETCH/1 OK tcpfetch"), "{answer:?}");
    let log = server.wait_for_count("- busy (at --max-clients)", 60);
    assert!(log >= 60, "{log} busy lines");
    let log = server.log();
    assert!(!log.contains("internal"), "{log}");
    assert!(!log.contains("cannot start a thread"), "{log}");
}

#[test]
fn connection_threads_grow_with_the_clients_and_exit_once_idle() {
    let (_t, server) = serve("accept-idle", &[], &["-q"]);
    let held = hold(&server, 16);
    // 16 served at once: the main thread and at least 15 more.
    let grown = threads_named(&server, "client");
    assert!(grown >= 15, "{grown} connection threads for 16 clients");
    drop(held);
    // Each waits 2 s in accept, then exits unless it is the last one
    // waiting; the main thread stays, so none is left. (The bound only
    // stops a hang on a loaded machine.)
    let gone = poll_until(Duration::from_secs(60), || {
        threads_named(&server, "client") == 0
    });
    assert!(gone.is_some(), "idle threads stayed");
    // And it still serves.
    assert!(ping(&mut server.connect()).starts_with("TCPFETCH/1 OK tcpfetch"));
}

#[test]
fn threads_beyond_what_a_steady_load_needs_exit_while_it_goes_on() {
    let (_t, server) = serve("accept-steady", &[], &["-q"]);
    let held = hold(&server, 24);
    assert!(threads_named(&server, "client") >= 23);
    drop(held);
    // Two clients, a connection per PING, without pause: the kernel hands
    // connections to waiting threads in turn, so each of the 24 gets one
    // long before its 2 s wait runs out; only the crew's count of the
    // fewest waiting lets the ones never needed exit.
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let (addr, stop) = (server.addr.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let mut s = TcpStream::connect(&addr).unwrap();
                    // Only a bound on a hang: an unanswered client (nobody
                    // accepting) fails the test rather than hanging it.
                    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
                    assert!(ping(&mut s).starts_with("TCPFETCH/1 OK tcpfetch"));
                }
            })
        })
        .collect();
    let shrunk = poll_until(Duration::from_secs(30), || {
        threads_named(&server, "client") <= 8
    });
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }
    let now = threads_named(&server, "client");
    assert!(shrunk.is_some(), "{now} connection threads for 2 clients");
}

/// The server's soft open-file limit.
fn soft_open_files(server: &Server) -> u64 {
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.child.id())).unwrap();
    let row = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    row["Max open files".len()..]
        .split_whitespace()
        .next()
        .and_then(|soft| soft.parse().ok())
        .unwrap_or_else(|| panic!("{row}"))
}

/// Set the server's soft open-file limit (`prlimit --pid`).
fn set_soft_open_files(server: &Server, soft: u64) {
    let out = Command::new("prlimit")
        .args(["--pid", &server.child.id().to_string()])
        .arg(format!("--nofile={soft}:"))
        .output()
        .expect("prlimit (util-linux) is needed: .ci/run installs it");
    assert!(out.status.success(), "prlimit: {out:?}");
}

#[test]
fn out_of_descriptors_accept_neither_spins_nor_floods_the_log_and_recovers() {
    let (_t, server) = serve("accept-emfile", &[], &[]);
    assert!(ping(&mut server.connect()).starts_with("TCPFETCH/1 OK"));
    // The soft limit at the lowest free descriptor: every accept fails
    // with EMFILE (the first may still succeed with a descriptor its
    // thread took before the limit fell), and clients wait in the queue.
    let fds = format!("/proc/{}/fd", server.child.id());
    let open: Vec<u64> = std::fs::read_dir(fds)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    let lowest_free = (0..).find(|n| !open.contains(n)).unwrap();
    let soft = soft_open_files(&server);
    set_soft_open_files(&server, lowest_free);
    let fell = std::time::Instant::now();
    let cpu_before = cpu_ticks(&server);
    let mut waiting: Vec<TcpStream> = (0..4).map(|_| server.connect()).collect();
    for s in &mut waiting {
        s.write_all(b"PING\n").unwrap();
    }
    std::thread::sleep(Duration::from_millis(2500));
    let cpu = cpu_ticks(&server) - cpu_before;
    let log = server.wait_for_log("accept failed: ");
    // 20 failures a second per waiting thread since the limit fell, logged
    // at most once a second, with the count of the others. Read at least
    // 2.5 s after, maybe much later on a loaded machine: the bound is a
    // line for each second that had passed when the log was read, and one.
    let most = fell.elapsed().as_secs() + 2;
    let lines = log.matches("accept failed").count() as u64;
    assert!(
        (1..=most).contains(&lines),
        "{lines} lines, at most {most} allowed:\n{log}"
    );
    assert!(log.contains("too many open files"), "{log}");
    // Pausing, not spinning: far under a second of CPU (clock ticks are
    // 1/100 s) in those 2.5 s.
    assert!(cpu < 100, "{cpu} ticks of CPU while out of descriptors");
    // Descriptors again: every waiting client is accepted and answered.
    set_soft_open_files(&server, soft);
    for s in &waiting {
        let answer = line(s);
        assert!(answer.starts_with("TCPFETCH/1 OK tcpfetch"), "{answer:?}");
    }
}
