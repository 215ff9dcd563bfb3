//! Names within 16 bytes of the 255-byte limit of a directory entry: they
//! fit as PATH but not as PATH.part.sha256.tmp, so a download of one is
//! staged under a shortened name (its first 222 bytes, `~`, 16 hex digits
//! of the name's SHA-256) and still lands, verified, at the full PATH,
//! with `get` and with `get --all`, and resumes from where it was cut.
mod common;

use std::fs;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// `NAME.part` as a download of the long ASCII `name` stages it.
fn shortened_part(name: &str) -> String {
    format!(
        "{}~{}.part",
        &name[..222],
        &sha256_hex(name.as_bytes())[..16]
    )
}

/// Two names of 250 and 255 bytes, and two of 250 with the same first 240.
fn long_names() -> [String; 4] {
    let common = "c".repeat(240);
    [
        "a".repeat(250),
        format!("{}.txt", "b".repeat(251)),
        format!("{common}0123456789"),
        format!("{common}9876543210"),
    ]
}

#[test]
fn get_saves_a_name_of_250_or_255_bytes_without_o() {
    // The old code refused both: PATH.part.sha256.tmp passed 255 bytes.
    for (len, seed) in [(250, 81), (255, 82)] {
        let name = format!("{}.bin", "n".repeat(len - 4));
        let data = random_bytes(300_000, seed);
        let (t, server) = serve("long-get", &[(&name, &data)], &[]);
        let run = tcpfetch(&t.join("dl"), &["get", &server.addr, &name]);
        run.expect_code(0);
        assert!(run.stderr().contains("sha256 verified"), "{len}: {run}");
        assert!(fs::read(t.join("dl").join(&name)).unwrap() == data, "{len}");
        assert_eq!(listing(&t.join("dl")), [name], "{len}: {run}");
    }
}

#[test]
fn get_all_mirrors_long_names_even_with_a_common_prefix() {
    let names = long_names();
    let data: Vec<Vec<u8>> = (0..4).map(|i| random_bytes(100_000, 83 + i)).collect();
    let files: Vec<(&str, &[u8])> = names
        .iter()
        .zip(&data)
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    let (t, server) = serve("long-all", &files, &[]);
    let run = tcpfetch(&t.path, &["get", &server.addr, "--all", "-o", "m"]);
    run.expect_code(0);
    assert!(
        run.stderr().contains("4 files: 0 identical, 4 fetched"),
        "{run}"
    );
    for (name, data) in names.iter().zip(&data) {
        assert!(fs::read(t.join("m").join(name)).unwrap() == *data, "{run}");
    }
    let mut want = names.to_vec();
    want.sort();
    assert_eq!(listing(&t.join("m")), want, "{run}");
}

#[test]
fn an_interrupted_download_of_a_long_name_resumes_from_its_part() {
    let name = "r".repeat(250);
    let data = random_bytes(4 << 20, 87);
    let (t, server) = serve("long-resume", &[(&name, &data)], &["--max-rate", "1M"]);
    let dl = t.join("dl");
    let part = dl.join(shortened_part(&name));
    let mut first = Command::new(BIN)
        .args(["get", &server.addr, &name, "-q"])
        .current_dir(&dl)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let begun = poll_until(Duration::from_secs(60), || {
        fs::metadata(&part).is_ok_and(|m| m.len() >= 256 << 10)
    });
    // SIGKILL: nothing is tidied up, as after a crash or a power cut.
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(begun.is_some(), "no bytes ever reached {}", part.display());
    let kept = fs::metadata(&part).unwrap().len();
    assert!(kept > 0 && kept < data.len() as u64);
    let again = tcpfetch(&dl, &["get", &server.addr, &name]);
    again.expect_code(0);
    assert!(
        again
            .stderr()
            .contains(&format!("resuming at byte {kept} of")),
        "{again}"
    );
    server.wait_for_log(&format!("\"GET +mtime {kept} {name}\" ok"));
    assert!(fs::read(dl.join(&name)).unwrap() == data);
    assert_eq!(listing(&dl), [name]);
}

#[test]
fn get_all_resumes_a_long_name_from_its_shortened_part() {
    let name = "s".repeat(255);
    let data = random_bytes(200_000, 88);
    let (t, server) = serve("long-all-resume", &[(&name, &data)], &[]);
    let part = shortened_part(&name);
    t.write(&format!("m/{part}"), &data[..50_000]);
    t.write(
        &format!("m/{part}.sha256"),
        format!("{}\n", sha256_hex(&data)).as_bytes(),
    );
    let run = tcpfetch(&t.path, &["get", &server.addr, "--all", "-o", "m"]);
    run.expect_code(0);
    server.wait_for_log(&format!("\"GET +mtime 50000 {name}\" ok"));
    assert!(fs::read(t.join("m").join(&name)).unwrap() == data);
    assert_eq!(listing(&t.join("m")), [name], "{run}");
}

#[test]
fn a_served_file_named_as_a_long_names_part_is_not_saved() {
    // It would be taken for the partial download of the long name.
    let name = "p".repeat(250);
    let part = shortened_part(&name);
    let (t, server) = serve("long-decoy", &[(&name, b"real"), (&part, b"decoy")], &[]);
    let run = tcpfetch(&t.path, &["get", &server.addr, "--all", "-o", "m"]);
    run.expect_code(1);
    assert!(
        run.stderr()
            .contains(&format!("its name is the temporary file of '{name}'")),
        "{run}"
    );
    assert_eq!(fs::read(t.join("m").join(&name)).unwrap(), b"real");
    assert_eq!(listing(&t.join("m")), [name], "{run}");
}

#[test]
fn a_symlink_planted_at_a_long_names_part_is_refused() {
    // O_NOFOLLOW and the plain-file checks hold for the shortened names as
    // for PATH.part: the victim is never written through.
    let name = "v".repeat(250);
    let (t, server) = serve("long-planted", &[(&name, b"from the server")], &[]);
    let victim = t.write("victim.db", b"precious");
    let part = shortened_part(&name);
    for planted in [part.clone(), format!("{part}.sha256")] {
        std::os::unix::fs::symlink(&victim, t.join("dl").join(&planted)).unwrap();
        let run = tcpfetch(&t.join("dl"), &["get", &server.addr, &name]);
        run.expect_code(1);
        assert!(
            run.stderr()
                .contains(&format!("refusing to use '{planted}': it is a symlink")),
            "{run}"
        );
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        assert!(!t.join("dl").join(&name).exists(), "{run}");
        fs::remove_file(t.join("dl").join(&planted)).unwrap();
    }
}

#[test]
fn a_long_names_part_without_a_record_starts_over_and_says_which() {
    let name = "w".repeat(250);
    let data = random_bytes(100_000, 89);
    let (t, server) = serve("long-no-record", &[(&name, &data)], &[]);
    let part = shortened_part(&name);
    t.write(&format!("dl/{part}"), &random_bytes(30_000, 90));
    let run = tcpfetch(&t.join("dl"), &["get", &server.addr, &name]);
    run.expect_code(0);
    assert!(
        run.stderr().contains(&format!(
            "'{part}' has no record of the version it belongs to; starting over"
        )),
        "{run}"
    );
    assert!(fs::read(t.join("dl").join(&name)).unwrap() == data);
    assert_eq!(listing(&t.join("dl")), [name], "{run}");
}
