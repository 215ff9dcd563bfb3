//! Black-box tests of the terminal picker: `tcpfetch get ADDR` without NAME.
//! A pseudo-terminal comes from util-linux `script -qec CMD /dev/null`,
//! which runs CMD on a new terminal, feeds it our stdin and returns its
//! exit status.

mod common;
use common::*;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Run `tcpfetch get ADDR` on a terminal in `cwd`, typing `answer`; the
/// exit code and everything the terminal showed.
fn pick(cwd: &Path, addr: &str, answer: &str) -> (i32, String) {
    let command = format!("'{BIN}' get {addr}");
    let mut child = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("util-linux 'script' is needed for the terminal tests");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut screen = Vec::new();
        let _ = stdout.read_to_end(&mut screen);
        screen
    });
    stdin.write_all(answer.as_bytes()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    drop(stdin);
    let screen = String::from_utf8_lossy(&reader.join().unwrap()).into_owned();
    (status.code().unwrap_or(-1), screen)
}

fn served(tag: &str) -> (Scratch, Server, Vec<u8>) {
    let t = Scratch::new(tag);
    let data = random_bytes(200_000, 11);
    t.write("served/alpha.txt", b"alpha\n");
    t.write("served/beta.bin", &data);
    std::fs::create_dir_all(t.join("cwd")).unwrap();
    let server = Server::start(&t.join("served"), &[]);
    (t, server, data)
}

#[test]
fn a_number_downloads_the_listed_file() {
    let (t, server, data) = served("pick-number");
    let (code, screen) = pick(&t.join("cwd"), &server.addr, "2\n");
    assert_eq!(code, 0, "{screen}");
    assert!(
        screen.contains("1)") && screen.contains("alpha.txt"),
        "{screen}"
    );
    assert!(
        screen.contains("2)") && screen.contains("beta.bin"),
        "{screen}"
    );
    assert!(screen.contains("download which file? [1-2"), "{screen}");
    assert!(screen.contains("part of a name to filter"), "{screen}");
    assert_eq!(std::fs::read(t.join("cwd/beta.bin")).unwrap(), data);
}

#[test]
fn an_empty_answer_cancels_with_exit_1() {
    let (t, server, _) = served("pick-empty");
    let (code, screen) = pick(&t.join("cwd"), &server.addr, "\n");
    assert_eq!(code, 1, "{screen}");
    assert!(screen.contains("cancelled"), "{screen}");
    assert_eq!(std::fs::read_dir(t.join("cwd")).unwrap().count(), 0);
}

#[test]
fn q_cancels_with_exit_1() {
    let (t, server, _) = served("pick-q");
    let (code, screen) = pick(&t.join("cwd"), &server.addr, "q\n");
    assert_eq!(code, 1, "{screen}");
    assert!(screen.contains("cancelled"), "{screen}");
    assert_eq!(std::fs::read_dir(t.join("cwd")).unwrap().count(), 0);
}

#[test]
fn a_typo_asks_again() {
    let (t, server, data) = served("pick-again");
    let (code, screen) = pick(&t.join("cwd"), &server.addr, "3\nzzz\n2\n");
    assert_eq!(code, 0, "{screen}");
    assert!(
        screen.contains("'3' is not one of the listed files (1-2); try again"),
        "{screen}"
    );
    assert!(
        screen.contains("'zzz' is not a listed number and no name contains it; try again"),
        "{screen}"
    );
    assert_eq!(std::fs::read(t.join("cwd/beta.bin")).unwrap(), data);
}

#[test]
fn a_long_list_is_narrowed_by_typing_part_of_a_name() {
    let t = Scratch::new("pick-filter");
    for i in 0..40 {
        t.write(
            &format!("served/file-{i:02}.txt"),
            format!("{i}\n").as_bytes(),
        );
    }
    t.write("served/needle.bin", b"found\n");
    std::fs::create_dir_all(t.join("cwd")).unwrap();
    let server = Server::start(&t.join("served"), &[]);
    let (code, screen) = pick(&t.join("cwd"), &server.addr, "NEED\n41\n");
    assert_eq!(code, 0, "{screen}");
    // One screenful, then the hint; the filtered list keeps its numbers.
    assert!(
        screen.contains("... and 21 more: type part of a name to narrow the list"),
        "{screen}"
    );
    assert!(!screen.contains("needle.bin\r\n... and"), "{screen}");
    assert!(
        screen.contains("41)") && screen.contains("needle.bin"),
        "{screen}"
    );
    assert_eq!(std::fs::read(t.join("cwd/needle.bin")).unwrap(), b"found\n");
}

#[test]
fn without_a_terminal_the_missing_name_is_a_usage_error() {
    let (t, server, _) = served("pick-noterm");
    let run = tcpfetch(&t.join("cwd"), &["get", &server.addr]);
    run.expect_code(2);
    // A short usage line and the command's hint, not the whole help.
    assert!(
        run.stderr().starts_with(
            "tcpfetch: missing NAME (the file to download)\nUsage: tcpfetch get ADDR [NAME...]"
        ),
        "{run}"
    );
    assert!(
        run.stderr()
            .ends_with("\ntcpfetch: see 'tcpfetch get --help'\n"),
        "{run}"
    );
    assert!(!run.stderr().contains("Options:"), "{run}");
}
